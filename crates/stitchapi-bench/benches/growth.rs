//! How stitchapi's costs grow: throughput against concurrency (1 to 256 callers) next to bare
//! reqwest; the memory store's and the response cache's lookup cost, resident memory and
//! eviction cost at 1k, 100k and 1M entries; and a sustained mixed load (cached, throttled,
//! retried and failing calls from 64 callers) that reports throughput every 10 s, resident
//! memory at start and end, and the calls that neither returned nor failed.
//!
//! `cargo bench -p stitchapi-bench --bench growth`; the mixed load runs for 2 minutes unless
//! `STITCHAPI_SOAK_SECS` says otherwise (e.g. `STITCHAPI_SOAK_SECS=20`).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{HeaderMap, Method};
use stitchapi::cache::bench_support::BenchCache;
use stitchapi::store::{MemoryStore, StitchStore};
use stitchapi::testing::ManualClock;
use stitchapi::throttle::Throttle;
use stitchapi::time::SystemClock;
use stitchapi::{Backoff, Cache, Input, Retry, Stitch, Timeout};
use stitchapi_bench::clients::{Clients, Peer};
use stitchapi_bench::stats::median;
use stitchapi_bench::upstream::Upstream;
use stitchapi_bench::{BODY, User, machine, report};
use url::Url;

/// Timed rounds per concurrency level (after one warm-up round).
const ROUNDS: usize = 5;
/// Calls per side per round (split across the callers).
const CALLS: usize = 2_000;
/// The store and cache sizes.
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Timed lookups per size.
const LOOKUPS: usize = 200_000;
/// Per-op cost growth from 1k to 1M entries above which a row is flagged: log2 grows 2x over
/// that range; a hash map's O(1) lookups still slow down with cache misses, so up to twice
/// that (4x) is not taken as worse than O(log n).
const FLAG_GROWTH: f64 = 4.0;
/// Callers of the mixed load.
const SOAK_CALLERS: usize = 64;
/// A call of the mixed load that takes longer than this has hung.
const DEADLINE: Duration = Duration::from_secs(15);

/// A deterministic xorshift sequence (the benchmark must not depend on a seed from the OS).
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rss() -> u64 {
    machine::rss_bytes().unwrap_or(0)
}

fn main() {
    let soak = std::env::var("STITCHAPI_SOAK_SECS")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .expect("STITCHAPI_SOAK_SECS: a whole number of seconds, e.g. 120")
        })
        .map_or(Duration::from_secs(120), Duration::from_secs);
    let upstream = Upstream::start(2);
    println!("# stitchapi growth benchmark");
    println!();
    println!("machine: {}", machine::describe());
    println!(
        "versions: {}",
        report::versions(&["stitchapi", "reqwest", "tokio", "hyper", "axum"]).join(", ")
    );
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        concurrency(&upstream).await;
        memory_store().await;
        response_cache().await;
        mixed_load(&upstream, soak).await;
    });
    println!();
    println!("run took {:.0} s", started.elapsed().as_secs_f64());
}

