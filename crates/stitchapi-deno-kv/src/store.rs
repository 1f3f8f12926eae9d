//! [`DenoKvStore`]: the whole store contract as bounded compare-and-set loops over Deno KV
//! atomic writes, here on the embedded SQLite backend.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use denokv_proto::{
    AtomicWrite, AtomicWriteOutcome, Check, Consistency as KvConsistency, Key, KeyPart, KvValue,
    Mutation, MutationKind, ReadRange, SnapshotReadOptions, Versionstamp,
};
use denokv_sqlite::{Sqlite, SqliteConfig, SqliteNotifier};
use rand::SeedableRng;
use stitchapi::store::{
    Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError, StoreErrorKind,
    normalize_ttl,
};
use stitchapi::throttle::gcra;
use stitchapi::time::{Clock, SystemClock, Timestamp};

use crate::envelope::{Envelope, Value};

/// The backend name in errors.
const NAME: &str = "deno-kv";

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
type Entry = (KvValue, Versionstamp);

/// The two calls the store needs from a Deno KV backend: a strongly consistent point read
/// and an atomic write that reports whether its checks passed.
#[async_trait::async_trait]
pub(crate) trait KvBackend: Send + Sync + 'static {
    async fn read(&self, key: &[u8]) -> Result<Option<Entry>, String>;
    /// `true` when committed, `false` when a check failed.
    async fn write(&self, write: AtomicWrite) -> Result<bool, String>;
}

/// The embedded backend: `denokv_sqlite` on one worker thread.
struct SqliteBackend {
    sqlite: Sqlite,
    closed: AtomicBool,
}

impl SqliteBackend {
    fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let path = path.map(Path::to_path_buf);
        let conn_gen = move || {
            let conn = match &path {
                Some(path) => rusqlite::Connection::open(path),
                None => rusqlite::Connection::open_in_memory(),
            }
            .map_err(|e| deno_error_box(e.to_string()))?;
            // Processes sharing the file wait for each other's write locks.
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(|e| deno_error_box(e.to_string()))?;
            let rng: Box<dyn rand::RngCore + Send> = Box::new(rand::rngs::StdRng::from_entropy());
            Ok((conn, rng))
        };
        // One worker: with `:memory:` each worker would open its own empty database, and one
        // connection serialises reads and writes of a file too.
        let config = SqliteConfig {
            num_workers: 1,
            batch_timeout: None,
        };
        let sqlite = Sqlite::new(conn_gen, SqliteNotifier::default(), config).map_err(|e| {
            StoreError::new(
                NAME,
                "open",
                StoreErrorKind::Unavailable,
                format!("could not open the SQLite database: {e}"),
            )
        })?;
        Ok(SqliteBackend {
            sqlite,
            closed: AtomicBool::new(false),
        })
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.sqlite.close();
        }
    }
}

/// How often one write is sent again while the file is busy (about 1.4 s in all).
const MAX_BUSY_RETRIES: u32 = 500;

/// A copy of the mutation kinds this store writes (`Set` of bytes, `Delete`).
fn clone_kind(kind: &MutationKind) -> MutationKind {
    match kind {
        MutationKind::Set(value) => MutationKind::Set(clone_value(value)),
        MutationKind::Delete => MutationKind::Delete,
        MutationKind::Sum {
            value,
            min_v8,
            max_v8,
            clamp,
        } => MutationKind::Sum {
            value: clone_value(value),
            min_v8: min_v8.clone(),
            max_v8: max_v8.clone(),
            clamp: *clamp,
        },
        MutationKind::Min(value) => MutationKind::Min(clone_value(value)),
        MutationKind::Max(value) => MutationKind::Max(clone_value(value)),
        MutationKind::SetSuffixVersionstampedKey(value) => {
            MutationKind::SetSuffixVersionstampedKey(clone_value(value))
        }
    }
}

fn clone_value(value: &KvValue) -> KvValue {
    match value {
        KvValue::V8(bytes) => KvValue::V8(bytes.clone()),
        KvValue::Bytes(bytes) => KvValue::Bytes(bytes.clone()),
        KvValue::U64(n) => KvValue::U64(*n),
    }
}

fn deno_error_box(message: String) -> deno_error::JsErrorBox {
    deno_error::JsErrorBox::generic(message)
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait::async_trait]
impl KvBackend for SqliteBackend {
    async fn read(&self, key: &[u8]) -> Result<Option<Entry>, String> {
        let mut end = key.to_vec();
        end.push(0);
        let range = ReadRange {
            start: key.to_vec(),
            end,
            limit: std::num::NonZeroU32::MIN,
            reverse: false,
        };
        let options = SnapshotReadOptions {
            consistency: KvConsistency::Strong,
        };
        let outputs = self
            .sqlite
            .snapshot_read(vec![range], options)
            .await
            .map_err(|e| e.to_string())?;
        Ok(outputs
            .into_iter()
            .next()
            .and_then(|output| output.entries.into_iter().next())
            .map(|entry| (entry.value, entry.versionstamp)))
    }

