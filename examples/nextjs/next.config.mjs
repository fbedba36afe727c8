// The saga client (linked from ../../clients/typescript) talks to NATS over TCP from the
// server: Node loads it at run time rather than the bundler. The repository's root is
// the project's root for the bundler and the output tracing, since the client lives
// outside this folder.
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** @type {import('next').NextConfig} */
const nextConfig = {
  serverExternalPackages: ["@tenant-saga/client", "@nats-io/transport-node", "@nats-io/jetstream"],
  turbopack: { root },
  outputFileTracingRoot: root,
};

export default nextConfig;
