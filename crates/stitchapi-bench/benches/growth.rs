//! How stitchapi's costs grow: throughput against concurrency (1 to 256 callers) next to bare
//! reqwest; the memory store's and the response cache's per-op cost next to the bare data
//! structures they are built on (the floor), resident memory and eviction cost at 1k, 100k and
//! 1M entries; and a sustained mixed load (cached, throttled, retried and failing calls from 64
//! callers) that reports throughput and resident memory every 10 s and the calls that neither
//! returned nor failed.
//!
//! Every section runs in its own child process (this binary, re-run with
//! `STITCHAPI_GROWTH_SECTION` set), so each resident-memory reading starts from a fresh
//! process rather than from a heap that earlier sections grew and freed. The parent runs the
//! loopback upstream the children call, collects their output and prints the tables.
//!
//! `cargo bench -p stitchapi-bench --bench growth`; the mixed load runs for 2 minutes unless
//! `STITCHAPI_SOAK_SECS` says otherwise (e.g. `STITCHAPI_SOAK_SECS=20`).

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
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
use stitchapi_bench::baseline::{BareLru, BareTtlMap, SWEEP_LIMIT};
use stitchapi_bench::clients::{Clients, Peer};
use stitchapi_bench::stats::median;
use stitchapi_bench::upstream::Upstream;
use stitchapi_bench::{BODY, User, machine, report};
use url::Url;

/// Names the section a child process runs (unset in the parent).
const SECTION_ENV: &str = "STITCHAPI_GROWTH_SECTION";
/// The upstream's base URL, passed from the parent to the children.
const UPSTREAM_ENV: &str = "STITCHAPI_GROWTH_UPSTREAM";
/// A child's output line carrying a figure for the parent: `data <name> <value>`.
const DATA_PREFIX: &str = "data ";

/// Timed rounds per concurrency level (after one warm-up round).
const ROUNDS: usize = 5;
/// Calls per side per round (split across the callers).
const CALLS: usize = 2_000;
/// The store and cache sizes.
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Random keys drawn per size (over all of its entries) for the timed lookups.
const RANDOM_KEYS: usize = 200_000;
/// Timed store `get`s and `set`s per side per round.
const STORE_OPS: usize = 40_000;
/// Timed cache hits per side per round.
const HIT_OPS: usize = 10_000;
/// Timed cache misses (fill + eviction) per side per round.
const EVICT_OPS: usize = 4_000;
/// Timed sweeping writes per side, at every size.
const SWEEP_WRITES: usize = 10_000;
/// At most this many sweeping writes per batch (a batch runs on one population).
const SWEEP_BATCH: usize = 2_000;
/// Growth of stitchapi's cost relative to the floor, from 1k to 1M entries, above which a row
/// is flagged: the floor already pays the hash map's cache misses and the `BTreeMap`'s
/// O(log n); an extra O(log n) factor on top would add up to 2x (log2 n doubles over that
/// range), anything worse than that is flagged.
const FLAG_RELATIVE_GROWTH: f64 = 2.0;
/// Callers of the mixed load.
const SOAK_CALLERS: usize = 64;
/// A call of the mixed load that takes longer than this has hung.
const DEADLINE: Duration = Duration::from_secs(15);
/// Entries' TTL in the store sections (the sweep runs after twice this).
const STORE_TTL: Duration = Duration::from_secs(60);

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

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn rss() -> f64 {
    machine::rss_bytes().unwrap_or(0) as f64
}

/// What the single-threaded sections (store, cache) are timed on: this thread's CPU time
/// where the OS has it, since the machine is shared and time spent preempted by other
/// processes is not the code's cost; wall time elsewhere.
fn cpu_clock() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    machine::thread_cpu_time().unwrap_or_else(|| START.get_or_init(Instant::now).elapsed())
}

/// Hands a figure to the parent.
fn data(name: &str, value: f64) {
    println!("{DATA_PREFIX}{name} {value}");
}

