//! The `stitch` binary, run as a process against real loopback servers: one module per area.

// The loopback upstream of the core's tests (scripted answers per path, every request
// recorded), shared by path rather than copied.
#[path = "../../../stitchapi/tests/it/support/mod.rs"]
mod upstream;

mod bad_files;
mod demo;
mod from_curl;
mod mcp;
mod run;
mod serve;
mod stores;
mod support;
mod trace;
