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
use crate::store::{Capabilities, DynStore, MemoryStore, Scope, StitchStore, StoreError};
use crate::tenancy::Tenancy;
use crate::time::{Clock, ManualClock, Timestamp};

/// Forwards to a shared memory store, reports `Scope::Fleet`, and records the verbs used;
/// `get` fails while `down` is set.
#[derive(Debug, Clone)]
struct FleetStore {
    inner: MemoryStore,
    log: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

impl FleetStore {
    fn new(clock: &ManualClock) -> Self {
        FleetStore {
            inner: MemoryStore::with_clock(Arc::new(clock.clone())),
            log: Arc::default(),
            down: Arc::default(),
        }
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
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.log.lock().unwrap().push(format!("get {key}"));
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
        self.log.lock().unwrap().push(format!("{verb} {key}"));
        self.inner.set(key, value, ttl).await
    }
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.log.lock().unwrap().push(format!("increment {key}"));
        self.inner.increment(key, ttl).await
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
    )
    .unwrap()
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
    let miss = cache.get(&key).await.unwrap();
    assert!(miss.hit.is_none());
    assert!(miss.slot.entry_key.starts_with("cache:k2:g0.0.users:"));
    assert_eq!(miss.slot.entry_key.len(), "cache:k2:g0.0.users:".len() + 32);
    let served = cache
        .fill(&miss.slot, || async { Ok(json(r#"{"id":7}"#)) })
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
    let hit = cache.get(&key).await.unwrap().hit.unwrap();
    assert_eq!(hit, json(r#"{"id":7}"#));

    clock.advance(Duration::from_secs(299));
    assert!(cache.get(&key).await.unwrap().hit.is_some());
    clock.advance(Duration::from_secs(1));
    assert!(cache.get(&key).await.unwrap().hit.is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn failures_are_not_cached() {
    let (_clock, store, cache) = setup(Cache::ttl("5m"));
    let key = key_of(&cache, "https://h/x");
    let slot = cache.get(&key).await.unwrap().slot;
    let err = cache
        .fill(&slot, || async {
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
        let slot = cache.get(key).await.unwrap().slot;
        cache.put(&slot, &json("1")).await.unwrap();
    }
    store.take_log();
    users.invalidate_stitch().await.unwrap();
    assert_eq!(store.take_log(), ["increment cache:gen:users"]);
    let after = users.get(&ku).await.unwrap();
    assert!(after.hit.is_none());
    assert!(after.slot.entry_key.starts_with("cache:k2:g0.1.users:"));
    assert!(posts.get(&kp).await.unwrap().hit.is_some());

    store.take_log();
    super::store::invalidate_seam(&store, Some("s1"))
        .await
        .unwrap();
    assert_eq!(store.take_log(), ["increment cache:gen:s1"]);
    assert!(posts.get(&kp).await.unwrap().hit.is_none());
    assert!(
        users
            .get(&ku)
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
        let slot = cache.get(key).await.unwrap().slot;
        cache.put(&slot, &json("1")).await.unwrap();
    }
    store.take_log();
    cache.invalidate(&a).await.unwrap();
    let log = store.take_log();
    assert_eq!(log.iter().filter(|l| l.starts_with("delete")).count(), 1);
    assert!(cache.get(&a).await.unwrap().hit.is_none());
    assert!(cache.get(&b).await.unwrap().hit.is_some());
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
        let slot = cache.get(key).await.unwrap().slot;
        cache.put(&slot, &json("1")).await.unwrap();
        slots.push(slot);
    }
    // A hit on "a" makes "b" the oldest.
    assert!(cache.get(&keys[0]).await.unwrap().hit.is_some());
    store.take_log();
    let slot_c = cache.get(&keys[2]).await.unwrap().slot;
    cache.put(&slot_c, &json("1")).await.unwrap();
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
    let slot = cache.get(&key).await.unwrap().slot;
    store
        .inner
        .set(
            &slot.entry_key,
            Some(Bytes::from_static(b"{\"s\":200")),
            None,
        )
        .await
        .unwrap();
    assert!(cache.get(&key).await.unwrap().hit.is_none());
    assert!(store.inner.get(&slot.entry_key).await.unwrap().is_none());
    // `evict` is what the pipeline calls when a hit no longer decodes into the output type.
    cache.put(&slot, &json("1")).await.unwrap();
    cache.evict(&slot).await;
    assert!(cache.get(&key).await.unwrap().hit.is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn read_through_hits_and_fails_open() {
    let (_clock, store, cache) = setup(Cache::ttl("5m"));
    let key = key_of(&cache, "https://h/x");
    let first = cache
        .read_through(&key, || async { Ok(json("[1]")) })
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Fetched { waited: false });
    let second = cache
        .read_through(&key, || async { panic!("must not fetch") })
        .await
        .unwrap();
    assert_eq!(second.outcome, Outcome::Hit);
    assert_eq!(&second.response.body[..], b"[1]");

    // A store that cannot be read is a miss served by the fetch, with the error reported.
    store.down.store(true, Ordering::SeqCst);
    let third = cache
        .read_through(&key, || async { Ok(json("[2]")) })
        .await
        .unwrap();
    assert_eq!(third.outcome, Outcome::Fetched { waited: false });
    assert_eq!(&third.response.body[..], b"[2]");
    assert!(third.store_error.is_some());
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
            let lookup = cache.get(&key).await.unwrap();
            assert!(lookup.hit.is_none());
            cache
                .fill(&lookup.slot, || async move {
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
async fn a_leader_failure_is_not_shared_followers_refetch() {
    let (_clock, _store, cache) = setup(Cache::ttl("5m"));
    let cache = Arc::new(cache);
    let fetches = Arc::new(AtomicUsize::new(0));
    let (go, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (cache, fetches, mut gate) = (cache.clone(), fetches.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let slot = cache
                .get(&key_of(&cache, "https://h/x"))
                .await
                .unwrap()
                .slot;
            cache
                .fill(&slot, || async move {
                    let n = fetches.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|g| *g).await;
                    if n == 0 {
                        Err(Error::new(ErrorKind::Http, "HTTP 500"))
                    } else {
                        Ok(json("2"))
                    }
                })
                .await
        }));
    }
    settle().await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    go.send(true).unwrap();
    let mut errors = 0;
    for task in tasks {
        match task.await.unwrap() {
            Err(e) => {
                assert_eq!(e.message(), "HTTP 500");
                errors += 1;
            }
            Ok(served) => assert_eq!(&served.response.body[..], b"2"),
        }
    }
    assert_eq!(errors, 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn coalesce_off_fetches_every_time() {
    let (_clock, _store, cache) = setup(Cache::ttl("5m").coalesce(Coalesce::Off));
    let key = key_of(&cache, "https://h/x");
    let slot = cache.get(&key).await.unwrap().slot;
    let served = cache.fill(&slot, || async { Ok(json("1")) }).await.unwrap();
    assert_eq!(served.outcome, Outcome::Fetched { waited: false });
}

/// Runs `n` processes (caches over one fleet store) missing the same key at once.
struct Fleet {
    clock: ManualClock,
    store: FleetStore,
    fetches: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<crate::Result<super::store::Served>>>,
}

fn fleet(n: usize, decl: Cache, leader_hangs: bool) -> (Fleet, tokio::sync::watch::Sender<bool>) {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let fetches = Arc::new(AtomicUsize::new(0));
    let (go, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let cache = Arc::new(cache_over(&store, &clock, decl.clone(), "users"));
        let (fetches, mut gate) = (fetches.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let key = key_of(&cache, "https://h/users/1");
            let slot = cache.get(&key).await?.slot;
            cache
                .fill(&slot, || async move {
                    let n = fetches.fetch_add(1, Ordering::SeqCst);
                    if n == 0 && leader_hangs {
                        std::future::pending::<()>().await;
                    }
                    let _ = gate.wait_for(|g| *g).await;
                    Ok(json(r#"{"id":1}"#))
                })
                .await
        }));
    }
    (
        Fleet {
            clock,
            store,
            fetches,
            tasks,
        },
        go,
    )
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
}

#[tokio::test(flavor = "current_thread")]
async fn fleet_single_flight_fetches_once_across_processes() {
    let (f, go) = fleet(4, Cache::ttl("5m").coalesce(Coalesce::Fleet), false);
    settle().await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(f.clock.pending(), 3, "three processes poll the store");
    go.send(true).unwrap();
    settle().await;
    f.drive(Duration::from_millis(10), Duration::from_millis(200))
        .await;
    let mut outcomes = Vec::new();
    for task in f.tasks {
        let served = task.await.unwrap().unwrap();
        assert_eq!(&served.response.body[..], br#"{"id":1}"#);
        outcomes.push(served.outcome);
    }
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::FleetFilled)
            .count(),
        3,
        "{outcomes:?}"
    );
    // The lock was released.
    let log = f.store.take_log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("delete cache:lock:g0.0.users:")),
        "{log:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn fleet_waiters_take_over_when_the_lock_holder_dies() {
    let decl = Cache::ttl("5m")
        .coalesce(Coalesce::Fleet)
        .lock("2s")
        .wait("10s");
    let (mut f, go) = fleet(4, decl, true);
    go.send(true).unwrap();
    settle().await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    let leader = f.tasks.remove(0);
    // Nothing happens before the lock expires.
    f.drive(Duration::from_millis(100), Duration::from_millis(1_900))
        .await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    // Then one waiter takes the lock and fetches; the others read its entry.
    f.drive(Duration::from_millis(100), Duration::from_millis(500))
        .await;
    let mut outcomes = Vec::new();
    for task in f.tasks {
        outcomes.push(task.await.unwrap().unwrap().outcome);
    }
    assert_eq!(f.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::FleetFilled)
            .count(),
        2,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&Outcome::Fetched { waited: true }));
    leader.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn fleet_wait_is_bounded() {
    let decl = Cache::ttl("5m")
        .coalesce(Coalesce::Fleet)
        .lock("30s")
        .wait("1s");
    let (mut f, go) = fleet(3, decl, true);
    go.send(true).unwrap();
    settle().await;
    let leader = f.tasks.remove(0);
    f.drive(Duration::from_millis(100), Duration::from_millis(900))
        .await;
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
    f.drive(Duration::from_millis(100), Duration::from_millis(200))
        .await;
    for task in f.tasks {
        let served = task.await.unwrap().unwrap();
        assert!(matches!(
            served.outcome,
            Outcome::Fetched { waited: true } | Outcome::FleetFilled
        ));
    }
    // The waiters gave up at the deadline although the lock was still held: each fetched,
    // unless the other's entry was already there.
    let fetches = f.fetches.load(Ordering::SeqCst);
    assert!((2..=3).contains(&fetches), "{fetches}");
    leader.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn fleet_coalescing_needs_an_atomic_increment() {
    #[derive(Debug)]
    struct NoAtomic(MemoryStore);
    #[async_trait::async_trait]
    impl StitchStore for NoAtomic {
        fn name(&self) -> &'static str {
            "kv"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(Scope::Fleet).with_atomic_increment(false)
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
    let err = ResponseCache::new(
        Cache::ttl("1m")
            .coalesce(Coalesce::Fleet)
            .resolve("cache")
            .unwrap(),
        Arc::new(NoAtomic(MemoryStore::new())),
        Arc::new(ManualClock::new()),
        CacheIds {
            stitch_id: "s".into(),
            seam_id: None,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cache.coalesce: fleet coalescing needs"),
        "{err}"
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
            credentialed: true,
        })
    };
    assert_eq!(k(None), Err(super::Bypass::Credentialed));
    let alice = k(Some("alice")).unwrap();
    let slot = cache.get(&alice).await.unwrap().slot;
    cache.put(&slot, &json(r#""alice""#)).await.unwrap();
    let bob = k(Some("bob")).unwrap();
    assert!(cache.get(&bob).await.unwrap().hit.is_none());
    assert!(cache.get(&alice).await.unwrap().hit.is_some());
}
