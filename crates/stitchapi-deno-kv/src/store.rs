//! [`DenoKvStore`]: the whole store contract as bounded compare-and-set loops over Deno KV
//! atomic writes, on any [`KvBackend`] (embedded SQLite, KV Connect).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use denokv_proto::{
    AtomicWrite, Check, Key, KeyPart, KvValue, Mutation, MutationKind, Versionstamp,
};
use stitchapi::runtime::{MaybeSend, MaybeSync};
use stitchapi::store::{
    Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError, StoreErrorKind,
    StoredValue, normalize_ttl,
};
use stitchapi::throttle::gcra;
use stitchapi::time::{Clock, SystemClock, Timestamp};

use crate::envelope::Envelope;

/// The backend name in errors.
pub(crate) const NAME: &str = "deno-kv";

/// The key segment every key sits under unless [`DenoKvStore::with_prefix`] chooses another.
pub const DEFAULT_PREFIX: &str = "stitchapi";

/// How many races a compare-and-set loop may lose before it fails with a `Conflict` error,
/// unless [`DenoKvStore::with_max_races`] chooses another bound.
pub const DEFAULT_MAX_RACES: u32 = 100;

/// The backoff after each lost race is random, up to this step times the races lost so far...
const BACKOFF_STEP: Duration = Duration::from_micros(200);
/// ... and never more than this.
const BACKOFF_CAP: Duration = Duration::from_millis(5);

/// The key segment semaphores live under (`[prefix, "lease", key]`), apart from values.
const LEASE_SEGMENT: &str = "lease";

/// One stored entry: its value and versionstamp.
pub(crate) type Entry = (KvValue, Versionstamp);

/// The two calls the store needs from a Deno KV backend: a strongly consistent point read
/// and an atomic write that reports whether its checks passed. Errors name `operation`; the
/// store's `clock` bounds and paces any waiting.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub(crate) trait KvBackend: MaybeSend + MaybeSync + 'static {
    async fn read(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        key: &[u8],
    ) -> Result<Option<Entry>, StoreError>;
    /// `true` when committed, `false` when a check failed.
    async fn write(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        write: AtomicWrite,
    ) -> Result<bool, StoreError>;
    /// What `Debug` shows of the backend (never a credential).
    fn describe(&self) -> String;
}

/// A stitchapi store on Deno KV: a remote database over KV Connect
/// ([`connect`](DenoKvStore::connect), feature `remote`: `denokv serve`, Deno Deploy), or the
/// embedded SQLite backend ([`open`](DenoKvStore::open), feature `sqlite`): a file that
/// `denokv serve` can serve too, or `:memory:`. Both run the same compare-and-set code.
///
/// Every verb of the contract is implemented ([`Capabilities`]: strongly consistent, scope
/// [`Scope::Fleet`] for a remote database or a file that processes share,
/// [`Scope::Process`] in memory):
///
/// - Keys are Deno KV key arrays `[prefix, key]` (default prefix `"stitchapi"`); the prefix is
///   its own key segment, never concatenated. Semaphores live apart, at
///   `[prefix, "lease", key]`.
/// - Values with a TTL are `KvValue::Bytes` envelopes carrying their deadline (see the crate
///   docs), since Deno KV's `expireIn` is best effort: an entry at or past its deadline reads
///   as missing. `expireIn` is passed, at the same instant, only for positive TTLs. Bytes
///   without a TTL are stored as they are, and a counter without one as a `KvU64`, so Deno
///   code reads them directly (and adds to the counter with `sum`).
/// - Every read-modify-write (`increment`, `reserve`, `lease`/`release`, `create`,
///   `renew_if`, `delete_if`) is a compare-and-set loop: read the entry, then write with a
///   `Check` on its versionstamp. A loop that loses [`DEFAULT_MAX_RACES`] races (see
///   [`with_max_races`](DenoKvStore::with_max_races)) fails with a
///   [`StoreErrorKind::Conflict`] error saying how many it lost; it never answers a wrong
///   count.
/// - `increment` keeps the `{n, deadline}` envelope: the deadline is set only when the
///   counter is created (a fixed window).
/// - `create` first tries one write checked on the key being absent, and reads only when
///   that check fails.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stitchapi::store::StoreError> {
/// use std::time::Duration;
/// use stitchapi::store::StitchStore;
/// use stitchapi_deno_kv::DenoKvStore;
///
/// let store = DenoKvStore::in_memory()?;
/// assert_eq!(store.increment("hits", Some(Duration::from_secs(60))).await?, 1);
/// assert_eq!(store.increment("hits", None).await?, 2);
/// assert_eq!(store.get("hits").await?.as_deref(), Some(&b"2"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DenoKvStore {
    backend: Arc<dyn KvBackend>,
    prefix: Arc<str>,
    scope: Scope,
    max_races: u32,
    clock: Arc<dyn Clock>,
    /// Striped by key: this process's compare-and-set loops on one key take turns, so races
    /// are lost only to other processes (or other stores on the same file).
    turns: Arc<[futures_util::lock::Mutex<()>]>,
    /// Races lost so far by this store and its clones (see [`DenoKvStore::races_lost`]).
    races_lost: Arc<AtomicU64>,
}

