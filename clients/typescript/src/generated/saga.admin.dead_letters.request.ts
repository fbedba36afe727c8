// GENERATED from schemas/saga.admin.dead_letters.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Request on `saga.admin.dead_letters`.
 */
export interface DeadLettersRequest {
  /**
   * At most this many, newest first (default 50, at most 500).
   */
  limit?: number | null;
  /**
   * Only the letter at this stream sequence: `letters` then holds it alone, or the
   * reply's error is `not_found`.
   */
  sequence?: number | null;
}
