//! The stitchapi-cloudflare tests in the real runtime: the example Worker (`examples/worker`,
//! built by `worker-build`) runs in workerd through miniflare 4 (Node), calls a loopback
//! upstream that each test starts and scripts, and is driven over HTTP.
//!
//! Needs the tools of `scripts/edge-tools` (worker-build, wasm-bindgen-cli, the Node harness);
//! a missing tool fails the test with a message naming that script, never a silent skip.
//! `STITCHAPI_WORKER_BUILD=<dir>` uses a Worker built beforehand instead of building it here.
#![cfg(not(target_arch = "wasm32"))]

mod auth_kv;
mod harness;
mod product;
mod stores;
mod upstash_shared;
mod worker_fetch;
