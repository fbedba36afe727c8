/**
 * The client's settings from environment variables, named as the deployment names
 * them (README, "Integrating a Next.js app").
 */
import { ConfigError } from "./errors.js";
import type { ConnectOptions } from "./client.js";

/**
 * `NATS_URL` (default `nats://127.0.0.1:4222`; comma-separated for a cluster),
 * `NATS_USER` and `NATS_PASSWORD` (the web app's NATS user, `web-app`),
 * `NATS_INBOX_PREFIX` (default `_INBOX_<user>`), `SAGA_PUBLIC_KEY` (the services'
 * public key, to seal passwords).
 */
export function optionsFromEnv(env: Record<string, string | undefined> = process.env): ConnectOptions {
  const value = (name: string) => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const user = value("NATS_USER");
  const pass = value("NATS_PASSWORD");
  if ((user === undefined) !== (pass === undefined)) {
    throw new ConfigError("invalid_config", "set NATS_USER and NATS_PASSWORD together, or neither");
  }
  const options: ConnectOptions = {
    servers: value("NATS_URL") ?? "nats://127.0.0.1:4222",
  };
  if (user !== undefined) {
    options.user = user;
    options.pass = pass;
  }
  const inbox = value("NATS_INBOX_PREFIX");
  if (inbox !== undefined) options.inboxPrefix = inbox;
  const key = value("SAGA_PUBLIC_KEY");
  if (key !== undefined) options.servicesPublicKey = key;
  return options;
}
