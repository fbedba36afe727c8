// GENERATED from schemas/saga.admin.pool.reply.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Reply on `saga.admin.pool` and `saga.admin.pool.set`.
 */
export interface PoolReply {
  /**
   * `STANDBY_POOL_SIZE` of the orchestrator that answered.
   */
  configured_size: number;
  counts: PoolCounts;
  /**
   * Why the request failed (`bad_request`, `store_unavailable`, `no_pool`).
   */
  error?: ErrorInfo | null;
  /**
   * The operators' last change of the size (`pool_size` set, or
   * `pool_size_cleared`): who, when, why.
   */
  last_action?: OperatorAction | null;
  /**
   * Signups in the last hour that found no ready standby while the pool was on
   * (they took the usual path).
   */
  missed_last_hour: number;
  /**
   * How many standbys the pool keeps building or ready now.
   */
  size: number;
  /**
   * Whether that is `STANDBY_POOL_SIZE` or an operator's setting.
   */
  source: "configured" | "operator";
  /**
   * Every standby not used up or removed, oldest first.
   */
  standbys: PoolStandby[];
  /**
   * Standbys signups took in the last hour (claims given back not counted).
   */
  taken_last_hour: number;
}
/**
 * The standbys by state.
 */
export interface PoolCounts {
  /**
   * Being built.
   */
  building: number;
  /**
   * Taken by a signup that has not completed yet.
   */
  claimed: number;
  /**
   * Being removed.
   */
  discarding: number;
  /**
   * Ready to be taken.
   */
  ready: number;
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
 * One standby of the pool.
 */
export interface PoolStandby {
  /**
   * The signup that took it, when claimed.
   */
  claimed_by?: string | null;
  /**
   * Since when it is in that state.
   */
  since: string;
  /**
   * The placeholder site name it is built under (`sb-<8 hex>.<parent domain>`).
   */
  site_name: string;
  /**
   * The saga that builds it (see it with `saga.admin.get`).
   */
  standby_id: string;
  /**
   * Where it is in its life.
   */
  state: "building" | "ready" | "claimed" | "discarding";
}
