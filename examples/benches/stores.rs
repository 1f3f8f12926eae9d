//! Deno KV over KV Connect (`denokv serve`) next to Redis (`redis-server`), both started here
//! on free loopback ports, on the same machine in the same run:
//!
//! 1. compare-and-set increment under contention: 1, 4 and 16 concurrent incrementers on one
//!    key, each with its own client (one store each, as separate processes would have): ops/s
//!    and, for Deno KV, the mean compare-and-set races lost per op
//!    ([`DenoKvStore::races_lost`]); next to raw `INCR` (redis-rs) and
//!    `RedisStore::increment` (a Lua script), with the ratios;
//! 2. a throttled call's store round trips and latency: one seam throttled on each store,
//!    sequential calls to a loopback upstream; HTTP requests to denokv counted by a counting
//!    transport, commands sent to Redis by its slow log set to log every command (no
//!    `MONITOR`; each command one round trip, those run inside scripts left out).
//!
//! `cargo bench -p stitchapi-examples --bench stores`

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Denokv, RedisServer};
use futures_util::future::join_all;
use stitchapi::store::StitchStore;
use stitchapi::throttle::Throttle;
use stitchapi::transport::{
    DynTransport, ReqwestTransport, Transport, TransportError, TransportRequest,
};
use stitchapi::{Input, MemoryStore, Retry, Seam, Stitch};
use stitchapi_deno_kv::{DenoKvStore, KvConnect};
use stitchapi_examples::fleet::FleetUpstream;
use stitchapi_redis::RedisStore;

/// How long each contention level runs.
const RUN: Duration = Duration::from_secs(2);
const CONTENDERS: [usize; 3] = [1, 4, 16];
/// The window of the counters (`RedisStore` and `DenoKvStore` keep a TTL'd counter).
const WINDOW: Duration = Duration::from_secs(600);
/// Sequential throttled calls measured per store, after `WARM_UP` unmeasured ones.
const CALLS: usize = 300;
const WARM_UP: usize = 20;

