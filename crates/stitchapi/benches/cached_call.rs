//! A cache hit on the memory store against an uncached call to a loopback upstream, in one
//! run: `cargo bench -p stitchapi --bench cached_call`. Target: a hit at least 20x faster.

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use stitchapi::{Input, Stitch};

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
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(BODY))))
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
    let uncached = Stitch::get(format!("{base}/users/{{id}}"))
        .output::<User>()
        .build()
        .unwrap();
    let cached = Stitch::get(format!("{base}/users/{{id}}"))
        .output::<User>()
        .cache("1h")
        .build()
        .unwrap();
    cached.call(Input::new().param("id", 7)).await.unwrap(); // fill
    // Batches of each kind alternate; a call's cost is its batch time over the batch size, so
    // each kind runs warm, as it would in a steady stream of such calls.
    let (mut hits, mut misses) = (Vec::new(), Vec::new());
    for round in 0..=20 {
        let start = Instant::now();
        for _ in 0..2_000 {
            cached.call(Input::new().param("id", 7)).await.unwrap();
        }
        let hit = start.elapsed().as_secs_f64() * 1e6 / 2_000.0;
        let start = Instant::now();
        for _ in 0..200 {
            uncached.call(Input::new().param("id", 7)).await.unwrap();
        }
        let miss = start.elapsed().as_secs_f64() * 1e6 / 200.0;
        if round > 0 {
            hits.push(hit);
            misses.push(miss);
        }
    }
    let (hit, miss) = (median(&mut hits), median(&mut misses));
    println!("cache hit (memory store, typed decode included): median {hit:.2} µs per call");
    println!("uncached call to the loopback upstream:           median {miss:.1} µs per call");
    println!("a hit is {:.0}x faster", miss / hit);
}
