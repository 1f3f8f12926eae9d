//! stitchapi side by side with the clients a Rust user would pick instead, in one run, against
//! one loopback upstream, in interleaved rounds: `cargo bench -p stitchapi-bench --bench peers`.
//!
//! Rows: sequential p50/p99; throughput at 1, 32 and 128 concurrent callers; a call that needs
//! one real retry (503 then 200); a cache hit against http-cache-reqwest (moka); pacing at
//! 200/s against governor's `until_ready`; allocations, bytes and the largest allocation per
//! call (counted on the calling thread). Ratios are against bare reqwest, measured in the
//! same rounds.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use http::Method;
use http_cache_reqwest::{Cache, CacheMode, HttpCache, HttpCacheOptions, MokaManager};
use stitchapi::testing::{MockResponse, MockTransport};
use stitchapi::throttle::Throttle;
use stitchapi::{Input, Stitch};
use stitchapi_bench::alloc::{self, CountingAlloc, Counts};
use stitchapi_bench::clients::{Clients, Peer, RETRY_WAIT};
use stitchapi_bench::stats::{median, median_abs_deviation, quantile, stdev};
use stitchapi_bench::upstream::Upstream;
use stitchapi_bench::{User, machine, report};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Timed rounds per measurement (after one warm-up round).
const ROUNDS: usize = 10;
/// Sequential calls per peer per round.
const SEQUENTIAL: usize = 500;
/// Calls per peer per throughput round (split across the callers).
const THROUGHPUT_CALLS: usize = 2_000;
/// The concurrency levels of the throughput rows.
const CONCURRENCY: [usize; 3] = [1, 32, 128];
/// Retried calls per peer per round.
const RETRIED: usize = 100;
/// Cache hits per side per round.
const HITS: usize = 2_000;
/// The pacing rate and how long each side paces per round (two rounds each).
const RATE: u32 = 200;
const PACE_FOR: Duration = Duration::from_secs(3);
/// Calls per client whose allocations are counted.
const COUNTED: u64 = 1_000;

/// The peers in round `round`'s order (rotated, so no peer always goes first).
fn rotation(round: usize) -> impl Iterator<Item = (usize, Peer)> {
    (0..Peer::ALL.len()).map(move |i| {
        let index = (i + round) % Peer::ALL.len();
        (index, Peer::ALL[index])
    })
}

/// A call; bare reqwest retries by hand (once, after the same wait) when asked to.
async fn call(clients: &Clients, peer: Peer, key: &str, retry_by_hand: bool) -> User {
    match clients.call(peer, key).await {
        Ok(user) => user,
        Err(_) if retry_by_hand && peer == Peer::Reqwest => {
            tokio::time::sleep(RETRY_WAIT).await;
            clients.call(peer, key).await.expect("the retried call")
        }
        Err(e) => panic!("{peer}: {e}"),
    }
}