/// How many key stripes a store's turn locks have.
const TURN_STRIPES: usize = 64;

impl fmt::Debug for DenoKvStore {
    // Never keys or values: the vault view keeps tokens here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenoKvStore")
            .field("backend", &self.backend.describe())
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .field("max_races", &self.max_races)
            .field("races_lost", &self.races_lost())
            .finish()
    }
}

/// What one compare-and-set round decided.
enum Step<T> {
    /// Answer without writing.
    Done(T),
    /// Write this mutation (checked against the versionstamp that was read), then answer.
    Write {
        kind: MutationKind,
        deadline: Option<u64>,
        answer: T,
    },
}

impl DenoKvStore {
    /// Opens (or creates) the SQLite database at `path`, a file other processes may share
    /// (scope [`Scope::Fleet`]) and `denokv --sqlite-path <path> serve` can serve.
    #[cfg(all(feature = "sqlite", not(target_arch = "wasm32")))]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        let backend = crate::sqlite::SqliteBackend::open(Some(path.as_ref()))?;
        Ok(DenoKvStore::with_backend(Arc::new(backend), Scope::Fleet))
    }

    /// A fresh database in this process's memory (scope [`Scope::Process`]).
    #[cfg(all(feature = "sqlite", not(target_arch = "wasm32")))]
    pub fn in_memory() -> Result<Self, StoreError> {
        let backend = crate::sqlite::SqliteBackend::open(None)?;
        Ok(DenoKvStore::with_backend(Arc::new(backend), Scope::Process))
    }

    /// The remote database at `url` (a `denokv serve` address, a Deno Deploy KV Connect URL)
    /// with its access `token`, over KV Connect and stitchapi's reqwest transport (feature
    /// `reqwest`, on by default); scope [`Scope::Fleet`]. Nothing is sent until the first
    /// call, which runs the metadata exchange. For another transport or response timeout,
    /// see [`KvConnect`](crate::KvConnect).
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use stitchapi::Secret;
    /// use stitchapi_deno_kv::DenoKvStore;
    ///
    /// let store = DenoKvStore::connect("http://127.0.0.1:4512", Secret::env("DENO_KV_ACCESS_TOKEN"))?;
    /// let api = stitchapi::Seam::builder("https://api.example.com").store(Arc::new(store)).build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "remote")]
    pub fn connect(url: &str, token: impl Into<stitchapi::Secret>) -> Result<Self, StoreError> {
        Ok(DenoKvStore::remote(crate::KvConnect::new(url, token)?))
    }

    /// The remote database `options` describe, over KV Connect (scope [`Scope::Fleet`]).
    #[cfg(feature = "remote")]
    // On wasm32 a transport need not be `Send` (one thread): neither is the backend then.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub fn remote(options: crate::KvConnect) -> Self {
        DenoKvStore::with_backend(Arc::new(options.into_backend()), Scope::Fleet)
    }

    pub(crate) fn with_backend(backend: Arc<dyn KvBackend>, scope: Scope) -> Self {
        DenoKvStore {
            backend,
            prefix: Arc::from(DEFAULT_PREFIX),
            scope,
            max_races: DEFAULT_MAX_RACES,
            clock: Arc::new(SystemClock::new()),
            turns: (0..TURN_STRIPES)
                .map(|_| futures_util::lock::Mutex::new(()))
                .collect(),
            races_lost: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many compare-and-set races this store (and its clones) has lost so far: writes
    /// whose check failed because another writer changed the key between the read and the
    /// write, each followed by another read. A measure of contention on hot keys (one relaxed
    /// atomic add per lost race); each lost race also logs a `tracing` debug event.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stitchapi::store::StoreError> {
    /// use stitchapi::store::StitchStore;
    /// use stitchapi_deno_kv::DenoKvStore;
    ///
    /// let store = DenoKvStore::in_memory()?;
    /// store.increment("hits", None).await?;
    /// assert_eq!(store.races_lost(), 0, "nobody else writes here");
    /// # Ok(()) }
    /// ```
    pub fn races_lost(&self) -> u64 {
        self.races_lost.load(Ordering::Relaxed)
    }

    /// Puts every key under the key segment `prefix` (`[prefix, key]`) instead of
    /// [`DEFAULT_PREFIX`].
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// How many races a compare-and-set loop may lose before it fails with a `Conflict`
    /// error (at least 1; default [`DEFAULT_MAX_RACES`]).
    pub fn with_max_races(mut self, max_races: u32) -> Self {
        self.max_races = max_races.max(1);
        self
    }

    /// Reads the time on `clock` (default: the system clock): TTL deadlines, the backoff
    /// between lost races and, for a remote store, response timeouts and the expiry of the
    /// KV Connect metadata.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now on the store's clock, since the epoch.
    fn now(&self) -> Duration {
        self.clock.now().since_unix()
    }

    fn key(&self, operation: &'static str, parts: &[&str]) -> Result<Vec<u8>, StoreError> {
        let mut key = vec![KeyPart::String(self.prefix.to_string())];
        key.extend(parts.iter().map(|part| KeyPart::String((*part).to_owned())));
        denokv_proto::encode_key(&Key(key)).map_err(|e| {
            StoreError::new(
                NAME,
                operation,
                StoreErrorKind::InvalidData,
                format!("the key does not encode: {e}"),
            )
        })
    }

    async fn read(&self, operation: &'static str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.backend.read(operation, &*self.clock, key).await
    }

    async fn write(&self, operation: &'static str, write: AtomicWrite) -> Result<bool, StoreError> {
        self.backend.write(operation, &*self.clock, write).await
    }

    /// The bounded compare-and-set loop: read `key`, let `decide` choose, write with a check
    /// on the versionstamp read; a lost race reads again, up to `max_races` losses.
    async fn cas<T>(
        &self,
        operation: &'static str,
        key: &[u8],
        mut decide: impl FnMut(Option<&KvValue>) -> Result<Step<T>, StoreError>,
    ) -> Result<T, StoreError> {
        let stripe = {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(key, &mut hasher);
            usize::try_from(std::hash::Hasher::finish(&hasher) % TURN_STRIPES as u64).unwrap_or(0)
        };
        let _turn = self.turns[stripe].lock().await;
        let mut lost = 0u32;
        loop {
            let current = self.read(operation, key).await?;
            let (kind, deadline, answer) = match decide(current.as_ref().map(|(value, _)| value))? {
                Step::Done(answer) => return Ok(answer),
                Step::Write {
                    kind,
                    deadline,
                    answer,
                } => (kind, deadline, answer),
            };
            let write = AtomicWrite {
                checks: vec![Check {
                    key: key.to_vec(),
                    versionstamp: current.map(|(_, versionstamp)| versionstamp),
                }],
                mutations: vec![Mutation {
                    key: key.to_vec(),
                    kind,
                    expire_at: expire_at(deadline),
                }],
                enqueues: Vec::new(),
            };
            if self.write(operation, write).await? {
                return Ok(answer);
            }
            lost += 1;
            self.races_lost.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                operation,
                lost,
                "lost a compare-and-set race; reading again"
            );
            if lost >= self.max_races {
                return Err(StoreError::new(
                    NAME,
                    operation,
                    StoreErrorKind::Conflict,
                    format!(
                        "lost {lost} compare-and-set races in a row to concurrent writers of \
                         the same key; gave up without writing"
                    ),
                ));
            }
            // Jittered backoff, growing with the losses, so a hot key's writers take turns
            // instead of starving one another.
            let cap = BACKOFF_STEP.saturating_mul(lost).min(BACKOFF_CAP);
            let jitter = Duration::from_nanos(fastrand::u64(
                ..=u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX),
            ));
            self.clock.sleep(jitter).await;
        }
    }
}

