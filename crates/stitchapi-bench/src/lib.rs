//! What the benchmarks of `stitchapi-bench` share: the loopback upstream, the clients under
//! comparison built with the same policy, a per-thread counting allocator, the bare data
//! structures the stores are measured against, statistics and a description of the machine.
//!
//! The benchmarks themselves are `benches/peers.rs` and `benches/growth.rs`
//! (`cargo bench -p stitchapi-bench`); see the crate's README.

pub mod alloc;
pub mod baseline;
pub mod clients;
pub mod machine;
pub mod report;
pub mod stats;
pub mod upstream;

/// The body every user endpoint of the upstream answers (90 bytes, five fields).
pub const BODY: &[u8] =
    br#"{"id":7,"name":"Ada Lovelace","email":"ada@example.com","active":true,"team":"core"}"#;

/// [`BODY`], typed: what every client decodes.
#[derive(Debug, serde::Deserialize)]
pub struct User {
    /// The user's id.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Whether the account is active.
    pub active: bool,
    /// The user's team.
    pub team: String,
}
