// Sealed values interoperate with the Rust `secrets` crate: a value Rust sealed
// (fixtures/sealed-by-rust.json, written and checked by tests/tests/typescript_client.rs)
// opens here, bound to its saga and field only; what this client seals opens with the
// matching private key (the orchestrator opening a sealed password is the end-to-end
// tests' part).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";

import { ConfigError, Keyring, PublicKey, SealedValueError, openResult } from "../../dist/index.js";

const fixture = JSON.parse(await readFile(new URL("../fixtures/sealed-by-rust.json", import.meta.url), "utf8"));

test("a value sealed by the Rust crate opens with the web app's private key", async () => {
  const ring = await Keyring.parse(fixture.private_key);
  assert.deepEqual(ring.ids, ["fixture"]);
  assert.equal(await ring.open(fixture.sealed, fixture.saga_id, fixture.field), fixture.clear);
});

test("a Rust-sealed value does not open for another saga or field, nor with another key", async () => {
  const ring = await Keyring.parse(fixture.private_key);
  await assert.rejects(ring.open(fixture.sealed, randomUUID(), fixture.field), {
    name: "SealedValueError",
    code: "cannot_open",
  });
  await assert.rejects(ring.open(fixture.sealed, fixture.saga_id, "db_password"), { code: "cannot_open" });
  const other = await Keyring.parse(`fixture:${Buffer.alloc(32, 7).toString("base64")}`);
  await assert.rejects(other.open(fixture.sealed, fixture.saga_id, fixture.field), { code: "cannot_open" });
  const stranger = await Keyring.parse(`other:${Buffer.alloc(32, 7).toString("base64")}`);
  await assert.rejects(stranger.open(fixture.sealed, fixture.saga_id, fixture.field), { code: "unknown_key" });
  await assert.rejects(ring.open("v1:abc", fixture.saga_id, fixture.field), { code: "malformed" });
  await assert.rejects(ring.open("v2:fixture:AAAA", fixture.saga_id, fixture.field), { code: "malformed" });
});

test("sealed here, opened with the private key of the public key it was sealed to", async () => {
  const key = await PublicKey.parse(fixture.public_key);
  const saga = randomUUID();
  const sealed = await key.seal("Correct-Horse-9", saga, "admin_password");
  assert.match(sealed, /^v2:fixture:[A-Za-z0-9+/]+=*$/);
  // 32 bytes of encapsulated key, the 15-byte secret, a 16-byte tag.
  assert.equal(Buffer.from(sealed.split(":")[2], "base64").length, 32 + 15 + 16);
  const ring = await Keyring.parse(fixture.private_key);
  assert.equal(await ring.open(sealed, saga, "admin_password"), "Correct-Horse-9");
  assert.notEqual(await key.seal("Correct-Horse-9", saga, "admin_password"), sealed, "a fresh key each time");
});

test("openResult gives the API token of a completed event", async () => {
  const event = {
    saga_id: fixture.saga_id,
    status: "completed",
    result: { site_url: "https://acme.example.test", site_name: "acme.example.test", api_key: "k1", api_secret: fixture.sealed },
  };
  assert.deepEqual(await openResult(event, fixture.private_key), {
    siteUrl: "https://acme.example.test",
    siteName: "acme.example.test",
    apiKey: "k1",
    apiSecret: fixture.clear,
  });
  await assert.rejects(openResult({ ...event, status: "rolled_back" }, fixture.private_key), {
    name: "SealedValueError",
    code: "missing_secret",
  });
  await assert.rejects(openResult({ ...event, result: { site_url: "x" } }, fixture.private_key), {
    code: "missing_secret",
  });
});

test("keys that are not `<id>:<base64 of 32 bytes>` are refused with a clear error", async () => {
  for (const text of ["", "no-colon", "bad id!:AAAA", `k:${Buffer.alloc(31).toString("base64")}`, "k:not base64!"]) {
    await assert.rejects(Keyring.parse(text), (e) => e instanceof ConfigError && e.code === "invalid_key", text);
    await assert.rejects(PublicKey.parse(text), (e) => e instanceof ConfigError && e.code === "invalid_key", text);
  }
  const entry = `k:${Buffer.alloc(32, 1).toString("base64")}`;
  await assert.rejects(Keyring.parse(`${entry},${entry}`), /twice/);
  // Nothing can be sealed to a low-order point (all zeros).
  const zero = await PublicKey.parse(`z:${Buffer.alloc(32).toString("base64")}`).catch((e) => e);
  if (zero instanceof PublicKey) {
    await assert.rejects(zero.seal("x", randomUUID(), "admin_password"), { code: "invalid_key" });
  } else {
    assert.equal(zero.code, "invalid_key");
  }
  assert.ok(SealedValueError);
});
