//! The default store: all state in this process, with TTLs measured on an injected [`Clock`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use super::{
    Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError, StoreErrorKind,
    StoredValue, normalize_ttl,
};
use crate::throttle::gcra;
use crate::time::{Clock, SystemClock, Timestamp};

/// The backend name in errors.
const NAME: &str = "memory";

/// How many expired entries (and, on `lease`, expired semaphore keys) one write may drop.
const SWEEP_LIMIT: usize = 64;

/// The default store: state in this process, nothing shared with other processes.
///
/// Cheap to clone; clones share their state. Every verb is implemented and strongly
/// consistent: `get`/`set`, an atomic `increment`, the `reserve` pacing cell, the
/// `lease`/`release` semaphore and the conditional writes `create`/`renew_if`/`delete_if`
/// ([`Capabilities`]: scope [`Scope::Process`], every optional verb).
///
/// - TTLs run on the store's [`Clock`] ([`SystemClock`] unless built
///   [`with_clock`](MemoryStore::with_clock)); an expired key reads as missing and is evicted
///   lazily on read.
/// - `increment` keeps a live counter's deadline, so a window is fixed, never sliding. A
///   counter reads back through `get` as its ASCII decimal bytes (`b"2"`), and a value written
///   as decimal bytes can be incremented.
/// - `reserve` keeps its cell as an exact [`Timestamp`], so fractional spacings do not drift,
///   and refreshes the TTL on every grant; a refused reserve leaves the cell and its TTL as
///   they were.
/// - `renew_if` and `delete_if` compare the stored bytes (a counter as its decimal text).
/// - Semaphores live apart from values: a key can hold a value and a semaphore at once.
///   Holders whose expiry is at or before the caller's `now` are pruned on every `lease`.
/// - Growth is bounded: every write (`set`, `increment`, `reserve`, `create`, `lease`) also
///   drops up to 64 expired entries, oldest first, so per-window keys that are never read
///   again do not accumulate. This never changes what a caller sees. `lease` likewise drops up to 64
///   semaphore keys whose holders have all expired, both on the caller's `now` and on the
///   store's clock.
/// - [`close`](StitchStore::close) clears everything.
///
/// `Debug` shows only sizes, never keys or values (the vault view keeps tokens here).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stitchapi::store::StoreError> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stitchapi::store::{MemoryStore, StitchStore};
/// use stitchapi::time::ManualClock;
///
/// let clock = ManualClock::new();
/// let store = MemoryStore::with_clock(Arc::new(clock.clone()));
/// assert_eq!(store.increment("hits", Some(Duration::from_secs(1))).await?, 1);
/// assert_eq!(store.increment("hits", Some(Duration::from_secs(1))).await?, 2);
/// assert_eq!(store.get("hits").await?.as_deref(), Some(&b"2"[..]));
///
/// clock.advance(Duration::from_secs(1)); // the window ends
/// assert_eq!(store.get("hits").await?, None);
/// assert_eq!(store.increment("hits", Some(Duration::from_secs(1))).await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("MemoryStore")
            .field("clock", &self.clock)
            .field("entries", &state.entries.len())
            .field("semaphores", &state.semaphores.len())
            .finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every mutation keeps the state consistent before it can panic, so a poisoned lock
    // still guards usable data.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Entry {
    value: StoredValue,
    /// `None` never expires.
    expires_at: Option<Timestamp>,
    /// Identifies this write in the expiry index.
    seq: u64,
}

