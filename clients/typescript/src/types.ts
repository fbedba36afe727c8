/**
 * The contract's types under the names a web app uses, taken from the modules generated
 * from `schemas/` (src/generated/, checked against the schemas by
 * `npm run check:generated`), plus what the client adds around them.
 */
import type { ProgressEvent } from "./generated/tenant.progress.js";
import type { SignupRequested } from "./generated/tenant.signup.requested.js";

export type {
  ErrorInfo,
  OperatorAction,
  ProgressEvent,
  StepStatus,
} from "./generated/tenant.progress.js";
export type { AuthProvider, SignupRequested } from "./generated/tenant.signup.requested.js";
export type {
  SubdomainCheckReply,
  UnavailableReason,
} from "./generated/tenant.subdomain.check.reply.js";
export type { SubdomainCheckRequest } from "./generated/tenant.subdomain.check.request.js";

/** A saga's status after an event: `accepted`, `running`, …, `compensation_failed`. */
export type SagaStatus = ProgressEvent["status"];

/** The statuses after which a saga's run is over (`compensation_failed` until replayed). */
export const TERMINAL_STATUSES: readonly SagaStatus[] = [
  "completed",
  "rolled_back",
  "rejected",
  "compensation_failed",
];

/** Whether `event` ends its saga's run. */
export function isTerminal(event: Pick<ProgressEvent, "status">): boolean {
  return TERMINAL_STATUSES.includes(event.status);
}

/**
 * What `signup` takes: the contract's signup with the password in clear (the client
 * seals it to the services' key, so it never travels or rests in clear) and the id
 * optional (a random UUID when absent; give one, kept by the form, so that a second
 * submission of the same form is the same signup).
 */
export type SignupRequest = Omit<
  SignupRequested,
  "signup_id" | "admin_password" | "admin_password_sealed"
> & {
  signup_id?: string;
  /** The admin's chosen password; absent for a Google sign-up. */
  admin_password?: string | null;
};

/**
 * `result` of a `completed` event, as the steps fill it (contract v1 guarantees
 * `site_url` and `admin_email`; the others come from the steps).
 */
export interface WorkspaceResult {
  site_url: string;
  site_name?: string;
  subdomain?: string;
  admin_email: string;
  /** The admin's API key (not secret alone). */
  api_key?: string;
  /** The admin's API secret, sealed to the web app's key (`openResult` opens it). */
  api_secret?: string;
  [field: string]: unknown;
}

/** The admin's API token of a new workspace, as `openResult` gives it. */
export interface WorkspaceCredentials {
  siteUrl: string;
  siteName: string;
  apiKey: string;
  apiSecret: string;
}
