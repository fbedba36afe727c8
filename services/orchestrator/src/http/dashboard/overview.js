// The overview: headline figures (GET /api/v1/stats, signups only; the standby pool
// from GET /api/v1/pool) and the sagas table, filtered by
// the list endpoint (GET /api/v1/sagas) and kept current from every saga's live events
// (GET /api/v1/events): a new saga appears, a row's status changes, without a reload.

import { getJSON } from "./api.js";
import { badge, dateTime, debounce, duration, el, percent, terminal } from "./format.js";

const FILTERS = ["status", "kind", "step", "error_code", "subdomain"];

/** Rows shown, by saga id: `{summary, row}`. */
const rows = new Map();
let filters = {};
let cursor = null;
let generation = 0;

/** Fills the view for the filters of the page's address (`#/?status=...`). */
export async function show(query) {
  filters = Object.fromEntries(FILTERS.map((f) => [f, (query.get(f) || "").trim()]).filter(([, v]) => v));
  const form = document.getElementById("filters");
  for (const name of FILTERS) form.elements[name].value = filters[name] || "";
  refreshStats();
  await load(false);
}

/** Wires the filter form (once). */
export function setUp() {
  const form = document.getElementById("filters");
  const apply = () => {
    const query = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) query.set(name, value);
    }
    location.hash = `#/?${query}`;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  form.elements.status.addEventListener("change", apply);
  form.elements.kind.addEventListener("change", apply);
  document.getElementById("clear-filters").addEventListener("click", () => {
    form.reset();
    apply();
  });
  document.getElementById("more").addEventListener("click", () => load(true));
  // The stuck count moves with time alone.
  setInterval(() => { if (visible()) refreshStats(); }, 30000);
}

function visible() {
  return !document.getElementById("overview").hidden;
}

function listPath(more) {
  const query = new URLSearchParams(filters);
  query.set("limit", "50");
  if (more && cursor) query.set("cursor", cursor);
  return `api/v1/sagas?${query}`;
}

async function load(more) {
  const mine = ++generation;
  const tbody = document.querySelector("#sagas tbody");
  const note = document.getElementById("sagas-note");
  let page;
  try {
    page = await getJSON(listPath(more));
  } catch (e) {
    note.hidden = false;
    note.textContent = `The sagas cannot be listed: ${e.message}`;
    return;
  }
  if (mine !== generation) return;
  if (!more) {
    rows.clear();
    tbody.replaceChildren();
  }
  for (const summary of page.sagas) place(summary);
  cursor = page.next_cursor || null;
  document.getElementById("more").hidden = !cursor;
  note.hidden = rows.size > 0;
  note.textContent = Object.keys(filters).length ? "No saga matches these filters." : "No saga yet.";
}

function cells(summary) {
  return [
    el("td", { class: "subdomain" }, el("a", { href: `#/sagas/${summary.saga_id}`, text: summary.subdomain || "(none)" })),
    el("td", { class: "status-cell" }, badge(summary.status)),
    el("td", { class: "step", text: summary.step || "–" }),
    el("td", { class: "run-number", text: summary.run ?? "–" }),
    el("td", { class: "error", title: summary.error?.message || null, text: summary.error?.code || "" }),
    el("td", { class: "created", text: dateTime(summary.created_at) }),
    el("td", { class: "updated", text: dateTime(summary.updated_at) }),
  ];
}

/** Shows `summary` in its place (newest first), or updates its row. */
function place(summary) {
  const tbody = document.querySelector("#sagas tbody");
  const known = rows.get(summary.saga_id);
  if (known) {
    known.summary = summary;
    known.row.replaceChildren(...cells(summary));
    known.row.dataset.status = summary.status;
    return;
  }
  const row = el("tr", { "data-saga-id": summary.saga_id, "data-status": summary.status }, cells(summary));
  const later = [...rows.values()].find((r) => order(summary, r.summary) < 0);
  if (!later && cursor) return; // Older than every row shown, while more pages exist.
  tbody.insertBefore(row, later ? later.row : null);
  rows.set(summary.saga_id, { summary, row });
  document.getElementById("sagas-note").hidden = true;
}

