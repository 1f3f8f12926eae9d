//! The Deno KV stores' integration tests.

#[cfg(feature = "sqlite")]
mod sqlite;
