//! Shared pieces of the runnable examples: a small local upstream API that misbehaves on
//! purpose (shared with `stitch demo`), so the examples can show retries, validation errors
//! and timeouts without any network access.

#[path = "fleet/mod.rs"]
pub mod fleet;

pub use stitchapi_cli::demo_api::DemoUpstream;
