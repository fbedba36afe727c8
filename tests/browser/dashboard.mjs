// Drives the orchestrator's dashboard in headless Chromium, as an operator would, for
// tests/tests/dashboard.rs (which starts the services and checks the outcome in the
// store afterwards). Reads its world from the environment:
//   DASHBOARD_URL   the orchestrator's base URL
//   READ_TOKEN      PROVISIONING_READ_TOKEN, typed into the token dialog
//   API_SECRET      PROVISIONING_API_SECRET: signups are provisioned over the API with
//                   it, and it is typed into the replay dialog
//   SUBDOMAIN_FAIL  a signup whose admin user step fails once (retried) and whose
//                   registration step fails (the first attempts of the world fail;
//                   its replay succeeds)
//   SUBDOMAIN_OK    a signup that completes
//   CHROMIUM_BIN    Debian's chromium
//   OUTPUT_DIR      where the screenshots go
// Prints `RESULT {"fail_id", "ok_id"}` and exits 0 when every check held; otherwise
// prints what failed and exits 1.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("DASHBOARD_URL");
const readToken = env("READ_TOKEN");
const secret = env("API_SECRET");
const output = env("OUTPUT_DIR");
const WAIT = { timeout: 60000 };

mkdirSync(output, { recursive: true });
const step = (text) => console.log(`dashboard: ${text}`);

/** POST /api/v1/provision, as the web app's backend does; the saga id. */
async function provision(subdomain) {
  const response = await fetch(`${base}/api/v1/provision`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Provisioning-Secret": secret },
    body: JSON.stringify({
      organization_name: `Org ${subdomain}`,
      admin_email: `admin@${subdomain}.test`,
      password: "TestPass123!-long enough",
      full_name: "Dash Board",
      subdomain,
    }),
  });
  const body = await response.json();
  if (response.status !== 202) throw new Error(`provision ${subdomain}: ${response.status} ${JSON.stringify(body)}`);
  return body.saga_id;
}