/** The list's order: newest first, then by id, descending. */
function order(a, b) {
  const byTime = Date.parse(b.created_at) - Date.parse(a.created_at);
  return byTime || (a.saga_id < b.saga_id ? 1 : a.saga_id > b.saga_id ? -1 : 0);
}

function matches(summary) {
  return (!filters.status || summary.status === filters.status)
    && (!filters.kind || (summary.kind || "signup") === filters.kind)
    && (!filters.step || summary.step === filters.step)
    && (!filters.error_code || summary.error?.code === filters.error_code)
    && (!filters.subdomain || summary.subdomain === filters.subdomain);
}

/** The sagas read again after their events, a burst at a time. */
const pending = new Set();
const fetchPending = debounce(async () => {
  const ids = [...pending];
  pending.clear();
  for (const id of ids) {
    try {
      const saga = (await getJSON(`api/v1/sagas/${id}`)).saga;
      if (!saga) continue;
      if (matches(saga)) place(saga);
      else unplace(id);
    } catch (e) {
      console.warn("saga not read", id, e);
    }
  }
}, 150);

function unplace(id) {
  const known = rows.get(id);
  if (!known) return;
  known.row.remove();
  rows.delete(id);
}

/** One progress event of any saga (from `/api/v1/events`). */
export function onEvent(event) {
  if (!visible()) return;
  const known = rows.get(event.saga_id);
  if (known) {
    // The status moves at once; the rest of the row follows from the saga's summary.
    const summary = { ...known.summary, status: event.status, updated_at: event.at };
    if (event.step) summary.step = event.step;
    if (event.error) summary.error = event.error;
    if (matches(summary)) place(summary);
  }
  // The summary (run, step, error) is the store's: read it, and learn of new sagas.
  pending.add(event.saga_id);
  fetchPending();
  if (terminal(event.status) || event.sequence === 1 || event.operator_action) refreshStatsSoon();
}

const refreshStatsSoon = debounce(() => refreshStats(), 500);

async function refreshStats() {
  refreshPool();
  let stats;
  try {
    stats = await getJSON("api/v1/stats?window=24h");
  } catch (e) {
    for (const card of document.querySelectorAll(".card .sub")) card.textContent = "figures unavailable";
    return;
  }
  const set = (id, value, sub, alert = false) => {
    const card = document.getElementById(id);
    card.querySelector(".value").textContent = value;
    card.querySelector(".sub").textContent = sub;
    card.classList.toggle("alert", alert);
  };
  const c = stats.counts;
  const ran = c.completed + c.rolled_back + c.compensation_failed;
  set("card-success", percent(stats.success_rate),
    ran ? `${c.completed} of ${ran} completed` + (c.rejected ? ` · ${c.rejected} rejected` : "") : "no saga ended yet",
    stats.success_rate !== null && stats.success_rate < 0.99);
  const t = stats.time_to_ready;
  set("card-ready", t.count ? `${duration(t.median_ms)}` : "–",
    t.count ? `median · p90 ${duration(t.p90_ms)} · ${t.count} ready` : "no workspace ready yet");
  set("card-flight", String(stats.in_flight), `${c.total} started in 24 h`);
  const a = stats.needing_attention;
  set("card-attention", String(a.total),
    `${a.compensation_failed} undo failed · ${a.stuck} stuck`, a.total > 0);
}

/** The standby pool's card: ready standbys of the size in force, the last hour's
 * claims and misses. */
async function refreshPool() {
  const card = document.getElementById("card-pool");
  let pool;
  try {
    pool = await getJSON("api/v1/pool");
  } catch (e) {
    card.querySelector(".sub").textContent = "pool unavailable";
    return;
  }
  const c = pool.counts;
  const source = pool.source === "operator" ? "set by an operator" : "configured";
  card.querySelector(".value").textContent = pool.size ? `${c.ready} of ${pool.size}` : "off";
  card.querySelector(".sub").textContent =
    `size ${pool.size} (${source}) · ${c.building} building · `
    + `${pool.taken_last_hour} taken · ${pool.missed_last_hour} missed`;
  card.classList.toggle("alert", pool.size > 0 && pool.missed_last_hour > 0);
}
