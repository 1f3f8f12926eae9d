//! `denokv serve` stopped in the middle of a run and started again (same file, same port)
//! under whole calls through a seam: the fail-closed shared throttle fails in bounded time
//! with a `Store` error, the fail-open cache carries on to the upstream, and both recover with
//! nothing rebuilt.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::routing::get;
use stitchapi::throttle::{StoreFailure, Throttle};
use stitchapi::{Cache, ErrorKind, Input, Seam, Stitch, Tenancy};

use crate::support::Denokv;

/// A loopback upstream counting the calls that reach it.
async fn upstream() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new()
        .route(
            "/items",
            get(|| async { axum::Json(serde_json::json!({ "items": [1, 2] })) }),
        )
        .route(
            "/prices",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { axum::Json(serde_json::json!({ "eur": 1.08 })) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

async fn until_it_answers(stitch: &Stitch) {
    for _ in 0..100 {
        if stitch.call(Input::new()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("calls never recovered after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_closed_calls_fast_fail_open_calls_carry_on_and_both_recover() {
    let mut server = Denokv::start();
    let (url, price_hits) = upstream().await;
    let api = Seam::builder(&url)
        .store(Arc::new(server.store()))
        .timeout("3s")
        .build()
        .unwrap();
    let items = api
        .get("/items")
        .throttle(Throttle::new("1000/s").on_store_error(StoreFailure::FailClosed))
        .build()
        .unwrap();
    let prices = api
        .get("/prices")
        .cache(Cache::ttl("1m").tenancy(Tenancy::App))
        .build()
        .unwrap();
    items.call(Input::new()).await.unwrap();
    assert_eq!(prices.call(Input::new()).await.unwrap()["eur"], 1.08);
    assert_eq!(prices.call(Input::new()).await.unwrap()["eur"], 1.08);
    assert_eq!(
        price_hits.load(Ordering::SeqCst),
        1,
        "the second call was cached"
    );

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let error = items.call(Input::new()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Store, "{error}");
        assert!(
            error.to_string().contains("deno-kv store: reserve failed"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        let started = Instant::now();
        assert_eq!(prices.call(Input::new()).await.unwrap()["eur"], 1.08);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        price_hits.load(Ordering::SeqCst),
        4,
        "with the store down, every cached call went to the upstream"
    );

    server.restart();
    until_it_answers(&items).await;
    items.call(Input::new()).await.unwrap();
    // The cache works again: one fill, then hits.
    let before = price_hits.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(prices.call(Input::new()).await.unwrap()["eur"], 1.08);
    }
    assert!(
        price_hits.load(Ordering::SeqCst) <= before + 1,
        "the cache serves again after the restart"
    );
}
