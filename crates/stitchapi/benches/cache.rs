//! The response cache: the cost of a hit (key + lookup, no output decode) on the memory
//! store, and 1,000 concurrent identical misses coalesced into one fetch.
//!
//! `cargo bench -p stitchapi --bench cache`. Target: a hit under 5 µs.

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{HeaderMap, Method};
use stitchapi::Cache;
use stitchapi::cache::bench_support::BenchCache;
use stitchapi::store::MemoryStore;
use stitchapi::time::SystemClock;
use support::per_call;
use url::Url;

const BODY: &str = r#"{"id":12345,"name":"Ada Lovelace","email":"ada@example.com","roles":["admin","dev"],"active":true}"#;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = Arc::new(SystemClock::new());
        let store = Arc::new(MemoryStore::with_clock(clock.clone()));
        let url = Url::parse("https://api.example.com/orgs/acme/users/12345?fields=name,email").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("accept-language", "en".parse().unwrap());
        headers.insert("accept", "application/json".parse().unwrap());

        // (1) Hit cost: key derivation + two generation reads + entry read and entry decode.
        let cache = BenchCache::new(
            Cache::ttl("5m").vary(["accept-language"]),
            store.clone(),
            clock.clone(),
        )
        .unwrap();
        cache
            .read_through(&Method::GET, &url, &headers, || async {
                Ok(Bytes::from_static(BODY.as_bytes()))
            })
            .await
            .unwrap();
        let hit = per_call(200_000, || {
            let len = cache
                .lookup(black_box(&Method::GET), black_box(&url), &headers)
                .now_or_never()
                .flatten()
                .expect("a hit");
            black_box(len);
        });
        println!("cache hit (key + generations + entry read + entry decode, memory store): {hit:.0} ns/call");
        println!("cache hit vs the 5 µs budget: {:.2}x of budget", hit / 5000.0);

        // (2) Coalescing: 1,000 concurrent identical misses, a fetch that takes 1 ms.
        for round in 0..3 {
            let cache = Arc::new(
                BenchCache::new(Cache::ttl("5m"), Arc::new(MemoryStore::new()), clock.clone()).unwrap(),
            );
            let fetches = Arc::new(AtomicUsize::new(0));
            // Every task is spawned and parked on a start gate first, so all 1,000 miss together.
            let (go, gate) = tokio::sync::watch::channel(false);
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let (cache, fetches, url) = (cache.clone(), fetches.clone(), url.clone());
                    let mut gate = gate.clone();
                    tokio::spawn(async move {
                        let _ = gate.wait_for(|g| *g).await;
                        cache
                            .read_through(&Method::GET, &url, &HeaderMap::new(), || async move {
                                fetches.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                Ok(Bytes::from_static(BODY.as_bytes()))
                            })
                            .await
                            .unwrap()
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let start = Instant::now();
            go.send(true).unwrap();
            let mut coalesced = 0;
            for task in tasks {
                coalesced += usize::from(task.await.unwrap());
            }
            let elapsed = start.elapsed();
            let fetches = fetches.load(Ordering::SeqCst);
            println!(
                "coalescing round {round}: 1000 concurrent identical misses, 1 ms fetch: {fetches} fetch(es), {coalesced} coalesced, all served in {:.2} ms",
                elapsed.as_secs_f64() * 1000.0
            );
            assert_eq!(fetches, 1, "exactly one fetch");
        }
    });
}
