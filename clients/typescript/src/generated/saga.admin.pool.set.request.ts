// GENERATED from schemas/saga.admin.pool.set.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Request on `saga.admin.pool.set`: exactly one of `size` (keep that many standbys,
 * whatever `STANDBY_POOL_SIZE` says, until cleared) and `clear` (back to
 * `STANDBY_POOL_SIZE`). No other field.
 */
export interface PoolSetRequest {
  /**
   * Go back to the configured size.
   */
  clear?: boolean;
  /**
   * Who asks (recorded); `nats` when absent. At most 100 characters.
   */
  operator?: string | null;
  /**
   * Why (recorded). At most 500 characters.
   */
  reason?: string | null;
  /**
   * The size to keep, 0 to 1000 (0 drains the pool: the ready standbys are
   * discarded, signups take the usual path).
   */
  size?: number | null;
}
