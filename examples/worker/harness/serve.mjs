// Serves the example Worker (examples/worker/build, made by worker-build) in workerd through
// miniflare 4, for the stitchapi-cloudflare tests.
//
//   node serve.mjs [build dir]        (default: ../build)
//   WORKER_BINDINGS='{"UPSTREAM":"http://127.0.0.1:1234"}' sets plain-text bindings.
//   WORKER_PERSIST=<dir> persists KV and Durable Object storage there (default: in memory).
//
// Bindings: KV and MY_KV (Workers KV namespaces; MY_KV is the README's) and STITCH_STORE (the Durable Object class
// StitchStoreObject that stitchapi-cloudflare exports), as in the crate README's wrangler.toml.
//
// Listens on 127.0.0.1 on a free port, prints `listening <url>` on stdout once ready, and
// stops workerd and exits when stdin closes (so it ends with the test that started it).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const here = path.dirname(fileURLToPath(import.meta.url));
const build = path.resolve(process.argv[2] ?? path.join(here, "..", "build"));
const bindings = JSON.parse(process.env.WORKER_BINDINGS ?? "{}");

const mf = new Miniflare({
  modules: true,
  scriptPath: path.join(build, "index.js"),
  // Required when the script lies outside the cwd, or workerd refuses "..".
  modulesRoot: build,
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
  compatibilityDate: "2025-09-01",
  bindings,
  kvNamespaces: ["KV", "MY_KV"],
  durableObjects: { STITCH_STORE: "StitchStoreObject" },
  ...(process.env.WORKER_PERSIST
    ? {
        kvPersist: path.join(process.env.WORKER_PERSIST, "kv"),
        durableObjectsPersist: path.join(process.env.WORKER_PERSIST, "do"),
      }
    : {}),
  host: "127.0.0.1",
  port: 0,
});

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(code);
  }
}

try {
  const url = await mf.ready;
  process.stdout.write(`listening ${url.href.replace(/\/$/, "")}\n`);
} catch (error) {
  console.error(`miniflare failed to start: ${error?.stack ?? error}`);
  process.exit(1);
}
process.stdin.on("end", () => stop(0));
process.stdin.on("error", () => stop(0));
process.stdin.resume();
process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
