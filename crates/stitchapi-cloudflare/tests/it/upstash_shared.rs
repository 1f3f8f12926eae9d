//! The Upstash store of stitchapi-redis inside the Worker (its commands over the Workers
//! fetch), against the Upstash REST front of stitchapi-redis's tests on a real redis-server,
//! sharing a cache and a throttle with a native process that uses the Redis (TCP) store on the
//! same Redis. Both sides declare the same stitch (name, URL, policy), so they key the same
//! state (`crates/stitchapi/src/store/keys.rs`); the tests check the keys in Redis too.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stitchapi::store::DynStore;
use stitchapi::{Cache, Input, Stitch, Timeout};
use stitchapi_redis::RedisStore;

use crate::harness::{Upstream, Worker, user};

#[path = "../../../stitchapi-redis/tests/it/support/server.rs"]
mod server;
// Not every part of the front is used here (its `token` field).
#[allow(dead_code)]
#[path = "../../../stitchapi-redis/tests/it/support/upstash.rs"]
mod upstash;

use server::RedisServer;
use upstash::UpstashFront;

const UPSTASH_TOKEN: &str = "upstash-edge-token";

/// The upstream's user, as the Worker declares it.
#[derive(Debug, Deserialize, Serialize)]
struct User {
    id: u64,
    name: String,
    email: String,
}

/// A redis-server, the Upstash front on it, the upstream, and the Worker bound to the front.
struct Setup {
    redis: RedisServer,
    _front: UpstashFront,
    upstream: Upstream,
    worker: Arc<Worker>,
}

impl Setup {
    async fn start() -> Setup {
        let redis = RedisServer::start();
        let front = UpstashFront::start(&redis.url(), UPSTASH_TOKEN).await;
        let upstream = Upstream::start([]).await;
        let worker = Worker::start_with(
            &upstream.url(),
            &[
                ("UPSTASH_URL", front.url().as_str()),
                ("UPSTASH_TOKEN", UPSTASH_TOKEN),
            ],
            None,
        )
        .await;
        Setup {
            redis,
            _front: front,
            upstream,
            worker: Arc::new(worker),
        }
    }

    /// The native process's store: the Redis (TCP) store on the same redis-server.
    fn native_store(&self) -> DynStore {
        Arc::new(RedisStore::from_url(&self.redis.url()).expect("the Redis store"))
    }

    /// Every key in Redis matching `pattern`, sorted.
    async fn keys(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(self.redis.url()).expect("redis url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis");
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut connection)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }

    fn upstream_paths(&self) -> Vec<String> {
        self.upstream.seen().into_iter().map(|s| s.path).collect()
    }
}

/// The Worker's `/shared/cached/users/{id}` stitch, declared natively.
fn native_cached(upstream: &str, store: DynStore) -> Stitch<User> {
    Stitch::get(format!("{upstream}/users/{{id}}"))
        .name("shared-cached-user")
        .output::<User>()
        .cache(Cache::ttl("5m"))
        .store(store)
        .build()
        .expect("the native cached stitch")
}

/// The Worker's `/shared/throttle/{id}` stitch, declared natively.
fn native_throttled(upstream: &str, store: DynStore) -> Stitch<User> {
    Stitch::get(format!("{upstream}/users/{{id}}"))
        .name("shared-throttled-user")
        .output::<User>()
        .throttle("10/s")
        .timeout(Timeout::total(Duration::from_secs(20)))
        .store(store)
        .build()
        .expect("the native throttled stitch")
}

