// The client's errors: typed, with codes, and known by kind even when a bundler loads
// the package twice (Next.js bundles it once per server layer).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

test("errors are known by kind across copies of the package (a bundler may load it twice)", async () => {
  const copy = await import(`../../dist/errors.js?copy=${Date.now()}`);
  assert.notEqual(copy.SignupRejectedError, (await import("../../dist/errors.js")).SignupRejectedError);
  const event = { saga_id: randomUUID(), status: "rejected", message: "m", error: { code: "subdomain_taken", message: "taken" } };
  const error = new copy.SignupRejectedError(event);
  const { SignupRejectedError, SagaClientError, BusError } = await import("../../dist/index.js");
  assert.ok(error instanceof SignupRejectedError);
  assert.ok(error instanceof SagaClientError);
  assert.ok(error instanceof Error);
  assert.ok(!(error instanceof BusError));
  assert.ok(!(new copy.BusError("timeout", "t") instanceof SignupRejectedError));
  assert.equal(error.name, "SignupRejectedError");
  assert.equal(error.field, "subdomain");
});
