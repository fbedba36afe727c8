// The `saga_signup` cookie: which signup this browser sent, signed so that only the
// server could have set it. Knowing a saga id is not enough to follow the saga or to
// take the new admin's API token: the browser controls its cookies, so an unsigned
// cookie holding the id would be a forgeable password. Imported by server code only.
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";

/** The cookie naming the signup this browser sent: only it may follow and finish it. */
export const SIGNUP_COOKIE = "saga_signup";

// Bumped if the cookie's meaning changes, so old cookies stop opening anything.
const LABEL = "tenant-saga example: saga_signup cookie v1";

const cache = globalThis as unknown as { signupCookieKey?: Buffer };

/**
 * The signing key: derived (HKDF-SHA256) from `WEB_APP_PRIVATE_KEYS`, the web app's one
 * secret already configured, under a label of its own, so no new setting is needed and
 * the key says nothing about the private keys. Adding or removing a key there makes
 * the (one hour) signup cookies already handed out invalid: their owners sign up again.
 */
function signingKey(): Buffer {
  if (cache.signupCookieKey) return cache.signupCookieKey;
  const secret = process.env.WEB_APP_PRIVATE_KEYS;
  if (!secret) throw new Error("WEB_APP_PRIVATE_KEYS is not set (the `private` line of `saga-keys new web-1`)");
  cache.signupCookieKey = Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), LABEL, 32));
  return cache.signupCookieKey;
}

const mac = (sagaId: string) => createHmac("sha256", signingKey()).update(sagaId).digest();

/** The cookie's value for signup `sagaId`: `<id>.<base64url HMAC of the id>`. */
export function signupCookieValue(sagaId: string): string {
  return `${sagaId}.${mac(sagaId).toString("base64url")}`;
}

/** Whether `value` (the cookie, if any) was set by this server for signup `sagaId`. */
export function isSignupCookieFor(value: string | undefined, sagaId: string): boolean {
  if (!value) return false;
  const dot = value.lastIndexOf(".");
  if (dot < 0 || value.slice(0, dot) !== sagaId) return false;
  const given = Buffer.from(value.slice(dot + 1), "base64url");
  const expected = mac(sagaId);
  // Constant time: the comparison tells an attacker nothing about the right MAC.
  return given.length === expected.length && timingSafeEqual(given, expected);
}
