//! The store seam: the one place a stitch keeps mutable state.
//!
//! Throttle cursors and counters, circuit state, auth sessions and tokens and the response
//! cache all live behind [`StitchStore`]. The default, [`MemoryStore`], keeps them in this
//! process; a shared backend (Redis, Deno KV, Cloudflare) makes them fleet-wide with no change
//! at the call site.
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
//! // An owned lock: taken only if absent, released only by its owner.
//! assert!(store.create("lock:job", "token-a".into(), Some(Duration::from_secs(5))).await?);
//! assert!(!store.create("lock:job", "token-b".into(), Some(Duration::from_secs(5))).await?);
//! assert!(!store.delete_if("lock:job", b"token-b").await?);
//! assert!(store.delete_if("lock:job", b"token-a").await?);
//!
//! let vault = store.prefixed("vault:");
//! vault.set("token", Some("abc".into()), None).await?;
//! assert_eq!(store.get("vault:token").await?.as_deref(), Some(&b"abc"[..]));
//! # Ok(()) }
//! ```
//!
//! # The contract
//!
//! This is the whole contract a backend signs. [`store_conformance`] (feature `testing`)
//! checks every rule below, registered by capability, and names each rule a store breaks.
//!
//! [`store_conformance`]: crate::testing::store_conformance
//!
//! **Keys and values.** Keys are UTF-8 strings; values are bytes, returned byte for byte
//! (empty, non-UTF-8, NUL and CR/LF included). A key holds one value at a time; semaphores
//! (`lease`) live apart from values. Keys are isolated: a write to one never changes another.
//!
//! **TTLs.** Every TTL is a [`Duration`]; `None` or zero means "never expires". An entry whose
//! TTL has run out reads as missing and may be created again. A backend may round a TTL up to
//! its [`Capabilities::min_ttl`] (Workers KV: 60 s), never down.
//!
//! **Always present**
//!
//! | verb | rule |
//! |---|---|
//! | `get(key)` | the value, or `None` when the key is missing or expired |
//! | `set(key, Some(v), ttl)` | writes `v`, replacing any value and its TTL |
//! | `set(key, None, _)` | deletes the key |
//! | `increment(key, ttl)` | adds one and returns the new count; a missing or expired counter starts at 1 and **only then** takes `ttl` (a fixed window, never sliding); `get` reads a counter back as ASCII decimal bytes (`b"2"`), and decimal bytes written by `set` can be incremented |
//!
//! **Optional verbs, each behind a [`Capabilities`] flag** (a store that does not declare a
//! flag answers the verbs with [`StoreErrorKind::Unsupported`], and the core never calls them)
//!
//! | capability | verbs | rule |
//! |---|---|---|
//! | `atomic_increment` | `increment` | N concurrent increments net exactly +N, across every process |
//! | `reserve` | [`reserve`](StitchStore::reserve) | atomically: `at = max(now, cell)`; if `latest` is set and `at > latest`, nothing changes and the answer is [`Reservation::Refused`] with `at`; otherwise `cell = at + spacing`, the TTL is refreshed, and the answer is [`Reservation::Granted`] with `at`. Times keep sub-millisecond precision (a spacing of 1000/3 ms does not drift) |
//! | `lease` | [`lease`](StitchStore::lease), [`release`](StitchStore::release) | atomically prune holders expired at `now`, then renew `token` if it holds a slot or add it if fewer than `limit` are held; `release` drops a token and is a no-op for a token that holds nothing |
//! | `conditional_writes` | [`create`](StitchStore::create), [`renew_if`](StitchStore::renew_if), [`delete_if`](StitchStore::delete_if) | atomically: `create` writes only when the key is missing or expired (of N concurrent creates exactly one wins); `renew_if` resets the TTL and `delete_if` deletes only when the key holds exactly `expected` |
//!
//! **Declared properties**: [`Scope`] (who sees the state), [`Consistency`] (whether a read
//! after a write sees it), `min_ttl` and `max_value_bytes`. [`Capabilities::new`] claims
//! nothing: every optional verb off, consistency [`Consistency::Eventual`]; a backend turns on
//! exactly what it implements.
//!
//! # What the core does with each capability
//!
//! Features choose their algorithm from the capabilities **when the stitch or seam is
//! built**, and a combination that cannot be correct fails the build with an error naming the
//! capability and the fix:
//!
//! - **Throttle** over a fleet store: pacing needs `reserve` (exact) or an atomic `increment`
//!   (a window counter); a concurrency cap needs `lease`. A host pool ([`Pool::Host`]) is always
//!   kept in the store, so it needs the same verbs even in one process.
//! - **Owned locks** (cache fills, OAuth2 refresh, cookie login, the circuit's half-open
//!   trial) need `conditional_writes` on a strongly consistent store
//!   ([`Capabilities::owned_locks`]): a lock is `create(key, random token, ttl)`, kept alive
//!   with `renew_if` while its holder works, and released with `delete_if(key, token)`, so a
//!   holder that outlived its lock can never release its successor's. On a fleet store
//!   without them, single-flight and the half-open trial stay within each process; the build
//!   says so in a `warn` trace, and never takes a lock that cannot be correct.
//! - **Circuit breaker** over a fleet store counts failures with `increment`, so it needs an
//!   atomic one.
//!
//! # Store keys the core writes
//!
//! Every key format lives in one place (`store/keys.rs`); a seam's id is `seam:<name or base
//! URL>`, a stitch's id its name.
//!
//! | key | what |
//! |---|---|
//! | `rl:<throttle key>` | the pacing cell (`reserve`) |
//! | `rl:<throttle key>:<window start ms>` | a window counter (the `increment` fallback) |
//! | `cc:<throttle key>` | the concurrency semaphore (`lease`) |
//! | `circuit:<stitch>:failures` | consecutive failures (`increment`) |
//! | `circuit:<stitch>:opened` | when the breaker opened (ms since the epoch) |
//! | `circuit:<stitch>:trial` | the half-open trial's owned lock |
//! | `cache:gen`, `cache:gen:<seam id>`, `cache:gen:<stitch>` | cache generations (`increment`) |
//! | `cache:k2:g<seam gen>.<stitch gen>.<stitch>:<32 hex>` | a cache entry, or the variant list of a response with `Vary` |
//! | `cache:k2:g<seam gen>.<stitch gen>.<stitch>:<32 hex>:v<32 hex>` | one variant of a response with `Vary` |
//! | `cache:lock:g<seam gen>.<stitch gen>.<stitch>:<32 hex>` | a cache fill's owned lock |
//! | `vault:oauth2:<key or token URL>[\0<principal>]` | an OAuth2 token |
//! | `vault:cookie:<key or cookie name>[\0<principal>]`, `vault:jar:<key or *>[\0<principal>]` | a cookie session |
//! | `vault:lock:<vault key>` | a token refresh's or login's owned lock |
//! | `<a lock key above>:failed` | the failure of that flight's leader, for the callers that waited on it (TTL: the lock's) |
//!
//! [`Pool::Host`]: crate::throttle::Pool::Host

