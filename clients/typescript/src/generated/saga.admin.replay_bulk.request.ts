// GENERATED from schemas/saga.admin.replay_bulk.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Where a saga stands as a whole.
 */
export type SagaStatus =
  "accepted" | "running" | "compensating" | "completed" | "rolled_back" | "rejected" | "compensation_failed";

/**
 * Request on `saga.admin.replay_bulk`: replays every replayable saga (`rolled_back`
 * or `compensation_failed`) that matches all the filters given.
 */
export interface BulkReplayRequest {
  /**
   * A real run with no filter at all replays every replayable saga (up to
   * `limit`) only when this says so; without it such a request is refused.
   */
  all?: boolean;
  /**
   * Only list what would be replayed.
   */
  dry_run?: boolean;
  /**
   * Only sagas whose error has this code.
   */
  error_code?: string | null;
  /**
   * At most this many sagas (default 100, at most 500).
   */
  limit?: number | null;
  /**
   * Who asks (kept in each replayed saga's timeline); `nats` when absent.
   */
  operator?: string | null;
  /**
   * Why (kept in each replayed saga's timeline).
   */
  reason?: string | null;
  /**
   * Only sagas created at or after this time.
   */
  since?: string | null;
  /**
   * Only sagas with this status (`rolled_back` or `compensation_failed`).
   */
  status?: SagaStatus | null;
  /**
   * Only sagas that stopped at this step.
   */
  step?: string | null;
  /**
   * Only sagas created before this time.
   */
  until?: string | null;
}