/// Milliseconds, rounded up (a TTL may be rounded up, never down).
fn ceil_millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The deadline of a TTL starting `now`; `None` for no TTL or a zero one.
fn deadline(now: Duration, ttl: Option<Duration>) -> Option<u64> {
    normalize_ttl(ttl).map(|ttl| ceil_millis(now + ttl))
}

/// Deno KV's `expireIn`, only for a deadline (a positive TTL).
fn expire_at(deadline: Option<u64>) -> Option<DateTime<Utc>> {
    deadline.and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
}

fn invalid(operation: &'static str, message: String) -> StoreError {
    StoreError::new(NAME, operation, StoreErrorKind::InvalidData, message)
}

/// The live envelope in a stored value: `None` when missing or expired at `now`.
fn live(
    operation: &'static str,
    value: Option<&KvValue>,
    now: Duration,
) -> Result<Option<Envelope>, StoreError> {
    let envelope = match value {
        None => return Ok(None),
        Some(KvValue::Bytes(raw)) => Envelope::decode(raw)
            .ok_or_else(|| invalid(operation, "a stored envelope is corrupt".to_owned()))?,
        // Deno's `sum` writes a KvU64: a counter that never expires.
        Some(KvValue::U64(n)) => Envelope {
            value: StoredValue::Counter(i64::try_from(*n).map_err(|_| {
                invalid(operation, "a stored KvU64 does not fit an i64".to_owned())
            })?),
            deadline: None,
        },
        Some(KvValue::V8(_)) => {
            return Err(invalid(
                operation,
                "the entry holds a V8-serialised value, not bytes".to_owned(),
            ));
        }
    };
    let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    Ok((!envelope.is_expired(now_ms)).then_some(envelope))
}