/// Per-call latencies in µs, per peer, over interleaved sequential rounds.
async fn sequential(
    clients: &Clients,
    calls: usize,
    keys: impl Fn() -> String,
    retry: bool,
) -> Vec<Vec<f64>> {
    let mut samples = vec![Vec::new(); Peer::ALL.len()];
    for round in 0..=ROUNDS {
        for (index, peer) in rotation(round) {
            for _ in 0..calls {
                let key = keys();
                let start = Instant::now();
                std::hint::black_box(call(clients, peer, &key, retry).await);
                if round > 0 {
                    samples[index].push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
    }
    samples
}

/// Calls/s per peer per round with `callers` concurrent callers.
async fn throughput(clients: &Arc<Clients>, callers: usize) -> Vec<Vec<f64>> {
    let per_caller = (THROUGHPUT_CALLS / callers).max(10);
    let mut rates = vec![Vec::new(); Peer::ALL.len()];
    for round in 0..=ROUNDS {
        for (index, peer) in rotation(round) {
            let start = Instant::now();
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let clients = clients.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_caller {
                            std::hint::black_box(call(&clients, peer, "7", false).await);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("a caller");
            }
            if round > 0 {
                rates[index].push((callers * per_caller) as f64 / start.elapsed().as_secs_f64());
            }
        }
    }
    rates
}

/// The median over rounds of each round's `peer / reqwest` ratio.
fn ratio_per_round(samples: &[Vec<f64>], peer: usize) -> f64 {
    let reqwest = Peer::ALL
        .iter()
        .position(|p| *p == Peer::Reqwest)
        .expect("reqwest");
    let mut ratios: Vec<f64> = samples[peer]
        .iter()
        .zip(&samples[reqwest])
        .map(|(ours, theirs)| ours / theirs)
        .collect();
    median(&mut ratios)
}

/// Grant instants of a pacer over `PACE_FOR`.
async fn pace<F: std::future::Future<Output = ()>>(mut grant: impl FnMut() -> F) -> Vec<Instant> {
    let mut grants = Vec::new();
    let start = Instant::now();
    while start.elapsed() < PACE_FOR {
        grant().await;
        grants.push(Instant::now());
    }
    grants
}

/// (achieved rate error %, gap stdev µs, median |gap − spacing| µs) of grant instants, the
/// first grant (which is not paced) excluded.
fn pacing_figures(runs: &[Vec<Instant>]) -> (f64, f64, f64) {
    let spacing = 1e6 / f64::from(RATE);
    let (mut intervals, mut span) = (0usize, 0.0);
    let mut gaps = Vec::new();
    for grants in runs {
        intervals += grants.len() - 1;
        span += grants[grants.len() - 1]
            .duration_since(grants[0])
            .as_secs_f64();
        gaps.extend(
            grants
                .windows(2)
                .map(|w| w[1].duration_since(w[0]).as_secs_f64() * 1e6),
        );
    }
    let rate = intervals as f64 / span;
    (
        (rate - f64::from(RATE)) / f64::from(RATE) * 100.0,
        stdev(&gaps),
        median_abs_deviation(&gaps, spacing),
    )
}

/// Counts of `COUNTED` sequential calls per client, on a current-thread runtime (this thread
/// only: the upstream runs elsewhere), after a warm-up. Returns per-peer counts, then the
/// cache-hit counts of stitchapi and http-cache-reqwest.
fn count_allocations(base: &str) -> (Vec<Counts>, [Counts; 2]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let clients = Clients::new(base, "users");
        let mut per_peer = Vec::new();
        for peer in Peer::ALL {
            for _ in 0..100 {
                call(&clients, peer, "7", false).await;
            }
            alloc::reset();
            for _ in 0..COUNTED {
                std::hint::black_box(call(&clients, peer, "7", false).await);
            }
            per_peer.push(alloc::counts());
        }
        let (stitch, peer) = cache_clients(base);
        let mut hits = [Counts::default(); 2];
        for (side, slot) in hits.iter_mut().enumerate() {
            for _ in 0..100 {
                cache_hit(&stitch, &peer, side).await;
            }
            alloc::reset();
            for _ in 0..COUNTED {
                std::hint::black_box(cache_hit(&stitch, &peer, side).await);
            }
            *slot = alloc::counts();
        }
        (per_peer, hits)
    })
}

/// A stitch with a 1 h cache and http-cache-reqwest over moka, both on `/cached/{key}`.
fn cache_clients(base: &str) -> (Stitch<User>, reqwest_middleware::ClientWithMiddleware) {
    let stitch = Stitch::get(format!("{base}/cached/{{key}}"))
        .output::<User>()
        .cache("1h")
        .build()
        .expect("a cached stitch");
    let peer = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(Cache(HttpCache {
            mode: CacheMode::Default,
            manager: MokaManager::default(),
            options: HttpCacheOptions::default(),
        }))
        .build();
    (stitch, peer)
}

/// One cache hit (side 0 stitchapi, 1 http-cache-reqwest) for key 7, decoded.
async fn cache_hit(
    stitch: &Stitch<User>,
    peer: &reqwest_middleware::ClientWithMiddleware,
    side: usize,
) -> User {
    if side == 0 {
        stitch
            .call(Input::new().param("key", "7"))
            .await
            .expect("a hit")
    } else {
        let url = format!("{}7", peer_prefix());
        let body = peer
            .get(url)
            .send()
            .await
            .expect("a hit")
            .bytes()
            .await
            .expect("the body");
        serde_json::from_slice(&body).expect("a user")
    }
}

static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn peer_prefix() -> &'static str {
    PREFIX.get().expect("set in main")
}

