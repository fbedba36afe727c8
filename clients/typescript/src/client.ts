/**
 * `connect(options)` and the {@link SagaClient} it gives: the web app's part of the
 * contract (README, "Contract (v1)") over the official NATS client v3, as the web app's
 * NATS user may do it (README, "The bus": signups, subdomain checks, progress through a
 * subscription and direct gets, never a consumer).
 */
import { randomUUID } from "node:crypto";

import {
  connect as natsConnect,
  errors as natsErrors,
  type ConnectionOptions,
  type NatsConnection,
} from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";

import {
  BusError,
  ConfigError,
  InvalidReplyError,
  SagaClientError,
  SealedValueError,
  SignupNotAcceptedError,
  SignupRejectedError,
} from "./errors.js";
import { PROGRESS_STREAM, progressSubject, readProgress, type ProgressOptions } from "./progress.js";
import { Keyring, PublicKey } from "./sealing.js";
import type {
  ProgressEvent,
  SignupRequest,
  SignupRequested,
  SubdomainCheckReply,
  WorkspaceCredentials,
  WorkspaceResult,
} from "./types.js";

/** Where signups are published (JetStream stream `TENANT_SIGNUPS`). */
export const SIGNUP_SUBJECT = "tenant.signup.requested";
/** Where subdomains are checked (request/reply). */
export const SUBDOMAIN_CHECK_SUBJECT = "tenant.subdomain.check";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** How to reach the bus, as whom, and the keys. */
export interface ConnectOptions {
  /** NATS servers: `nats://host:4222`, several for a cluster (`NATS_URL`, comma-separated). */
  servers: string | string[];
  /** The web app's NATS user (`web-app` in deploy/nats/auth.conf). */
  user?: string;
  /** Its password (`NATS_WEB_APP_PASSWORD` of the deployment). */
  pass?: string;
  /**
   * Where replies come: the user may subscribe only to its own prefix, so
   * `_INBOX_<user>` by default (`_INBOX` without a user).
   */
  inboxPrefix?: string;
  /**
   * The services' public key (`SAGA_PUBLIC_KEY`, `<key id>:<base64>`), which signup
   * passwords are sealed to. Needed for signups with a password.
   */
  servicesPublicKey?: string;
  /** Request and publish timeout, ms (default 5000). */
  timeoutMs?: number;
  /** Further options of the NATS client (TLS, reconnect policy, a name, …). */
  nats?: Partial<ConnectionOptions>;
}

/** How long {@link SagaClient.signup} tries. */
export interface SignupOptions {
  /** How long to wait for the saga before publishing again (default 3000 ms). */
  republishAfterMs?: number;
  /** How long to try in all before {@link SignupNotAcceptedError} (default 60000 ms). */
  acceptWithinMs?: number;
}

/** Classifies an error of the NATS client as a {@link BusError}. */
function busError(cause: unknown, what: string): SagaClientError {
  if (cause instanceof SagaClientError) return cause;
  const text = cause instanceof Error ? cause.message : String(cause);
  if (cause instanceof natsErrors.NoRespondersError) {
    return new BusError("no_responders", `${what}: nobody answers (is the orchestrator running?)`, { cause });
  }
  if (cause instanceof natsErrors.TimeoutError) {
    return new BusError("timeout", `${what}: no answer in time`, { cause });
  }
  if (cause instanceof natsErrors.PermissionViolationError || /permissions? violation/i.test(text)) {
    return new BusError("permission_denied", `${what}: the NATS user may not do this (${text})`, { cause });
  }
  if (cause instanceof natsErrors.ClosedConnectionError) {
    return new BusError("connection_closed", `${what}: the connection is closed`, { cause });
  }
  return new BusError("bus_error", `${what}: ${text}`, { cause });
}

/** The web app's connection to the saga's bus. */
export class SagaClient {
  private readonly reconnectListeners = new Set<() => void>();

