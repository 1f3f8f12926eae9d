//! The Deno KV stores' integration tests: one binary, one module per area, the remote ones
//! against real `denokv serve` processes the tests start (`support`).

#[cfg(feature = "sqlite")]
mod support;

#[cfg(all(feature = "sqlite", feature = "remote"))]
mod fault;
#[cfg(all(feature = "sqlite", feature = "remote"))]
mod interop;
#[cfg(all(feature = "sqlite", feature = "remote"))]
mod remote;
#[cfg(feature = "sqlite")]
mod sqlite;