/// The reqwest transport, counting the requests it sends to each path.
#[derive(Debug)]
struct Counting {
    inner: DynTransport,
    requests: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Counting {
    fn requests(&self) -> BTreeMap<String, u64> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Transport for Counting {
    async fn send(
        &self,
        request: TransportRequest,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let path = request.url.path().to_owned();
        *self.requests.lock().unwrap().entry(path).or_default() += 1;
        self.inner.send(request).await
    }
}

/// What one contention run achieved.
struct Contention {
    ops: usize,
    failed: usize,
    elapsed: Duration,
    races_lost: Option<u64>,
}

impl Contention {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// `n` tasks, each incrementing `key` through `increment` on its own client, for [`RUN`].
async fn contend<C, F>(
    clients: Vec<C>,
    increment: impl Fn(C) -> F + Copy + Send + 'static,
) -> (usize, usize, Duration)
where
    C: Clone + Send + 'static,
    F: Future<Output = bool> + Send + 'static,
{
    let started = Instant::now();
    let until = started + RUN;
    let tasks = clients.into_iter().map(|client| {
        tokio::spawn(async move {
            let (mut ops, mut failed) = (0, 0);
            while Instant::now() < until {
                if increment(client.clone()).await {
                    ops += 1;
                } else {
                    failed += 1;
                }
            }
            (ops, failed)
        })
    });
    let results = join_all(tasks).await;
    let elapsed = started.elapsed();
    let (ops, failed) = results
        .into_iter()
        .map(|result| result.expect("an incrementer panicked"))
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    (ops, failed, elapsed)
}

async fn raw_incr(redis: &RedisServer, n: usize, key: &'static str) -> Contention {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connections = Vec::new();
    for _ in 0..n {
        connections.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    let (ops, failed, elapsed) = contend(connections, move |mut connection| async move {
        redis::cmd("INCR")
            .arg(key)
            .query_async::<i64>(&mut connection)
            .await
            .is_ok()
    })
    .await;
    Contention {
        ops,
        failed,
        elapsed,
        races_lost: None,
    }
}

async fn store_increments<S: StitchStore + 'static>(
    stores: Vec<Arc<S>>,
    key: &'static str,
) -> (usize, usize, Duration) {
    for store in &stores {
        // Connect (and, for KV Connect, exchange metadata) before the clock starts.
        store.get("warm-up").await.unwrap();
    }
    contend(stores, move |store| async move {
        store.increment(key, Some(WINDOW)).await.is_ok()
    })
    .await
}

async fn redis_store(redis: &RedisServer, n: usize, key: &'static str) -> Contention {
    let stores = (0..n)
        .map(|_| Arc::new(RedisStore::from_url(&redis.url()).unwrap()))
        .collect();
    let (ops, failed, elapsed) = store_increments(stores, key).await;
    Contention {
        ops,
        failed,
        elapsed,
        races_lost: None,
    }
}

async fn deno_kv(denokv: &Denokv, n: usize, key: &'static str) -> Contention {
    let stores: Vec<Arc<DenoKvStore>> = (0..n)
        .map(|_| Arc::new(DenoKvStore::connect(&denokv.url(), denokv.token.as_str()).unwrap()))
        .collect();
    let (ops, failed, elapsed) = store_increments(stores.clone(), key).await;
    Contention {
        ops,
        failed,
        elapsed,
        races_lost: Some(stores.iter().map(|store| store.races_lost()).sum()),
    }
}

fn print_contention(label: &str, run: &Contention, peers: &[(&str, &Contention)]) {
    print!(
        "  {label:<26} {:>8.0} ops/s  ({} ops, {} failed)",
        run.rate(),
        run.ops,
        run.failed
    );
    if let Some(lost) = run.races_lost {
        print!("  races lost/op {:.2}", lost as f64 / run.ops.max(1) as f64);
    }
    for (name, peer) in peers {
        print!("  {:.3}x {name}", run.rate() / peer.rate());
    }
    println!();
}

/// Starts counting the commands clients send to Redis: its slow log, set to log every
/// command (a command run inside a Lua script is logged too, under the client `?:0`, and left
/// out of [`redis_commands`]), emptied.
async fn count_redis_commands(admin: &mut redis::aio::MultiplexedConnection) {
    for (name, value) in [
        ("slowlog-log-slower-than", "0"),
        ("slowlog-max-len", "1000000"),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async::<()>(admin)
            .await
            .unwrap();
    }
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async::<()>(admin)
        .await
        .unwrap();
}

/// The commands clients sent since [`count_redis_commands`], by name: one round trip each
/// (`SLOWLOG` and `CONFIG`, this bench's own, and commands run inside scripts left out).
async fn redis_commands(admin: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    type Entry = (i64, i64, i64, Vec<Vec<u8>>, String, String);
    let log: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(admin)
        .await
        .unwrap();
    let mut commands = BTreeMap::new();
    for (_, _, _, args, client, _) in log {
        let name = String::from_utf8_lossy(&args[0]).to_lowercase();
        if client != "?:0" && name != "slowlog" && name != "config" {
            *commands.entry(name).or_default() += 1;
        }
    }
    commands
}

/// What happened between two counts, per call: the total and each name's share.
fn per_call_counts(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> (f64, String) {
    let mut total = 0;
    let mut names = Vec::new();
    for (name, count) in after {
        let delta = count - before.get(name).copied().unwrap_or(0);
        if delta > 0 {
            total += delta;
            names.push(format!("{name} {:.2}", delta as f64 / CALLS as f64));
        }
    }
    (total as f64 / CALLS as f64, names.join(", "))
}

/// A `GET /hit` throttled on `store`, warmed up (connected, scripts loaded, metadata
/// exchanged).
async fn throttled(store: Arc<dyn StitchStore>, upstream: &FleetUpstream) -> Stitch {
    let api = Seam::builder(upstream.url())
        .retry(Retry::none())
        // Far above what one caller reaches: every call reserves, none waits.
        .throttle(Throttle::new("100000/s"))
        .store(store)
        .build()
        .unwrap();
    let hit = api.get("/hit").build().unwrap();
    for _ in 0..WARM_UP {
        hit.call(Input::new()).await.unwrap();
    }
    hit
}

/// Per-call latency of `CALLS` sequential calls.
async fn per_call(hit: &Stitch) -> Duration {
    let started = Instant::now();
    for _ in 0..CALLS {
        hit.call(Input::new()).await.unwrap();
    }
    started.elapsed() / CALLS as u32
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let redis = RedisServer::start();
    let denokv = Denokv::start();

    println!(
        "compare-and-set increment on one key, {RUN:?} per run, one client per incrementer \
         (redis-server and denokv serve on this machine)"
    );
    let keys: [&str; 3] = ["hits-1", "hits-4", "hits-16"];
    for (n, key) in CONTENDERS.into_iter().zip(keys) {
        println!("{n} concurrent incrementer(s):");
        let incr = raw_incr(&redis, n, key).await;
        print_contention("redis INCR (redis-rs)", &incr, &[]);
        let store = redis_store(&redis, n, key).await;
        print_contention("RedisStore::increment", &store, &[("INCR", &incr)]);
        let deno = deno_kv(&denokv, n, key).await;
        print_contention(
            "DenoKvStore::increment",
            &deno,
            &[("INCR", &incr), ("RedisStore", &store)],
        );
    }

    println!(
        "\na throttled call (\"100000/s\", so it never waits): store round trips and latency, \
         {CALLS} sequential calls to a loopback upstream"
    );
    let upstream = FleetUpstream::start().await.unwrap();
    let memory = per_call(&throttled(Arc::new(MemoryStore::new()), &upstream).await).await;
    println!(
        "  {:<26} {:>4} round trips/call  {:>9.1?}/call",
        "MemoryStore", 0, memory
    );

    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let hit = throttled(
        Arc::new(RedisStore::from_url(&redis.url()).unwrap()),
        &upstream,
    )
    .await;
    let on_redis = per_call(&hit).await;
    // Counted over as many calls again, so that logging every command does not slow the
    // measured ones.
    count_redis_commands(&mut admin).await;
    per_call(&hit).await;
    let (redis_trips, commands) =
        per_call_counts(&BTreeMap::new(), &redis_commands(&mut admin).await);
    println!(
        "  {:<26} {redis_trips:>4.2} round trips/call  {on_redis:>9.1?}/call  ({commands})",
        "RedisStore (commands)"
    );

    let counting = Arc::new(Counting {
        inner: Arc::new(ReqwestTransport::new()),
        requests: Default::default(),
    });
    let options = KvConnect::new(&denokv.url(), denokv.token.as_str())
        .unwrap()
        .with_transport(counting.clone());
    let hit = throttled(Arc::new(DenoKvStore::remote(options)), &upstream).await;
    let before = counting.requests();
    let on_deno = per_call(&hit).await;
    let (deno_trips, paths) = per_call_counts(&before, &counting.requests());
    println!(
        "  {:<26} {deno_trips:>4.2} round trips/call  {on_deno:>9.1?}/call  ({paths})",
        "DenoKvStore (HTTP requests)"
    );
    println!(
        "  Deno KV / Redis: {:.2}x the round trips, {:.2}x the latency per call",
        deno_trips / redis_trips,
        on_deno.as_secs_f64() / on_redis.as_secs_f64()
    );
}
