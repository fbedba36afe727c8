/**
 * `@tenant-saga/client`: the web app's side of the tenant-provisioning saga's public
 * contract (v1) over NATS JetStream (README, "Integrating a Next.js app").
 *
 * ```ts
 * const saga = await connect(optionsFromEnv());
 * const sagaId = await saga.signup({ organization_name, admin_email, admin_full_name, admin_password });
 * for await (const event of saga.progress(sagaId)) console.log(event.message);
 * ```
 */
export {
  connect,
  openResult,
  SagaClient,
  SIGNUP_SUBJECT,
  SUBDOMAIN_CHECK_SUBJECT,
  PROGRESS_STREAM,
  progressSubject,
  type ConnectOptions,
  type SignupOptions,
} from "./client.js";
export { optionsFromEnv } from "./env.js";
export type { ProgressOptions } from "./progress.js";
export { Keyring, PublicKey, type SealedField } from "./sealing.js";
export {
  BusError,
  ConfigError,
  InvalidReplyError,
  REJECTION_CODES,
  SagaClientError,
  SealedValueError,
  SignupNotAcceptedError,
  SignupRejectedError,
  type RejectionCode,
} from "./errors.js";
export * from "./types.js";
/** Every type generated from `schemas/`, one namespace per schema. */
export * as contract from "./generated/index.js";
