//! Per-call overhead of a stitch (retry, timeout, typed output) against a bare reqwest call
//! doing the same GET and serde_json decode, against the same loopback server, in one run.
//!
//! `cargo bench -p stitchapi --bench overhead`. Targets: median latency ratio ≤ 1.05;
//! throughput at 32 concurrent calls ≥ 0.95 of bare reqwest.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use stitchapi::{Input, Retry, Stitch, Timeout};

const BODY: &[u8] =
    br#"{"id":7,"name":"Ada Lovelace","email":"ada@example.com","active":true,"team":"core"}"#;

#[derive(Deserialize)]
#[allow(dead_code)]
struct User {
    id: u64,
    name: String,
    email: String,
    active: bool,
    team: String,
}

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let mut response = hyper::Response::new(Full::new(Bytes::from_static(BODY)));
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

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

    // Sequential latency, interleaved rounds so drift hits both alike.
    let (rounds, per_round) = (10, 2_000);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        for _ in 0..per_round {
            let start = Instant::now();
            stitch.call(Input::new().param("id", 7)).await.unwrap();
            if round > 0 {
                ours.push(start.elapsed().as_secs_f64() * 1e6);
            }
            let start = Instant::now();
            bare(7).await;
            if round > 0 {
                theirs.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let (ours_p50, theirs_p50) = (median(&mut ours), median(&mut theirs));
    let p99 = |v: &[f64]| v[v.len() * 99 / 100];
    println!("sequential GET + decode, {} calls each:", ours.len());
    println!(
        "  stitchapi   p50 {ours_p50:.1} µs  p99 {:.1} µs",
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

    // Throughput at 32 concurrent calls.
    let concurrency = 32;
    let per_task = 200;
    let stitch = Arc::new(stitch);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..6 {
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let stitch = stitch.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        stitch.call(Input::new().param("id", 7)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let ours_rate = f64::from(concurrency * per_task) / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let bare = bare.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        bare(7).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let theirs_rate = f64::from(concurrency * per_task) / start.elapsed().as_secs_f64();
        if round > 0 {
            ours.push(ours_rate);
            theirs.push(theirs_rate);
        }
    }
    let (ours_rate, theirs_rate) = (median(&mut ours), median(&mut theirs));
    println!(
        "throughput, {concurrency} concurrent calls (median of {} rounds):",
        ours.len()
    );
    println!("  stitchapi    {ours_rate:.0} calls/s");
    println!("  bare reqwest {theirs_rate:.0} calls/s");
    println!(
        "  throughput ratio (stitchapi / reqwest): {:.3}",
        ours_rate / theirs_rate
    );
}