pub(crate) mod keys;
mod memory;
mod prefixed;
mod value;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;
use crate::runtime::{MaybeSend, MaybeSync};
use crate::time::Timestamp;

pub use memory::MemoryStore;
pub use prefixed::PrefixedStore;
pub use value::StoredValue;

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

/// What a store can do and its limits. Features that need a verb check this when a stitch or
/// seam is built.
///
/// [`Capabilities::new`] claims nothing: every optional verb is off and consistency is
/// [`Consistency::Eventual`]. A backend turns on exactly what it implements, so a new backend
/// can never be trusted with a verb it did not declare.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::store::{Capabilities, Consistency, Scope};
///
/// let nothing = Capabilities::new(Scope::Fleet);
/// assert!(!nothing.atomic_increment && !nothing.reserve && !nothing.conditional_writes);
/// assert_eq!(nothing.consistency, Consistency::Eventual);
/// assert!(!nothing.owned_locks());
///
/// // A Redis-like backend: every verb, strongly consistent.
/// let redis = Capabilities::new(Scope::Fleet)
///     .with_consistency(Consistency::Strong)
///     .with_atomic_increment(true)
///     .with_reserve(true)
///     .with_lease(true)
///     .with_conditional_writes(true);
/// assert!(redis.owned_locks());
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
    /// `create`, `renew_if` and `delete_if` (atomic conditional writes) are implemented.
    pub conditional_writes: bool,
    /// The shortest TTL the backend honours; shorter TTLs are rounded up to it.
    pub min_ttl: Option<Duration>,
    /// Read-after-write visibility.
    pub consistency: Consistency,
    /// The largest value the backend accepts, if it has a limit.
    pub max_value_bytes: Option<usize>,
}