#[tokio::test]
async fn cache_on_upstash_is_shared_between_the_worker_and_a_native_process() {
    let setup = Setup::start().await;
    let native = native_cached(&setup.upstream.url(), setup.native_store());

    // The native process fills, the Worker hits.
    let reply = native
        .call_detailed(Input::new().param("id", "7"))
        .await
        .expect("the native call");
    assert!(
        !reply.served.is_from_cache(),
        "the first call hit an empty cache"
    );
    assert_eq!(setup.upstream_paths(), ["/users/7"]);
    let (status, body) = setup.worker.get("/shared/cached/users/7").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["user"].clone(), body["from_cache"].clone()),
        (user(7), true.into()),
        "the Worker missed what the native process cached: {body}"
    );
    assert_eq!(setup.upstream_paths(), ["/users/7"]);

    // The Worker fills, the native process hits.
    let (status, body) = setup.worker.get("/shared/cached/users/8").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["user"].clone(), body["from_cache"].clone()),
        (user(8), false.into())
    );
    assert_eq!(setup.upstream_paths(), ["/users/7", "/users/8"]);
    let reply = native
        .call_detailed(Input::new().param("id", "8"))
        .await
        .expect("the native call");
    assert!(
        reply.served.is_from_cache(),
        "the native process missed what the Worker cached"
    );
    assert_eq!(reply.data.id, 8);
    assert_eq!(setup.upstream_paths(), ["/users/7", "/users/8"]);

    // One entry per user, under the stitch's name, in the core's key layout: both sides wrote
    // and read the same keys.
    let entries = setup.keys("cache:k2:*").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        assert!(
            entry.starts_with("cache:k2:g0.0.shared-cached-user:"),
            "{entries:?}"
        );
    }
}

#[tokio::test]
async fn throttle_on_upstash_is_shared_between_the_worker_and_a_native_process() {
    let setup = Setup::start().await;
    let native = Arc::new(native_throttled(
        &setup.upstream.url(),
        setup.native_store(),
    ));
    // Ten calls from the native process and ten through the Worker, all at once.
    let native_calls: Vec<_> = (0..10)
        .map(|i| {
            let native = native.clone();
            tokio::spawn(async move {
                native
                    .call(Input::new().param("id", (100 + i).to_string()))
                    .await
                    .map(|user| user.id)
            })
        })
        .collect();
    let worker_calls: Vec<_> = (0..10)
        .map(|i| {
            let worker = setup.worker.clone();
            tokio::spawn(async move { worker.get(&format!("/shared/throttle/{}", 200 + i)).await })
        })
        .collect();
    for call in native_calls {
        call.await
            .expect("a native call")
            .expect("the native call succeeded");
    }
    for call in worker_calls {
        let (status, body) = call.await.expect("a Worker call");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ok"], true, "{body}");
    }

    let mut arrivals: Vec<_> = setup
        .upstream
        .seen()
        .into_iter()
        .map(|seen| (seen.at, seen.path))
        .collect();
    assert_eq!(arrivals.len(), 20, "{arrivals:?}");
    arrivals.sort();
    let from_worker = |path: &str| path.starts_with("/users/2");
    assert_eq!(
        arrivals
            .iter()
            .filter(|(_, path)| from_worker(path))
            .count(),
        10
    );
    let first = arrivals[0].0;
    let spacing = Duration::from_millis(100);
    // Grants are exact in Redis; what the upstream sees adds each side's timer and fetch
    // jitter, and the two sides' clocks (the same machine's).
    let noise = Duration::from_millis(25);
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1].0 - w[0].0).collect();
    for (i, (at, path)) in arrivals.iter().enumerate() {
        let due = spacing * i as u32;
        assert!(
            *at - first + noise >= due,
            "request {i} ({path}) arrived {:?} after the first, before its slot at {due:?}; gaps {gaps:?}",
            *at - first
        );
    }
    // A request delivered late shortens the gap to the next one, which left on time: the rate
    // is checked over one-second windows (10 arrivals plus the edge), not on single gaps.
    for (i, (start, _)) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|(at, _)| *at - *start < Duration::from_secs(1))
            .count();
        assert!(
            within <= 11,
            "{within} requests within a second from request {i}; gaps {gaps:?}"
        );
    }
    let min_gap = gaps.iter().min().copied().unwrap_or_default();
    let span = arrivals[19].0 - first;
    assert!(
        span < Duration::from_millis(1900) + Duration::from_secs(2),
        "{span:?}"
    );
    // Both sides paced on one cell: the stitch's name under the throttle prefix.
    assert_eq!(setup.keys("rl:*").await, ["rl:shared-throttled-user"]);
    let order: String = arrivals
        .iter()
        .map(|(_, path)| if from_worker(path) { 'W' } else { 'N' })
        .collect();
    eprintln!(
        "10/s shared on Upstash/Redis by the Worker and a native process: 20 arrivals over {span:?}, \
         min gap {min_gap:?}, order {order}"
    );
}