fn fmt_counts(c: Counts) -> String {
    format!(
        "{:.1} ({:.1} KB, largest {} B)",
        c.allocations as f64 / COUNTED as f64,
        c.bytes as f64 / COUNTED as f64 / 1000.0,
        c.largest
    )
}

fn main() {
    let upstream = Upstream::start(2);
    let base = upstream.base.clone();
    PREFIX.set(format!("{base}/cached/")).expect("once");
    println!("# stitchapi peer benchmark");
    println!();
    println!("machine: {}", machine::describe());
    println!(
        "versions: {}",
        report::versions(&[
            "stitchapi",
            "reqwest",
            "reqwest-middleware",
            "reqwest-retry",
            "tower",
            "http-cache-reqwest",
            "moka",
            "governor",
            "tokio",
            "hyper",
            "axum",
        ])
        .join(", ")
    );
    println!(
        "setup: loopback axum upstream on its own 2-thread runtime; clients on a 2-thread runtime; {ROUNDS} timed rounds after a warm-up, peers rotated each round; ratios are the median of per-round ratios vs bare reqwest"
    );
    let started = Instant::now();

    // Allocations first, on this thread, before the other runtimes exist.
    let (allocations, hit_allocations) = count_allocations(&base);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let clients = Arc::new(Clients::new(&base, "users"));
        let latency = sequential(&clients, SEQUENTIAL, || "7".to_owned(), false).await;
        let mut rates = Vec::new();
        for callers in CONCURRENCY {
            rates.push(throughput(&clients, callers).await);
        }

        let flaky = Clients::new(&base, "flaky");
        let next = std::sync::atomic::AtomicU64::new(0);
        let retried = sequential(
            &flaky,
            RETRIED,
            || {
                format!(
                    "k{}",
                    next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                )
            },
            true,
        )
        .await;

        let (stitch, peer) = cache_clients(&base);
        let (mut hits, mut peer_hits) = (Vec::new(), Vec::new());
        cache_hit(&stitch, &peer, 0).await;
        cache_hit(&stitch, &peer, 1).await;
        let served_before = upstream.cached_served();
        for round in 0..=ROUNDS {
            for side in [round % 2, 1 - round % 2] {
                let start = Instant::now();
                for _ in 0..HITS {
                    std::hint::black_box(cache_hit(&stitch, &peer, side).await);
                }
                let micros = start.elapsed().as_secs_f64() * 1e6 / HITS as f64;
                if round > 0 {
                    [&mut hits, &mut peer_hits][side].push(micros);
                }
            }
        }
        let refetched = upstream.cached_served() - served_before;
        assert_eq!(refetched, 0, "every timed cache call must be a hit");

        let mock = MockTransport::new();
        mock.route(Method::GET, "/paced", [MockResponse::status(200)]);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..2 {
            for side in [round % 2, 1 - round % 2] {
                if side == 0 {
                    let paced = Stitch::get("https://bench.example/paced")
                        .transport(Arc::new(mock.clone()))
                        .throttle(Throttle::new(format!("{RATE}/s")))
                        .build()
                        .expect("a throttled stitch");
                    ours.push(
                        pace(|| async {
                            paced
                                .call(Input::new())
                                .await
                                .map(drop)
                                .expect("a paced call")
                        })
                        .await,
                    );
                } else {
                    let limiter = RateLimiter::direct(
                        Quota::per_second(NonZeroU32::new(RATE).expect("non-zero"))
                            .allow_burst(NonZeroU32::MIN),
                    );
                    theirs.push(pace(|| limiter.until_ready()).await);
                }
            }
        }
        let pacing = [pacing_figures(&ours), pacing_figures(&theirs)];

        print_tables(
            &latency,
            &rates,
            &retried,
            (&mut hits, &mut peer_hits),
            pacing,
            &allocations,
            hit_allocations,
        );
    });
    println!();
    println!("run took {:.0} s", started.elapsed().as_secs_f64());
}

