// The server's one connection to the saga's bus, as the web app's NATS user, and the
// web app's keys: read from the environment (README, "Integrating a Next.js app").
// Imported by server code only (server actions, route handlers).
import { connect, Keyring, optionsFromEnv, type SagaClient } from "@tenant-saga/client";

const cache = globalThis as unknown as { sagaClient?: Promise<SagaClient>; webAppKeys?: Promise<Keyring> };

/** The connected client (one per server process; reused across hot reloads). */
export function saga(): Promise<SagaClient> {
  cache.sagaClient ??= connect(optionsFromEnv()).catch((error: unknown) => {
    cache.sagaClient = undefined;
    throw error;
  });
  return cache.sagaClient;
}

/** The web app's private keys (`WEB_APP_PRIVATE_KEYS`), which open the API secret. */
export function webAppKeys(): Promise<Keyring> {
  const text = process.env.WEB_APP_PRIVATE_KEYS;
  if (!text) throw new Error("WEB_APP_PRIVATE_KEYS is not set (the `private` line of `saga-keys new web-1`)");
  cache.webAppKeys ??= Keyring.parse(text);
  return cache.webAppKeys;
}

export { SIGNUP_COOKIE, isSignupCookieFor, signupCookieValue } from "./signup-cookie";
/** The cookie the new workspace's API token goes to (`<api key>:<api secret>`). */
export const API_KEY_COOKIE = "workspace_api_key";

/** Whether cookies must be `Secure`: the request came over HTTPS (or a proxy says it did). */
export function secureRequest(headers: Headers): boolean {
  return (headers.get("x-forwarded-proto") ?? "").split(",")[0]?.trim() === "https";
}