    async fn write(&self, write: AtomicWrite) -> Result<bool, String> {
        // `denokv_sqlite` does not retry SQLITE_BUSY inside a write (another connection, such
        // as another process, holds the file's write lock): nothing was written, so the same
        // checked write is sent again, a bounded number of times.
        let mut busy = 0u32;
        loop {
            let attempt = AtomicWrite {
                checks: write
                    .checks
                    .iter()
                    .map(|check| Check {
                        key: check.key.clone(),
                        versionstamp: check.versionstamp,
                    })
                    .collect(),
                mutations: write
                    .mutations
                    .iter()
                    .map(|mutation| Mutation {
                        key: mutation.key.clone(),
                        kind: clone_kind(&mutation.kind),
                        expire_at: mutation.expire_at,
                    })
                    .collect(),
                enqueues: Vec::new(),
            };
            match self.sqlite.atomic_write(attempt).await {
                Ok(AtomicWriteOutcome::Committed(_)) => return Ok(true),
                Ok(AtomicWriteOutcome::CheckFailed { .. }) => return Ok(false),
                Err(denokv_sqlite::SqliteBackendError::SqliteError(e))
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && busy < MAX_BUSY_RETRIES =>
                {
                    busy += 1;
                    let pause = Duration::from_micros(fastrand::u64(500..=5_000));
                    SystemClock::new().sleep(pause).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// A stitchapi store on Deno KV, here the embedded SQLite backend (`denokv_sqlite`, feature
/// `sqlite`): a file that `denokv serve` can later serve, or `:memory:`.
///
/// Every verb of the contract is implemented ([`Capabilities`]: strongly consistent, scope
/// [`Scope::Fleet`] for a file that processes share, [`Scope::Process`] in memory):
///
/// - Keys are Deno KV key arrays `[prefix, key]` (default prefix `"stitchapi"`); the prefix is
///   its own key segment, never concatenated. Semaphores live apart, at
///   `[prefix, "lease", key]`.
/// - Values are `KvValue::Bytes` envelopes carrying their deadline (see the crate docs), since
///   Deno KV's `expireIn` is best effort: an entry at or past its deadline reads as missing.
///   `expireIn` is passed, at the same instant, only for positive TTLs.
/// - Every read-modify-write (`increment`, `reserve`, `lease`/`release`, `create`,
///   `renew_if`, `delete_if`) is a compare-and-set loop: read the entry, then write with a
///   `Check` on its versionstamp. A loop that loses [`DEFAULT_MAX_RACES`] races (see
///   [`with_max_races`](DenoKvStore::with_max_races)) fails with a
///   [`StoreErrorKind::Conflict`] error saying how many it lost; it never answers a wrong
///   count.
/// - `increment` keeps the `{n, deadline}` envelope: the deadline is set only when the
///   counter is created (a fixed window).
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
    /// Striped by key: this process's compare-and-set loops on one key take turns, so races
    /// are lost only to other processes (or other stores on the same file).
    turns: Arc<[futures_util::lock::Mutex<()>]>,
}

/// How many key stripes a store's turn locks have.
const TURN_STRIPES: usize = 64;

impl fmt::Debug for DenoKvStore {
    // Never keys or values: the vault view keeps tokens here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenoKvStore")
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .field("max_races", &self.max_races)
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
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let backend = SqliteBackend::open(Some(path.as_ref()))?;
        Ok(DenoKvStore::with_backend(Arc::new(backend), Scope::Fleet))
    }

    /// A fresh database in this process's memory (scope [`Scope::Process`]).
    pub fn in_memory() -> Result<Self, StoreError> {
        let backend = SqliteBackend::open(None)?;
        Ok(DenoKvStore::with_backend(Arc::new(backend), Scope::Process))
    }

    pub(crate) fn with_backend(backend: Arc<dyn KvBackend>, scope: Scope) -> Self {
        DenoKvStore {
            backend,
            prefix: Arc::from(DEFAULT_PREFIX),
            scope,
            max_races: DEFAULT_MAX_RACES,
            turns: (0..TURN_STRIPES)
                .map(|_| futures_util::lock::Mutex::new(()))
                .collect(),
        }
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

    fn backend_error(operation: &'static str, message: String) -> StoreError {
        let kind = if message.contains("closed") {
            StoreErrorKind::Unavailable
        } else {
            StoreErrorKind::Backend
        };
        StoreError::new(NAME, operation, kind, message)
    }

    async fn read(&self, operation: &'static str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.backend
            .read(key)
            .await
            .map_err(|e| Self::backend_error(operation, e))
    }

    async fn write(&self, operation: &'static str, write: AtomicWrite) -> Result<bool, StoreError> {
        self.backend
            .write(write)
            .await
            .map_err(|e| Self::backend_error(operation, e))
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
            SystemClock::new().sleep(jitter).await;
        }
    }
}

/// Now on the system clock.
fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds, rounded up (a TTL may be rounded up, never down).
fn ceil_millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The deadline of a TTL starting now; `None` for no TTL or a zero one.
fn deadline(ttl: Option<Duration>) -> Option<u64> {
    normalize_ttl(ttl).map(|ttl| ceil_millis(now() + ttl))
}

/// Deno KV's `expireIn`, only for a deadline (a positive TTL).
fn expire_at(deadline: Option<u64>) -> Option<DateTime<Utc>> {
    deadline.and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
}

fn invalid(operation: &'static str, message: String) -> StoreError {
    StoreError::new(NAME, operation, StoreErrorKind::InvalidData, message)
}

/// The live envelope in a stored value: `None` when missing or expired.
fn live(operation: &'static str, value: Option<&KvValue>) -> Result<Option<Envelope>, StoreError> {
    let envelope = match value {
        None => return Ok(None),
        Some(KvValue::Bytes(raw)) => Envelope::decode(raw)
            .ok_or_else(|| invalid(operation, "a stored envelope is corrupt".to_owned()))?,
        // Deno's `sum` writes a KvU64: a counter that never expires.
        Some(KvValue::U64(n)) => Envelope {
            value: Value::Counter(i64::try_from(*n).map_err(|_| {
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
    let now_ms = u64::try_from(now().as_millis()).unwrap_or(u64::MAX);
    Ok((!envelope.is_expired(now_ms)).then_some(envelope))
}

fn set_envelope(value: Value, deadline: Option<u64>) -> MutationKind {
    MutationKind::Set(KvValue::Bytes(Envelope { value, deadline }.encode()))
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
/// expiry (measured from the caller's `now`, moved onto the system clock).
fn write_holders<T>(holders: &Holders, now: Timestamp, answer: T) -> Step<T> {
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
        deadline: Some(ceil_millis(crate::store::now() + remaining)),
        answer,
    }
}

#[async_trait::async_trait]
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
        Ok(live("get", entry.as_ref().map(|(value, _)| value))?.map(|e| e.value.to_bytes()))
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let key = self.key("set", &[key])?;
        let deadline = deadline(ttl);
        let kind = match value {
            Some(value) => set_envelope(Value::Bytes(value), deadline),
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
            let Some(envelope) = live("increment", value)? else {
                let deadline = deadline(ttl);
                return Ok(Step::Write {
                    kind: set_envelope(Value::Counter(1), deadline),
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
                kind: set_envelope(Value::Counter(next), envelope.deadline),
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
            let cell = match live("reserve", value)? {
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
                    let deadline = deadline(ttl);
                    Ok(Step::Write {
                        kind: set_envelope(Value::Cell(next), deadline),
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
            Ok(write_holders(&holders, now, true))
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
            let now = Timestamp::from_unix(now());
            Ok(write_holders(&holders, now, ()))
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
        self.cas("create", &key_bytes, |current| {
            if live("create", current)?.is_some() {
                return Ok(Step::Done(false));
            }
            let deadline = deadline(ttl);
            Ok(Step::Write {
                kind: set_envelope(Value::Bytes(value.clone()), deadline),
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
            match live("renew_if", current)? {
                Some(envelope) if envelope.value.to_bytes() == expected => {
                    let deadline = deadline(Some(ttl));
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
            match live("delete_if", current)? {
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
        async fn read(&self, _key: &[u8]) -> Result<Option<Entry>, String> {
            let n = self.writes.load(Ordering::SeqCst);
            let counter = Envelope {
                value: Value::Counter(41),
                deadline: None,
            };
            let mut versionstamp = [0u8; 10];
            versionstamp[..4].copy_from_slice(&n.to_be_bytes());
            Ok(Some((KvValue::Bytes(counter.encode()), versionstamp)))
        }

        async fn write(&self, write: AtomicWrite) -> Result<bool, String> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            Ok(write.checks.is_empty())
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

        // The default bound, on another verb.
        let store = DenoKvStore::with_backend(backend, Scope::Fleet);
        let error = store.delete_if("n", b"41").await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Conflict);
        assert!(error.to_string().contains("lost 100 "), "{error}");
    }
}
