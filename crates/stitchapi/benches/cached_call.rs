//! A cache hit on the memory store against an uncached call to a loopback upstream, in one
//! run: `cargo bench -p stitchapi --bench cached_call`. Target: a hit at least 20x faster.

use std::time::Instant;

mod support;

use stitchapi::{Input, Stitch};
use support::{User, median, serve};

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
