// GENERATED from schemas/saga.admin.dead_letters.requeue.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Request on `saga.admin.dead_letters.requeue`: re-drive the saga a step's dead
 * letter names, once its cause is fixed. No other field.
 */
export interface RequeueRequest {
  /**
   * Who asks (kept in the timeline); `nats` when absent. At most 100 characters.
   */
  operator?: string | null;
  /**
   * Why: what was fixed (kept in the timeline). At most 500 characters.
   */
  reason?: string | null;
  /**
   * The letter's sequence in stream `TENANT_DEAD_LETTERS`.
   */
  sequence: number;
}