  private constructor(
    /** The underlying NATS connection (for its status, or to drain it). */
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly servicesKey: PublicKey | null,
    private readonly timeoutMs: number,
  ) {
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "reconnect") for (const listener of this.reconnectListeners) listener();
      }
    })();
  }

  /** Connects; see {@link connect}. */
  static async connect(options: ConnectOptions): Promise<SagaClient> {
    const servers = typeof options.servers === "string" ? options.servers.split(",") : options.servers;
    if (servers.length === 0 || servers.some((s) => s.trim() === "")) {
      throw new ConfigError("invalid_config", "servers must name at least one NATS server");
    }
    if ((options.user === undefined) !== (options.pass === undefined)) {
      throw new ConfigError("invalid_config", "give the NATS user and its password, or neither");
    }
    const servicesKey = options.servicesPublicKey ? await PublicKey.parse(options.servicesPublicKey) : null;
    const timeoutMs = options.timeoutMs ?? 5000;
    let nc: NatsConnection;
    try {
      nc = await natsConnect({
        // Keep trying: a web app outlives a restart of its NATS server.
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        timeout: timeoutMs,
        ...options.nats,
        servers: servers.map((s) => s.trim()),
        ...(options.user !== undefined ? { user: options.user, pass: options.pass } : {}),
        inboxPrefix: options.inboxPrefix ?? (options.user ? `_INBOX_${options.user}` : "_INBOX"),
      });
    } catch (cause) {
      throw busError(cause, "connecting to NATS");
    }
    // No API check: the web app's user may ask little of JetStream.
    const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: timeoutMs });
    const js = jetstream(nc, { timeout: timeoutMs });
    return new SagaClient(nc, js, jsm, servicesKey, timeoutMs);
  }

  /**
   * Publishes a signup and returns its saga id once the saga exists: the password is
   * sealed to the services' key (bound to this signup), the message carries
   * `Nats-Msg-Id: <signup_id>`, and it is published again with the same id until
   * the saga's first progress event is stored (the saga store, not the bus, is the
   * source of truth; a repeat is never a second saga). Throws
   * {@link SignupRejectedError} with the contract's code when the orchestrator refused
   * it (`subdomain_taken`, `invalid_email`, …), {@link SignupNotAcceptedError} when no
   * saga appeared in time.
   */
  async signup(request: SignupRequest, options: SignupOptions = {}): Promise<string> {
    const sagaId = (request.signup_id ?? randomUUID()).toLowerCase();
    if (!UUID.test(sagaId)) {
      throw new ConfigError("invalid_argument", `signup_id ${JSON.stringify(request.signup_id)} is not a UUID`);
    }
    const { admin_password: password, ...rest } = request;
    const message: SignupRequested = { ...rest, signup_id: sagaId };
    if (password != null) {
      if (this.servicesKey === null) {
        throw new ConfigError(
          "invalid_config",
          "a signup with a password needs the services' public key (servicesPublicKey, SAGA_PUBLIC_KEY)",
        );
      }
      message.admin_password_sealed = await this.servicesKey.seal(password, sagaId, "admin_password");
    }
    message.requested_at ??= new Date().toISOString();
    const payload = new TextEncoder().encode(JSON.stringify(message));

    const republishAfterMs = options.republishAfterMs ?? 3000;
    const acceptWithinMs = options.acceptWithinMs ?? 60_000;
    const started = Date.now();
    let lastError: unknown;
    // The first event, read as progress is: the reader wakes at once when it comes.
    const abort = new AbortController();
    const first = this.progress(sagaId, { signal: abort.signal })[Symbol.asyncIterator]();
    const firstEvent = first.next().catch((e: unknown) => e);
    try {
      for (;;) {
        try {
          // `msgID` is the `Nats-Msg-Id` header: JetStream drops a repeat within its window.
          await this.js.publish(SIGNUP_SUBJECT, payload, { msgID: sagaId, timeout: this.timeoutMs });
        } catch (cause) {
          lastError = busError(cause, "publishing the signup");
        }
        const left = acceptWithinMs - (Date.now() - started);
        const wait = Math.max(0, Math.min(republishAfterMs, left));
        const outcome = await Promise.race([firstEvent, new Promise((r) => setTimeout(() => r(null), wait))]);
        if (outcome instanceof Error) throw outcome;
        if (outcome !== null) {
          const { value } = outcome as IteratorResult<ProgressEvent>;
          if (value === undefined) throw new SignupNotAcceptedError(sagaId, Date.now() - started, lastError);
          if (value.status === "rejected") throw new SignupRejectedError(value);
          return sagaId;
        }
        if (Date.now() - started >= acceptWithinMs) {
          throw new SignupNotAcceptedError(sagaId, Date.now() - started, lastError);
        }
      }
    } finally {
      abort.abort();
      void first.return?.(undefined);
    }
  }

  /**
   * The events of saga `sagaId` in order, each once, from `fromSequence` (default 1,
   * the whole timeline); ends after a terminal event. Survives reconnects: what was
   * published meanwhile is read from the stream.
   */
  progress(sagaId: string, options: ProgressOptions = {}): AsyncIterable<ProgressEvent> {
    const id = sagaId.toLowerCase();
    if (!UUID.test(id)) {
      throw new ConfigError("invalid_argument", `saga id ${JSON.stringify(sagaId)} is not a UUID`);
    }
    const source = {
      nc: this.nc,
      jsm: this.jsm,
      onReconnect: (listener: () => void) => {
        this.reconnectListeners.add(listener);
        return () => this.reconnectListeners.delete(listener);
      },
    };
    return { [Symbol.asyncIterator]: () => readProgress(source, id, options) };
  }

  /** Whether `subdomain` can be had now, and why not (`taken`, `reserved`, `invalid`). */
  async checkSubdomain(subdomain: string): Promise<SubdomainCheckReply> {
    let reply;
    try {
      reply = await this.nc.request(SUBDOMAIN_CHECK_SUBJECT, JSON.stringify({ subdomain }), {
        timeout: this.timeoutMs,
      });
    } catch (cause) {
      throw busError(cause, "checking the subdomain");
    }
    let answer: SubdomainCheckReply;
    try {
      answer = reply.json<SubdomainCheckReply>();
    } catch (cause) {
      throw new InvalidReplyError("invalid_reply", "the subdomain check's answer is not JSON", { cause });
    }
    if (typeof answer?.available !== "boolean" || typeof answer.message !== "string") {
      throw new InvalidReplyError("invalid_reply", "the subdomain check's answer lacks `available` or `message`");
    }
    return answer;
  }

  /** Drains the connection: what was sent is delivered, then it closes. */
  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}

