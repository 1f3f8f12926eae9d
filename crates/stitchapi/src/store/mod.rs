//! The store seam: the one place a stitch keeps mutable state.
//!
//! Throttle cursors and counters, circuit state, auth sessions and tokens and the response
//! cache all live behind [`StitchStore`]. The default, [`MemoryStore`], keeps them in this
//! process; a shared backend (Redis, Deno KV, Cloudflare) makes them fleet-wide with no change
//! at the call site.
//!
//! The trait is small. Every store has `get`, `set` (with `None` deleting) and an atomic
//! `increment`; the optional verbs `reserve` (a GCRA pacing cell) and `lease`/`release` (a
//! fleet-wide counting semaphore) are declared through [`Capabilities`], and features that need
//! them check at build time. Values are bytes; [`StitchStoreExt`] adds JSON helpers and
//! [prefixed views](StitchStoreExt::prefixed).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stitchapi::store::StoreError> {
//! use std::time::Duration;
//! use stitchapi::store::{MemoryStore, StitchStore, StitchStoreExt};
//!
//! let store = MemoryStore::new();
//! store.set_json("user:7", &serde_json::json!({"name": "Ada"}), None).await?;
//! let user: Option<serde_json::Value> = store.get_json("user:7").await?;
//! assert_eq!(user.unwrap()["name"], "Ada");
//!
//! // The TTL is set only by the increment that creates the counter.
//! assert_eq!(store.increment("hits", Some(Duration::from_secs(60))).await?, 1);
//! assert_eq!(store.increment("hits", Some(Duration::from_secs(1))).await?, 2);
//!
//! let vault = store.prefixed("vault:");
//! vault.set("token", Some("abc".into()), None).await?;
//! assert_eq!(store.get("vault:token").await?.as_deref(), Some(&b"abc"[..]));
//! # Ok(()) }
//! ```

mod memory;
mod prefixed;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{BoxError, Error, ErrorKind};
use crate::runtime::{MaybeSend, MaybeSync};
use crate::time::Timestamp;

pub use memory::MemoryStore;
pub use prefixed::PrefixedStore;

/// Who sees a store's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Only this process (the memory store).
    Process,
    /// Every process attached to the same backend.
    Fleet,
}

/// How soon a write is visible to other readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Consistency {
    /// A read after a write sees it.
    Strong,
    /// Other readers may see an old value for a while (Workers KV: up to about a minute).
    Eventual,
}

/// What a store can do and its limits. Features that need a verb check this at build time.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::store::{Capabilities, Scope};
///
/// // A backend with atomic counters and the pacing cell, but no leases, shared by a fleet.
/// let caps = Capabilities::new(Scope::Fleet).with_reserve(true);
/// assert!(caps.atomic_increment && caps.reserve && !caps.lease);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Who sees the state.
    pub scope: Scope,
    /// `increment` is atomic (N concurrent increments net exactly +N).
    pub atomic_increment: bool,
    /// `reserve` (the GCRA pacing cell) is implemented.
    pub reserve: bool,
    /// `lease` and `release` (the counting semaphore) are implemented.
    pub lease: bool,
    /// The shortest TTL the backend honours; shorter TTLs are rounded up to it.
    pub min_ttl: Option<Duration>,
    /// Read-after-write visibility.
    pub consistency: Consistency,
    /// The largest value the backend accepts, if it has a limit.
    pub max_value_bytes: Option<usize>,
}

impl Capabilities {
    /// Strongly consistent get/set and an atomic increment, no optional verbs.
    pub const fn new(scope: Scope) -> Self {
        Capabilities {
            scope,
            atomic_increment: true,
            reserve: false,
            lease: false,
            min_ttl: None,
            consistency: Consistency::Strong,
            max_value_bytes: None,
        }
    }

    /// Sets whether `increment` is atomic.
    pub const fn with_atomic_increment(mut self, atomic: bool) -> Self {
        self.atomic_increment = atomic;
        self
    }

    /// Sets whether `reserve` is implemented.
    pub const fn with_reserve(mut self, reserve: bool) -> Self {
        self.reserve = reserve;
        self
    }

    /// Sets whether `lease`/`release` are implemented.
    pub const fn with_lease(mut self, lease: bool) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the minimum TTL.
    pub const fn with_min_ttl(mut self, min_ttl: Option<Duration>) -> Self {
        self.min_ttl = min_ttl;
        self
    }

    /// Sets the consistency.
    pub const fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Sets the value size limit.
    pub const fn with_max_value_bytes(mut self, max: Option<usize>) -> Self {
        self.max_value_bytes = max;
        self
    }
}

/// What went wrong in a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store does not implement this verb (see [`Capabilities`]).
    Unsupported,
    /// The backend could not be reached or refused the connection.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// An optimistic write kept losing races (compare-and-set stores).
    Conflict,
    /// A stored value is not what the operation expected (e.g. not a counter).
    InvalidData,
    /// Anything else the backend reported.
    Backend,
}

