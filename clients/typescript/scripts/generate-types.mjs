// Generates src/generated/ from the repository's JSON Schemas (schemas/*.json, the
// public contract v1; not internal/, not openapi.json) with json-schema-to-typescript:
// one module per schema, and index.ts naming each as a namespace (schemas share
// definitions such as ErrorInfo, so a flat re-export would clash).
//
//   node scripts/generate-types.mjs          write them
//   node scripts/generate-types.mjs --check  exit 1, naming the files, when they drift
import { readdir, readFile, writeFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { compile } from "json-schema-to-typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const schemas = path.resolve(here, "../../../schemas");
const out = path.resolve(here, "../src/generated");
const check = process.argv.includes("--check");

const banner = (file) =>
  `// GENERATED from schemas/${file} by scripts/generate-types.mjs: do not edit.\n` +
  `// Regenerate with \`npm run generate\`; \`npm run check:generated\` fails when it drifts.\n`;

/** `tenant.progress.json` → `TenantProgress`. */
const namespaceOf = (file) =>
  file
    .replace(/\.json$/, "")
    .split(/[._]/)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");

const files = (await readdir(schemas))
  .filter((f) => f.endsWith(".json") && f !== "openapi.json")
  .sort();
const wanted = new Map();
for (const file of files) {
  const schema = JSON.parse(await readFile(path.join(schemas, file), "utf8"));
  const ts = await compile(schema, schema.title ?? namespaceOf(file), {
    bannerComment: banner(file),
    additionalProperties: false,
    format: true,
    cwd: schemas,
  });
  wanted.set(file.replace(/\.json$/, ".ts"), ts);
}
wanted.set(
  "index.ts",
  banner("*.json") +
    files
      .map((f) => `export * as ${namespaceOf(f)} from "./${f.replace(/\.json$/, ".js")}";\n`)
      .join(""),
);

if (check) {
  const drifted = [];
  const present = new Set((await readdir(out).catch(() => [])).filter((f) => f.endsWith(".ts")));
  for (const [name, text] of wanted) {
    const current = await readFile(path.join(out, name), "utf8").catch(() => null);
    if (current !== text) drifted.push(name);
    present.delete(name);
  }
  drifted.push(...[...present].map((name) => `${name} (no schema makes it)`));
  if (drifted.length > 0) {
    console.error(
      `src/generated/ drifted from schemas/: ${drifted.join(", ")}\n` +
        `run \`npm run generate\` in clients/typescript and commit the result`,
    );
    process.exit(1);
  }
  console.log(`src/generated/ matches schemas/ (${wanted.size} files)`);
} else {
  await mkdir(out, { recursive: true });
  for (const [name, text] of wanted) await writeFile(path.join(out, name), text);
  console.log(`wrote ${wanted.size} files to src/generated/`);
}