fn main() {
    if let Ok(section) = std::env::var(SECTION_ENV) {
        run_section(&section);
        return;
    }
    let upstream = Upstream::start(2);
    println!("# stitchapi growth benchmark");
    println!();
    println!("machine: {}", machine::describe());
    println!(
        "versions: {}",
        report::versions(&["stitchapi", "reqwest", "tokio", "hyper", "axum"]).join(", ")
    );
    println!("every section below ran in its own process");
    let started = Instant::now();
    section("concurrency", &upstream);
    memory_store_tables(&upstream);
    response_cache_table(&upstream);
    section("mixed", &upstream);
    println!();
    println!("run took {:.0} s", started.elapsed().as_secs_f64());
}

/// The figures a child handed over.
struct Figures(HashMap<String, f64>);

impl Figures {
    fn get(&self, name: &str) -> f64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("the section did not report {name}"))
    }
}

/// Runs `name` in a child process (this binary again), printing its output as it comes and
/// collecting its `data` lines.
fn section(name: &str, upstream: &Upstream) -> Figures {
    let exe = std::env::current_exe().expect("the path of the bench binary");
    let mut child = Command::new(exe)
        .env(SECTION_ENV, name)
        .env(UPSTREAM_ENV, &upstream.base)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("a child process for the section");
    let stdout = child.stdout.take().expect("the child's stdout");
    let mut figures = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("the child's output");
        match line.strip_prefix(DATA_PREFIX) {
            Some(figure) => {
                let (key, value) = figure.split_once(' ').expect("`data <name> <value>`");
                figures.insert(key.to_owned(), value.parse().expect("a number"));
            }
            None => println!("{line}"),
        }
    }
    let status = child.wait().expect("the section's exit status");
    assert!(status.success(), "section {name} failed: {status}");
    Figures(figures)
}