/** Connects to the saga's bus as the web app. */
export function connect(options: ConnectOptions): Promise<SagaClient> {
  return SagaClient.connect(options);
}

/**
 * Opens the new workspace's API token from its saga's `completed` event: the API
 * secret in `result` is sealed to the web app's key and bound to the saga, so the
 * event (which names the saga) is what is opened. `webAppKey` is the web app's
 * keyring (`WEB_APP_PRIVATE_KEYS`, the `private` line of `saga-keys new`), as text or
 * parsed. Throws {@link SealedValueError}.
 */
export async function openResult(
  completed: Pick<ProgressEvent, "saga_id" | "status" | "result">,
  webAppKey: string | Keyring,
): Promise<WorkspaceCredentials> {
  if (completed.status !== "completed") {
    throw new SealedValueError("missing_secret", `saga ${completed.saga_id} is ${completed.status}, not completed`);
  }
  const result = (completed.result ?? {}) as Partial<WorkspaceResult>;
  if (typeof result.api_key !== "string" || typeof result.api_secret !== "string") {
    throw new SealedValueError("missing_secret", `the result of saga ${completed.saga_id} holds no API key and secret`);
  }
  const keyring = typeof webAppKey === "string" ? await Keyring.parse(webAppKey) : webAppKey;
  const apiSecret = await keyring.open(result.api_secret, completed.saga_id, "api_secret");
  return {
    siteUrl: String(result.site_url ?? ""),
    siteName: String(result.site_name ?? ""),
    apiKey: result.api_key,
    apiSecret,
  };
}

export { PROGRESS_STREAM, progressSubject };
