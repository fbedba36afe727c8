// What the browser is shown of a saga: its progress events as stages, without
// anything it does not need (the API key and its sealed secret stay on the server).
import type { ProgressEvent } from "@tenant-saga/client";

/** A progress event as it is relayed to the browser. */
export type PublicEvent = Omit<ProgressEvent, "result"> & {
  result?: { site_url?: string; site_name?: string; subdomain?: string };
};

/** Drops the API key and secret from a `completed` event's result. */
export function publicEvent(event: ProgressEvent): PublicEvent {
  const { result, ...rest } = event;
  if (!result) return rest;
  const { site_url, site_name, subdomain } = result as Record<string, string | undefined>;
  return { ...rest, result: { site_url, site_name, subdomain } };
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
