// A saga's page (`#/sagas/<id>`): its summary and error, its steps as bars per run
// (timeline.js), its progress lines, all kept current from the saga's own live events
// (GET /api/v1/sagas/{id}/events?follow=true, so a replay's new run shows too), and the
// Replay button, which asks for the provisioning secret for that one request.

import { ApiError, follow, getJSON, replay } from "./api.js";
import { badge, clock, dateTime, debounce, el, terminal } from "./format.js";
import { draw } from "./timeline.js";

let current = null;

/** Leaves the page: its stream and clock stop. */
export function hide() {
  if (!current) return;
  current.close();
  clearInterval(current.ticker);
  current = null;
}

/** Shows saga `id`. */
export async function show(id) {
  hide();
  const state = { id, reply: null, close: () => {}, ticker: null };
  current = state;
  document.getElementById("replay-result").hidden = true;
  document.getElementById("saga-title").textContent = "…";
  document.getElementById("runs").replaceChildren();
  document.getElementById("lines").replaceChildren();
  try {
    state.reply = await getJSON(`api/v1/sagas/${encodeURIComponent(id)}`);
  } catch (e) {
    if (current !== state) return;
    document.getElementById("saga-title").textContent = e instanceof ApiError && e.status === 404 ? "No such saga" : "The saga cannot be read";
    document.getElementById("saga-id").textContent = e.message;
    document.getElementById("saga-status").replaceChildren();
    document.getElementById("replay").hidden = true;
    return;
  }
  if (current !== state) return;
  render(state);
  // Whatever comes after what was read; the saga is read again after each burst.
  const reread = debounce(async () => {
    try {
      const reply = await getJSON(`api/v1/sagas/${encodeURIComponent(id)}`);
      if (current === state) {
        state.reply = reply;
        render(state);
      }
    } catch (e) {
      console.warn("saga not read again", e);
    }
  }, 150);
  const last = state.reply.timeline.at(-1)?.sequence ?? 0;
  state.close = follow(`api/v1/sagas/${encodeURIComponent(id)}/events?follow=true`, {
    lastEventId: last,
    onEvent: (_, event) => {
      if (current !== state) return;
      const timeline = state.reply.timeline;
      if (!timeline.length || event.sequence > timeline.at(-1).sequence) {
        timeline.push(event);
        state.reply.saga = { ...state.reply.saga, status: event.status, updated_at: event.at };
        render(state);
      }
      reread();
    },
  });
  // Running bars grow with the clock.
  state.ticker = setInterval(() => {
    if (current === state && !terminal(state.reply.saga?.status)) draw(document.getElementById("runs"), state.reply.timeline);
  }, 1000);
}

function render(state) {
  const { saga, timeline } = state.reply;
  document.getElementById("saga-title").textContent = saga.subdomain || "(no subdomain)";
  document.getElementById("saga-id").textContent = `saga ${saga.saga_id}`;
  const status = document.getElementById("saga-status");
  status.replaceChildren(badge(saga.status));
  status.dataset.status = saga.status;
  const replayable = saga.status === "rolled_back" || saga.status === "compensation_failed";
  const button = document.getElementById("replay");
  button.hidden = false;
  button.disabled = !replayable;
  button.title = replayable ? "" : "Only a rolled-back saga or a failed undo can be replayed";

  const facts = [
    ["Run", saga.run],
    ["Step", saga.step || "–"],
    ["Created", dateTime(saga.created_at)],
    ["Updated", dateTime(saga.updated_at)],
  ];
  const site = timeline.findLast((e) => e.result?.site_url)?.result.site_url;
  if (site) facts.push(["Site", site]);
  document.getElementById("saga-facts").replaceChildren(...facts.map(([k, v]) => el("div", { class: "fact" }, el("dt", { text: k }), el("dd", { text: v }))));

  const box = document.getElementById("saga-error");
  box.hidden = !saga.error;
  if (saga.error) {
    const error = saga.error;
    const parts = [
      el("strong", { text: `${error.step ? `${error.step}: ` : ""}${error.code}` }),
      el("p", { text: error.message }),
    ];
    if (error.cause) {
      parts.push(el("p", { class: "cause" },
        el("strong", { text: `Cause (${error.cause.step || "saga"}): ${error.cause.code}` }), ` ${error.cause.message}`));
    }
    box.replaceChildren(...parts);
  }

  draw(document.getElementById("runs"), timeline);
  document.getElementById("lines").replaceChildren(...timeline.map((event) => el("li", {
    class: `line${event.step_status === "output" ? " output" : ""}${event.operator_action ? " operator" : ""}${["failed", "retrying"].includes(event.step_status) ? " has-error" : ""}`,
    "data-sequence": event.sequence,
  },
  el("time", { datetime: event.at, text: clock(event.at) }),
  el("span", { class: "line-step", text: event.step || "saga" }),
  el("span", { class: `line-status step-${event.step_status || event.status}`, text: (event.step_status || event.status).replace(/_/g, " ") }),
  el("span", { class: "line-message", text: event.message }))));
}

/** Wires the Replay button and its dialog (once). */
export function setUp() {
  const dialog = document.getElementById("replay-dialog");
  const form = document.getElementById("replay-form");
  document.getElementById("replay").addEventListener("click", () => {
    if (!current?.reply?.saga) return;
    document.getElementById("replay-subdomain").textContent = current.reply.saga.subdomain;
    form.elements.secret.value = "";
    form.elements.reason.value = "";
    dialog.showModal();
    form.elements.secret.focus();
  });
  document.getElementById("replay-cancel").addEventListener("click", () => {
    form.elements.secret.value = "";
    dialog.close();
  });
  dialog.addEventListener("close", () => { form.elements.secret.value = ""; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const state = current;
    // Read once and cleared at once: the secret is kept nowhere after this request.
    const secret = form.elements.secret.value;
    form.elements.secret.value = "";
    const operator = form.elements.operator.value.trim();
    const reason = form.elements.reason.value.trim();
    dialog.close();
    const result = document.getElementById("replay-result");
    result.hidden = false;
    result.className = "replay-result";
    result.textContent = "Asking the orchestrator to replay…";
    let answer;
    try {
      answer = await replay(state.id, secret, operator, reason);
    } catch (e) {
      answer = { status: 0, body: { message: `the orchestrator does not answer (${e.message})` } };
    }
    const { status, body } = answer;
    const message = body.message || body.error?.message || `HTTP ${status}`;
    if (status === 202) {
      result.classList.add("ok");
      result.textContent = `Replay started by ${operator || "write-secret"}: the new run shows below as it goes.`;
    } else {
      result.classList.add("refused");
      result.textContent = status === 401 ? "Replay refused: the provisioning secret is wrong." : `Replay refused (${status}): ${message}`;
    }
  });
}
