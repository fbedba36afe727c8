"use server";
// The server actions: the signup form's (publishes the signup through the saga client)
// and the provisioning page's last one (the new workspace's API token into an
// HTTP-only cookie, once the saga completed).
import { randomUUID } from "node:crypto";
import { cookies, headers } from "next/headers";
import { redirect } from "next/navigation";
import {
  openResult,
  SagaClientError,
  SignupNotAcceptedError,
  SignupRejectedError,
  type ProgressEvent,
} from "@tenant-saga/client";

import {
  API_KEY_COOKIE,
  SIGNUP_COOKIE,
  isSignupCookieFor,
  saga,
  secureRequest,
  signupCookieValue,
  webAppKeys,
} from "@/lib/saga";

/** What the form shows after a refused submission. */
export interface SignupState {
  /** The id the next submission is sent with (a refused signup's id is spent). */
  signupId: string;
  /** A refusal about one field, shown next to it (`subdomain`, `admin_email`, …). */
  field?: string;
  /** The sentence to show. */
  error?: string;
  /** The contract's code (`subdomain_taken`, …). */
  code?: string;
  /** The subdomain that was sent (a refusal about it holds while it is unchanged). */
  subdomain?: string;
}

const text = (form: FormData, name: string) => String(form.get(name) ?? "").trim();

/** The orchestrator's sentences start in lower case: a capital for the page. */
const sentence = (message: string) => message.charAt(0).toUpperCase() + message.slice(1);

/** Publishes the signup; on success goes to its provisioning page. */
export async function signUp(previous: SignupState, form: FormData): Promise<SignupState> {
  // The id the page rendered: submitting the same form twice is one signup.
  const signupId = text(form, "signup_id") || previous.signupId;
  // The contract takes subdomains in lower case only; people type capitals (and the
  // form's live check already looked the lower-case name up).
  const subdomain = text(form, "subdomain").toLowerCase();
  let sagaId: string;
  try {
    const client = await saga();
    sagaId = await client.signup({
      signup_id: signupId,
      organization_name: text(form, "organization_name"),
      admin_email: text(form, "admin_email"),
      admin_full_name: text(form, "admin_full_name"),
      admin_password: String(form.get("admin_password") ?? ""),
      subdomain: subdomain || null,
      auth_provider: "password",
    });
  } catch (error) {
    if (error instanceof SignupRejectedError) {
      // Refused: this id is spent (its saga ended `rejected`), the next try is a new signup.
      return {
        signupId: randomUUID(),
        field: error.field,
        error: sentence(error.message),
        code: error.code,
        subdomain,
      };
    }
    if (error instanceof SignupNotAcceptedError) {
      // Published, but no saga yet (the orchestrator may be down): it may still come
      // from the stream, so the same id is followed (the page waits for its first
      // news), never a second signup, which would find its own subdomain taken.
      await followSignup(error.sagaId);
    }
    // Not sent (the bus is away): the same id again, so a try that did get through
    // meanwhile is the same signup.
    console.error("signup failed", describe(error));
    const code = error instanceof SagaClientError ? error.code : "internal";
    return { signupId, error: "We could not send your signup just now; please try again.", code };
  }
  await followSignup(sagaId);
  return previous;
}

/** Names the signup in this browser's signed cookie and goes to its provisioning page. */
async function followSignup(sagaId: string): Promise<never> {
  const secure = secureRequest(await headers());
  (await cookies()).set(SIGNUP_COOKIE, signupCookieValue(sagaId), {
    httpOnly: true,
    sameSite: "lax",
    secure,
    path: "/",
    maxAge: 60 * 60,
  });
  redirect(`/provisioning/${sagaId}`);
}

/** An error for the server's log: its kind, code and sentence (none carries a secret). */
function describe(error: unknown): string {
  if (error instanceof SagaClientError) return `${error.name} (${error.code}): ${error.message}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** What the provisioning page gets once the saga completed. */
export type Finished = { url: string } | { error: string };

/**
 * The saga completed: its API secret is opened with the web app's key, and the token
 * goes to an HTTP-only cookie (never to the page's script); the answer is where to go.
 */
export async function finishSignup(sagaId: string): Promise<Finished> {
  const jar = await cookies();
  if (!isSignupCookieFor(jar.get(SIGNUP_COOKIE)?.value, sagaId)) {
    return { error: "This signup was not started in this browser." };
  }
  let token;
  try {
    let end: ProgressEvent | undefined;
    for await (const event of (await saga()).progress(sagaId)) end = event;
    if (end?.status !== "completed") return { error: "This workspace is not ready." };
    token = await openResult(end, await webAppKeys());
  } catch (error) {
    if (!(error instanceof SagaClientError)) throw error;
    console.error("finishing the signup failed", sagaId, describe(error));
    return { error: "Your workspace is ready, but we could not sign you in to it just now; please reload this page." };
  }
  const secure = secureRequest(await headers());
  jar.set(API_KEY_COOKIE, `${token.apiKey}:${token.apiSecret}`, {
    httpOnly: true,
    sameSite: "lax",
    secure,
    path: "/",
    // Shared with the workspaces' subdomains when set (`.example.com`).
    domain: process.env.COOKIE_DOMAIN || undefined,
    maxAge: 60 * 60 * 24 * 7,
  });
  jar.delete(SIGNUP_COOKIE);
  return { url: `${token.siteUrl}/dashboard` };
}
