// The example app in a real browser (Debian's headless Chromium through
// playwright-core), against `next start` and the real services that
// tests/tests/nextjs_example.rs starts (missing settings fail, never skip): a signup
// whose stages appear one by one until "Workspace ready!" with the site's link, its
// API token in an HTTP-only cookie that authenticates against the site, then the
// redirect; a taken subdomain's reason next to the field; a forged signup cookie
// (the saga id alone) neither follows nor finishes someone else's signup; a signup
// whose site step fails, rolled back with a clear message. Screenshots go to
// SCREENSHOT_DIR.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";

import { chromium } from "playwright-core";

const REQUIRED = ["BASE_URL", "CHROMIUM_BIN", "SCREENSHOT_DIR", "SUBDOMAIN_SUFFIX", "SUBDOMAINS", "FAILING_SUBDOMAIN", "BENCH_HTTP_URL"];
const missing = REQUIRED.filter((name) => !process.env[name]);
if (missing.length > 0) {
  throw new Error(
    `the browser test needs ${missing.join(", ")}: run it through ` +
      "`cargo test -p tests --test nextjs_example`, which starts the services and the app",
  );
}
const env = process.env;
const PARENT = env.PARENT_DOMAIN ?? "example.test";
// Handed out (and dropped afterwards) by the Rust harness.
const first = JSON.parse(env.SUBDOMAINS).web;
assert.ok(first, "SUBDOMAINS names no subdomain for web");
const PASSWORD = `Browser-Lantern-${env.SUBDOMAIN_SUFFIX}-Orbit`;
// As a person might type it: the contract takes lower case only, the app lowercases.
const typed = [...first].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join("");
assert.notEqual(typed, first);
/** The first test's saga, completed: the forgery test tries to take its API token. */
let firstSagaId;

