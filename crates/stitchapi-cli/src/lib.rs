//! The `stitch` command's building blocks, shared by its subcommands (and by front doors
//! such as an HTTP or MCP server built on the same declarations):
//!
//! - [`declarations`]: load a declarations file (`stitch.toml`) into built stitches, with
//!   errors naming the file, line, field and fix;
//! - [`invoke`]: call a declared stitch by name with a JSON input, streaming its events;
//! - [`events`]: a call's events as JSON lines, one stable form (`--events`, `trace`);
//! - [`exit`]: the process exit code of each error kind;
//! - [`trace`]: summarise an event log (calls, failures, retries, cache, throttle, latency);
//! - [`from_curl`]: turn a curl command line into a declaration.

pub mod declarations;
pub mod events;
pub mod exit;
pub mod from_curl;
pub mod invoke;
pub mod trace;

pub use declarations::{DeclarationError, Declarations};
pub use events::{EventKind, EventLine};
pub use exit::ExitCode;
pub use invoke::CallInput;
