// What the end-to-end tests share: the web app's settings from the environment that
// tests/tests/typescript_client.rs gives them (a world of real services; missing, the
// tests fail, never skip), unique names, reading a whole saga, and a TCP proxy between
// the client and NATS that the reconnect tests cut and restore.
import net from "node:net";
import { randomUUID } from "node:crypto";

import { connect, optionsFromEnv } from "../../dist/index.js";

const REQUIRED = ["NATS_URL", "NATS_USER", "NATS_PASSWORD", "SAGA_PUBLIC_KEY", "WEB_APP_PRIVATE_KEYS", "BENCH_HTTP_URL", "SUBDOMAIN_SUFFIX", "SUBDOMAINS"];
const missing = REQUIRED.filter((name) => !process.env[name]);
if (missing.length > 0) {
  throw new Error(
    `the end-to-end tests need ${missing.join(", ")}: run them through ` +
      "`cargo test -p tests --test typescript_client`, which starts the services",
  );
}

export const env = process.env;
export const PARENT_DOMAIN = env.PARENT_DOMAIN ?? "example.test";

const SUBDOMAINS = JSON.parse(env.SUBDOMAINS);

/**
 * The subdomain unique to this run for `name`, as the Rust harness handed it out
 * (`SUBDOMAINS`): the harness drops the tenant databases of those names afterwards, so
 * a name it does not know is an error here, never a tenant left behind.
 */
export function subdomain(name) {
  const sub = SUBDOMAINS[name];
  if (sub === undefined) {
    throw new Error(`subdomain "${name}" is not in SUBDOMAINS: add it to web_app_env in tests/tests/typescript_client.rs`);
  }
  return sub;
}

/** A signup request the orchestrator accepts (the password passes the sites' policy). */
export function signupRequest(sub, overrides = {}) {
  return {
    signup_id: randomUUID(),
    organization_name: `Org ${sub}`,
    subdomain: sub,
    admin_email: "admin@test.com",
    admin_full_name: "Test Admin",
    admin_password: `Sealed-Meadow-${env.SUBDOMAIN_SUFFIX}-Compass`,
    auth_provider: "password",
    ...overrides,
  };
}

/** A client connected as the web app, `options` added. */
export const client = (options = {}) => connect({ ...optionsFromEnv(), ...options });

/** Every event of a saga until its end, through `progress`. */
export async function timeline(saga, sagaId, options) {
  const events = [];
  for await (const event of saga.progress(sagaId, options)) events.push(event);
  return events;
}

/**
 * A TCP proxy on a loopback port to the NATS server: `cut()` closes every connection
 * through it and refuses new ones, `restore()` lets them in again, `blackhole()` keeps
 * connections open but drops what clients send (published messages vanish, nothing
 * is acknowledged) until `restore()` closes them.
 */
export async function natsProxy() {
  const target = new URL(env.NATS_URL.split(",")[0]);
  let mode = "pass";
  const pairs = new Set();
  const server = net.createServer((client) => {
    if (mode === "cut") {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    const close = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("data", (chunk) => {
      if (mode === "pass") upstream.write(chunk);
    });
    upstream.on("data", (chunk) => client.write(chunk));
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const dropAll = () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  return {
    url: `nats://127.0.0.1:${server.address().port}`,
    cut() {
      mode = "cut";
      dropAll();
    },
    blackhole() {
      mode = "blackhole";
    },
    restore() {
      // A connection that went through the black hole lost bytes: it starts again.
      if (mode === "blackhole") dropAll();
      mode = "pass";
    },
    close() {
      dropAll();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