/// What a child process runs.
fn run_section(section: &str) {
    let base = || std::env::var(UPSTREAM_ENV).expect("the parent passes the upstream's URL");
    let size = || {
        section
            .split_once(':')
            .and_then(|(_, size)| size.parse::<usize>().ok())
            .expect("a section `<name>:<entries>`")
    };
    match section.split(':').next() {
        Some("concurrency") => runtime().block_on(concurrency(&base())),
        Some("mixed") => {
            let soak = std::env::var("STITCHAPI_SOAK_SECS")
                .ok()
                .map(|s| {
                    s.parse::<u64>()
                        .expect("STITCHAPI_SOAK_SECS: a whole number of seconds, e.g. 120")
                })
                .map_or(Duration::from_secs(120), Duration::from_secs);
            runtime().block_on(mixed_load(&base(), soak));
        }
        Some("store") => memory_store(size()),
        Some("bare-store") => bare_store_memory(size()),
        Some("cache") => response_cache(size()),
        _ => panic!("unknown section {section:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Throughput of stitchapi and bare reqwest at 1, 2, 4, ..., 256 callers.
async fn concurrency(base: &str) {
    println!();
    println!("## Throughput vs concurrency (loopback upstream, {ROUNDS} rounds per row, median)");
    println!();
    println!("| callers | stitchapi calls/s | reqwest calls/s | ratio |");
    println!("|---|---|---|---|");
    let clients = Arc::new(Clients::new(base, "users"));
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

/// `ns (floor ns, ratio)` for a table cell.
fn cell(ours: f64, floor: f64) -> String {
    format!("{ours:.0} ({floor:.0}, {:.1}x)", ours / floor)
}

/// Prints how stitchapi's cost and the floor's grow from the smallest size to the largest,
/// and flags the row when stitchapi's cost grows faster than the floor's by more than
/// [`FLAG_RELATIVE_GROWTH`].
fn growth_verdict(name: &str, ours: &[f64], floor: &[f64]) {
    let last = ours.len() - 1;
    let (our_growth, floor_growth) = (ours[last] / ours[0], floor[last] / floor[0]);
    let relative = our_growth / floor_growth;
    println!(
        "- {name}: {our_growth:.2}x from 1k to 1M entries, the floor {floor_growth:.2}x; relative to the floor {relative:.2}x: {}",
        if relative > FLAG_RELATIVE_GROWTH {
            "FLAG: grows faster than the floor by more than O(log n)"
        } else {
            "grows with the floor (no worse than O(log n) on top of it)"
        }
    );
}

/// Times `ops` calls of `ours(i)` and `floor(i)` per round, the order alternating every round,
/// over [`ROUNDS`] rounds after a warm-up; the median ns per call of each.
fn interleaved(
    ops: usize,
    mut ours: impl FnMut(usize),
    mut floor: impl FnMut(usize),
) -> (f64, f64) {
    let (mut our_ns, mut floor_ns) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        for side in [round % 2, 1 - round % 2] {
            let start = cpu_clock();
            for i in round * ops..(round + 1) * ops {
                if side == 0 {
                    ours(i);
                } else {
                    floor(i);
                }
            }
            let ns = (cpu_clock() - start).as_nanos() as f64 / ops as f64;
            if round > 0 {
                [&mut our_ns, &mut floor_ns][side].push(ns);
            }
        }
    }
    (median(&mut our_ns), median(&mut floor_ns))
}

/// The memory store's two tables, one child process per size (and one per size for the
/// floor's resident memory).
fn memory_store_tables(upstream: &Upstream) {
    let runs: Vec<(Figures, Figures)> = SIZES
        .iter()
        .map(|size| {
            (
                section(&format!("store:{size}"), upstream),
                section(&format!("bare-store:{size}"), upstream),
            )
        })
        .collect();
    println!();
    println!(
        "## Memory store (`stitchapi::MemoryStore`; no entry cap: expired entries are swept, up to 64 per write)"
    );
    println!();
    println!(
        "Per op, ns of CPU time (this thread's, so time preempted by other processes is not counted): stitchapi (the floor: a bare `HashMap<String, Bytes>` + `BTreeMap` expiry index doing the same work, and the ratio). Random keys over all entries; {ROUNDS} interleaved rounds, median."
    );
    println!();
    println!("| entries | get | set, overwrite | write sweeping 64 expired entries |");
    println!("|---|---|---|---|");
    for (size, (ours, _)) in SIZES.iter().zip(&runs) {
        println!(
            "| {size} | {} | {} | {} |",
            cell(ours.get("get_ours"), ours.get("get_bare")),
            cell(ours.get("set_ours"), ours.get("set_bare")),
            cell(ours.get("sweep_ours"), ours.get("sweep_bare")),
        );
    }
    println!();
    for (name, key) in [
        ("get", "get"),
        ("set, overwrite", "set"),
        ("write sweeping 64 expired entries", "sweep"),
    ] {
        let ours: Vec<f64> = runs
            .iter()
            .map(|(f, _)| f.get(&format!("{key}_ours")))
            .collect();
        let floor: Vec<f64> = runs
            .iter()
            .map(|(f, _)| f.get(&format!("{key}_bare")))
            .collect();
        growth_verdict(name, &ours, &floor);
    }
    println!();
    println!(
        "Resident memory after filling N entries (90-byte values, 60 s TTL), each in a fresh process:"
    );
    println!();
    println!("| entries | RSS growth (MiB) | bytes/entry | the floor's bytes/entry |");
    println!("|---|---|---|---|");
    for (size, (ours, bare)) in SIZES.iter().zip(&runs) {
        let grown = ours.get("rss_growth");
        println!(
            "| {size} | {:.1} | {:.0} | {:.0} |",
            mib(grown),
            grown / *size as f64,
            bare.get("rss_growth") / *size as f64
        );
    }
}

fn store_key(i: usize) -> String {
    format!("bench:key:{i}")
}

/// A store on a manual clock holding `size` entries with [`STORE_TTL`].
fn filled_store(size: usize) -> (ManualClock, MemoryStore) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(Arc::new(clock.clone()));
    let value = Bytes::from_static(BODY);
    for i in 0..size {
        store
            .set(&store_key(i), Some(value.clone()), Some(STORE_TTL))
            .now_or_never()
            .expect("the memory store answers at once")
            .expect("set");
    }
    (clock, store)
}

/// The floor holding the same entries (its clock in milliseconds, now 0).
fn filled_floor(size: usize) -> BareTtlMap {
    let mut map = BareTtlMap::new();
    let value = Bytes::from_static(BODY);
    let ttl = STORE_TTL.as_millis() as u64;
    for i in 0..size {
        map.set(&store_key(i), value.clone(), ttl, 0);
    }
    map
}

/// Child: the memory store at `size` entries, its resident memory and, next to the floor,
/// `get`, overwrite and sweeping-write costs.
fn memory_store(size: usize) {
    let before = rss();
    let (_clock, store) = filled_store(size);
    data("rss_growth", rss() - before);
    let mut floor = filled_floor(size);
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let keys: Vec<String> = (0..RANDOM_KEYS)
        .map(|_| store_key(rng.below(size)))
        .collect();
    let key = |i: usize| keys[i % keys.len()].as_str();
    let value = Bytes::from_static(BODY);
    let (ours, bare) = interleaved(
        STORE_OPS,
        |i| {
            black_box(
                store
                    .get(key(i))
                    .now_or_never()
                    .expect("ready")
                    .expect("get")
                    .expect("present"),
            );
        },
        |i| {
            black_box(floor.get(key(i)).expect("present"));
        },
    );
    data("get_ours", ours);
    data("get_bare", bare);
    let ttl = STORE_TTL.as_millis() as u64;
    let (ours, bare) = interleaved(
        STORE_OPS,
        |i| {
            store
                .set(key(i), Some(value.clone()), Some(STORE_TTL))
                .now_or_never()
                .expect("ready")
                .expect("set");
        },
        |i| floor.set(key(i), value.clone(), ttl, 0),
    );
    data("set_ours", ours);
    data("set_bare", bare);
    drop((store, floor, keys));
    let (ours, bare) = sweeping_writes(size);
    data("sweep_ours", ours);
    data("sweep_bare", bare);
}

/// Child: the floor's resident memory at `size` entries, in a process of its own.
fn bare_store_memory(size: usize) {
    let before = rss();
    let floor = filled_floor(size);
    data("rss_growth", rss() - before);
    drop(floor);
}

/// A population of `size` expired entries and how many writes it has left that each sweep a
/// full [`SWEEP_LIMIT`].
struct Expired<T> {
    map: T,
    writes_left: usize,
}

/// ns per write that sweeps exactly [`SWEEP_LIMIT`] expired entries, for stitchapi and the
/// floor: [`SWEEP_WRITES`] writes per side (after a warm-up batch), in batches that alternate
/// between the two, each batch on a population of `size` entries that all expired (refilled,
/// untimed, when it has fewer than a batch of full sweeps left).
fn sweeping_writes(size: usize) -> (f64, f64) {
    let batch = (size / SWEEP_LIMIT).min(SWEEP_BATCH);
    let batches = SWEEP_WRITES.div_ceil(batch);
    let value = Bytes::from_static(BODY);
    let new_keys: Vec<String> = (0..(batches + 1) * batch)
        .map(|i| format!("bench:new:{i}"))
        .collect();
    let ttl = STORE_TTL.as_millis() as u64;
    // The floor's clock: entries written at 0 expire at `ttl`; the writes happen at `2 * ttl`.
    let now = 2 * ttl;
    let expired_store = || {
        let (clock, store) = filled_store(size);
        clock.advance(STORE_TTL * 2);
        Expired {
            map: store,
            writes_left: size / SWEEP_LIMIT,
        }
    };
    let expired_floor = || Expired {
        map: filled_floor(size),
        writes_left: size / SWEEP_LIMIT,
    };
    let (mut ours, mut floor) = (expired_store(), expired_floor());
    let (mut our_ns, mut floor_ns) = (0u128, 0u128);
    for round in 0..=batches {
        let keys = &new_keys[round * batch..(round + 1) * batch];
        if ours.writes_left < batch {
            drop(std::mem::replace(&mut ours, expired_store()));
        }
        if floor.writes_left < batch {
            drop(std::mem::replace(&mut floor, expired_floor()));
        }
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                let len = ours.map.len();
                let start = cpu_clock();
                for key in keys {
                    ours.map
                        .set(key, Some(value.clone()), Some(STORE_TTL))
                        .now_or_never()
                        .expect("ready")
                        .expect("set");
                }
                let ns = (cpu_clock() - start).as_nanos();
                // Every write dropped 64 expired entries and added one.
                assert_eq!(ours.map.len(), len - batch * (SWEEP_LIMIT - 1));
                ours.writes_left -= batch;
                if round > 0 {
                    our_ns += ns;
                }
            } else {
                let len = floor.map.len();
                let start = cpu_clock();
                for key in keys {
                    floor.map.set(key, value.clone(), now + ttl, now);
                }
                let ns = (cpu_clock() - start).as_nanos();
                assert_eq!(floor.map.len(), len - batch * (SWEEP_LIMIT - 1));
                floor.writes_left -= batch;
                if round > 0 {
                    floor_ns += ns;
                }
            }
        }
    }
    let writes = (batches * batch) as f64;
    (our_ns as f64 / writes, floor_ns as f64 / writes)
}

