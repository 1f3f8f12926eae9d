//! Latency through the example Worker in workerd (miniflare 4), against a loopback upstream,
//! in one run: the upstream called directly, an uncached call through the Worker (a stitch
//! with retry, timeouts, bearer auth and typed output), a cache hit in Workers KV, and a call
//! throttled on the Durable Object store (one `reserve` subrequest per attempt), paced so that
//! it never waits for its turn.
//!
//! `cargo bench -p stitchapi-cloudflare --bench worker` (after `scripts/edge-tools`; set
//! `STITCHAPI_WORKER_BUILD` to a ready build, or the bench builds the Worker first).

use std::time::{Duration, Instant};

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{Upstream, Worker};

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Milliseconds per call of `call`, `n` times in a row, at most one call per `pace`.
async fn sample<F, Fut>(n: usize, pace: Duration, mut call: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        call().await;
        let took = started.elapsed();
        out.push(took.as_secs_f64() * 1e3);
        if took < pace {
            tokio::time::sleep(pace - took).await;
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let upstream = Upstream::start([]).await;
    let worker = Worker::start(&upstream.url()).await;
    let client = reqwest::Client::new();
    let direct_url = format!("{}/users/7", upstream.url());

    // Warm up every path once (the KV entry is written by the first cached call).
    for path in ["/users/7", "/cached/users/7", "/throttle/do/7"] {
        let (status, body) = worker.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    let n = 200;
    let direct = sample(n, Duration::ZERO, || async {
        let response = client.get(&direct_url).send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
    })
    .await;
    let uncached = sample(n, Duration::ZERO, || async {
        let (status, body) = worker.get("/users/7").await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
    let cached = sample(n, Duration::ZERO, || async {
        let (status, body) = worker.get("/cached/users/7").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["from_cache"], true, "{body}");
    })
    .await;
    // "10/s": one call every 120 ms never waits, so its latency is the call plus the store.
    let throttled = sample(30, Duration::from_millis(120), || async {
        let (status, body) = worker.get("/throttle/do/7").await;
        assert_eq!(status, 200, "{body}");
    })
    .await;

    let p50 = |v: &[f64]| percentile(v, 50);
    println!(
        "latency per call, ms (p50 / p99), sequential, loopback upstream, workerd via miniflare:"
    );
    println!(
        "  upstream directly (bare reqwest)        {:>6.2} / {:>6.2}",
        p50(&direct),
        percentile(&direct, 99)
    );
    println!(
        "  Worker, uncached stitch call            {:>6.2} / {:>6.2}",
        p50(&uncached),
        percentile(&uncached, 99)
    );
    println!(
        "  Worker, cache hit in Workers KV         {:>6.2} / {:>6.2}",
        p50(&cached),
        percentile(&cached, 99)
    );
    println!(
        "  Worker, throttled on the Durable Object {:>6.2} / {:>6.2}  (rate only: one reserve subrequest per attempt, by design)",
        p50(&throttled),
        percentile(&throttled, 99)
    );
    println!(
        "  the Worker adds {:.2} ms to an uncached call; a KV hit is {:.2}x the uncached call; the throttled call costs {:.2} ms more than the uncached one (another stitch: no auth, no retry; mostly the Durable Object round trip)",
        p50(&uncached) - p50(&direct),
        p50(&cached) / p50(&uncached),
        p50(&throttled) - p50(&uncached)
    );
}