impl Entry {
    fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

struct Semaphore {
    /// token -> expiry.
    holders: HashMap<String, Timestamp>,
    /// This semaphore's key in the semaphore expiry index: (latest holder expiry, seq).
    indexed: (Timestamp, u64),
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// (expiry, seq) -> key, for every entry with a TTL.
    expiries: BTreeMap<(Timestamp, u64), String>,
    semaphores: HashMap<String, Semaphore>,
    /// (latest holder expiry, seq) -> key, for every semaphore.
    semaphore_expiries: BTreeMap<(Timestamp, u64), String>,
    next_seq: u64,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// The live entry at `key`, evicting it first if it has expired.
    fn live(&mut self, key: &str, now: Timestamp) -> Option<&mut Entry> {
        if self
            .entries
            .get(key)
            .is_some_and(|entry| entry.is_expired(now))
        {
            self.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, entry.seq));
        }
        Some(entry)
    }

    fn insert(&mut self, key: &str, value: StoredValue, expires_at: Option<Timestamp>) {
        self.remove(key);
        let seq = self.next_seq();
        if let Some(at) = expires_at {
            self.expiries.insert((at, seq), key.to_owned());
        }
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires_at,
                seq,
            },
        );
    }

    /// Drops up to [`SWEEP_LIMIT`] entries expired at `now`, earliest first.
    fn sweep(&mut self, now: Timestamp) {
        for _ in 0..SWEEP_LIMIT {
            let Some(entry) = self.expiries.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), key) = entry.remove_entry();
            if self.entries.get(&key).is_some_and(|entry| entry.seq == seq) {
                self.entries.remove(&key);
            }
        }
    }

    /// Drops up to [`SWEEP_LIMIT`] semaphores whose every holder expired at or before `cutoff`.
    fn sweep_semaphores(&mut self, cutoff: Timestamp) {
        for _ in 0..SWEEP_LIMIT {
            let Some(entry) = self.semaphore_expiries.first_entry() else {
                break;
            };
            if entry.key().0 > cutoff {
                break;
            }
            let (indexed, key) = entry.remove_entry();
            if self
                .semaphores
                .get(&key)
                .is_some_and(|semaphore| semaphore.indexed == indexed)
            {
                self.semaphores.remove(&key);
            }
        }
    }

    /// Removes the semaphore at `key` (and its index entry), returning its holders.
    fn take_semaphore(&mut self, key: &str) -> HashMap<String, Timestamp> {
        match self.semaphores.remove(key) {
            Some(semaphore) => {
                self.semaphore_expiries.remove(&semaphore.indexed);
                semaphore.holders
            }
            None => HashMap::new(),
        }
    }

    /// Stores the semaphore at `key`; an empty one is dropped.
    fn put_semaphore(&mut self, key: &str, holders: HashMap<String, Timestamp>) {
        let Some(latest) = holders.values().max().copied() else {
            return;
        };
        let indexed = (latest, self.next_seq());
        self.semaphore_expiries.insert(indexed, key.to_owned());
        self.semaphores
            .insert(key.to_owned(), Semaphore { holders, indexed });
    }

    fn clear(&mut self) {
        *self = State {
            next_seq: self.next_seq,
            ..State::default()
        };
    }
}

impl MemoryStore {
    /// An empty store on the [`SystemClock`].
    pub fn new() -> Self {
        MemoryStore::with_clock(Arc::new(SystemClock::new()))
    }

    /// An empty store whose TTLs run on `clock` (a `ManualClock` in tests).
    // On wasm32 a `dyn Clock` is not `Send`/`Sync` (see `MaybeSend`), and there is one thread.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// How many keys the store holds: values (including expired ones not yet evicted) plus
    /// semaphores.
    pub fn len(&self) -> usize {
        let state = self.state();
        state.entries.len() + state.semaphores.len()
    }

