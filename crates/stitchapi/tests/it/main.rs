//! stitchapi's integration tests: one binary (one link), one module per area, against real HTTP
//! servers on loopback (`support`).

mod support;

mod auth_hardening;
mod auth_vault;
mod calls_authenticated;
mod calls_cached;
mod calls_guarded;
mod calls_throttled;
mod cancellation;
mod compression;
mod config;
mod decode;
mod degraded_stores;
mod events;
mod extension_points;
mod fuzz_parsers;
mod fuzz_template;
mod gcra;
mod injection;
mod redirects;
mod retry;
mod seam;
mod store_conformance;
mod timeouts;
mod url_hardening;
