//! Cloudflare Workers support for [stitchapi](https://docs.rs/stitchapi).
//!
//! - `WorkerTransport` (wasm32 only): the stitchapi [`Transport`](stitchapi::transport::Transport)
//!   over the Workers `fetch`, with `redirect: "manual"` so the stitchapi engine follows
//!   redirects itself and strips credentials on a cross-origin hop, exactly as on native.
//!   It honours the response body limit and aborts the `fetch` when its future is dropped,
//!   which is how per-attempt timeouts end an attempt inside workerd.
//!
//! - `WorkersKvStore` (wasm32 only): a store over a Workers KV namespace, for the response
//!   cache and auth sessions and tokens. Eventually consistent and unable to count: a throttle
//!   over it is refused when the stitch or seam is built.
//! - `DurableObjectStore` (wasm32 only) and its Durable Object class `StitchStoreObject`: the
//!   whole store contract (atomic increment, GCRA reserve, leases, owned locks), one object per
//!   key and one subrequest per verb; for throttles and anything that must count.
//!
//! ```ignore
//! use std::sync::Arc;
//! use stitchapi::Stitch;
//! use stitchapi_cloudflare::WorkerTransport;
//!
//! let get_user = Stitch::get("https://api.example.com/users/{id}")
//!     .transport(Arc::new(WorkerTransport::new()))
//!     .build()?;
//! ```
//!
//! ## Time in a Worker
//!
//! In workerd `Date.now()` advances only across I/O (a `fetch`, a timer), never during pure
//! computation. stitchapi's wasm32 clock reads `Date.now()` and sleeps with `setTimeout`,
//! which are both I/O boundaries, so deadlines, per-attempt timeouts and backoff sleeps
//! behave as on native; the tests of this crate check that inside workerd.
//!
//! On native targets this crate is empty, so a workspace that contains it still builds there.

#[cfg(target_arch = "wasm32")]
mod transport;

#[cfg(target_arch = "wasm32")]
mod durable;
#[cfg(target_arch = "wasm32")]
mod kv;

#[cfg(target_arch = "wasm32")]
pub use durable::{DurableObjectStore, StitchStoreObject};
#[cfg(target_arch = "wasm32")]
pub use kv::WorkersKvStore;
#[cfg(target_arch = "wasm32")]
pub use transport::WorkerTransport;