fn set_envelope(value: StoredValue, deadline: Option<u64>) -> MutationKind {
    MutationKind::Set(KvValue::Bytes(Envelope { value, deadline }.encode()))
}

/// A counter's write: a `KvU64` when it never expires (Deno's `sum` adds to it), otherwise
/// the `{n, deadline}` envelope.
fn set_counter(n: i64, deadline: Option<u64>) -> MutationKind {
    match (u64::try_from(n), deadline) {
        (Ok(n), None) => MutationKind::Set(KvValue::U64(n)),
        _ => set_envelope(StoredValue::Counter(n), deadline),
    }
}

/// A semaphore's holders: token -> expiry in nanoseconds since the epoch (JSON).
type Holders = BTreeMap<String, u64>;

fn nanos(at: Timestamp) -> u64 {
    u64::try_from(at.since_unix().as_nanos()).unwrap_or(u64::MAX)
}

fn holders(value: Option<&KvValue>) -> Result<Holders, StoreError> {
    match value {
        None => Ok(Holders::new()),
        Some(KvValue::Bytes(raw)) => serde_json::from_slice(raw)
            .map_err(|e| invalid("lease", format!("a stored semaphore is corrupt: {e}"))),
        Some(_) => Err(invalid(
            "lease",
            "a stored semaphore is not bytes".to_owned(),
        )),
    }
}

