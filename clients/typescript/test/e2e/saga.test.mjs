// A signup through the TypeScript client against the real services, as the web app's
// NATS user: it completes with its events in order, the opened API secret
// authenticates against the site, a duplicate is one saga, and refusals are typed
// errors with the contract's codes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { SignupRejectedError, openResult } from "../../dist/index.js";
import { PARENT_DOMAIN, client, env, signupRequest, subdomain, timeline } from "./world.mjs";

let saga;
before(async () => {
  saga = await client();
});
after(async () => {
  await saga?.close();
});

/** The step each event is about, with its step status, dropping output lines. */
const stepsOf = (events) =>
  events.filter((e) => e.step && e.step_status !== "output").map((e) => `${e.step}:${e.step_status}`);

const first = subdomain("ts-first");
let completed;

test("a signup completes and its events arrive in order", { timeout: 60_000 }, async () => {
  const sagaId = await saga.signup(signupRequest(first));
  const events = await timeline(saga, sagaId);
  assert.deepEqual(
    events.map((e) => e.sequence),
    events.map((_, i) => i + 1),
    "every event once, in order, from the first",
  );
  assert.equal(events[0].status, "accepted");
  assert.equal(events[0].message, "Signup accepted");
  completed = events.at(-1);
  assert.equal(completed.status, "completed", JSON.stringify(completed));
  assert.equal(completed.message, `Workspace ready at https://${first}.${PARENT_DOMAIN}`);
  assert.equal(completed.result.site_url, `https://${first}.${PARENT_DOMAIN}`);
  assert.deepEqual(stepsOf(events), [
    "database:started",
    "database:completed",
    "site:started",
    "site:completed",
    "admin_user:started",
    "admin_user:completed",
    "registration:started",
    "registration:completed",
  ]);
  assert.ok(events.every((e) => e.saga_id === sagaId));
  // The API secret travels sealed to the web app: never in clear in an event.
  assert.match(completed.result.api_secret, /^v2:web-app:/);

  // Read again later from a point on (a page resuming after event 3): the rest only.
  const rest = await timeline(saga, sagaId, { fromSequence: 4 });
  assert.deepEqual(rest, events.slice(3));
});

test("the opened secret authenticates against the emulated site", { timeout: 60_000 }, async () => {
  assert.ok(completed, "the first test completed a saga");
  const token = await openResult(completed, env.WEB_APP_PRIVATE_KEYS);
  assert.equal(token.siteName, `${first}.${PARENT_DOMAIN}`);
  const whoAmI = (secret) =>
    fetch(`${env.BENCH_HTTP_URL}/api/method/frappe.auth.get_logged_user`, {
      headers: { "X-Frappe-Site-Name": token.siteName, Authorization: `token ${token.apiKey}:${secret}` },
    });
  const answer = await whoAmI(token.apiSecret);
  assert.equal(answer.status, 200);
  assert.deepEqual(await answer.json(), { message: "admin@test.com" });
  // Not any secret would do.
  assert.equal((await whoAmI(`${token.apiSecret}x`)).status, 401);
});

test("a duplicate signup gives one saga", { timeout: 60_000 }, async () => {
  const request = signupRequest(subdomain("ts-twice"));
  // Sent twice at once (a double submit), then once more after it was accepted.
  const [a, b] = await Promise.all([saga.signup(request), saga.signup(request)]);
  const c = await saga.signup(request);
  assert.equal(a, request.signup_id);
  assert.deepEqual([b, c], [a, a]);
  const events = await timeline(saga, a);
  assert.equal(events.filter((e) => e.message === "Signup accepted").length, 1);
  assert.equal(events.filter((e) => e.step === "database" && e.step_status === "started").length, 1);
  assert.equal(events.at(-1).status, "completed");
  assert.deepEqual(
    events.map((e) => e.sequence),
    events.map((_, i) => i + 1),
  );
});

test("a taken subdomain and a bad email come back as typed errors", { timeout: 60_000 }, async () => {
  const check = await saga.checkSubdomain(first);
  assert.equal(check.available, false);
  assert.equal(check.reason, "taken");
  const free = await saga.checkSubdomain(subdomain("ts-free"));
  assert.equal(free.available, true, JSON.stringify(free));

  await assert.rejects(saga.signup(signupRequest(first)), (e) => {
    assert.ok(e instanceof SignupRejectedError, String(e));
    assert.equal(e.code, "subdomain_taken");
    assert.equal(e.field, "subdomain");
    assert.equal(e.event.status, "rejected");
    return true;
  });
  await assert.rejects(saga.signup(signupRequest(subdomain("ts-mail"), { admin_email: "not-an-email" })), (e) => {
    assert.ok(e instanceof SignupRejectedError, String(e));
    assert.equal(e.code, "invalid_email");
    assert.equal(e.field, "admin_email");
    return true;
  });
  await assert.rejects(saga.signup(signupRequest(subdomain("ts-weak"), { admin_password: "password" })), {
    name: "SignupRejectedError",
    code: "invalid_password",
  });
});