/// Throughput of stitchapi and bare reqwest at 1, 2, 4, ..., 256 callers.
async fn concurrency(upstream: &Upstream) {
    println!();
    println!("## Throughput vs concurrency (loopback upstream, {ROUNDS} rounds per row, median)");
    println!();
    println!("| callers | stitchapi calls/s | reqwest calls/s | ratio |");
    println!("|---|---|---|---|");
    let clients = Arc::new(Clients::new(&upstream.base, "users"));
    let peers = [Peer::Stitchapi, Peer::Reqwest];
    let mut ratios = Vec::new();
    for callers in (0..=8).map(|power| 1usize << power) {
        let per_caller = (CALLS / callers).max(10);
        let mut rates = [Vec::new(), Vec::new()];
        let mut round_ratios = Vec::new();
        for round in 0..=ROUNDS {
            let mut rate = [0.0; 2];
            for side in [round % 2, 1 - round % 2] {
                let start = Instant::now();
                let tasks: Vec<_> = (0..callers)
                    .map(|_| {
                        let clients = clients.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_caller {
                                black_box(clients.call(peers[side], "7").await.expect("a call"));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("a caller");
                }
                rate[side] = (callers * per_caller) as f64 / start.elapsed().as_secs_f64();
            }
            if round > 0 {
                rates[0].push(rate[0]);
                rates[1].push(rate[1]);
                round_ratios.push(rate[0] / rate[1]);
            }
        }
        let ratio = median(&mut round_ratios);
        ratios.push(ratio);
        println!(
            "| {callers} | {:.0} | {:.0} | {ratio:.2}x |",
            median(&mut rates[0]),
            median(&mut rates[1])
        );
    }
    let (first, last) = (ratios[0], ratios[ratios.len() - 1]);
    println!();
    println!(
        "ratio at 1 caller {first:.2}x, at 256 callers {last:.2}x: {}",
        if last + 0.03 < first {
            "the ratio FALLS as concurrency grows (target: it does not)"
        } else {
            "the ratio does not fall as concurrency grows (within 0.03)"
        }
    );
}

/// Per-op cost at each size, and a verdict on its growth from the smallest to the largest.
fn growth_verdict(name: &str, costs: &[f64]) {
    let growth = costs[costs.len() - 1] / costs[0];
    println!(
        "{name}: {growth:.2}x from 1k to 1M entries: {}",
        if growth > FLAG_GROWTH {
            "FLAG: grows faster than O(log n)"
        } else {
            "within O(log n)"
        }
    );
}

/// The memory store: `get` cost, resident memory, and the cost of writes that sweep expired
/// entries (its eviction: it has no entry cap; TTLs bound it).
async fn memory_store() {
    println!();
    println!(
        "## Memory store (`stitchapi::MemoryStore`; no entry cap: expired entries are swept, up to 64 per write)"
    );
    println!();
    println!(
        "| entries | get (ns/op) | set, overwrite (ns/op) | RSS growth (MiB) | bytes/entry | write sweeping 64 expired (ns/op) |"
    );
    println!("|---|---|---|---|---|---|");
    let (mut gets, mut sets, mut sweeps) = (Vec::new(), Vec::new(), Vec::new());
    let value = Bytes::from_static(BODY);
    for size in SIZES {
        let clock = ManualClock::new();
        let before = rss();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let ttl = Some(Duration::from_secs(60));
        for i in 0..size {
            store
                .set(&format!("bench:key:{i}"), Some(value.clone()), ttl)
                .now_or_never()
                .expect("ready")
                .expect("set");
        }
        let grown = rss().saturating_sub(before);
        let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
        let keys: Vec<String> = (0..10_000)
            .map(|_| format!("bench:key:{}", rng.below(size)))
            .collect();
        let get = per_op(LOOKUPS, |i| {
            black_box(
                store
                    .get(&keys[i % keys.len()])
                    .now_or_never()
                    .expect("ready")
                    .expect("get")
                    .expect("present"),
            );
        });
        let set = per_op(LOOKUPS, |i| {
            store
                .set(&keys[i % keys.len()], Some(value.clone()), ttl)
                .now_or_never()
                .expect("ready")
                .expect("set");
        });
        // Every entry expires; each new write then sweeps 64 expired ones (oldest first).
        clock.advance(Duration::from_secs(120));
        let writes = (size / 64).min(10_000);
        let sweep = per_op(writes, |i| {
            store
                .set(&format!("bench:new:{i}"), Some(value.clone()), ttl)
                .now_or_never()
                .expect("ready")
                .expect("set");
        });
        println!(
            "| {size} | {get:.0} | {set:.0} | {:.1} | {:.0} | {sweep:.0} |",
            mib(grown),
            grown as f64 / size as f64
        );
        gets.push(get);
        sets.push(set);
        sweeps.push(sweep);
        drop(keys);
        drop(store);
    }
    println!();
    growth_verdict("memory store get", &gets);
    growth_verdict("memory store set", &sets);
    growth_verdict("memory store write + sweep of 64 expired", &sweeps);
}

/// The response cache with its entry cap at the size: hit cost, resident memory, and the cost
/// of a miss that fills and evicts the least recently used entry once full.
async fn response_cache() {
    println!();
    println!("## Response cache (memory store, `Cache::ttl(\"1h\").entries(N)`, cap = N)");
    println!();
    println!(
        "| entries (= cap) | hit (ns/op) | RSS growth (MiB) | bytes/entry | miss + fill + LRU eviction when full (ns/op) |"
    );
    println!("|---|---|---|---|---|");
    let headers = HeaderMap::new();
    let (mut hits, mut evictions) = (Vec::new(), Vec::new());
    let url = |i: usize| {
        Url::parse(&format!(
            "https://api.example.com/users/{i}?fields=name,email"
        ))
        .expect("a url")
    };
    for size in SIZES {
        let before = rss();
        let clock = Arc::new(SystemClock::new());
        let store = Arc::new(MemoryStore::with_clock(clock.clone()));
        let cache =
            BenchCache::new(Cache::ttl("1h").entries(size), store.clone(), clock).expect("a cache");
        for i in 0..size {
            fill(&cache, &url(i), &headers).await;
        }
        let grown = rss().saturating_sub(before);
        let mut rng = Xorshift(0x2545_F491_4F6C_DD1D);
        let urls: Vec<Url> = (0..10_000).map(|_| url(rng.below(size))).collect();
        let hit = per_op(LOOKUPS, |i| {
            black_box(
                cache
                    .lookup(&Method::GET, &urls[i % urls.len()], &headers)
                    .now_or_never()
                    .expect("ready")
                    .expect("a hit"),
            );
        });
        // Full: every new key evicts the least recently used entry.
        let misses = 20_000;
        let fresh: Vec<Url> = (0..misses).map(|i| url(size + i)).collect();
        let start = Instant::now();
        for url in &fresh {
            fill(&cache, url, &headers).await;
        }
        let eviction = start.elapsed().as_nanos() as f64 / misses as f64;
        assert!(
            store.len() <= size + 64,
            "the cap holds: {} entries for a cap of {size}",
            store.len()
        );
        println!(
            "| {size} | {hit:.0} | {:.1} | {:.0} | {eviction:.0} |",
            mib(grown),
            grown as f64 / size as f64
        );
        hits.push(hit);
        evictions.push(eviction);
    }
    println!();
    growth_verdict("cache hit", &hits);
    growth_verdict("cache miss + fill + eviction", &evictions);
}

async fn fill(cache: &BenchCache, url: &Url, headers: &HeaderMap) {
    cache
        .read_through(&Method::GET, url, headers, || async {
            Ok(Bytes::from_static(BODY))
        })
        .await
        .expect("a fill");
}

/// Mean ns per call of `op(i)` over `n` calls, after a warm-up of a tenth.
fn per_op(n: usize, mut op: impl FnMut(usize)) -> f64 {
    for i in 0..n / 10 {
        op(i);
    }
    let start = Instant::now();
    for i in 0..n {
        op(i);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// What the mixed load counts.
#[derive(Default)]
struct Tally {
    started: AtomicU64,
    returned: AtomicU64,
    failed_as_expected: AtomicU64,
    failed_unexpectedly: AtomicU64,
    hung: AtomicU64,
}

/// 64 callers, each cycling through a cached, a throttled, a retried and a failing call, for
/// `duration`; every call under a deadline.
async fn mixed_load(upstream: &Upstream, duration: Duration) {
    println!();
    println!(
        "## Sustained mixed load: {SOAK_CALLERS} callers for {} s (cached, throttled at 2000/s, retried once, failing 500), per-call deadline {} s",
        duration.as_secs(),
        DEADLINE.as_secs()
    );
    println!();
    let base = &upstream.base;
    let policy = || Retry::attempts(3).backoff(Backoff::Fixed).base("1ms");
    let cached = Stitch::get(format!("{base}/cached/{{key}}"))
        .output::<User>()
        .cache(Cache::ttl("1s").entries(1_000))
        .retry(policy())
        .timeout(Timeout::total("10s").each("4s"))
        .build()
        .expect("cached");
    let throttled = Stitch::get(format!("{base}/users/{{key}}"))
        .output::<User>()
        .throttle(Throttle::new("2000/s"))
        .retry(policy())
        .timeout(Timeout::total("10s").each("4s"))
        .build()
        .expect("throttled");
    let retried = Stitch::get(format!("{base}/flaky/{{key}}"))
        .output::<User>()
        .retry(policy())
        .timeout(Timeout::total("10s").each("4s"))
        .build()
        .expect("retried");
    let failing = Stitch::get(format!("{base}/fail"))
        .output::<User>()
        .retry(policy())
        .timeout(Timeout::total("10s").each("4s"))
        .build()
        .expect("failing");
    let stitches = Arc::new([cached, throttled, retried, failing]);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next_key = Arc::new(AtomicU64::new(0));
    let rss_start = rss();
    let start = Instant::now();
    let callers: Vec<_> = (0..SOAK_CALLERS)
        .map(|caller| {
            let (stitches, tally, stop, next_key) = (
                stitches.clone(),
                tally.clone(),
                stop.clone(),
                next_key.clone(),
            );
            tokio::spawn(async move {
                let mut kind = caller % 4;
                while !stop.load(Ordering::Relaxed) {
                    let n = next_key.fetch_add(1, Ordering::Relaxed);
                    let key = match kind {
                        0 => (n % 500).to_string(),
                        _ => format!("m{n}"),
                    };
                    tally.started.fetch_add(1, Ordering::Relaxed);
                    let outcome = tokio::time::timeout(
                        DEADLINE,
                        stitches[kind].call(Input::new().param("key", key)),
                    )
                    .await;
                    let counter = match (outcome, kind) {
                        (Err(_), _) => &tally.hung,
                        (Ok(Ok(_)), 3) => &tally.failed_unexpectedly,
                        (Ok(Ok(_)), _) => &tally.returned,
                        (Ok(Err(_)), 3) => &tally.failed_as_expected,
                        (Ok(Err(_)), _) => &tally.failed_unexpectedly,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    kind = (kind + 1) % 4;
                }
            })
        })
        .collect();
    println!("| window | calls | calls/s | RSS (MiB) |");
    println!("|---|---|---|---|");
    let window = Duration::from_secs(10).min(duration);
    let mut done_before = 0;
    let mut at = Duration::ZERO;
    while at < duration {
        let step = window.min(duration - at);
        tokio::time::sleep(step).await;
        at += step;
        let done = tally.returned.load(Ordering::Relaxed)
            + tally.failed_as_expected.load(Ordering::Relaxed)
            + tally.failed_unexpectedly.load(Ordering::Relaxed);
        println!(
            "| {:.0}-{:.0} s | {} | {:.0} | {:.1} |",
            (at - step).as_secs_f64(),
            at.as_secs_f64(),
            done - done_before,
            (done - done_before) as f64 / step.as_secs_f64(),
            mib(rss())
        );
        done_before = done;
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("a caller");
    }
    let elapsed = start.elapsed();
    let rss_end = rss();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let started = load(&tally.started);
    let settled =
        load(&tally.returned) + load(&tally.failed_as_expected) + load(&tally.failed_unexpectedly);
    // A call still pending past its deadline was counted in `hung`, not settled.
    let hung = started - settled;
    println!();
    println!(
        "{started} calls in {:.1} s ({:.0}/s): {} returned, {} failed as expected (500), {} failed unexpectedly, {hung} neither returned nor failed within {} s",
        elapsed.as_secs_f64(),
        started as f64 / elapsed.as_secs_f64(),
        load(&tally.returned),
        load(&tally.failed_as_expected),
        load(&tally.failed_unexpectedly),
        DEADLINE.as_secs()
    );
    println!(
        "RSS at start {:.1} MiB, at end {:.1} MiB ({:+.1} MiB)",
        mib(rss_start),
        mib(rss_end),
        mib(rss_end) - mib(rss_start)
    );
    assert_eq!(hung, 0, "calls that neither returned nor failed");
    assert_eq!(
        load(&tally.failed_unexpectedly),
        0,
        "calls that failed unexpectedly"
    );
}