fn print_tables(
    latency: &[Vec<f64>],
    rates: &[Vec<Vec<f64>>],
    retried: &[Vec<f64>],
    (hits, peer_hits): (&mut Vec<f64>, &mut Vec<f64>),
    pacing: [(f64, f64, f64); 2],
    allocations: &[Counts],
    hit_allocations: [Counts; 2],
) {
    let p = |samples: &[f64], q: f64| quantile(&mut samples.to_vec(), q);
    let ratio_row = |name: &str, samples: &[Vec<f64>], q: Option<f64>| {
        let mut row = format!("| {name} |");
        for index in 0..Peer::ALL.len() {
            let cell = match q {
                // Latency: the ratio of the peers' quantiles over all rounds.
                Some(q) => p(&samples[index], q) / p(&samples[1], q),
                None => ratio_per_round(samples, index),
            };
            row += &format!(" {cell:.2}x |");
        }
        println!("{row}");
    };
    println!();
    println!("## Ratios vs bare reqwest (latency: lower is better; throughput: higher is better)");
    println!();
    let header: Vec<&str> = Peer::ALL.iter().map(|p| p.name()).collect();
    println!("| | {} |", header.join(" | "));
    println!("|---|---|---|---|---|");
    ratio_row("sequential p50 latency", latency, Some(0.5));
    ratio_row("sequential p99 latency", latency, Some(0.99));
    for (callers, samples) in CONCURRENCY.iter().zip(rates) {
        ratio_row(&format!("throughput, {callers} concurrent"), samples, None);
    }
    ratio_row("one real retry (503 then 200), p50", retried, Some(0.5));
    let bare = allocations[1].allocations as f64;
    let mut row = "| allocations per call |".to_owned();
    for c in allocations {
        row += &format!(" {:.2}x |", c.allocations as f64 / bare);
    }
    println!("{row}");

    println!();
    println!("## Raw figures");
    println!();
    println!("| | {} |", header.join(" | "));
    println!("|---|---|---|---|---|");
    let raw_row = |name: &str, cell: &dyn Fn(usize) -> String| {
        let cells: Vec<String> = (0..Peer::ALL.len()).map(cell).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    raw_row("sequential p50 / p99 (µs)", &|i| {
        format!("{:.1} / {:.1}", p(&latency[i], 0.5), p(&latency[i], 0.99))
    });
    for (callers, samples) in CONCURRENCY.iter().zip(rates) {
        raw_row(
            &format!("calls/s, {callers} concurrent (median round)"),
            &|i| format!("{:.0}", median(&mut samples[i].clone())),
        );
    }
    raw_row("one real retry p50 / p99 (µs)", &|i| {
        format!("{:.0} / {:.0}", p(&retried[i], 0.5), p(&retried[i], 0.99))
    });
    raw_row("allocations per call (bytes, largest)", &|i| {
        fmt_counts(allocations[i])
    });

    let (hit, peer_hit) = (median(hits), median(peer_hits));
    println!();
    println!("## Cache hit and pacing");
    println!();
    println!("| | stitchapi | peer | |");
    println!("|---|---|---|---|");
    println!(
        "| cache hit vs http-cache-reqwest (moka), typed decode included | {hit:.2} µs | {peer_hit:.2} µs | {:.1}x faster |",
        peer_hit / hit
    );
    println!(
        "| allocations per cache hit (bytes, largest) | {} | {} | |",
        fmt_counts(hit_allocations[0]),
        fmt_counts(hit_allocations[1])
    );
    let [
        (ours_error, ours_stdev, ours_mad),
        (theirs_error, theirs_stdev, theirs_mad),
    ] = pacing;
    println!(
        "| pacing at {RATE}/s vs governor `until_ready`: rate error | {ours_error:+.3}% | {theirs_error:+.3}% | |"
    );
    println!(
        "| pacing gap jitter: stdev / median abs deviation from 5000 µs | {ours_stdev:.0} / {ours_mad:.0} µs | {theirs_stdev:.0} / {theirs_mad:.0} µs | |"
    );
}
