//! Tests of the runtime cache over the memory store, in virtual time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use super::store::{CacheIds, Outcome, ResponseCache, invalidate_seam};
use super::{Cache, CachedResponse, Coalesce, KeyRequest};
use crate::error::{Error, ErrorKind};
use crate::store::{
    Capabilities, Consistency, DynStore, MemoryStore, Scope, StitchStore, StoreError,
};
use crate::tenancy::Tenancy;
use crate::time::{Clock, ManualClock, Timestamp};

/// Forwards to a shared memory store, reports `Scope::Fleet` with owned locks, and records
/// the verbs used; `get` fails while `down` is set, `delete_if` while `no_release` is set.
#[derive(Debug, Clone)]
struct FleetStore {
    inner: MemoryStore,
    log: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
    no_release: Arc<AtomicBool>,
}

impl FleetStore {
    fn new(clock: &ManualClock) -> Self {
        FleetStore {
            inner: MemoryStore::with_clock(Arc::new(clock.clone())),
            log: Arc::default(),
            down: Arc::default(),
            no_release: Arc::default(),
        }
    }
    fn log(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl StitchStore for FleetStore {
    fn name(&self) -> &'static str {
        "fleet-test"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
            .with_consistency(Consistency::Strong)
            .with_atomic_increment(true)
            .with_conditional_writes(true)
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.log(format!("get {key}"));
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::new(
                "fleet-test",
                "get",
                crate::store::StoreErrorKind::Unavailable,
                "down",
            ));
        }
        self.inner.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let verb = if value.is_some() { "set" } else { "delete" };
        self.log(format!("{verb} {key}"));
        self.inner.set(key, value, ttl).await
    }
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.log(format!("increment {key}"));
        self.inner.increment(key, ttl).await
    }
    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.log(format!("create {key}"));
        self.inner.create(key, value, ttl).await
    }
    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.log(format!("renew_if {key}"));
        self.inner.renew_if(key, expected, ttl).await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.log(format!("delete_if {key}"));
        if self.no_release.load(Ordering::SeqCst) {
            return Err(StoreError::new(
                "fleet-test",
                "delete_if",
                crate::store::StoreErrorKind::Unavailable,
                "down",
            ));
        }
        self.inner.delete_if(key, expected).await
    }
}

fn cache_over(store: &FleetStore, clock: &ManualClock, decl: Cache, stitch: &str) -> ResponseCache {
    ResponseCache::new(
        decl.resolve("cache").unwrap(),
        Arc::new(store.clone()) as DynStore,
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        CacheIds {
            stitch_id: stitch.to_owned(),
            seam_id: Some("s1".to_owned()),
        },
        Arc::default(),
    )
}

/// Stores `response` at `slot` as a fill would.
async fn put(cache: &ResponseCache, slot: &super::store::Slot, response: CachedResponse) {
    cache
        .fill(slot, &HeaderMap::new(), None, || async { Ok(response) })
        .await
        .unwrap();
}

fn key_of(cache: &ResponseCache, url: &str) -> super::CacheKey {
    let url = Url::parse(url).unwrap();
    cache
        .key(&KeyRequest {
            method: &Method::GET,
            url: &url,
            headers: &HeaderMap::new(),
            body: b"",
            principal: None,
            generated: None,
            credentialed: false,
        })
        .unwrap()
}

fn json(body: &'static str) -> CachedResponse {
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    CachedResponse::new(StatusCode::OK, &h, Bytes::from_static(body.as_bytes()))
}

fn setup(decl: Cache) -> (ManualClock, FleetStore, ResponseCache) {
    let clock = ManualClock::at(Timestamp::from_unix(Duration::from_secs(1_000)));
    let store = FleetStore::new(&clock);
    let cache = cache_over(&store, &clock, decl, "users");
    (clock, store, cache)
}

