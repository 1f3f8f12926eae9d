//! A fleet of 4 `fleet-worker` processes sharing one `"500/s"` throttle on a real Redis: the
//! achieved rate and how evenly the requests arrive at the upstream (spacing error p50/p99),
//! next to the same load paced by one process on the memory store in the same run (the best
//! this machine's timers and loopback allow).
//!
//! `cargo bench -p stitchapi-examples --bench fleet`

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{RedisServer, finish, fleet};
use futures_util::future::join_all;
use stitchapi::throttle::Throttle;
use stitchapi::{Input, MemoryStore, Seam};
use stitchapi_examples::fleet::{FleetUpstream, StorePlan, WorkerPlan};

const RATE: &str = "500/s";
const SPACING: Duration = Duration::from_millis(2);
const RUN: Duration = Duration::from_secs(3);
const PROCESSES: usize = 4;
const CALLERS: usize = 4;

struct Pacing {
    requests: usize,
    rate: f64,
    error_p50: Duration,
    error_p99: Duration,
    closest: Duration,
}

fn pacing(upstream: &FleetUpstream) -> Pacing {
    let mut at: Vec<Instant> = upstream.arrivals().iter().map(|a| a.at).collect();
    at.sort();
    let span = at[at.len() - 1] - at[0];
    let mut errors: Vec<Duration> = at
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).abs_diff(SPACING))
        .collect();
    errors.sort();
    let percentile = |p: f64| errors[((errors.len() - 1) as f64 * p).round() as usize];
    Pacing {
        requests: at.len(),
        rate: (at.len() - 1) as f64 / span.as_secs_f64(),
        error_p50: percentile(0.50),
        error_p99: percentile(0.99),
        closest: at.windows(2).map(|pair| pair[1] - pair[0]).min().unwrap(),
    }
}

fn print(label: &str, pacing: &Pacing, peer: Option<&Pacing>) {
    print!(
        "{label:<34} {:>5} requests  {:>7.1}/s  spacing error p50 {:>7.1?} p99 {:>7.1?}  closest {:>7.1?}",
        pacing.requests, pacing.rate, pacing.error_p50, pacing.error_p99, pacing.closest
    );
    match peer {
        Some(peer) => println!(
            "  rate {:.3}x, p99 error {:.2}x the single process",
            pacing.rate / peer.rate,
            pacing.error_p99.as_secs_f64() / peer.error_p99.as_secs_f64()
        ),
        None => println!(),
    }
}

async fn single_process() -> Pacing {
    let upstream = FleetUpstream::start().await.unwrap();
    let api = Seam::builder(upstream.url())
        .throttle(Throttle::new(RATE))
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    let hit = api.get("/hit").build().unwrap();
    let until = Instant::now() + RUN;
    join_all((0..PROCESSES * CALLERS).map(|_| async {
        while Instant::now() < until {
            hit.call(Input::new()).await.unwrap();
        }
    }))
    .await;
    pacing(&upstream)
}

async fn four_processes(server_time: bool) -> Pacing {
    let redis = RedisServer::start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = WorkerPlan::new("", StorePlan::redis(redis.url()), upstream.url(), "/hit")
        .with_rate(RATE)
        .with_server_time(server_time)
        .with_callers(CALLERS)
        .with_run_for_ms(RUN.as_millis() as u64)
        .with_timeout("10s");
    for calls in finish(fleet(&plan, PROCESSES).await).await {
        assert!(calls.iter().all(|call| call.ok));
    }
    pacing(&upstream)
}

#[tokio::main]
async fn main() {
    println!(
        "fleet pacing at {RATE} for {RUN:?} ({PROCESSES} processes x {CALLERS} callers vs one process with {} callers)",
        PROCESSES * CALLERS
    );
    let single = single_process().await;
    print("1 process, memory store", &single, None);
    let fleet = four_processes(false).await;
    print("4 processes, Redis", &fleet, Some(&single));
    let server_time = four_processes(true).await;
    print(
        "4 processes, Redis, server time",
        &server_time,
        Some(&single),
    );
}
