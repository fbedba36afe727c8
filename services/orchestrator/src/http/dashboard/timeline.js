// A saga's timeline drawn as bars: one block per run (a replay starts a new run, its
// first event carries the operator's action), one lane per step, one bar per attempt
// or undo, from its dispatch (`started` / `compensating`) to its outcome (`completed`,
// `retrying`, `failed`, `compensated`). Durations come from the events' times, as
// `contracts::admin::step_timings` computes them.

import { badge, clock, duration, el, terminal } from "./format.js";

const ENDS = {
  execute: ["completed", "retrying", "failed"],
  undo: ["compensated", "retrying", "failed"],
};

/** The timeline cut into runs: a run starts at the first event and at each replay. */
export function runs(timeline) {
  const all = [];
  for (const event of timeline) {
    if (!all.length || event.operator_action) {
      all.push({ number: all.length + 1, action: event.operator_action || null, events: [] });
    }
    all[all.length - 1].events.push(event);
  }
  return all;
}

/** The bars of one run's events, by step (in the order the steps first appear). */
export function segments(events, now) {
  const steps = new Map();
  for (const event of events) {
    if (!event.step) continue;
    if (!steps.has(event.step)) steps.set(event.step, { bars: [], open: null });
    const lane = steps.get(event.step);
    const status = event.step_status;
    if (status === "started" || status === "compensating") {
      lane.open = {
        kind: status === "started" ? "execute" : "undo",
        attempt: event.attempt,
        start: Date.parse(event.at),
        end: null,
        outcome: "running",
        lines: 0,
      };
      lane.bars.push(lane.open);
    } else if (status === "output" && lane.open) {
      lane.open.lines += 1;
    } else if (lane.open && ENDS[lane.open.kind].includes(status)) {
      lane.open.end = Date.parse(event.at);
      lane.open.outcome = status;
      lane.open.message = event.message;
      lane.open = null;
    }
  }
  const last = events.length ? events[events.length - 1] : null;
  const over = last && terminal(last.status);
  for (const lane of steps.values()) {
    for (const bar of lane.bars) {
      // An attempt without an outcome: still running, or cut short by the run's end.
      if (bar.end === null) bar.end = over ? Date.parse(last.at) : now;
    }
  }
  return steps;
}

/** One run's block: its header (who replayed it and why), then a lane per step. */
function runBlock(run, now, latest) {
  const steps = segments(run.events, now);
  const first = Date.parse(run.events[0].at);
  const last = run.events[run.events.length - 1];
  const ended = terminal(last.status);
  let end = ended ? Date.parse(last.at) : now;
  for (const lane of steps.values()) for (const bar of lane.bars) end = Math.max(end, bar.end);
  const span = Math.max(end - first, 1);

  const head = el("header", { class: "run-head" },
    el("h3", { text: `Run ${run.number}` }),
    run.action
      ? el("p", { class: "run-action" },
        el("strong", { text: `${run.action.action === "bulk_replay" ? "Bulk replay" : "Replayed"} by ${run.action.operator}` }),
        run.action.reason ? `: ${run.action.reason}` : "",
        el("span", { class: "muted", text: ` · ${clock(run.action.at)}` }))
      : el("p", { class: "run-action muted", text: `Signup accepted · ${clock(run.events[0].at)}` }),
    el("span", { class: "run-outcome" }, badge(last.status), el("span", { class: "muted", text: ` ${duration(end - first)}${ended ? "" : " so far"}` })));

  const lanes = [...steps.entries()].map(([step, lane]) => {
    const attempts = lane.bars.filter((b) => b.kind === "execute");
    const undos = lane.bars.filter((b) => b.kind === "undo");
    const retried = (bars) => {
      const n = bars.filter((b) => b.outcome === "retrying").length;
      return n ? ` (${n} retr${n === 1 ? "y" : "ies"})` : "";
    };
    const failed = lane.bars.some((b) => b.outcome === "failed");
    const spent = (bars) => bars.reduce((sum, b) => sum + (b.end - b.start), 0);
    const track = el("div", { class: "track" }, lane.bars.map((bar) => {
      const node = el("span", {
        class: `bar ${bar.kind} ${bar.outcome}`,
        "data-kind": bar.kind,
        "data-outcome": bar.outcome,
        title: `${bar.kind === "undo" ? "undo" : "attempt"} ${bar.attempt}: ${bar.outcome} after ${duration(bar.end - bar.start)}`
          + (bar.lines ? ` · ${bar.lines} progress line(s)` : "") + (bar.message ? `\n${bar.message}` : ""),
      });
      const width = ((bar.end - bar.start) / span) * 100;
      // A label only where it fits; the title tells the rest.
      if (width >= 6) {
        node.append(el("span", { class: "bar-label", text: bar.kind === "undo" ? "undo" : (bar.outcome === "failed" ? "failed" : `#${bar.attempt}`) }));
      }
      // CSSOM, not a style attribute: the page's policy allows no inline styles.
      node.style.left = `${((bar.start - first) / span) * 100}%`;
      node.style.width = `${Math.max(width, 0.8)}%`;
      return node;
    }));
    const facts = [
      attempts.length ? `${attempts.length} attempt${attempts.length === 1 ? "" : "s"}${retried(attempts)} ${duration(spent(attempts))}` : null,
      undos.length ? `${undos.length} undo${undos.length === 1 ? "" : "s"}${retried(undos)} ${duration(spent(undos))}` : null,
    ].filter(Boolean).join(" · ");
    return el("div", { class: `lane${failed ? " failed" : ""}`, "data-step": step },
      el("span", { class: "lane-name", text: step }),
      track,
      el("span", { class: "lane-facts", text: facts }));
  });

  const scale = el("div", { class: "scale" },
    el("span", {}), el("span", { class: "ticks" },
      el("span", { text: "0" }), el("span", { text: duration(span / 2) }), el("span", { text: duration(span) })),
    el("span", {}));
  return el("section", { class: `run${latest ? " latest" : ""}`, "data-run": run.number }, head,
    lanes.length ? el("div", { class: "lanes" }, lanes, scale) : el("p", { class: "muted", text: "No step ran in this run." }));
}

/** Draws every run of `timeline` into `container`, the latest first. */
export function draw(container, timeline, now = Date.now()) {
  const all = runs(timeline);
  container.replaceChildren(...all.reverse().map((run, i) => runBlock(run, now, i === 0)));
}