#[tokio::test(flavor = "current_thread")]
async fn read_through_writes_with_the_ttl_and_expires() {
    let (clock, store, cache) = setup(Cache::ttl("5m"));
    let key = key_of(&cache, "https://api.example.com/users/7");
    let miss = cache.get(&key, &HeaderMap::new()).await.unwrap();
    assert!(miss.hit.is_none());
    assert!(miss.slot.entry_key.starts_with("cache:k2:g0.0.users:"));
    assert_eq!(miss.slot.entry_key.len(), "cache:k2:g0.0.users:".len() + 32);
    let served = cache
        .fill(&miss.slot, &HeaderMap::new(), None, || async {
            Ok(json(r#"{"id":7}"#))
        })
        .await
        .unwrap();
    assert_eq!(served.outcome, Outcome::Fetched { waited: false });
    let raw = store
        .inner
        .get(&miss.slot.entry_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &raw[..],
        br#"{"s":200,"h":{"content-type":"application/json"},"v":{"id":7}}"#
    );
    let hit = cache
        .get(&key, &HeaderMap::new())
        .await
        .unwrap()
        .hit
        .unwrap();
    assert_eq!(hit, json(r#"{"id":7}"#));

    clock.advance(Duration::from_secs(299));
    assert!(
        cache
            .get(&key, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_some()
    );
    clock.advance(Duration::from_secs(1));
    assert!(
        cache
            .get(&key, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn failures_are_not_cached() {
    let (_clock, store, cache) = setup(Cache::ttl("5m"));
    let key = key_of(&cache, "https://h/x");
    let slot = cache.get(&key, &HeaderMap::new()).await.unwrap().slot;
    let err = cache
        .fill(&slot, &HeaderMap::new(), None, || async {
            Err(Error::new(ErrorKind::Http, "HTTP 503"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http);
    assert!(store.inner.get(&slot.entry_key).await.unwrap().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn generations_invalidate_stitch_and_seam_without_scans() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let users = cache_over(&store, &clock, Cache::ttl("5m"), "users");
    let posts = cache_over(&store, &clock, Cache::ttl("5m"), "posts");
    let ku = key_of(&users, "https://h/users");
    let kp = key_of(&posts, "https://h/posts");
    for (cache, key) in [(&users, &ku), (&posts, &kp)] {
        let slot = cache.get(key, &HeaderMap::new()).await.unwrap().slot;
        put(cache, &slot, json("1")).await;
    }
    store.take_log();
    users.invalidate_stitch().await.unwrap();
    assert_eq!(store.take_log(), ["increment cache:gen:users"]);
    let after = users.get(&ku, &HeaderMap::new()).await.unwrap();
    assert!(after.hit.is_none());
    assert!(after.slot.entry_key.starts_with("cache:k2:g0.1.users:"));
    assert!(
        posts
            .get(&kp, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_some()
    );

    store.take_log();
    super::store::invalidate_seam(&store, Some("s1"))
        .await
        .unwrap();
    assert_eq!(store.take_log(), ["increment cache:gen:s1"]);
    assert!(
        posts
            .get(&kp, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
    assert!(
        users
            .get(&ku, &HeaderMap::new())
            .await
            .unwrap()
            .slot
            .entry_key
            .starts_with("cache:k2:g1.1.users:")
    );
    // The free function without a seam id bumps the reference's global counter.
    invalidate_seam(&store, None).await.unwrap();
    assert_eq!(
        store.inner.get("cache:gen").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn exact_invalidation_deletes_one_entry() {
    let (_clock, store, cache) = setup(Cache::ttl("5m"));
    let a = key_of(&cache, "https://h/a");
    let b = key_of(&cache, "https://h/b");
    for key in [&a, &b] {
        let slot = cache.get(key, &HeaderMap::new()).await.unwrap().slot;
        put(&cache, &slot, json("1")).await;
    }
    store.take_log();
    cache.invalidate(&a).await.unwrap();
    let log = store.take_log();
    assert_eq!(log.iter().filter(|l| l.starts_with("delete")).count(), 1);
    assert!(
        cache
            .get(&a, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
    assert!(
        cache
            .get(&b, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_some()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_lru_cap_evicts_the_oldest_written_or_hit() {
    let (_clock, store, cache) = setup(Cache::ttl("5m").entries(2));
    let keys: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|p| key_of(&cache, &format!("https://h/{p}")))
        .collect();
    let mut slots = Vec::new();
    for key in &keys[..2] {
        let slot = cache.get(key, &HeaderMap::new()).await.unwrap().slot;
        put(&cache, &slot, json("1")).await;
        slots.push(slot);
    }
    // A hit on "a" makes "b" the oldest.
    assert!(
        cache
            .get(&keys[0], &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_some()
    );
    store.take_log();
    let slot_c = cache.get(&keys[2], &HeaderMap::new()).await.unwrap().slot;
    put(&cache, &slot_c, json("1")).await;
    let log = store.take_log();
    assert!(
        log.contains(&format!("delete {}", slots[1].entry_key)),
        "{log:?}"
    );
    assert!(
        store
            .inner
            .get(&slots[1].entry_key)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .inner
            .get(&slots[0].entry_key)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.inner.get(&slot_c.entry_key).await.unwrap().is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn a_corrupt_entry_is_a_miss_and_is_evicted() {
    let (_clock, store, cache) = setup(Cache::ttl("5m"));
    let key = key_of(&cache, "https://h/x");
    let slot = cache.get(&key, &HeaderMap::new()).await.unwrap().slot;
    store
        .inner
        .set(
            &slot.entry_key,
            Some(Bytes::from_static(b"{\"s\":200")),
            None,
        )
        .await
        .unwrap();
    assert!(
        cache
            .get(&key, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
    assert!(store.inner.get(&slot.entry_key).await.unwrap().is_none());
    // `evict` is what the pipeline calls when a hit no longer decodes into the output type.
    put(&cache, &slot, json("1")).await;
    cache.evict(&slot).await;
    assert!(
        cache
            .get(&key, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn read_through_hits_and_fails_open() {
    let (_clock, store, cache) = setup(Cache::ttl("5m"));
    let key = key_of(&cache, "https://h/x");
    let first = cache
        .read_through(&key, &HeaderMap::new(), || async { Ok(json("[1]")) })
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Fetched { waited: false });
    let second = cache
        .read_through(&key, &HeaderMap::new(), || async {
            panic!("must not fetch")
        })
        .await
        .unwrap();
    assert_eq!(second.outcome, Outcome::Hit);
    assert_eq!(&second.response.body[..], b"[1]");

    // A store that cannot be read is a miss served by the fetch, with the error reported.
    store.down.store(true, Ordering::SeqCst);
    let third = cache
        .read_through(&key, &HeaderMap::new(), || async { Ok(json("[2]")) })
        .await
        .unwrap();
    assert_eq!(third.outcome, Outcome::Fetched { waited: false });
    assert_eq!(&third.response.body[..], b"[2]");
    assert!(third.not_stored.is_some());
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_thousand_identical_misses_fetch_once() {
    let (_clock, _store, cache) = setup(Cache::ttl("5m"));
    let cache = Arc::new(cache);
    let fetches = Arc::new(AtomicUsize::new(0));
    let (go, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (cache, fetches, mut gate) = (cache.clone(), fetches.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let key = key_of(&cache, "https://h/x");
            let lookup = cache.get(&key, &HeaderMap::new()).await.unwrap();
            assert!(lookup.hit.is_none());
            cache
                .fill(&lookup.slot, &HeaderMap::new(), None, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|g| *g).await;
                    Ok(json(r#"{"n":1}"#))
                })
                .await
        }));
    }
    settle().await;
    go.send(true).unwrap();
    let mut coalesced = 0;
    for task in tasks {
        let served = task.await.unwrap().unwrap();
        assert_eq!(&served.response.body[..], br#"{"n":1}"#);
        coalesced += usize::from(served.outcome == Outcome::Coalesced);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(coalesced, 999);
}

#[tokio::test(flavor = "current_thread")]
async fn a_leader_failure_is_shared_with_its_followers() {
    let (_clock, store, cache) = setup(Cache::ttl("5m"));
    let cache = Arc::new(cache);
    let fetches = Arc::new(AtomicUsize::new(0));
    let (go, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (cache, fetches, mut gate) = (cache.clone(), fetches.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let slot = cache
                .get(&key_of(&cache, "https://h/x"), &HeaderMap::new())
                .await
                .unwrap()
                .slot;
            cache
                .fill(&slot, &HeaderMap::new(), None, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|g| *g).await;
                    Err::<CachedResponse, _>(Error::new(ErrorKind::Http, "HTTP 500"))
                })
                .await
        }));
    }
    settle().await;
    go.send(true).unwrap();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error.message(), "HTTP 500");
    }
    // One request reached the failing upstream, not one per caller; nothing was stored, and
    // the failure does not stick.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let key = key_of(&cache, "https://h/x");
    assert!(
        cache
            .get(&key, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
    let slot = cache.get(&key, &HeaderMap::new()).await.unwrap().slot;
    put(&cache, &slot, json("2")).await;
    assert!(store.inner.get(&slot.entry_key).await.unwrap().is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_leader_hands_over_to_a_follower() {
    let (_clock, _store, cache) = setup(Cache::ttl("5m"));
    let cache = Arc::new(cache);
    let key = key_of(&cache, "https://h/x");
    let slot = cache.get(&key, &HeaderMap::new()).await.unwrap().slot;
    let leader = {
        let (cache, slot) = (cache.clone(), slot.clone());
        tokio::spawn(async move {
            cache
                .fill(&slot, &HeaderMap::new(), None, std::future::pending)
                .await
        })
    };
    settle().await;
    let follower = {
        let (cache, slot) = (cache.clone(), slot.clone());
        tokio::spawn(async move {
            cache
                .fill(&slot, &HeaderMap::new(), None, || async { Ok(json("9")) })
                .await
        })
    };
    settle().await;
    leader.abort();
    let served = follower.await.unwrap().unwrap();
    assert_eq!(&served.response.body[..], b"9");
    assert_eq!(served.outcome, Outcome::Fetched { waited: false });
}

#[tokio::test(flavor = "current_thread")]
async fn coalesce_off_fetches_every_time() {
    let (_clock, _store, cache) = setup(Cache::ttl("5m").coalesce(Coalesce::Off));
    let key = key_of(&cache, "https://h/x");
    let slot = cache.get(&key, &HeaderMap::new()).await.unwrap().slot;
    let served = cache
        .fill(&slot, &HeaderMap::new(), None, || async { Ok(json("1")) })
        .await
        .unwrap();
    assert_eq!(served.outcome, Outcome::Fetched { waited: false });
}

/// Runs `n` processes (caches over one fleet store) missing the same key at once. Each fetch
/// takes `fetch_time` of virtual time (the first one never ends when `leader_hangs`);
/// `max_fetching` records how many fetches ever ran at once.
struct Fleet {
    clock: ManualClock,
    store: FleetStore,
    fetches: Arc<AtomicUsize>,
    max_fetching: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<crate::Result<super::store::Served>>>,
}

fn fleet(n: usize, decl: Cache, fetch_time: Duration, leader_hangs: bool) -> Fleet {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let fetches = Arc::new(AtomicUsize::new(0));
    let fetching = Arc::new(AtomicUsize::new(0));
    let max_fetching = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let cache = Arc::new(cache_over(&store, &clock, decl.clone(), "users"));
        let (fetches, fetching, max_fetching) =
            (fetches.clone(), fetching.clone(), max_fetching.clone());
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move {
            let key = key_of(&cache, "https://h/users/1");
            let slot = cache.get(&key, &HeaderMap::new()).await?.slot;
            cache
                .fill(&slot, &HeaderMap::new(), None, || async move {
                    let n = fetches.fetch_add(1, Ordering::SeqCst);
                    let now = fetching.fetch_add(1, Ordering::SeqCst) + 1;
                    max_fetching.fetch_max(now, Ordering::SeqCst);
                    if n == 0 && leader_hangs {
                        std::future::pending::<()>().await;
                    }
                    clock.sleep(fetch_time).await;
                    fetching.fetch_sub(1, Ordering::SeqCst);
                    Ok(json(r#"{"id":1}"#))
                })
                .await
        }));
    }
    Fleet {
        clock,
        store,
        fetches,
        max_fetching,
        tasks,
    }
}

impl Fleet {
    async fn drive(&self, step: Duration, total: Duration) {
        let mut elapsed = Duration::ZERO;
        while elapsed < total {
            self.clock.advance(step);
            elapsed += step;
            settle().await;
        }
    }

    async fn outcomes(self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for task in self.tasks {
            let served = task.await.unwrap().unwrap();
            assert_eq!(&served.response.body[..], br#"{"id":1}"#);
            outcomes.push(served.outcome);
        }
        outcomes
    }
}

fn count(outcomes: &[Outcome], outcome: Outcome) -> usize {
    outcomes.iter().filter(|o| **o == outcome).count()
}

#[tokio::test(flavor = "current_thread")]
async fn fleet_single_flight_fetches_once_across_processes() {
    let f = fleet(
        4,
        Cache::ttl("5m").coalesce(Coalesce::Fleet),
        Duration::from_millis(100),
        false,
    );
    settle().await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    // Three processes poll the store; the fetcher sleeps and renews its lock.
    assert_eq!(f.clock.pending(), 5);
    f.drive(Duration::from_millis(10), Duration::from_millis(300))
        .await;
    let fetches = f.fetches.load(Ordering::SeqCst);
    let store = f.store.clone();
    let outcomes = f.outcomes().await;
    assert_eq!(fetches, 1);
    assert_eq!(count(&outcomes, Outcome::FleetFilled), 3, "{outcomes:?}");
    // The lock was taken with `create` and released with `delete_if`.
    let log = store.take_log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("create cache:lock:g0.0.users:")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("delete_if cache:lock:g0.0.users:")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.starts_with("increment cache:lock")),
        "{log:?}"
    );
}

/// Regression: the lock was a counter whose TTL could run out under a long fetch, letting a
/// second fetcher start while the first still ran (and the first then deleted its lock).
#[tokio::test(flavor = "current_thread")]
async fn a_fill_longer_than_the_lock_ttl_never_runs_twice_at_once() {
    let decl = Cache::ttl("5m").coalesce(Coalesce::Fleet).lock("1s");
    let f = fleet(4, decl, Duration::from_secs(10), false);
    settle().await;
    f.drive(Duration::from_millis(50), Duration::from_secs(11))
        .await;
    assert_eq!(f.max_fetching.load(Ordering::SeqCst), 1);
    let fetches = f.fetches.load(Ordering::SeqCst);
    let outcomes = f.outcomes().await;
    assert_eq!(fetches, 1, "one fill for the fleet: {outcomes:?}");
    assert_eq!(count(&outcomes, Outcome::FleetFilled), 3, "{outcomes:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn fleet_waiters_take_over_when_the_lock_holder_dies() {
    let decl = Cache::ttl("5m").coalesce(Coalesce::Fleet).lock("2s");
    let mut f = fleet(4, decl, Duration::from_millis(10), true);
    settle().await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    // The holder dies: it stops renewing, and its release never reaches the store.
    f.store.no_release.store(true, Ordering::SeqCst);
    f.tasks.remove(0).abort();
    settle().await;
    f.store.no_release.store(false, Ordering::SeqCst);
    // Nothing happens before the lock expires.
    f.drive(Duration::from_millis(100), Duration::from_millis(1_500))
        .await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    // Then one waiter takes the lock and fetches; the others read its entry.
    f.drive(Duration::from_millis(100), Duration::from_millis(1_000))
        .await;
    let fetches = f.fetches.load(Ordering::SeqCst);
    let outcomes = f.outcomes().await;
    assert_eq!(fetches, 2);
    assert_eq!(count(&outcomes, Outcome::FleetFilled), 2, "{outcomes:?}");
    assert!(outcomes.contains(&Outcome::Fetched { waited: true }));
}

#[tokio::test(flavor = "current_thread")]
async fn fleet_wait_is_bounded() {
    let decl = Cache::ttl("5m")
        .coalesce(Coalesce::Fleet)
        .lock("30s")
        .wait("1s");
    let mut f = fleet(3, decl, Duration::from_millis(10), true);
    settle().await;
    let leader = f.tasks.remove(0);
    f.drive(Duration::from_millis(100), Duration::from_millis(900))
        .await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    f.drive(Duration::from_millis(100), Duration::from_millis(300))
        .await;
    let fetches = f.fetches.load(Ordering::SeqCst);
    for outcome in f.outcomes().await {
        assert!(matches!(
            outcome,
            Outcome::Fetched { waited: true } | Outcome::FleetFilled
        ));
    }
    // The waiters gave up after `wait` although the lock was still held: each fetched,
    // unless the other's entry was already there.
    assert!((2..=3).contains(&fetches), "{fetches}");
    leader.abort();
}

/// Regression: a store that declares only get/set used to get a counter lock (or a build
/// error); now fleet coalescing degrades to the process at build time and takes no lock.
#[tokio::test(flavor = "current_thread")]
async fn fleet_coalescing_without_owned_locks_stays_in_the_process() {
    #[derive(Debug)]
    struct GetSetOnly(FleetStore);
    #[async_trait::async_trait]
    impl StitchStore for GetSetOnly {
        fn name(&self) -> &'static str {
            "kv"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(Scope::Fleet)
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
            self.0.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Option<Bytes>,
            ttl: Option<Duration>,
        ) -> Result<(), StoreError> {
            self.0.set(key, value, ttl).await
        }
        async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
            self.0.increment(key, ttl).await
        }
    }
    let clock = ManualClock::new();
    let shared = FleetStore::new(&clock);
    let store: DynStore = Arc::new(GetSetOnly(shared.clone()));
    let cache = Arc::new(ResponseCache::new(
        Cache::ttl("1m")
            .coalesce(Coalesce::Fleet)
            .resolve("cache")
            .unwrap(),
        store,
        Arc::new(clock.clone()),
        CacheIds {
            stitch_id: "s".into(),
            seam_id: None,
        },
        Arc::default(),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (go, gate) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (cache, fetches, mut gate) = (cache.clone(), fetches.clone(), gate.clone());
            tokio::spawn(async move {
                let key = key_of(&cache, "https://h/x");
                let slot = cache.get(&key, &HeaderMap::new()).await?.slot;
                cache
                    .fill(&slot, &HeaderMap::new(), None, || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|g| *g).await;
                        Ok(json("1"))
                    })
                    .await
            })
        })
        .collect();
    settle().await;
    go.send(true).unwrap();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "coalesced in the process"
    );
    let log = shared.take_log();
    assert!(
        !log.iter().any(|l| l.contains("lock")),
        "no lock of any kind: {log:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn principals_get_their_own_entries() {
    let (_clock, _store, cache) = setup(Cache::ttl("5m").tenancy(Tenancy::Principal));
    let url = Url::parse("https://h/me").unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer x".parse().unwrap());
    let k = |p: Option<&'static str>| {
        cache.key(&KeyRequest {
            method: &Method::GET,
            url: &url,
            headers: &headers,
            body: b"",
            principal: p,
            generated: None,
            credentialed: true,
        })
    };
    assert_eq!(k(None), Err(super::Bypass::Credentialed));
    let alice = k(Some("alice")).unwrap();
    let slot = cache.get(&alice, &HeaderMap::new()).await.unwrap().slot;
    put(&cache, &slot, json(r#""alice""#)).await;
    let bob = k(Some("bob")).unwrap();
    assert!(
        cache
            .get(&bob, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
    assert!(
        cache
            .get(&alice, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_some()
    );
}

/// On a store without an atomic `increment` (Workers KV) an invalidation never counts: it
/// writes a fresh random generation, which no earlier generation can equal, so entries once
/// invalidated never come back even when a lagging replica served an old generation.
#[tokio::test(flavor = "current_thread")]
async fn invalidation_on_a_store_that_cannot_count_writes_a_fresh_generation() {
    #[derive(Debug)]
    struct CannotCount(FleetStore);
    #[async_trait::async_trait]
    impl StitchStore for CannotCount {
        fn name(&self) -> &'static str {
            "kv"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(Scope::Fleet)
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
            self.0.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Option<Bytes>,
            ttl: Option<Duration>,
        ) -> Result<(), StoreError> {
            self.0.set(key, value, ttl).await
        }
        async fn increment(&self, key: &str, _: Option<Duration>) -> Result<i64, StoreError> {
            panic!("a store without an atomic increment was asked to count {key}")
        }
    }
    let clock = ManualClock::new();
    let shared = FleetStore::new(&clock);
    let store: DynStore = Arc::new(CannotCount(shared.clone()));
    let cache = ResponseCache::new(
        Cache::ttl("1m").resolve("cache").unwrap(),
        store.clone(),
        Arc::new(clock.clone()),
        CacheIds {
            stitch_id: "s".into(),
            seam_id: Some("s1".into()),
        },
        Arc::default(),
    );
    let key = key_of(&cache, "https://h/x");
    let slot = cache.get(&key, &HeaderMap::new()).await.unwrap().slot;
    put(&cache, &slot, json("1")).await;
    assert!(
        cache
            .get(&key, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_some()
    );

    let mut seen = std::collections::HashSet::new();
    for round in 0..20 {
        let bump = if round % 2 == 0 {
            cache.invalidate_stitch().await
        } else {
            invalidate_seam(&*store, Some("s1")).await
        };
        bump.unwrap();
        let lookup = cache.get(&key, &HeaderMap::new()).await.unwrap();
        assert!(
            lookup.hit.is_none(),
            "round {round}: the old entry is still served"
        );
        assert!(
            seen.insert(lookup.slot.entry_key.clone()),
            "a generation repeated"
        );
        // Lagging replica: the generation read back as 0 again must not bring anything back.
        put(&cache, &lookup.slot, json("1")).await;
    }
    shared
        .inner
        .set("cache:gen:s", Some(Bytes::from("0")), None)
        .await
        .unwrap();
    shared
        .inner
        .set("cache:gen:s1", Some(Bytes::from("0")), None)
        .await
        .unwrap();
    cache.invalidate_stitch().await.unwrap();
    assert!(
        cache
            .get(&key, &HeaderMap::new())
            .await
            .unwrap()
            .hit
            .is_none()
    );
}