/// The response cache's table, one child process per size.
fn response_cache_table(upstream: &Upstream) {
    let runs: Vec<Figures> = SIZES
        .iter()
        .map(|size| section(&format!("cache:{size}"), upstream))
        .collect();
    println!();
    println!("## Response cache (memory store, `Cache::ttl(\"1h\").entries(N)`, cap = N)");
    println!();
    println!(
        "Per op, ns of CPU time: stitchapi (the floor: a bare TTL map and a `HashMap` + `BTreeMap` LRU keyed by the URL, and the ratio); RSS growth after filling N entries in a fresh process."
    );
    println!();
    println!(
        "| entries (= cap) | hit | miss + fill + LRU eviction when full | RSS growth (MiB) | bytes/entry |"
    );
    println!("|---|---|---|---|---|");
    for (size, run) in SIZES.iter().zip(&runs) {
        let grown = run.get("rss_growth");
        println!(
            "| {size} | {} | {} | {:.1} | {:.0} |",
            cell(run.get("hit_ours"), run.get("hit_bare")),
            cell(run.get("evict_ours"), run.get("evict_bare")),
            mib(grown),
            grown / *size as f64
        );
    }
    println!();
    for (name, key) in [("hit", "hit"), ("miss + fill + eviction", "evict")] {
        let ours: Vec<f64> = runs.iter().map(|f| f.get(&format!("{key}_ours"))).collect();
        let floor: Vec<f64> = runs.iter().map(|f| f.get(&format!("{key}_bare"))).collect();
        growth_verdict(name, &ours, &floor);
    }
}

