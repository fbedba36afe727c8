// GENERATED from schemas/saga.admin.replay_bulk.reply.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Where a saga stands as a whole.
 */
export type SagaStatus =
  "accepted" | "running" | "compensating" | "completed" | "rolled_back" | "rejected" | "compensation_failed";

/**
 * Reply on `saga.admin.replay_bulk`.
 */
export interface BulkReplayReply {
  /**
   * Whether this was a dry run (nothing replayed).
   */
  dry_run: boolean;
  /**
   * Why the request failed.
   */
  error?: ErrorInfo | null;
  /**
   * The sagas that matched, newest first (as they were before any replay).
   */
  matched: SagaSummary[];
  /**
   * On a real run: each matched saga's replay answer, in the same order.
   */
  replays?: ReplayReply[];
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
   * Where a saga stands as a whole.
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
 * Reply on `saga.admin.replay`.
 */
export interface ReplayReply {
  /**
   * Whether the replay started.
   */
  accepted: boolean;
  /**
   * Why the request was refused.
   */
  error?: ErrorInfo | null;
  /**
   * What happens now, or why nothing does.
   */
  message: string;
  /**
   * The saga asked for.
   */
  saga_id: string;
  /**
   * The saga's status after the request.
   */
  status?: SagaStatus | null;
}