    /// Whether the store holds no key at all (see [`len`](MemoryStore::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

fn deadline(now: Timestamp, ttl: Option<Duration>) -> Option<Timestamp> {
    normalize_ttl(ttl).map(|ttl| now + ttl)
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl StitchStore for MemoryStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Process)
            .with_consistency(Consistency::Strong)
            .with_atomic_increment(true)
            .with_reserve(true)
            .with_lease(true)
            .with_conditional_writes(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let now = self.now();
        let mut state = self.state();
        Ok(state.live(key, now).map(|entry| entry.value.to_bytes()))
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut state = self.state();
        state.sweep(now);
        match value {
            Some(value) => state.insert(key, StoredValue::Bytes(value), deadline(now, ttl)),
            None => {
                state.remove(key);
            }
        }
        Ok(())
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let now = self.now();
        let mut state = self.state();
        state.sweep(now);
        if let Some(entry) = state.live(key, now) {
            let current = entry.value.as_counter().ok_or_else(|| {
                StoreError::new(
                    NAME,
                    "increment",
                    StoreErrorKind::InvalidData,
                    format!("the value at {key:?} is not an integer counter"),
                )
            })?;
            let next = current.checked_add(1).ok_or_else(|| {
                StoreError::new(
                    NAME,
                    "increment",
                    StoreErrorKind::InvalidData,
                    format!("the counter at {key:?} would overflow"),
                )
            })?;
            // The deadline stays: the window is fixed.
            entry.value = StoredValue::Counter(next);
            return Ok(next);
        }
        state.insert(key, StoredValue::Counter(1), deadline(now, ttl));
        Ok(1)
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        let store_now = self.now();
        let mut state = self.state();
        state.sweep(store_now);
        let cell = match state.live(key, store_now) {
            Some(entry) => Some(entry.value.as_cell().ok_or_else(|| {
                StoreError::new(
                    NAME,
                    "reserve",
                    StoreErrorKind::InvalidData,
                    format!("the value at {key:?} is not a pacing cell"),
                )
            })?),
            None => None,
        };
        let (reservation, next) = gcra::step(cell, now, spacing, latest);
        if let (Reservation::Granted(_), Some(next)) = (reservation, next) {
            state.insert(key, StoredValue::Cell(next), deadline(store_now, ttl));
        }
        Ok(reservation)
    }

    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let store_now = self.now();
        let mut state = self.state();
        state.sweep(store_now);
        state.sweep_semaphores(now.min(store_now));
        let mut holders = state.take_semaphore(key);
        holders.retain(|_, expires_at| *expires_at > now);
        let granted = if let Some(expires_at) = holders.get_mut(token) {
            *expires_at = now + ttl;
            true
        } else if holders.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
            holders.insert(token.to_owned(), now + ttl);
            true
        } else {
            false
        };
        state.put_semaphore(key, holders);
        Ok(granted)
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if state
            .semaphores
            .get(key)
            .is_some_and(|semaphore| semaphore.holders.contains_key(token))
        {
            let mut holders = state.take_semaphore(key);
            holders.remove(token);
            state.put_semaphore(key, holders);
        }
        Ok(())
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut state = self.state();
        state.sweep(now);
        if state.live(key, now).is_some() {
            return Ok(false);
        }
        state.insert(key, StoredValue::Bytes(value), deadline(now, ttl));
        Ok(true)
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut state = self.state();
        let Some(entry) = state.live(key, now) else {
            return Ok(false);
        };
        if entry.value.to_bytes() != expected {
            return Ok(false);
        }
        let Some(entry) = state.remove(key) else {
            return Ok(false);
        };
        state.insert(key, entry.value, deadline(now, Some(ttl)));
        Ok(true)
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let now = self.now();
        let mut state = self.state();
        let owned = state
            .live(key, now)
            .is_some_and(|entry| entry.value.to_bytes() == expected);
        if owned {
            state.remove(key);
        }
        Ok(owned)
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.state().clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    const SECOND: Duration = Duration::from_secs(1);

    fn store() -> (MemoryStore, ManualClock) {
        let clock = ManualClock::new();
        (MemoryStore::with_clock(Arc::new(clock.clone())), clock)
    }

    fn b(s: &'static str) -> Option<Bytes> {
        Some(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn values_expire_on_the_store_clock() {
        let (store, clock) = store();
        store.set("a", b("1"), Some(SECOND)).await.unwrap();
        store.set("b", b("2"), None).await.unwrap();
        store.set("z", b("3"), Some(Duration::ZERO)).await.unwrap();
        clock.advance(Duration::from_millis(999));
        assert_eq!(store.get("a").await.unwrap(), b("1"));
        clock.advance(Duration::from_millis(1));
        assert_eq!(store.get("a").await.unwrap(), None);
        assert_eq!(store.get("b").await.unwrap(), b("2"));
        assert_eq!(store.get("z").await.unwrap(), b("3"));
        // The read evicted the expired key.
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn set_none_deletes_and_overwrite_drops_the_old_ttl() {
        let (store, clock) = store();
        store.set("k", b("v"), Some(SECOND)).await.unwrap();
        store.set("k", b("w"), None).await.unwrap();
        clock.advance(SECOND * 2);
        assert_eq!(store.get("k").await.unwrap(), b("w"));
        store.set("k", None, None).await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), None);
        assert!(store.is_empty());
        let state = store.state();
        assert!(state.expiries.is_empty());
    }

    #[tokio::test]
    async fn counter_windows_are_fixed_not_sliding() {
        let (store, clock) = store();
        assert_eq!(store.increment("c", Some(SECOND)).await.unwrap(), 1);
        clock.advance(Duration::from_millis(600));
        // A later, longer ttl does not move the deadline.
        assert_eq!(store.increment("c", Some(SECOND * 60)).await.unwrap(), 2);
        assert_eq!(store.get("c").await.unwrap(), b("2"));
        clock.advance(Duration::from_millis(400));
        assert_eq!(store.increment("c", Some(SECOND)).await.unwrap(), 1);
        // No ttl: the counter never expires.
        assert_eq!(store.increment("forever", None).await.unwrap(), 1);
        clock.advance(SECOND * 3600);
        assert_eq!(store.increment("forever", Some(SECOND)).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn increment_reads_decimal_bytes_and_rejects_the_rest() {
        let (store, _clock) = store();
        store.set("n", b("41"), None).await.unwrap();
        assert_eq!(store.increment("n", None).await.unwrap(), 42);
        store.set("text", b("hello"), None).await.unwrap();
        let error = store.increment("text", None).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::InvalidData);
        assert_eq!(error.backend(), "memory");
        store
            .set("max", Some(Bytes::from(i64::MAX.to_string())), None)
            .await
            .unwrap();
        let error = store.increment("max", None).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::InvalidData);
        // The failed increments changed nothing.
        assert_eq!(store.get("text").await.unwrap(), b("hello"));
    }

    #[tokio::test]
    async fn concurrent_increments_are_atomic() {
        let (store, _clock) = store();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.increment("c", None).await.unwrap() })
            })
            .collect();
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn reserve_spaces_with_sub_millisecond_precision() {
        let (store, clock) = store();
        let now = clock.now();
        let spacing = Duration::from_nanos(333_333_333);
        let ttl = Some(SECOND * 10);
        assert_eq!(
            store
                .reserve("r", spacing, now, None, ttl)
                .await
                .unwrap()
                .at(),
            now
        );
        assert_eq!(
            store
                .reserve("r", spacing, now, None, ttl)
                .await
                .unwrap()
                .at(),
            now + spacing
        );
        assert_eq!(
            store
                .reserve("r", spacing, now, None, ttl)
                .await
                .unwrap()
                .at(),
            now + spacing * 2
        );
        // A later `now` past the cell is granted at once.
        let later = now + SECOND * 5;
        assert_eq!(
            store
                .reserve("r", spacing, later, None, ttl)
                .await
                .unwrap()
                .at(),
            later
        );
    }

    #[tokio::test]
    async fn reserve_refreshes_its_ttl_and_restarts_when_lost() {
        let (store, clock) = store();
        let now = clock.now();
        let ttl = Some(SECOND);
        store
            .reserve("r", SECOND, now, None, ttl)
            .await
            .unwrap()
            .at();
        clock.advance(Duration::from_millis(600));
        store
            .reserve("r", SECOND, clock.now(), None, ttl)
            .await
            .unwrap()
            .at();
        clock.advance(Duration::from_millis(600));
        // Still alive 1.2 s after the first call: the ttl was refreshed.
        assert_eq!(
            store
                .reserve("r", SECOND, now, None, ttl)
                .await
                .unwrap()
                .at(),
            now + SECOND * 2
        );
        clock.advance(SECOND);
        let fresh = clock.now();
        assert_eq!(
            store
                .reserve("r", SECOND, fresh, None, ttl)
                .await
                .unwrap()
                .at(),
            fresh
        );
    }

    #[tokio::test]
    async fn a_refused_reserve_changes_nothing() {
        let (store, clock) = store();
        let now = clock.now();
        let ttl = Some(SECOND);
        let grant = |latest| store.reserve("r", SECOND, now, latest, ttl);
        assert_eq!(grant(None).await.unwrap(), Reservation::Granted(now));
        clock.advance(Duration::from_millis(600));
        assert_eq!(
            grant(Some(now + SECOND / 2)).await.unwrap(),
            Reservation::Refused(now + SECOND)
        );
        // The refusal neither moved the cell nor refreshed its TTL: it expires 1 s after the
        // grant that wrote it.
        assert_eq!(
            store.get("r").await.unwrap(),
            Some(StoredValue::Cell(now + SECOND).to_bytes())
        );
        clock.advance(Duration::from_millis(400));
        assert_eq!(store.get("r").await.unwrap(), None);
        // Exactly at the limit is granted.
        let now = clock.now();
        let grant = |latest| store.reserve("r", SECOND, now, latest, ttl);
        assert_eq!(grant(None).await.unwrap(), Reservation::Granted(now));
        assert_eq!(
            grant(Some(now + SECOND)).await.unwrap(),
            Reservation::Granted(now + SECOND)
        );
    }

    #[tokio::test]
    async fn conditional_writes_compare_the_stored_bytes() {
        let (store, clock) = store();
        let token = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert!(store.create("l", token("a"), Some(SECOND)).await.unwrap());
        assert!(!store.create("l", token("b"), Some(SECOND)).await.unwrap());
        assert!(!store.renew_if("l", b"b", SECOND).await.unwrap());
        clock.advance(Duration::from_millis(600));
        assert!(store.renew_if("l", b"a", SECOND).await.unwrap());
        clock.advance(Duration::from_millis(600));
        // Renewed: alive 1.2 s after it was created.
        assert_eq!(store.get("l").await.unwrap(), b("a"));
        clock.advance(Duration::from_millis(400));
        assert_eq!(store.get("l").await.unwrap(), None);
        // Expired: another owner takes it; the old owner's release leaves it alone.
        assert!(store.create("l", token("b"), Some(SECOND)).await.unwrap());
        assert!(!store.delete_if("l", b"a").await.unwrap());
        assert!(!store.renew_if("l", b"a", SECOND).await.unwrap());
        assert_eq!(store.get("l").await.unwrap(), b("b"));
        assert!(store.delete_if("l", b"b").await.unwrap());
        assert!(!store.delete_if("l", b"b").await.unwrap());
        assert!(store.is_empty());
        // A counter compares as its decimal text; a zero TTL renews to no expiry.
        store.increment("n", Some(SECOND)).await.unwrap();
        assert!(store.renew_if("n", b"1", Duration::ZERO).await.unwrap());
        clock.advance(SECOND * 5);
        assert_eq!(store.get("n").await.unwrap(), b("1"));
        assert!(store.delete_if("n", b"1").await.unwrap());
    }

    #[tokio::test]
    async fn reserve_rejects_a_value_that_is_not_a_cell() {
        let (store, clock) = store();
        store.set("r", b("not a time"), None).await.unwrap();
        let error = store
            .reserve("r", SECOND, clock.now(), None, None)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::InvalidData);
        store.set("r", b("1000.5"), None).await.unwrap();
        let at = store
            .reserve("r", SECOND, Timestamp::UNIX_EPOCH, None, None)
            .await
            .unwrap()
            .at();
        assert_eq!(at, Timestamp::from_millis_f64(1000.5));
        let cell = store.get("r").await.unwrap().unwrap();
        assert_eq!(&cell[..], b"2000.5");
    }

    #[tokio::test]
    async fn lease_limits_renews_prunes_and_releases() {
        let (store, clock) = store();
        let now = clock.now();
        assert!(store.lease("s", "a", 2, SECOND, now).await.unwrap());
        assert!(store.lease("s", "a", 2, SECOND, now).await.unwrap());
        assert!(store.lease("s", "b", 2, SECOND, now).await.unwrap());
        assert!(!store.lease("s", "c", 2, SECOND, now).await.unwrap());
        // Renewal moves a's expiry; b expires at now + 1 s and is pruned then.
        assert!(
            store
                .lease("s", "a", 2, SECOND * 5, now + Duration::from_millis(500))
                .await
                .unwrap()
        );
        assert!(
            store
                .lease("s", "c", 2, SECOND, now + SECOND)
                .await
                .unwrap()
        );
        assert!(
            !store
                .lease("s", "d", 2, SECOND, now + SECOND)
                .await
                .unwrap()
        );
        store.release("s", "a").await.unwrap();
        store.release("s", "ghost").await.unwrap();
        store.release("nothing", "ghost").await.unwrap();
        assert!(
            store
                .lease("s", "d", 2, SECOND, now + SECOND)
                .await
                .unwrap()
        );
        store.release("s", "c").await.unwrap();
        store.release("s", "d").await.unwrap();
        // An empty semaphore is dropped.
        assert!(store.is_empty());
        assert!(store.state().semaphore_expiries.is_empty());
        // A limit of zero grants nothing.
        assert!(!store.lease("z", "a", 0, SECOND, now).await.unwrap());
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn lease_pruning_is_kept_even_when_refused() {
        let (store, clock) = store();
        let now = clock.now();
        assert!(store.lease("s", "a", 1, SECOND, now).await.unwrap());
        assert!(
            store
                .lease("s", "b", 1, SECOND * 10, now + SECOND)
                .await
                .unwrap()
        );
        // a was pruned when b took its slot; c is refused and b is kept.
        assert!(
            !store
                .lease("s", "c", 1, SECOND, now + SECOND)
                .await
                .unwrap()
        );
        let state = store.state();
        let holders = &state.semaphores["s"].holders;
        assert_eq!(holders.len(), 1);
        assert!(holders.contains_key("b"));
    }

    #[tokio::test]
    async fn values_and_semaphores_are_separate() {
        let (store, clock) = store();
        store.set("k", b("v"), None).await.unwrap();
        assert!(store.lease("k", "a", 1, SECOND, clock.now()).await.unwrap());
        store.set("k", None, None).await.unwrap();
        assert!(!store.lease("k", "b", 1, SECOND, clock.now()).await.unwrap());
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn the_sweep_bounds_growth_from_per_window_keys() {
        let (store, clock) = store();
        let ttl = Some(Duration::from_millis(50));
        for i in 0..10_000_u32 {
            // A fresh key per 10 ms window, never read again.
            let key = format!("rl:api:{}", i / 10);
            store.increment(&key, ttl).await.unwrap();
            store.set(&format!("cache:{i}"), b("x"), ttl).await.unwrap();
            clock.advance(Duration::from_millis(1));
        }
        // Live: ~5 counters and ~50 cache entries; without the sweep there would be 11 000.
        assert!(store.len() <= 64, "len {}", store.len());
        let state = store.state();
        assert_eq!(state.expiries.len(), state.entries.len());
    }

    #[tokio::test]
    async fn the_sweep_drops_at_most_64_entries_per_write() {
        let (store, clock) = store();
        for i in 0..200 {
            store
                .set(&format!("k{i}"), b("x"), Some(SECOND))
                .await
                .unwrap();
        }
        clock.advance(SECOND);
        store.set("trigger", b("x"), None).await.unwrap();
        assert_eq!(store.len(), 200 - 64 + 1);
        store.set("trigger", b("x"), None).await.unwrap();
        assert_eq!(store.len(), 200 - 128 + 1);
        // What callers see does not depend on the sweep.
        assert_eq!(store.get("k199").await.unwrap(), None);
    }

    #[tokio::test]
    async fn lease_sweeps_abandoned_semaphores() {
        let (store, clock) = store();
        for i in 0..1_000_u32 {
            let now = clock.now();
            store
                .lease(&format!("sem:{i}"), "a", 1, Duration::from_millis(5), now)
                .await
                .unwrap();
            clock.advance(Duration::from_millis(1));
        }
        assert!(store.len() <= 10, "len {}", store.len());
        // A caller whose `now` is behind the store's clock keeps its holders.
        let past = clock.now() - SECOND * 60;
        for i in 0..100_u32 {
            store
                .lease(&format!("old:{i}"), "a", 1, SECOND, past)
                .await
                .unwrap();
        }
        assert!(!store.lease("old:0", "b", 1, SECOND, past).await.unwrap());
    }

    #[tokio::test]
    async fn close_clears_everything() {
        let (store, clock) = store();
        store.set("a", b("1"), None).await.unwrap();
        store.increment("c", Some(SECOND)).await.unwrap();
        store
            .reserve("r", SECOND, clock.now(), None, None)
            .await
            .unwrap()
            .at();
        assert!(store.lease("s", "t", 1, SECOND, clock.now()).await.unwrap());
        let other = store.clone();
        other.close().await.unwrap();
        assert!(store.is_empty());
        assert_eq!(store.get("a").await.unwrap(), None);
        assert_eq!(store.increment("c", None).await.unwrap(), 1);
        assert!(store.lease("s", "u", 1, SECOND, clock.now()).await.unwrap());
    }

    #[test]
    fn debug_shows_sizes_not_values() {
        let store = MemoryStore::with_clock(Arc::new(ManualClock::new()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.set("vault:token", b("s3cret"), None))
            .unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("entries: 1"), "{debug}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("vault"),
            "{debug}"
        );
    }

    #[test]
    fn capabilities_and_name() {
        let store = MemoryStore::default();
        assert_eq!(store.name(), "memory");
        let caps = store.capabilities();
        assert!(caps.atomic_increment && caps.reserve && caps.lease);
        assert_eq!(caps.scope, Scope::Process);
    }
}
