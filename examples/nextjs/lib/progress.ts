// What the browser is shown of a saga: its progress events as stages, without
// anything it does not need (the API key and its sealed secret stay on the server).
import type { ProgressEvent } from "@tenant-saga/client";

/** A progress event as it is relayed to the browser: only what the page shows. */
export type PublicEvent = Pick<
  ProgressEvent,
  "saga_id" | "sequence" | "status" | "step" | "step_status" | "percent" | "message" | "error" | "at"
> & {
  result?: { site_url?: string; site_name?: string; subdomain?: string };
};

/**
 * The fields the page needs, picked (not the rest dropped): a field a later contract
 * adds, or an operator's action (who replayed the saga, and why), never reaches the
 * browser unless added here. A `completed` event's API key and sealed secret stay on
 * the server.
 */
export function publicEvent(event: ProgressEvent): PublicEvent {
  const { saga_id, sequence, status, step, step_status, percent, message, error, at, result } = event;
  const shown: PublicEvent = { saga_id, sequence, status, step, step_status, percent, message, error, at };
  if (result) {
    const { site_url, site_name, subdomain } = result as Record<string, string | undefined>;
    shown.result = { site_url, site_name, subdomain };
  }
  return shown;
}

/** One stage of the provisioning page: a step of the saga. */
export interface Stage {
  step: string;
  /** What the step does, as the orchestrator words it ("Creating the database", …). */
  label: string;
  state: "running" | "retrying" | "done" | "failed" | "undoing" | "undone";
  /** The step's latest output line or retry note. */
  detail?: string;
}

const STATE_OF: Record<string, Stage["state"]> = {
  started: "running",
  output: "running",
  retrying: "retrying",
  completed: "done",
  failed: "failed",
  compensating: "undoing",
  compensated: "undone",
};

/** The stages the events so far describe, in the order the steps started. */
export function stagesOf(events: PublicEvent[]): Stage[] {
  const stages = new Map<string, Stage>();
  for (const event of events) {
    if (!event.step || !event.step_status) continue;
    const stage = stages.get(event.step) ?? { step: event.step, label: event.message, state: "running" };
    if (event.step_status === "started" && stage.state !== "undoing") stage.label = event.message;
    if (event.step_status === "output" || event.step_status === "retrying") stage.detail = event.message;
    // An output line of an undo does not make the step run again.
    if (!(event.step_status === "output" && (stage.state === "undoing" || stage.state === "failed"))) {
      stage.state = STATE_OF[event.step_status] ?? stage.state;
    }
    stages.set(event.step, stage);
  }
  return [...stages.values()];
}

/** Whether a saga's run is over after `event`. */
export function isOver(event: PublicEvent): boolean {
  return ["completed", "rolled_back", "rejected", "compensation_failed"].includes(event.status);
}
