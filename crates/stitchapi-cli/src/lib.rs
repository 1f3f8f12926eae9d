//! The `stitch` command's building blocks, shared by its subcommands (and by front doors
//! such as an HTTP or MCP server built on the same declarations):
//!
//! - [`declarations`]: load a declarations file (`stitch.toml`) into built stitches, with
//!   errors naming the file, line, field and fix;
//! - [`invoke`]: call a declared stitch by name with a JSON input, streaming its events;
//! - [`events`]: a call's events as JSON lines, one stable form (`--events`, `trace`);
//! - [`exit`]: the process exit code of each error kind;
//! - [`trace`]: summarise an event log (calls, failures, retries, cache, throttle, latency);
//! - [`from_curl`]: turn a curl command line into a declaration;
//! - [`schema`]: the JSON Schemas of a stitch's input and output;
//! - [`failure`]: a failed call as JSON (kind, message, upstream status);
//! - [`event_log`]: an event log file appended to by a long-running front door;
//! - [`serve`]: the HTTP front door (`stitch serve`);
//! - [`mcp`]: the stitches as MCP tools over stdio (`stitch mcp`);
//! - [`demo`] and [`demo_api`]: `stitch demo`, a declared file run against the quickstart's
//!   misbehaving local API.

pub mod declarations;
pub mod demo;
pub mod demo_api;
pub mod event_log;
pub mod events;
pub mod exit;
pub mod failure;
pub mod from_curl;
pub mod invoke;
pub mod mcp;
pub mod schema;
pub mod serve;
pub mod trace;

pub use declarations::{DeclarationError, Declarations};
pub use events::{EventKind, EventLine};
pub use exit::ExitCode;
pub use failure::Failure;
pub use invoke::CallInput;
