// The client's connection to NATS goes away mid-saga (a TCP proxy between them cuts
// it): progress read through the reconnect has no gap and no repeat, though events
// were published while it was away; and a signup whose publication the bus swallowed
// is published again until its saga exists.
import { after, test } from "node:test";
import assert from "node:assert/strict";

import { jetstreamManager } from "@nats-io/jetstream";

import { PROGRESS_STREAM, progressSubject } from "../../dist/index.js";
import { client, natsProxy, signupRequest, sleep, subdomain } from "./world.mjs";

const proxy = await natsProxy();
// A second connection, straight to the server, to see what the stream holds meanwhile.
const side = await client();
after(async () => {
  await side.close();
  await proxy.close();
});

/** How many events of `sagaId` the stream holds, read on the side connection. */
async function storedEvents(sagaId) {
  const jsm = await jetstreamManager(side.nc, { checkAPI: false });
  let count = 0;
  let seq = 1;
  for (;;) {
    const stored = await jsm.direct.getMessage(PROGRESS_STREAM, { seq, next_by_subj: progressSubject(sagaId) });
    if (stored === null) return count;
    count += 1;
    seq = stored.seq + 1;
  }
}

test("a reconnect mid-saga loses and repeats nothing", { timeout: 60_000 }, async () => {
  const saga = await client({ servers: proxy.url });
  let reconnects = 0;
  void (async () => {
    for await (const s of saga.nc.status()) if (s.type === "reconnect") reconnects += 1;
  })();
  try {
    const sagaId = await saga.signup(signupRequest(subdomain("ts-reconnect")));
    const events = [];
    let publishedWhileAway = 0;
    // Bounded: a reader that lost events would wait for them for ever.
    for await (const event of saga.progress(sagaId, { signal: AbortSignal.timeout(45_000) })) {
      events.push(event);
      if (event.sequence === 3) {
        // Cut off until the saga has moved on by at least two events.
        proxy.cut();
        const before = await storedEvents(sagaId);
        for (let i = 0; i < 200 && (await storedEvents(sagaId)) < before + 2; i += 1) await sleep(50);
        publishedWhileAway = (await storedEvents(sagaId)) - before;
        proxy.restore();
      }
    }
    assert.ok(publishedWhileAway >= 2, `events were published while the client was away (${publishedWhileAway})`);
    assert.ok(reconnects >= 1, "the client reconnected");
    assert.equal(events.at(-1)?.status, "completed", `read to the end: ${events.map((e) => e.sequence)}`);
    assert.deepEqual(
      events.map((e) => e.sequence),
      events.map((_, i) => i + 1),
      "no gap, no repeat",
    );
    assert.equal(events.length, await storedEvents(sagaId), "every stored event, once");
  } finally {
    await saga.close();
  }
});

test("a signup the bus swallowed is published again until its saga exists", { timeout: 60_000 }, async () => {
  const saga = await client({ servers: proxy.url, timeoutMs: 1000 });
  // What the client sends from now on vanishes; nothing is acknowledged.
  proxy.blackhole();
  try {
    const request = signupRequest(subdomain("ts-swallowed"));
    const accepted = saga.signup(request, { republishAfterMs: 500, acceptWithinMs: 30_000 });
    await sleep(2500);
    assert.equal(await storedEvents(request.signup_id), 0, "no saga while the signup is swallowed");
    // The connection starts again; the next publication goes through.
    proxy.restore();
    assert.equal(await accepted, request.signup_id);
    let last;
    for await (const event of saga.progress(request.signup_id)) last = event;
    assert.equal(last.status, "completed");
  } finally {
    proxy.restore();
    await saga.close();
  }
});