fn cache_url(i: usize) -> Url {
    Url::parse(&format!(
        "https://api.example.com/users/{i}?fields=name,email"
    ))
    .expect("a url")
}

/// A cache miss: the fetch answers at once.
fn fill(cache: &BenchCache, url: &Url, headers: &HeaderMap) {
    cache
        .read_through(&Method::GET, url, headers, || async {
            Ok(Bytes::from_static(BODY))
        })
        .now_or_never()
        .expect("a fill over the memory store completes at once")
        .expect("a fill");
}

/// The floor's cache: the entry in a TTL map and the key in an LRU order.
struct FloorCache {
    map: BareTtlMap,
    lru: BareLru,
    cap: usize,
}

impl FloorCache {
    fn fill(&mut self, key: &str) {
        self.map.set(key, Bytes::from_static(BODY), u64::MAX, 0);
        if let Some(evicted) = self.lru.touch(key, self.cap) {
            self.map.remove(&evicted);
        }
    }

    fn hit(&mut self, key: &str) -> Bytes {
        let value = self.map.get(key).expect("a hit");
        self.lru.touch(key, self.cap);
        value
    }
}

/// Child: the response cache with its cap at `size`: resident memory, and next to the floor,
/// hit cost and the cost of a miss that fills and evicts the least recently used entry.
fn response_cache(size: usize) {
    let headers = HeaderMap::new();
    let before = rss();
    let clock = Arc::new(SystemClock::new());
    let store = Arc::new(MemoryStore::with_clock(clock.clone()));
    let cache =
        BenchCache::new(Cache::ttl("1h").entries(size), store.clone(), clock).expect("a cache");
    for i in 0..size {
        fill(&cache, &cache_url(i), &headers);
    }
    data("rss_growth", rss() - before);
    let mut floor = FloorCache {
        map: BareTtlMap::new(),
        lru: BareLru::new(),
        cap: size,
    };
    for i in 0..size {
        floor.fill(cache_url(i).as_str());
    }
    let mut rng = Xorshift(0x2545_F491_4F6C_DD1D);
    let urls: Vec<Url> = (0..RANDOM_KEYS)
        .map(|_| cache_url(rng.below(size)))
        .collect();
    let (ours, bare) = interleaved(
        HIT_OPS,
        |i| {
            black_box(
                cache
                    .lookup(&Method::GET, &urls[i % urls.len()], &headers)
                    .now_or_never()
                    .expect("ready")
                    .expect("a hit"),
            );
        },
        |i| {
            black_box(floor.hit(urls[i % urls.len()].as_str()));
        },
    );
    data("hit_ours", ours);
    data("hit_bare", bare);
    // Full: every new key evicts the least recently used entry.
    let fresh: Vec<Url> = (0..EVICT_OPS * (ROUNDS + 1))
        .map(|i| cache_url(size + i))
        .collect();
    let (ours, bare) = interleaved(
        EVICT_OPS,
        |i| fill(&cache, &fresh[i], &headers),
        |i| floor.fill(fresh[i].as_str()),
    );
    data("evict_ours", ours);
    data("evict_bare", bare);
    assert!(
        store.len() <= size + SWEEP_LIMIT,
        "the cap holds: {} entries for a cap of {size}",
        store.len()
    );
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

/// Child: 64 callers, each cycling through a cached, a throttled, a retried and a failing
/// call, for `duration`; every call under a deadline. Resident memory at the start (a fresh
/// process, the stitches built), after every 10 s window and at the end.
async fn mixed_load(base: &str, duration: Duration) {
    println!();
    println!(
        "## Sustained mixed load: {SOAK_CALLERS} callers for {} s (cached, throttled at 2000/s, retried once, failing 500), per-call deadline {} s",
        duration.as_secs(),
        DEADLINE.as_secs()
    );
    println!();
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
    println!("| window | calls | calls/s | RSS at its end (MiB) |");
    println!("|---|---|---|---|");
    let window = Duration::from_secs(10).min(duration);
    let mut done_before = 0;
    let mut at = Duration::ZERO;
    // (seconds since the start, calls settled so far, RSS) at the end of every window.
    let mut samples: Vec<(f64, u64, f64)> = Vec::new();
    while at < duration {
        let step = window.min(duration - at);
        tokio::time::sleep(step).await;
        at += step;
        let done = tally.returned.load(Ordering::Relaxed)
            + tally.failed_as_expected.load(Ordering::Relaxed)
            + tally.failed_unexpectedly.load(Ordering::Relaxed);
        let resident = rss();
        println!(
            "| {:.0}-{:.0} s | {} | {:.0} | {:.1} |",
            (at - step).as_secs_f64(),
            at.as_secs_f64(),
            done - done_before,
            (done - done_before) as f64 / step.as_secs_f64(),
            mib(resident)
        );
        samples.push((start.elapsed().as_secs_f64(), done, resident));
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
        "RSS at start {:.1} MiB, after the first window {:.1} MiB, at end {:.1} MiB",
        mib(rss_start),
        mib(samples[0].2),
        mib(rss_end)
    );
    // After the first window (connection pools, the cache's 500 keys and the allocator's
    // arenas warmed up), a leak shows as a samples slope.
    if samples.len() >= 2 {
        let slope = slope(samples.iter().map(|&(t, _, rss)| (t, rss)));
        let (first, last) = (samples[0], samples[samples.len() - 1]);
        let calls = (last.1 - first.1) as f64;
        println!(
            "after the first window: slope {:+.2} MiB/min (least squares over {} samples), {:+.1} MiB over {calls:.0} calls ({:+.1} bytes per call)",
            mib(slope) * 60.0,
            samples.len(),
            mib(last.2 - first.2),
            (last.2 - first.2) / calls.max(1.0)
        );
    }
    assert_eq!(hung, 0, "calls that neither returned nor failed");
    assert_eq!(
        load(&tally.failed_unexpectedly),
        0,
        "calls that failed unexpectedly"
    );
}

/// The least-squares slope of `points` (y per unit of x).
fn slope(points: impl Iterator<Item = (f64, f64)> + Clone) -> f64 {
    let n = points.clone().count() as f64;
    let (sx, sy) = points
        .clone()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}