let browser;
before(async () => {
  await mkdir(env.SCREENSHOT_DIR, { recursive: true });
  // --no-sandbox: the tests run as root, where Chromium's sandbox cannot start.
  browser = await chromium.launch({ executablePath: env.CHROMIUM_BIN, headless: true, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
});

const shot = (page, name) => page.screenshot({ path: path.join(env.SCREENSHOT_DIR, `${name}.png`), fullPage: true });

/** A page whose stage list is recorded each time it changes (to see stages appear). */
async function newPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.__stages = [];
    new MutationObserver(() => {
      const list = document.querySelector("ol.stages");
      if (!list) return;
      const now = [...list.querySelectorAll("li")].map((li) => `${li.dataset.step}:${li.dataset.state}`).join(" ");
      if (window.__stages.at(-1) !== now) window.__stages.push(now);
    }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  return { context, page };
}

async function fillForm(page, { organization, subdomain, email = "admin@test.com" }) {
  await page.goto(env.BASE_URL);
  await page.getByLabel("Organization").fill(organization);
  await page.getByLabel("Subdomain").fill(subdomain);
  await page.getByLabel("Work email").fill(email);
  await page.getByLabel("Full name").fill("Browser Admin");
  await page.getByLabel("Password").fill(PASSWORD);
}

test("a signup shows its stages and reaches Workspace ready with the site's link", { timeout: 120_000 }, async () => {
  const { context, page } = await newPage();
  const site = `https://${first}.${PARENT}`;
  // The workspace itself is not served here: the redirect is answered in the browser.
  await context.route(`${site}/**`, (route) =>
    route.fulfill({ contentType: "text/html", body: "<h1>Tenant dashboard</h1>" }),
  );
  await fillForm(page, { organization: "Browser Org", subdomain: typed });
  const check = page.getByTestId("subdomain-check");
  await check.getByText(`${first}.${PARENT} is available`).waitFor();
  await shot(page, "1-signup-form");
  await page.getByRole("button", { name: "Create workspace" }).click();

  await page.waitForURL(/\/provisioning\/[0-9a-f-]{36}$/);
  firstSagaId = new URL(page.url()).pathname.split("/").at(-1);
  await page.locator('li[data-step="site"]').waitFor();
  await shot(page, "2-stages");
  const outcome = page.getByTestId("outcome");
  await outcome.getByText("Workspace ready!").waitFor({ timeout: 60_000 });
  const link = outcome.getByRole("link", { name: `${site}/dashboard` });
  await link.waitFor();
  assert.equal(await link.getAttribute("href"), `${site}/dashboard`);
  await shot(page, "3-workspace-ready");

  // Every stage, as the orchestrator words it, done; and they came one by one.
  const stages = await page.locator("ol.stages li").evaluateAll((lis) =>
    lis.map((li) => [li.dataset.step, li.dataset.state, li.firstChild.textContent]),
  );
  assert.deepEqual(stages, [
    ["database", "done", "Creating the database"],
    ["site", "done", "Deploying ERPNext instance"],
    ["admin_user", "done", "Creating the administrator account"],
    ["registration", "done", "Registering the workspace"],
  ]);
  // They appeared one by one: the page showed fewer stages first, and the slow ones
  // (bench commands) running.
  const seen = await page.evaluate(() => window.__stages);
  assert.ok(seen.some((s) => s !== "" && s.split(" ").length < 4), `stages one by one: ${JSON.stringify(seen)}`);
  for (const step of ["site", "admin_user"]) {
    assert.ok(
      seen.some((s) => s.includes(`${step}:running`)),
      `${step} was shown running while it ran: ${JSON.stringify(seen)}`,
    );
  }

  // The API token is in an HTTP-only cookie, and it is the new admin's.
  const cookies = await context.cookies(env.BASE_URL);
  const token = cookies.find((c) => c.name === "workspace_api_key");
  assert.ok(token, JSON.stringify(cookies.map((c) => c.name)));
  assert.equal(token.httpOnly, true);
  assert.equal(await page.evaluate(() => document.cookie.includes("workspace_api_key")), false);
  assert.equal(cookies.some((c) => c.name === "saga_signup"), false, "the signup's cookie is spent");
  const whoAmI = await fetch(`${env.BENCH_HTTP_URL}/api/method/frappe.auth.get_logged_user`, {
    headers: { "X-Frappe-Site-Name": `${first}.${PARENT}`, Authorization: `token ${decodeURIComponent(token.value)}` },
  });
  assert.equal(whoAmI.status, 200);
  assert.deepEqual(await whoAmI.json(), { message: "admin@test.com" });

  // Then off to the workspace.
  await page.waitForURL(`${site}/dashboard`, { timeout: 15_000 });
  await context.close();
});

test("a taken subdomain shows the reason next to the field", { timeout: 60_000 }, async () => {
  const { context, page } = await newPage();
  await fillForm(page, { organization: "Copycat Org", subdomain: first });
  // As the user types: the live check.
  const check = page.getByTestId("subdomain-check");
  await check.getByText("is already taken").waitFor();
  assert.match(await check.getAttribute("class"), /\bbad\b/);
  // Sent anyway: the orchestrator's refusal, next to the same field.
  await page.getByRole("button", { name: "Create workspace" }).click();
  const error = page.getByTestId("subdomain-error");
  await error.waitFor();
  assert.match(await error.textContent(), new RegExp(`^the subdomain "${first}" is already taken`, "i"));
  assert.equal(await check.textContent(), "", "said once, next to the field");
  assert.equal(new URL(page.url()).pathname, "/", "still on the form");
  await shot(page, "4-subdomain-taken");
  await context.close();
});

test("a forged signup cookie (the saga id) neither follows nor finishes the signup", { timeout: 60_000 }, async () => {
  assert.ok(firstSagaId, "the first test ran");
  const events = `${env.BASE_URL}/api/signups/${firstSagaId}/events`;
  // The cookie as it was before it was signed (the bare id), and with a made-up MAC.
  for (const forged of [firstSagaId, `${firstSagaId}.${Buffer.alloc(32).toString("base64url")}`]) {
    const answer = await fetch(events, { headers: { Cookie: `saga_signup=${forged}` } });
    assert.equal(answer.status, 403, `events with saga_signup=${forged}`);
    await answer.body?.cancel();
  }

  // In a browser holding the forged cookie, the provisioning page says it cannot
  // follow the signup (the 403), rather than "Waiting…" forever.
  const { context, page } = await newPage();
  await context.addCookies([{ name: "saga_signup", value: firstSagaId, url: env.BASE_URL, httpOnly: true }]);
  await page.goto(`${env.BASE_URL}/provisioning/${firstSagaId}`);
  await page.getByTestId("problem").getByText("We cannot show the progress of this signup").waitFor();
  await shot(page, "6-forged-cookie");

  // Even told the saga completed (the stream answered here), the server action that
  // sets the API token refuses the forged cookie.
  await context.route(`${env.BASE_URL}/api/signups/**`, (route) =>
    route.fulfill({
      contentType: "text/event-stream",
      body: `event: progress\nid: 9\ndata: ${JSON.stringify({
        saga_id: firstSagaId,
        sequence: 9,
        status: "completed",
        percent: 100,
        message: "Workspace ready",
        timestamp: new Date().toISOString(),
      })}\n\n`,
    }),
  );
  await page.reload();
  const outcome = page.getByTestId("outcome");
  await outcome.getByText("Workspace ready!").waitFor();
  await page.getByTestId("problem").getByText("This signup was not started in this browser.").waitFor();
  assert.equal(await outcome.getByRole("link").count(), 0, "no link to the workspace");
  assert.equal((await context.cookies(env.BASE_URL)).some((c) => c.name === "workspace_api_key"), false);
  await context.close();
});

test("a signup whose site step fails shows the rollback and a clear message", { timeout: 120_000 }, async () => {
  const { context, page } = await newPage();
  await fillForm(page, { organization: "Unlucky Org", subdomain: env.FAILING_SUBDOMAIN });
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.waitForURL(/\/provisioning\//);
  const alert = page.getByTestId("outcome").getByRole("alert");
  await alert.getByText("Your workspace could not be created").waitFor({ timeout: 90_000 });
  const text = await alert.textContent();
  assert.match(text, /Deploying ERPNext instance failed\./, "which stage failed");
  assert.match(text, /new-site/, "the details");
  assert.match(text, /Everything that had been set up for it was removed/);
  const states = await page.locator("ol.stages li").evaluateAll((lis) => lis.map((li) => [li.dataset.step, li.dataset.state]));
  assert.deepEqual(states, [
    ["database", "undone"],
    ["site", "undone"],
  ]);
  const seen = await page.evaluate(() => window.__stages);
  assert.ok(
    seen.some((s) => s.includes("database:undoing") || s.includes("site:undoing")),
    `the undo was shown: ${JSON.stringify(seen)}`,
  );
  assert.equal((await context.cookies(env.BASE_URL)).some((c) => c.name === "workspace_api_key"), false);
  await shot(page, "5-rolled-back");
  await context.close();
});
