// GENERATED from schemas/saga.admin.list.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * What a saga provisions: a tenant's signup, or a standby site the pool builds ahead
 * of time (README, "Standby pool"), which operators reading signup figures leave out.
 */
export type SagaKind = "signup" | "standby_build";
/**
 * Where a saga stands as a whole.
 */
export type SagaStatus =
  "accepted" | "running" | "compensating" | "completed" | "rolled_back" | "rejected" | "compensation_failed";

/**
 * Request on `saga.admin.list`. Every filter is optional; they combine with "and".
 */
export interface ListRequest {
  /**
   * The `next_cursor` of the previous page: the next page starts after it.
   */
  cursor?: string | null;
  /**
   * Only sagas whose error has this code (such as `database_conflict`).
   */
  error_code?: string | null;
  /**
   * Only signups (`signup`) or only the standby pool's builds (`standby_build`);
   * both when absent.
   */
  kind?: SagaKind | null;
  /**
   * At most this many (default 50, at most 500).
   */
  limit?: number | null;
  /**
   * Only sagas created at or after this time.
   */
  since?: string | null;
  /**
   * Only sagas with this status.
   */
  status?: SagaStatus | null;
  /**
   * Only sagas at, or stopped at, this step (`database`, `site`, ...).
   */
  step?: string | null;
  /**
   * Only the saga(s) of this subdomain.
   */
  subdomain?: string | null;
}
