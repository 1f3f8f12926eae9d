//! Redis stores for stitchapi: attach one and a stitch's throttle, circuit, sessions, tokens
//! and cache are shared by every process of a fleet, with no change at the call site.
//!
//! - [`RedisStore`] (feature `tcp`, default): Redis over TCP with redis-rs, optionally a Redis
//!   Cluster (feature `cluster`).
//! - [`UpstashStore`] (feature `upstash`, default): Redis over HTTPS REST through the stitchapi
//!   transport; builds for wasm32, so it runs in a Cloudflare Worker.
//!
//! Every verb of [`StitchStore`](stitchapi::StitchStore) is one round trip: the atomic ones
//! (`increment`, `reserve`, `lease`, `release`) are Lua scripts ([`scripts`]).

pub mod scripts;
#[cfg(all(feature = "tcp", not(target_arch = "wasm32")))]
mod tcp;

#[cfg(all(feature = "tcp", not(target_arch = "wasm32")))]
pub use tcp::{RedisOptions, RedisStore};
#[cfg(feature = "upstash")]
mod upstash;
#[cfg(feature = "upstash")]
pub use upstash::UpstashStore;

/// The README's examples, compiled as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
