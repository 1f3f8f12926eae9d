//! Deno KV stores for stitchapi: throttle cursors and counters, circuit state, auth sessions
//! and the response cache kept in Deno KV, so a fleet shares them.
//!
//! [`DenoKvStore`] runs on either backend, with the same compare-and-set code:
//!
//! - **Remote, over KV Connect** (feature `remote`, on by default):
//!   [`DenoKvStore::connect`]`(url, token)` reaches `denokv serve` or Deno Deploy through the
//!   stitchapi transport (reqwest by default, feature `reqwest`; any transport with
//!   [`KvConnect::with_transport`], so it builds for wasm32 too). The access token is a
//!   [`Secret`](stitchapi::Secret). The metadata exchange runs on the first call and again
//!   when its `expiresAt` is 5 s away (on the store's clock), or once when the data path
//!   refuses its token (401/403). A refused access token (HTTP 401, 403 or 404) is an
//!   [`Unavailable`](stitchapi::store::StoreErrorKind::Unavailable) error saying to pass the
//!   token the database was given; an unreachable server is `Unavailable` at once, and a
//!   silent one a [`Timeout`](stitchapi::store::StoreErrorKind::Timeout) after the response
//!   timeout (5 s by default, [`KvConnect::with_response_timeout`]). Redirects of the
//!   metadata exchange are not followed (the error names the fix).
//! - **Embedded** (feature `sqlite`, native targets): [`DenoKvStore::open`] on
//!   `denokv_sqlite`, a file path other processes may share and `denokv serve` can serve
//!   (same keys, same values), or [`DenoKvStore::in_memory`].
//!
//! Every verb of the [store contract](stitchapi::store) is a bounded compare-and-set loop over
//! Deno KV atomic writes (a `Check` on the versionstamp read); a loop that keeps losing fails
//! with a [`Conflict`](stitchapi::store::StoreErrorKind::Conflict) error saying how many races
//! it lost, never with a wrong count. `create` first sends one write checked on the key being
//! absent, and reads only when that check fails.
//!
//! # Layout
//!
//! - Keys are Deno KV key arrays: a value at `[prefix, key]`, a semaphore at
//!   `[prefix, "lease", key]` (the prefix, `"stitchapi"` by default, is its own segment).
//! - Bytes without a TTL are stored as they are (`Uint8Array` in Deno); a counter without a
//!   TTL is a `KvU64`, so Deno adds to it with `kv.atomic().sum(key, n)` and the store's
//!   compare-and-set sees the change.
//! - Anything with a TTL (and a pacing cell) is `KvValue::Bytes` holding an envelope:
//!   `F5 53 01`, a kind byte (`v` bytes, `n` counter, `c` GCRA cell), the deadline (`u64`
//!   big-endian ms since the epoch), then the payload (the bytes; an `i64` BE counter, the
//!   `{n, deadline}` envelope; the cell's seconds `u64` and nanoseconds `u32`). Deno KV's
//!   `expireIn` is best effort, so reads honour the deadline themselves; `expireIn` is passed
//!   at the same instant, only for positive TTLs. Deno code increments such a counter by
//!   reading the entry, adding one to the `i64` at byte 12 and writing it back with
//!   `kv.atomic().check(entry).set(key, bytes, { expireIn })`, retrying when the check fails
//!   (never with `sum`, which refuses bytes).
//! - Semaphores are JSON objects, token -> expiry in nanoseconds since the epoch.
//! - Values Deno writes must be `Uint8Array` (or `Deno.KvU64` for counters): a V8-serialised
//!   value (a string, an object) reads as an `InvalidData` error.
//!
//! # Tests
//!
//! The conformance kit passes on the embedded store and on a `denokv serve` the tests start;
//! Deno (from npm, `--unstable-kv`) reads what the store wrote over KV Connect and a counter
//! incremented from Rust and Deno at once nets the exact sum; a stopped and restarted server
//! fails closed calls fast and lets fail-open calls carry on.
//!
//! # Cost
//!
//! A verb over KV Connect is one read and one checked write (two HTTP requests), plus both
//! again for each race lost to another writer of the key; `get` is one read, `set` one
//! write, `create` one checked write when the key is absent. Measured against `denokv serve`
//! and `redis-server` on one 2-core machine in one run
//! (`cargo bench -p stitchapi-examples --bench stores`; the README has the tables): a
//! throttled call costs 2 requests and 1.2 ms (Redis: 1 `EVALSHA`, 153 µs); one client
//! increments 390 times a second (`RedisStore`: 12,463; raw `INCR`: 15,971), 16 clients on one
//! key 153 times a second with 6.41 races lost per increment (`RedisStore`: 24,361).

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(any(
    feature = "remote",
    all(feature = "sqlite", not(target_arch = "wasm32"))
))]
mod envelope;
#[cfg(feature = "remote")]
mod remote;
#[cfg(all(feature = "sqlite", not(target_arch = "wasm32")))]
mod sqlite;
#[cfg(any(
    feature = "remote",
    all(feature = "sqlite", not(target_arch = "wasm32"))
))]
mod store;

#[cfg(feature = "remote")]
pub use remote::KvConnect;
#[cfg(any(
    feature = "remote",
    all(feature = "sqlite", not(target_arch = "wasm32"))
))]
pub use store::{DEFAULT_MAX_RACES, DEFAULT_PREFIX, DenoKvStore};

/// The README's examples, compiled as doc-tests.
#[cfg(all(doctest, feature = "remote"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