const browser = await chromium.launch({ executablePath: env("CHROMIUM_BIN"), headless: true });
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  // Any script error or refused load (the page's CSP allows only itself) fails the run;
  // the 401 of the deliberately wrong token below is the one error expected.
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().includes("401")) problems.push(`console: ${message.text()}`);
  });

  step("open the dashboard; a wrong read token is refused, the right one opens it");
  await page.goto(`${base}/`);
  const tokenDialog = page.locator("#token-dialog");
  await tokenDialog.waitFor({ state: "visible", ...WAIT });
  await tokenDialog.locator("input[name=token]").fill("not-the-token-0123456789");
  await tokenDialog.locator("button[type=submit]").click();
  await page.locator("#token-dialog .dialog-error", { hasText: "not accepted" }).waitFor(WAIT);
  await tokenDialog.locator("input[name=token]").fill(readToken);
  await tokenDialog.locator("button[type=submit]").click();
  await tokenDialog.waitFor({ state: "hidden", ...WAIT });
  await page.locator("#live[data-state=live]").waitFor(WAIT);
  // Lost on a reload: proves every later change came without one.
  await page.evaluate(() => { window.sameDocument = "yes"; });

  step("a signup whose registration fails appears and ends rolled_back, live");
  const failId = await provision(env("SUBDOMAIN_FAIL"));
  const failRow = page.locator(`#sagas tr[data-saga-id="${failId}"]`);
  await failRow.waitFor(WAIT);
  await page.locator(`#sagas tr[data-saga-id="${failId}"][data-status=rolled_back]`).waitFor(WAIT);
  await failRow.locator("td.error", { hasText: "scripted_failure" }).waitFor(WAIT);

  step("a signup appears in the table and reaches completed without a reload");
  const okId = await provision(env("SUBDOMAIN_OK"));
  const okRow = page.locator(`#sagas tr[data-saga-id="${okId}"]`);
  await okRow.waitFor(WAIT);
  await page.locator(`#sagas tr[data-saga-id="${okId}"][data-status=completed]`).waitFor(WAIT);
  await okRow.locator("td.status-cell", { hasText: "completed" }).waitFor(WAIT);
  // Headline figures follow: one of the two that ran completed.
  await page.locator("#card-success .value", { hasText: "50 %" }).waitFor(WAIT);
  await page.locator("#card-ready .value", { hasNotText: "–" }).waitFor(WAIT);
  await page.locator("#card-flight .value", { hasText: "0" }).waitFor(WAIT);
  await page.screenshot({ path: join(output, "1-overview.png"), fullPage: true });

  step("filters: rolled_back shows the failed signup only");
  await page.selectOption("#filters select[name=status]", "rolled_back");
  await page.locator(`#sagas tr[data-saga-id="${okId}"]`).waitFor({ state: "detached", ...WAIT });
  await failRow.waitFor(WAIT);
  await page.fill("#filters input[name=step]", "registration");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => location.hash.includes("step=registration"));
  await failRow.waitFor(WAIT);
  await page.screenshot({ path: join(output, "2-filtered.png"), fullPage: true });
  await page.click("#clear-filters");
  await okRow.waitFor(WAIT);

  step("the standby pool's card (off here), and the kind filter: standby builds, signups");
  await page.locator("#card-pool .value", { hasText: "off" }).waitFor(WAIT);
  await page.locator("#card-pool .sub", { hasText: "size 0 (configured)" }).waitFor(WAIT);
  await page.selectOption("#filters select[name=kind]", "standby_build");
  await page.waitForFunction(() => location.hash.includes("kind=standby_build"));
  await okRow.waitFor({ state: "detached", ...WAIT });
  await page.selectOption("#filters select[name=kind]", "signup");
  await page.waitForFunction(() => location.hash.includes("kind=signup"));
  await okRow.waitFor(WAIT);
  await failRow.waitFor(WAIT);
  await page.click("#clear-filters");
  await okRow.waitFor(WAIT);

  step("the rolled-back saga's page: the retried step, the failed step and the undos");
  await failRow.locator("td.subdomain a").click();
  await page.locator("#saga-status[data-status=rolled_back]").waitFor(WAIT);
  const run1 = page.locator('#runs section.run[data-run="1"]');
  await run1.locator('.lane[data-step=registration] .bar[data-kind=execute][data-outcome=failed]').waitFor(WAIT);
  await run1.locator('.lane[data-step=admin_user] .bar[data-kind=execute][data-outcome=retrying]').waitFor(WAIT);
  await run1.locator('.lane[data-step=admin_user] .bar[data-kind=execute][data-outcome=completed]').waitFor(WAIT);
  await run1.locator(".lane[data-step=admin_user] .lane-facts", { hasText: "2 attempts (1 retry)" }).waitFor(WAIT);
  for (const undone of ["registration", "admin_user", "site", "database"]) {
    await run1.locator(`.lane[data-step=${undone}] .bar[data-kind=undo][data-outcome=compensated]`).waitFor(WAIT);
  }
  await page.locator("#saga-error", { hasText: "registration failed as scripted" }).waitFor(WAIT);
  await page.locator("#lines li", { hasText: "Signup rolled back" }).waitFor(WAIT);
  await page.locator("#lines li.output", { hasText: "site working" }).waitFor(WAIT);
  await page.screenshot({ path: join(output, "3-rolled-back.png"), fullPage: true });

  step("replay from the page: a wrong secret is refused, the right one replays");
  const replayDialog = page.locator("#replay-dialog");
  await page.click("#replay");
  await replayDialog.waitFor({ state: "visible", ...WAIT });
  await replayDialog.locator("input[name=secret]").fill("wrong-secret-0123456789");
  await replayDialog.locator("input[name=operator]").fill("dana");
  await replayDialog.locator("input[name=reason]").fill("registry fixed");
  await replayDialog.locator("button[type=submit]").click();
  await page.locator("#replay-result.refused", { hasText: "secret is wrong" }).waitFor(WAIT);
  await page.click("#replay");
  await replayDialog.waitFor({ state: "visible", ...WAIT });
  await replayDialog.locator("input[name=secret]").fill(secret);
  await replayDialog.locator("input[name=operator]").fill("dana");
  await replayDialog.locator("input[name=reason]").fill("registry fixed");
  await page.screenshot({ path: join(output, "4-replay-dialog.png") });
  await replayDialog.locator("button[type=submit]").click();
  await page.locator("#replay-result.ok", { hasText: "Replay started" }).waitFor(WAIT);
  const run2 = page.locator('#runs section.run[data-run="2"]');
  await run2.locator(".run-action", { hasText: "Replayed by dana: registry fixed" }).waitFor(WAIT);
  await page.locator("#saga-status[data-status=completed]").waitFor(WAIT);
  await run2.locator('.lane[data-step=registration] .bar[data-kind=execute][data-outcome=completed]').waitFor(WAIT);
  await page.locator("#lines li.operator", { hasText: "Replayed by dana: registry fixed" }).waitFor(WAIT);
  if (!(await page.locator("#replay").isDisabled())) problems.push("a completed saga's Replay button is enabled");
  // The secret went with that request only.
  const kept = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage })
    + document.querySelector("#replay-form input[name=secret]").value);
  if (kept.includes(secret)) problems.push("the provisioning secret is kept in the page");
  await page.screenshot({ path: join(output, "5-replayed.png"), fullPage: true });

  step("back to the table: the replayed saga's row says completed, run 2");
  await page.click(".back a");
  await page.locator(`#sagas tr[data-saga-id="${failId}"][data-status=completed] td.run-number`, { hasText: "2" }).waitFor(WAIT);
  if ((await page.evaluate(() => window.sameDocument)) !== "yes") problems.push("the page was reloaded");

  if (problems.length === 0) console.log(`RESULT ${JSON.stringify({ fail_id: failId, ok_id: okId })}`);
} catch (e) {
  problems.push(e.stack || String(e));
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages.length) await pages[0].screenshot({ path: join(output, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(`dashboard: FAILED\n${problems.join("\n")}`);
  process.exit(1);
}
step("every check held");
