// GENERATED from schemas/saga.admin.pool.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Request on `saga.admin.pool`: nothing to say (an empty body or `{}`).
 */
export interface PoolRequest {}
