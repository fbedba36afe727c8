/**
 * A saga's progress as an async iterator, read the way the web app's NATS user may
 * (README, "The bus"): no consumer, but direct gets on `TENANT_PROGRESS`
 * (`next_by_subj` from one past the last stream sequence read) for what is stored,
 * and a plain subscription to `tenant.progress.<saga id>` only to learn, at once, that
 * there is more. Events are handed on strictly by their `sequence` (one past the last
 * one handed on), so a reconnect, a missed live message or an event published twice
 * gives neither a gap nor a repeat; the stream, not the subscription, is what is read.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { JetStreamManager } from "@nats-io/jetstream";

import { BusError, InvalidReplyError } from "./errors.js";
import type { ProgressEvent } from "./types.js";
import { isTerminal } from "./types.js";

/** The stream holding every saga's progress events. */
export const PROGRESS_STREAM = "TENANT_PROGRESS";

/** `tenant.progress.<saga id>`. */
export function progressSubject(sagaId: string): string {
  return `tenant.progress.${sagaId}`;
}

/** How {@link readProgress} is told where to start and when to stop. */
export interface ProgressOptions {
  /**
   * The first event to hand on, by its `sequence` (from 1: the whole timeline). A
   * page resuming after event `n` (SSE `Last-Event-ID: n`) gives `n + 1`.
   */
  fromSequence?: number;
  /** Stops the iteration (it then ends without an error). */
  signal?: AbortSignal;
  /**
   * How often the stream is read when nothing woke the reader up (a live message or
   * a reconnect): a safety net only. Default 2000 ms.
   */
  pollMs?: number;
}

/** What {@link readProgress} needs from the client. */
export interface ProgressSource {
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** Calls `listener` at every reconnect until the returned function is called. */
  onReconnect(listener: () => void): () => void;
}

/** One wake-up, shared by whatever may cause it. */
class Waker {
  private wake: (() => void) | null = null;
  private pending = false;

  /** Wakes the waiting reader, or the next one to wait. */
  notify(): void {
    if (this.wake) {
      this.wake();
      this.wake = null;
    } else {
      this.pending = true;
    }
  }

  /** Waits for a notification, at most `ms`; whether one came (else the time ran out). */
  async wait(ms: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return true;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const notified = await new Promise<boolean>((resolve) => {
      this.wake = () => resolve(true);
      timer = setTimeout(() => resolve(false), ms);
    });
    clearTimeout(timer);
    this.wake = null;
    return notified;
  }
}

function parseEvent(data: Uint8Array, sagaId: string): ProgressEvent {
  let event: ProgressEvent;
  try {
    event = JSON.parse(new TextDecoder().decode(data)) as ProgressEvent;
  } catch (cause) {
    throw new InvalidReplyError("invalid_reply", `a progress event of saga ${sagaId} is not JSON`, { cause });
  }
  if (typeof event?.sequence !== "number" || typeof event.status !== "string") {
    throw new InvalidReplyError("invalid_reply", `a progress event of saga ${sagaId} has no sequence or status`);
  }
  return event;
}

/**
 * The events of saga `sagaId` from `fromSequence` on, in order, each once; ends after
 * the first terminal event (`completed`, `rolled_back`, `rejected`,
 * `compensation_failed`) or when `signal` aborts. Throws {@link BusError}
 * `connection_closed` when the connection closes for good.
 */
export async function* readProgress(
  source: ProgressSource,
  sagaId: string,
  options: ProgressOptions = {},
): AsyncGenerator<ProgressEvent, void, undefined> {
  const { nc, jsm } = source;
  const subject = progressSubject(sagaId);
  const pollMs = options.pollMs ?? 2000;
  const signal = options.signal;
  /** The last `sequence` handed on. */
  let handed = Math.max(1, Math.floor(options.fromSequence ?? 1)) - 1;
  /** The next stream sequence to read from. */
  let streamSeq = 1;
  /** Events read ahead of one still missing, by sequence. */
  const ahead = new Map<number, ProgressEvent>();
  const waker = new Waker();

  /**
   * Whether the stream must be read before waiting: at the start, after a reconnect or
   * a quiet poll period, and when a live event showed one missing before it. While
   * live events come in order, they are handed on without a read.
   */
  let mustRead = true;

  const keep = (event: ProgressEvent) => {
    if (event.sequence > handed && !ahead.has(event.sequence)) ahead.set(event.sequence, event);
  };
  const onAbort = () => waker.notify();
  signal?.addEventListener("abort", onAbort);

  // Subscribed before the stream's first read, so that nothing published after it
  // waits for a poll.
  let sub: Subscription | null = null;
  let stopReconnects = () => {};
  try {
    sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          keep(parseEvent(msg.data, sagaId));
        } catch {
          // Not an event: the stream's copy is read instead.
          mustRead = true;
        }
        waker.notify();
      },
    });
    // Whatever was published while the connection was away is in the stream.
    stopReconnects = source.onReconnect(() => {
      mustRead = true;
      waker.notify();
    });
  } catch (cause) {
    sub?.unsubscribe();
    signal?.removeEventListener("abort", onAbort);
    throw new BusError("bus_error", `cannot follow ${subject}: ${String(cause)}`, { cause });
  }

  try {
    while (!signal?.aborted) {
      const next = ahead.get(handed + 1);
      if (next !== undefined) {
        ahead.delete(handed + 1);
        handed = next.sequence;
        yield next;
        if (isTerminal(next)) return;
        continue;
      }
      if (ahead.size > 0) mustRead = true;
      if (mustRead) {
        mustRead = false;
        try {
          // What the stream holds after what was read, through the direct get API.
          for (;;) {
            const stored = await jsm.direct.getMessage(PROGRESS_STREAM, {
              seq: streamSeq,
              next_by_subj: subject,
            });
            if (stored === null) break;
            streamSeq = stored.seq + 1;
            keep(parseEvent(stored.data, sagaId));
          }
        } catch (cause) {
          if (cause instanceof InvalidReplyError) throw cause;
          if (nc.isClosed()) {
            throw new BusError("connection_closed", `the connection closed while following ${subject}`, {
              cause,
            });
          }
          // Disconnected or slow: read again at the reconnect or the next poll.
          mustRead = true;
        }
        if (ahead.has(handed + 1)) continue;
      }
      if (!(await waker.wait(pollMs))) mustRead = true;
    }
  } finally {
    stopReconnects();
    signal?.removeEventListener("abort", onAbort);
    sub?.unsubscribe();
  }
}
