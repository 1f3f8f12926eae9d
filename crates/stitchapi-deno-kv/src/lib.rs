//! Deno KV stores for stitchapi: throttle cursors and counters, circuit state, auth sessions
//! and the response cache kept in Deno KV, so a fleet shares them.
//!
//! [`DenoKvStore`] (feature `sqlite`, native targets) runs on the embedded SQLite backend of
//! `denokv` (`denokv_sqlite`): a file path other processes may share and `denokv serve` can
//! later serve, or `:memory:` for tests. Every verb of the
//! [store contract](stitchapi::store) is a bounded compare-and-set loop over Deno KV atomic
//! writes (a `Check` on the versionstamp read); a loop that keeps losing fails with a
//! [`Conflict`](stitchapi::store::StoreErrorKind::Conflict) error saying how many races it
//! lost, never with a wrong count.
//!
//! # Layout
//!
//! - Keys are Deno KV key arrays: a value at `[prefix, key]`, a semaphore at
//!   `[prefix, "lease", key]` (the prefix, `"stitchapi"` by default, is its own segment).
//! - Values are `KvValue::Bytes`: `F5 53 01`, a kind byte (`v` bytes, `n` counter, `c` GCRA
//!   cell), the deadline (`u64` big-endian ms since the epoch, 0 = never), then the payload
//!   (the bytes; an `i64` BE counter, the `{n, deadline}` envelope; the cell's seconds `u64`
//!   and nanoseconds `u32`). Deno KV's `expireIn` is best effort, so reads honour the
//!   deadline themselves; `expireIn` is passed at the same instant, only for positive TTLs.
//!   Bytes without the header (written by another client) read as a value that never
//!   expires, and a `KvU64` (Deno's `sum`) as a counter.
//! - Semaphores are JSON objects, token -> expiry in nanoseconds since the epoch.
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
