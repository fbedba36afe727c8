// GENERATED from schemas/saga.admin.get.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Request on `saga.admin.get` (and the oldest form of `saga.admin.replay`). Nothing
 * but `saga_id`: any other message that happens to hold one (a progress event) is not
 * a request.
 */
export interface SagaRef {
  /**
   * The saga (= signup) id.
   */
  saga_id: string;
}
