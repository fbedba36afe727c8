// GENERATED from schemas/saga.admin.replay.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Request on `saga.admin.replay`: a [`SagaRef`] that may say who asks and why. No
 * other field: a message that merely holds a `saga_id` is not a replay request.
 */
export interface ReplayRequest {
  /**
   * Who asks (kept in the timeline); `nats` when absent. At most 100 characters.
   */
  operator?: string | null;
  /**
   * Why (kept in the timeline). At most 500 characters.
   */
  reason?: string | null;
  /**
   * The saga (= signup) id.
   */
  saga_id: string;
}