impl Capabilities {
    /// A backend that claims nothing beyond `get`, `set` and a (non-atomic) `increment`:
    /// every optional verb off, eventual consistency, no TTL floor, no size limit.
    pub const fn new(scope: Scope) -> Self {
        Capabilities {
            scope,
            atomic_increment: false,
            reserve: false,
            lease: false,
            conditional_writes: false,
            min_ttl: None,
            consistency: Consistency::Eventual,
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

    /// Sets whether `create`/`renew_if`/`delete_if` are implemented.
    pub const fn with_conditional_writes(mut self, conditional: bool) -> Self {
        self.conditional_writes = conditional;
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

    /// Whether an owned lock over this store is correct: conditional writes on a strongly
    /// consistent backend. Without them the core keeps single-flight within each process.
    pub const fn owned_locks(&self) -> bool {
        self.conditional_writes && matches!(self.consistency, Consistency::Strong)
    }
}

/// The answer of [`StitchStore::reserve`]: a grant, or a refusal that changed nothing.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::store::Reservation;
/// use stitchapi::time::Timestamp;
///
/// let at = Timestamp::from_unix(Duration::from_secs(10));
/// assert_eq!(Reservation::Granted(at).at(), at);
/// assert!(!Reservation::Refused(at).is_granted());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// The caller may go at this time; the cell moved on by one spacing.
    Granted(Timestamp),
    /// The earliest grant the caller could have had, which is past its `latest`; the cell did
    /// not move.
    Refused(Timestamp),
}

impl Reservation {
    /// The granted time, or the earliest time that was refused.
    pub const fn at(self) -> Timestamp {
        match self {
            Reservation::Granted(at) | Reservation::Refused(at) => at,
        }
    }

    /// Whether the reservation was granted.
    pub const fn is_granted(self) -> bool {
        matches!(self, Reservation::Granted(_))
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

/// The state backend of a stitch or seam. The [module docs](self) state the whole contract.
///
/// All TTLs are [`Duration`]s; `None` (or a zero duration) means "never expires". Implement the
/// optional verbs only together with the matching [`Capabilities`] flag; their default bodies
/// answer [`StoreErrorKind::Unsupported`].
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

    /// Adds one to a counter and returns the new count. A missing or expired counter starts
    /// at 1 and only then takes `ttl`. Atomic only if [`Capabilities::atomic_increment`].
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError>;

    /// The GCRA pacing cell: atomically `at = max(now, cell)`; past `latest` nothing changes
    /// and the answer is [`Reservation::Refused`]`(at)`; otherwise `cell = at + spacing`, the
    /// TTL is refreshed and the answer is [`Reservation::Granted`]`(at)`.
    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        let _ = (key, spacing, now, latest, ttl);
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

    /// Writes `value` only if `key` is missing or expired; `true` when it wrote. Atomic: of
    /// concurrent creates of one key exactly one wins.
    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let _ = (key, value, ttl);
        Err(StoreError::unsupported(self.name(), "create"))
    }

    /// Resets the TTL of `key` to `ttl` (zero: no expiry) only if it holds exactly
    /// `expected`; `true` when it did.
    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _ = (key, expected, ttl);
        Err(StoreError::unsupported(self.name(), "renew_if"))
    }

    /// Deletes `key` only if it holds exactly `expected`; `true` when it did.
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let _ = (key, expected);
        Err(StoreError::unsupported(self.name(), "delete_if"))
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
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        (**self).reserve(key, spacing, now, latest, ttl).await
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
    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        (**self).create(key, value, ttl).await
    }
    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        (**self).renew_if(key, expected, ttl).await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        (**self).delete_if(key, expected).await
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

/// The longest TTL a store is handed: 100 years. Longer ones are shortened to it by
/// [`normalize_ttl`], so no declared or remote lifetime can overflow a backend's expiry
/// arithmetic (Redis refuses a `PX` whose deadline passes `i64::MAX` milliseconds).
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Normalises a TTL: zero means "no expiry", like `None`; a TTL over [`MAX_TTL`] is shortened
/// to it.
///
/// For store authors: the engine hands a store TTLs already normalised, but a backend that
/// converts a TTL into its own expiry unit (Redis `PX`, a KV `expirationTtl`) can call this
/// first, so its arithmetic never sees zero or an overflowing lifetime.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::store::{MAX_TTL, normalize_ttl};
///
/// assert_eq!(normalize_ttl(Some(Duration::ZERO)), None);
/// assert_eq!(normalize_ttl(Some(Duration::MAX)), Some(MAX_TTL));
/// ```
pub fn normalize_ttl(ttl: Option<Duration>) -> Option<Duration> {
    ttl.filter(|ttl| !ttl.is_zero()).map(|ttl| ttl.min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_locks_need_conditional_writes_on_a_strongly_consistent_store() {
        let kv = Capabilities::new(Scope::Fleet).with_conditional_writes(true);
        assert!(!kv.owned_locks(), "eventual consistency cannot hold a lock");
        assert!(kv.with_consistency(Consistency::Strong).owned_locks());
        assert!(
            !Capabilities::new(Scope::Fleet)
                .with_consistency(Consistency::Strong)
                .owned_locks()
        );
        let nothing = Capabilities::new(Scope::Process);
        assert!(!nothing.atomic_increment && !nothing.reserve && !nothing.lease);
        assert_eq!(nothing.consistency, Consistency::Eventual);
        assert_eq!((nothing.min_ttl, nothing.max_value_bytes), (None, None));
    }
}
