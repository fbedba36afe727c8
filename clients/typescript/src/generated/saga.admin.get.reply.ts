// GENERATED from schemas/saga.admin.get.reply.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Where the current step stands.
 */
export type StepStatus = "started" | "output" | "completed" | "failed" | "retrying" | "compensating" | "compensated";

/**
 * Reply on `saga.admin.get`.
 */
export interface GetReply {
  /**
   * Why the request failed.
   */
  error?: ErrorInfo | null;
  /**
   * What operators did to the saga (replays), oldest first, from the timeline.
   */
  operator_actions?: OperatorAction[];
  /**
   * The saga, when it exists.
   */
  saga?: SagaSummary | null;
  /**
   * Each step's time, attempts and undos, computed from the timeline.
   */
  steps?: StepTiming[];
  /**
   * Its whole timeline, oldest first.
   */
  timeline?: ProgressEvent[];
}
/**
 * What went wrong, in words a person understands. Never contains a secret.
 */
export interface ErrorInfo {
  /**
   * On `compensation_failed`: the failure that started the rollback (this error
   * is then the undo's). Absent otherwise.
   */
  cause?: ErrorInfo | null;
  /**
   * Machine-readable code, such as `subdomain_taken` or `database_conflict`.
   */
  code: string;
  /**
   * A sentence for people.
   */
  message: string;
  /**
   * The step it happened in, when it happened in one.
   */
  step?: string | null;
}
/**
 * An operator's action on a saga, kept in its timeline (and so in the saga store)
 * on the event it caused.
 */
export interface OperatorAction {
  /**
   * What was done: `replay` (one saga), `bulk_replay` (chosen by a filter) or
   * `requeue` (a dead letter of the saga's requeued).
   */
  action: string;
  /**
   * When the orchestrator received the request.
   */
  at: string;
  /**
   * For `requeue`: the letter's sequence in stream `TENANT_DEAD_LETTERS`.
   */
  dead_letter?: number | null;
  /**
   * Who did it: the `X-Operator` header over HTTP (else the credential's name,
   * `write-secret`), the request's `operator` over NATS (else `nats`).
   */
  operator: string;
  /**
   * Why, as the operator said it (empty when they gave no reason).
   */
  reason: string;
}
/**
 * A saga as operators see it in a list.
 */
export interface SagaSummary {
  /**
   * When the signup was accepted.
   */
  created_at: string;
  /**
   * What failed, when something did.
   */
  error?: ErrorInfo | null;
  /**
   * A signup, or a standby pool's build.
   */
  kind?: "signup" | "standby_build";
  /**
   * 1 for the first run, +1 for each replay (from the start, or of an undo that
   * ended `compensation_failed`).
   */
  run: number;
  /**
   * The saga (= signup) id.
   */
  saga_id: string;
  /**
   * The saga's status.
   */
  status: "accepted" | "running" | "compensating" | "completed" | "rolled_back" | "rejected" | "compensation_failed";
  /**
   * The step it is at or stopped at.
   */
  step?: string | null;
  /**
   * The tenant's subdomain (`sb-<8 hex>` for a standby build).
   */
  subdomain: string;
  /**
   * When the saga last changed.
   */
  updated_at: string;
}
/**
 * One step's share of a saga's timeline, computed from its events.
 */
export interface StepTiming {
  /**
   * Attempts started (every run counted).
   */
  attempts: number;
  /**
   * `last_at - started_at`, in milliseconds.
   */
  duration_ms: number;
  /**
   * Its last event (across runs).
   */
  last_at: string;
  /**
   * Where it stands at its last event.
   */
  last_status?: StepStatus | null;
  /**
   * Attempts that failed and were tried again.
   */
  retries: number;
  /**
   * Its first event (across runs).
   */
  started_at: string;
  /**
   * The step's name.
   */
  step: string;
  /**
   * Undos dispatched.
   */
  undos: number;
}
/**
 * One entry of a saga's timeline (contract v1).
 */
export interface ProgressEvent {
  /**
   * When it happened.
   */
  at: string;
  /**
   * Attempt number of that step, from 1.
   */
  attempt: number;
  /**
   * What failed, when something did.
   */
  error?: ErrorInfo | null;
  /**
   * What is happening, for people.
   */
  message: string;
  /**
   * On the first event of a run an operator started (a replay): who, when and why.
   * Absent on every other event.
   */
  operator_action?: OperatorAction | null;
  /**
   * Rough completion, 0 to 100.
   */
  percent: number;
  /**
   * On `completed`: `site_url`, `admin_email` and what the steps produced for the client.
   */
  result?: {
    [k: string]: unknown;
  };
  /**
   * The saga (= signup) id.
   */
  saga_id: string;
  /**
   * Grows by one per event of this saga, from 1.
   */
  sequence: number;
  /**
   * `<subdomain>.<PARENT_DOMAIN>`.
   */
  site_name: string;
  /**
   * The saga's status after this event.
   */
  status: "accepted" | "running" | "compensating" | "completed" | "rolled_back" | "rejected" | "compensation_failed";
  /**
   * The step this event is about: `database`, `site`, `admin_user`, `registration`.
   */
  step?: string | null;
  /**
   * Where that step stands.
   */
  step_status?: StepStatus | null;
  /**
   * The tenant's subdomain; empty when a rejected signup had none that was valid.
   */
  subdomain: string;
}