/// The write of a semaphore: deleted when empty, otherwise kept until its last holder's
/// expiry (measured from the caller's `now`, moved onto the store's clock, `store_now`).
fn write_holders<T>(holders: &Holders, now: Timestamp, store_now: Duration, answer: T) -> Step<T> {
    let Some(latest) = holders.values().max() else {
        return Step::Write {
            kind: MutationKind::Delete,
            deadline: None,
            answer,
        };
    };
    let remaining = Duration::from_nanos(latest.saturating_sub(nanos(now)));
    let json = serde_json::to_vec(holders).unwrap_or_default();
    Step::Write {
        kind: MutationKind::Set(KvValue::Bytes(json)),
        deadline: Some(ceil_millis(store_now + remaining)),
        answer,
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl StitchStore for DenoKvStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.scope)
            .with_consistency(Consistency::Strong)
            .with_atomic_increment(true)
            .with_reserve(true)
            .with_lease(true)
            .with_conditional_writes(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let key = self.key("get", &[key])?;
        let entry = self.read("get", &key).await?;
        let now = self.now();
        Ok(live("get", entry.as_ref().map(|(value, _)| value), now)?.map(|e| e.value.to_bytes()))
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let key = self.key("set", &[key])?;
        let deadline = deadline(self.now(), ttl);
        let kind = match value {
            Some(value) => set_envelope(StoredValue::Bytes(value), deadline),
            None => MutationKind::Delete,
        };
        let write = AtomicWrite {
            checks: Vec::new(),
            mutations: vec![Mutation {
                key,
                kind,
                expire_at: expire_at(deadline),
            }],
            enqueues: Vec::new(),
        };
        // No checks: the write always commits.
        self.write("set", write).await.map(|_| ())
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let key_bytes = self.key("increment", &[key])?;
        self.cas("increment", &key_bytes, |value| {
            let now = self.now();
            let Some(envelope) = live("increment", value, now)? else {
                let deadline = deadline(now, ttl);
                return Ok(Step::Write {
                    kind: set_counter(1, deadline),
                    deadline,
                    answer: 1,
                });
            };
            let current = envelope.value.as_counter().ok_or_else(|| {
                invalid(
                    "increment",
                    format!("the value at {key:?} is not an integer counter"),
                )
            })?;
            let next = current.checked_add(1).ok_or_else(|| {
                invalid(
                    "increment",
                    format!("the counter at {key:?} would overflow"),
                )
            })?;
            // The deadline stays: the window is fixed.
            Ok(Step::Write {
                kind: set_counter(next, envelope.deadline),
                deadline: envelope.deadline,
                answer: next,
            })
        })
        .await
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        let key_bytes = self.key("reserve", &[key])?;
        self.cas("reserve", &key_bytes, |value| {
            let store_now = self.now();
            let cell = match live("reserve", value, store_now)? {
                Some(envelope) => Some(envelope.value.as_cell().ok_or_else(|| {
                    invalid(
                        "reserve",
                        format!("the value at {key:?} is not a pacing cell"),
                    )
                })?),
                None => None,
            };
            match gcra::step(cell, now, spacing, latest) {
                (Reservation::Granted(at), Some(next)) => {
                    let deadline = deadline(store_now, ttl);
                    Ok(Step::Write {
                        kind: set_envelope(StoredValue::Cell(next), deadline),
                        deadline,
                        answer: Reservation::Granted(at),
                    })
                }
                (reservation, _) => Ok(Step::Done(reservation)),
            }
        })
        .await
    }

    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let key_bytes = self.key("lease", &[LEASE_SEGMENT, key])?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.cas("lease", &key_bytes, |value| {
            let mut holders = holders(value)?;
            holders.retain(|_, expires| *expires > nanos(now));
            if !holders.contains_key(token) && holders.len() >= limit {
                return Ok(Step::Done(false));
            }
            holders.insert(token.to_owned(), nanos(now + ttl));
            Ok(write_holders(&holders, now, self.now(), true))
        })
        .await
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let key_bytes = self.key("release", &[LEASE_SEGMENT, key])?;
        self.cas("release", &key_bytes, |value| {
            let mut holders = holders(value)?;
            if holders.remove(token).is_none() {
                return Ok(Step::Done(()));
            }
            let now = self.now();
            Ok(write_holders(&holders, Timestamp::from_unix(now), now, ()))
        })
        .await
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let key_bytes = self.key("create", &[key])?;
        // One round trip when the key is absent: a write checked on no entry at all.
        let deadline_now = deadline(self.now(), ttl);
        let first = AtomicWrite {
            checks: vec![Check {
                key: key_bytes.clone(),
                versionstamp: None,
            }],
            mutations: vec![Mutation {
                key: key_bytes.clone(),
                kind: set_envelope(StoredValue::Bytes(value.clone()), deadline_now),
                expire_at: expire_at(deadline_now),
            }],
            enqueues: Vec::new(),
        };
        if self.write("create", first).await? {
            return Ok(true);
        }
        // An entry is there, live or past its deadline: read it and decide.
        self.cas("create", &key_bytes, |current| {
            let now = self.now();
            if live("create", current, now)?.is_some() {
                return Ok(Step::Done(false));
            }
            let deadline = deadline(now, ttl);
            Ok(Step::Write {
                kind: set_envelope(StoredValue::Bytes(value.clone()), deadline),
                deadline,
                answer: true,
            })
        })
        .await
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key_bytes = self.key("renew_if", &[key])?;
        self.cas("renew_if", &key_bytes, |current| {
            let now = self.now();
            match live("renew_if", current, now)? {
                Some(envelope) if envelope.value.to_bytes() == expected => {
                    let deadline = deadline(now, Some(ttl));
                    Ok(Step::Write {
                        kind: set_envelope(envelope.value, deadline),
                        deadline,
                        answer: true,
                    })
                }
                _ => Ok(Step::Done(false)),
            }
        })
        .await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let key_bytes = self.key("delete_if", &[key])?;
        self.cas("delete_if", &key_bytes, |current| {
            match live("delete_if", current, self.now())? {
                Some(envelope) if envelope.value.to_bytes() == expected => Ok(Step::Write {
                    kind: MutationKind::Delete,
                    deadline: None,
                    answer: true,
                }),
                _ => Ok(Step::Done(false)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A backend that always loses the race: every read finds a fresh versionstamp and every
    /// checked write fails its check.
    #[derive(Default)]
    struct AlwaysRaced {
        writes: AtomicU32,
    }

    #[async_trait::async_trait]
    impl KvBackend for AlwaysRaced {
        async fn read(
            &self,
            _operation: &'static str,
            _clock: &dyn Clock,
            _key: &[u8],
        ) -> Result<Option<Entry>, StoreError> {
            let n = self.writes.load(Ordering::SeqCst);
            let counter = Envelope {
                value: StoredValue::Counter(41),
                deadline: None,
            };
            let mut versionstamp = [0u8; 10];
            versionstamp[..4].copy_from_slice(&n.to_be_bytes());
            Ok(Some((KvValue::Bytes(counter.encode()), versionstamp)))
        }

        async fn write(
            &self,
            _operation: &'static str,
            _clock: &dyn Clock,
            write: AtomicWrite,
        ) -> Result<bool, StoreError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            Ok(write.checks.is_empty())
        }

        fn describe(&self) -> String {
            "always raced".to_owned()
        }
    }

    #[tokio::test]
    async fn a_loop_that_keeps_losing_fails_with_its_race_count() {
        let backend = Arc::new(AlwaysRaced::default());
        let store = DenoKvStore::with_backend(backend.clone(), Scope::Fleet).with_max_races(5);
        let error = store.increment("n", None).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Conflict);
        assert_eq!(error.operation(), "increment");
        assert!(
            error.to_string().contains("lost 5 compare-and-set races"),
            "{error}"
        );
        assert_eq!(backend.writes.load(Ordering::SeqCst), 5, "bounded: 5 tries");
        assert_eq!(store.races_lost(), 5, "every lost race counted");

        // The default bound, on another verb.
        let store = DenoKvStore::with_backend(backend, Scope::Fleet);
        let error = store.delete_if("n", b"41").await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Conflict);
        assert!(error.to_string().contains("lost 100 "), "{error}");
    }
}
