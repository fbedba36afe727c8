/**
 * The errors the client throws: every one a {@link SagaClientError} with a `code`.
 * A signup the orchestrator refused carries the contract's own rejection code
 * (`subdomain_taken`, `invalid_email`, …: README, "Contract (v1)"); the client's own
 * conditions have codes of their own, listed on each class.
 */
import type { ProgressEvent } from "./types.js";

/** The rejection codes of contract v1 (a later version may add more). */
export const REJECTION_CODES = [
  "missing_field",
  "invalid_payload",
  "invalid_email",
  "invalid_subdomain",
  "reserved_subdomain",
  "invalid_password",
  "invalid_organization_name",
  "invalid_full_name",
  "subdomain_taken",
  "password_unreadable",
] as const;

/** A rejection code of contract v1, or one a later version adds. */
// `string & {}` keeps the known codes offered by editors while accepting new ones.
export type RejectionCode = (typeof REJECTION_CODES)[number] | (string & {});

/** Where an error keeps the kinds it is (its class and the classes above it). */
const KINDS = Symbol.for("@tenant-saga/client.error-kinds");

/**
 * Base class: `code` says what happened, for programs; `message` for people.
 *
 * `instanceof` checks the error's kind, not its prototype: a bundler may put this
 * package in an app twice (Next.js does, once per server layer), and an error thrown
 * by one copy must still be a `SignupRejectedError` to code importing the other.
 */
export class SagaClientError extends Error {
  /** The class's name, kept through minification. */
  static readonly kind: string = "SagaClientError";
  /** Machine-readable code. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    const kinds: string[] = [];
    for (let c: unknown = new.target; c !== Error && typeof c === "function"; c = Object.getPrototypeOf(c)) {
      kinds.push((c as typeof SagaClientError).kind);
    }
    Object.defineProperty(this, KINDS, { value: kinds });
    this.name = kinds[0] ?? "SagaClientError";
    this.code = code;
  }

  /** Whether `value` is an error of this kind, from whichever copy of the package. */
  static [Symbol.hasInstance](value: unknown): boolean {
    const kinds = (value as { [KINDS]?: unknown } | null | undefined)?.[KINDS];
    return Array.isArray(kinds) && kinds.includes(this.kind);
  }
}

/**
 * The orchestrator refused the signup before anything was created (its saga ended
 * `rejected`). `code` is the contract's rejection code, `message` its sentence (safe
 * to show the user), `field` the form field it is about when one is.
 */
export class SignupRejectedError extends SagaClientError {
  static override readonly kind: string = "SignupRejectedError";
  declare readonly code: RejectionCode;
  /** The saga (= signup) id. */
  readonly sagaId: string;
  /** The `rejected` progress event. */
  readonly event: ProgressEvent;

  constructor(event: ProgressEvent) {
    const error = event.error ?? { code: "invalid_payload", message: event.message };
    super(error.code, error.message);
    this.sagaId = event.saga_id;
    this.event = event;
  }

  /** The signup field the rejection is about, when it is about one (for a form). */
  get field(): string | undefined {
    return FIELD_OF_CODE[this.code];
  }
}

const FIELD_OF_CODE: Record<string, string> = {
  invalid_email: "admin_email",
  invalid_subdomain: "subdomain",
  reserved_subdomain: "subdomain",
  subdomain_taken: "subdomain",
  invalid_password: "admin_password",
  password_unreadable: "admin_password",
  invalid_organization_name: "organization_name",
  invalid_full_name: "admin_full_name",
};

/**
 * Code `not_accepted`: no saga appeared for the signup within the time allowed, though
 * it was published (again and again, with the same id). The orchestrator may be down:
 * calling `signup` again with the same `signup_id` later is safe.
 */
export class SignupNotAcceptedError extends SagaClientError {
  static override readonly kind: string = "SignupNotAcceptedError";
  /** The signup id that was published. */
  readonly sagaId: string;

  constructor(sagaId: string, waitedMs: number, cause?: unknown) {
    super(
      "not_accepted",
      `signup ${sagaId} was not accepted within ${Math.round(waitedMs / 1000)} s; ` +
        "it is safe to send it again with the same signup_id",
      { cause },
    );
    this.sagaId = sagaId;
  }
}

/**
 * The bus failed a call. Codes: `no_responders` (nobody answers the subject: the
 * orchestrator is down), `timeout`, `permission_denied` (the NATS user may not do
 * this: check deploy/nats/auth.conf and the inbox prefix), `connection_closed`,
 * `bus_error` (anything else; `cause` holds the NATS error).
 */
export class BusError extends SagaClientError {
  static override readonly kind: string = "BusError";
}

/**
 * A sealed value could not be opened. Codes: `malformed` (not `v2:<key id>:<base64>`),
 * `unknown_key` (sealed to a key id this keyring does not hold), `cannot_open` (wrong
 * key, or bound to another saga or field), `missing_secret` (the result has none).
 */
export class SealedValueError extends SagaClientError {
  static override readonly kind: string = "SealedValueError";
}

/**
 * The client was set up or called wrongly. Codes: `invalid_key` (a key that is not
 * `<key id>:<base64 of 32 bytes>`), `invalid_config`, `invalid_argument`.
 */
export class ConfigError extends SagaClientError {
  static override readonly kind: string = "ConfigError";
}

/** Code `invalid_reply`: the orchestrator answered something that is not the contract's. */
export class InvalidReplyError extends SagaClientError {
  static override readonly kind: string = "InvalidReplyError";
}
