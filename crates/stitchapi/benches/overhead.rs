//! Per-call overhead of a stitch (retry, timeout, typed output) against a bare reqwest call
//! doing the same GET and serde_json decode, against the same loopback server, in one run.
//!
//! `cargo bench -p stitchapi --bench overhead`. Targets (issue 13): median latency ratio
//! ≤ 1.02; throughput at 1, 32 and 128 concurrent calls ≥ 0.97 of bare reqwest. Allocations
//! per call: the `allocations` bench.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use stitchapi::{Input, Retry, Stitch, Timeout};
use support::{User, median, serve};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = serve().await;
    let stitch = Stitch::get(format!("{base}/users/{{id}}"))
        .output::<User>()
        .retry(Retry::attempts(3))
        .timeout(Timeout::total("10s").each("4s"))
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let bare = {
        let client = client.clone();
        let base = base.clone();
        move |id: u64| {
            let client = client.clone();
            let url = format!("{base}/users/{id}");
            async move {
                let response = client
                    .get(url)
                    .timeout(Duration::from_secs(4))
                    .send()
                    .await
                    .unwrap();
                let body = response.bytes().await.unwrap();
                serde_json::from_slice::<User>(&body).unwrap()
            }
        }
    };

    // Sequential latency: interleaved rounds, alternating which side goes first, so drift
    // and cache effects hit both alike.
    let (rounds, per_round) = (20, 1_000);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        for side in [round % 2, 1 - round % 2] {
            for _ in 0..per_round {
                let start = Instant::now();
                if side == 0 {
                    stitch.call(Input::new().param("id", 7)).await.unwrap();
                } else {
                    bare(7).await;
                }
                // Round 0 warms both up.
                if round > 0 {
                    let micros = start.elapsed().as_secs_f64() * 1e6;
                    if side == 0 {
                        ours.push(micros)
                    } else {
                        theirs.push(micros)
                    }
                }
            }
        }
    }
    let (ours_p50, theirs_p50) = (median(&mut ours), median(&mut theirs));
    let p99 = |v: &[f64]| v[v.len() * 99 / 100];
    println!("sequential GET + decode, {} calls each:", ours.len());
    println!(
        "  stitchapi    p50 {ours_p50:.1} µs  p99 {:.1} µs",
        p99(&ours)
    );
    println!(
        "  bare reqwest p50 {theirs_p50:.1} µs  p99 {:.1} µs",
        p99(&theirs)
    );
    println!(
        "  median latency ratio (stitchapi / reqwest): {:.3}",
        ours_p50 / theirs_p50
    );

    // Throughput at 1, 32 and 128 concurrent calls: rounds alternate sides; the ratio is
    // taken per round.
    let stitch = Arc::new(stitch);
    for (concurrency, per_task, rounds) in [(1, 800, 20), (32, 25, 40), (128, 8, 40)] {
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=rounds {
            let mut rates = [0.0; 2];
            for side in [round % 2, 1 - round % 2] {
                let start = Instant::now();
                let tasks: Vec<_> = (0..concurrency)
                    .map(|_| {
                        let stitch = stitch.clone();
                        let bare = bare.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                if side == 0 {
                                    stitch.call(Input::new().param("id", 7)).await.unwrap();
                                } else {
                                    bare(7).await;
                                }
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                rates[side] = f64::from(concurrency * per_task) / start.elapsed().as_secs_f64();
            }
            if round > 0 {
                ours.push(rates[0]);
                theirs.push(rates[1]);
                ratios.push(rates[0] / rates[1]);
            }
        }
        println!(
            "throughput, {concurrency} concurrent calls ({} rounds): stitchapi {:.0}/s, bare reqwest {:.0}/s (medians), ratio {:.3} (median of per-round ratios)",
            ours.len(),
            median(&mut ours),
            median(&mut theirs),
            median(&mut ratios)
        );
    }
}