/// A store failure, naming the backend and the operation.
///
/// ```
/// use stitchapi::store::{StoreError, StoreErrorKind};
///
/// let e = StoreError::new("redis", "increment", StoreErrorKind::Unavailable, "connection refused");
/// assert_eq!(e.to_string(), "redis store: increment failed: connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{backend} store: {operation} failed: {message}")]
pub struct StoreError {
    backend: &'static str,
    operation: &'static str,
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl StoreError {
    /// A new store error.
    pub fn new(
        backend: &'static str,
        operation: &'static str,
        kind: StoreErrorKind,
        message: impl Into<String>,
    ) -> Self {
        StoreError {
            backend,
            operation,
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The error an optional verb returns when a store does not implement it.
    pub fn unsupported(backend: &'static str, operation: &'static str) -> Self {
        StoreError::new(
            backend,
            operation,
            StoreErrorKind::Unsupported,
            format!("the {backend} store does not implement {operation}"),
        )
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The backend's name (`"memory"`, `"redis"`, ...).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The verb that failed (`"get"`, `"increment"`, ...).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::new(ErrorKind::Store, error.to_string()).with_source(error)
    }
}

/// The state backend of a stitch or seam.
///
/// All TTLs are [`Duration`]s; `None` (or a zero duration) means "never expires". Keys are
/// plain strings; drivers may add their own prefix.
///
/// The contract, which `stitchapi::testing::store_conformance` checks rule by rule:
/// - `get` of a missing or expired key is `None`;
/// - `set(key, None, _)` deletes; `set` with a TTL expires after it;
/// - `increment` is atomic, starts a missing or expired counter at 1, and sets the TTL only
///   when it creates the counter (the window is fixed, never sliding); `get` reads a counter
///   back as its ASCII decimal bytes (`b"2"`);
/// - `reserve(key, spacing, now, ttl)` atomically takes `at = max(now, cell)`, stores
///   `cell = at + spacing`, refreshes the TTL and returns `at`;
/// - `lease(key, token, limit, ttl, now)` atomically prunes holders expired at `now`, then
///   renews `token` if it holds a slot, or adds it if fewer than `limit` are held, returning
///   whether it holds one; `release` drops a token and is a no-op for unknown tokens.
///   `lease` and `release` come as a pair.
///
/// Implement the optional verbs only together with the matching [`Capabilities`] flag.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait StitchStore: MaybeSend + MaybeSync + fmt::Debug + 'static {
    /// The backend's name, used in errors (`"memory"`, `"redis"`).
    fn name(&self) -> &'static str;

    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Reads a value; `None` when missing or expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// Writes a value with an optional TTL; `None` deletes the key.
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Atomically adds one to a counter and returns the new count. A missing or expired
    /// counter starts at 1 and only then takes `ttl`.
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError>;

    /// The GCRA pacing cell: atomically `at = max(now, cell)`, `cell = at + spacing`, TTL
    /// refreshed; returns `at`.
    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        ttl: Option<Duration>,
    ) -> Result<Timestamp, StoreError> {
        let _ = (key, spacing, now, ttl);
        Err(StoreError::unsupported(self.name(), "reserve"))
    }

    /// Takes or renews a slot of a counting semaphore; `false` when `limit` slots are held.
    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let _ = (key, token, limit, ttl, now);
        Err(StoreError::unsupported(self.name(), "lease"))
    }

    /// Gives a slot back; releasing a token that holds nothing is a no-op.
    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let _ = (key, token);
        Err(StoreError::unsupported(self.name(), "release"))
    }

    /// Releases the store's resources. A seam's `close()` calls this last.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A shared, type-erased store.
pub type DynStore = Arc<dyn StitchStore>;

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<S: StitchStore + ?Sized> StitchStore for Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        (**self).get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        (**self).set(key, value, ttl).await
    }
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        (**self).increment(key, ttl).await
    }
    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        ttl: Option<Duration>,
    ) -> Result<Timestamp, StoreError> {
        (**self).reserve(key, spacing, now, ttl).await
    }
    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        (**self).lease(key, token, limit, ttl, now).await
    }
    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        (**self).release(key, token).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        (**self).close().await
    }
}

/// Conveniences over any [`StitchStore`]: JSON values, delete, prefixed views.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait StitchStoreExt: StitchStore {
    /// Reads and decodes a JSON value; a value that is not valid JSON for `T` is an
    /// `InvalidData` error.
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StoreError::new(
                    self.name(),
                    "get",
                    StoreErrorKind::InvalidData,
                    format!("the value at {key:?} is not the expected JSON: {e}"),
                )
            }),
        }
    }

    /// Encodes `value` as JSON and writes it.
    async fn set_json<T: Serialize + MaybeSync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            StoreError::new(
                self.name(),
                "set",
                StoreErrorKind::InvalidData,
                format!("the value for {key:?} does not encode as JSON: {e}"),
            )
        })?;
        self.set(key, Some(Bytes::from(bytes)), ttl).await
    }

    /// Deletes a key (`set(key, None, None)`).
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.set(key, None, None).await
    }

    /// A view of this store that prefixes every key, e.g. the `vault:` view where auth
    /// sessions and tokens live.
    fn prefixed(&self, prefix: impl Into<String>) -> PrefixedStore<Self>
    where
        Self: Clone + Sized,
    {
        PrefixedStore::new(self.clone(), prefix)
    }
}

impl<S: StitchStore + ?Sized> StitchStoreExt for S {}

/// Normalises a TTL: zero means "no expiry", like `None`.
pub fn normalize_ttl(ttl: Option<Duration>) -> Option<Duration> {
    ttl.filter(|ttl| !ttl.is_zero())
}
