// GENERATED from schemas/*.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.
export * as SagaAdminDeadLettersReply from "./saga.admin.dead_letters.reply.js";
export * as SagaAdminDeadLettersRequest from "./saga.admin.dead_letters.request.js";
export * as SagaAdminDeadLettersRequeueReply from "./saga.admin.dead_letters.requeue.reply.js";
export * as SagaAdminDeadLettersRequeueRequest from "./saga.admin.dead_letters.requeue.request.js";
export * as SagaAdminGetReply from "./saga.admin.get.reply.js";
export * as SagaAdminGetRequest from "./saga.admin.get.request.js";
export * as SagaAdminListReply from "./saga.admin.list.reply.js";
export * as SagaAdminListRequest from "./saga.admin.list.request.js";
export * as SagaAdminPoolReply from "./saga.admin.pool.reply.js";
export * as SagaAdminPoolRequest from "./saga.admin.pool.request.js";
export * as SagaAdminPoolSetReply from "./saga.admin.pool.set.reply.js";
export * as SagaAdminPoolSetRequest from "./saga.admin.pool.set.request.js";
export * as SagaAdminReplayReply from "./saga.admin.replay.reply.js";
export * as SagaAdminReplayRequest from "./saga.admin.replay.request.js";
export * as SagaAdminReplayBulkReply from "./saga.admin.replay_bulk.reply.js";
export * as SagaAdminReplayBulkRequest from "./saga.admin.replay_bulk.request.js";
export * as TenantProgress from "./tenant.progress.js";
export * as TenantSignupDeadLetter from "./tenant.signup.dead_letter.js";
export * as TenantSignupRequested from "./tenant.signup.requested.js";
export * as TenantSubdomainCheckReply from "./tenant.subdomain.check.reply.js";
export * as TenantSubdomainCheckRequest from "./tenant.subdomain.check.request.js";
