//! Redis stopped in the middle of a run, then restarted, under whole throttled calls: clear
//! `Store` errors (fail-closed) or calls that carry on (fail-open), never a hang past
//! `timeout.total`, never a panic; after the restart everything works again without rebuilding
//! anything.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http::Method;
use stitchapi::event::ThrottleEvent;
use stitchapi::testing::{MockResponse, MockTransport};
use stitchapi::throttle::{StoreFailure, Throttle};
use stitchapi::{ErrorKind, Event, Input, Seam, Step, Stitch};
use stitchapi_redis::RedisStore;
use support::RedisServer;

fn throttled(server: &RedisServer, policy: StoreFailure) -> Stitch {
    let mock = MockTransport::new();
    mock.route(Method::GET, "/items", [MockResponse::status(200)]);
    let api = Seam::builder("https://api.example.com")
        .throttle(Throttle::new("1000/s").on_store_error(policy))
        .timeout("3s")
        .store(Arc::new(RedisStore::from_url(&server.url()).unwrap()))
        .transport(Arc::new(mock))
        .build()
        .unwrap();
    api.get("/items").build().unwrap()
}

async fn until_redis_answers(stitch: &Stitch) {
    for _ in 0..100 {
        if stitch.call(Input::new()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("calls never recovered after the restart");
}

#[tokio::test]
async fn fail_closed_fails_fast_with_store_errors_and_recovers() {
    let mut server = RedisServer::start();
    let items = throttled(&server, StoreFailure::FailClosed);
    items.call(Input::new()).await.unwrap();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let error = items.call(Input::new()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Store, "{error}");
        assert!(
            error.to_string().starts_with("redis store: reserve failed"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    server.restart();
    until_redis_answers(&items).await;
    items.call(Input::new()).await.unwrap();
}

#[tokio::test]
async fn fail_open_carries_on_in_process_and_says_so() {
    let mut server = RedisServer::start();
    let items = throttled(&server, StoreFailure::FailOpen);
    items.call(Input::new()).await.unwrap();

    server.stop();
    let started = Instant::now();
    let events: Vec<_> = items.stream(Input::new()).collect().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(events.last(), Some(Event::Done { ok: true, .. })),
        "{events:?}"
    );
    assert!(
        events.iter().any(|event| matches!(event,
            Event::Progress(p) if matches!(p.step, Step::Throttle(ThrottleEvent::StoreFellBack(_))))),
        "{events:?}"
    );

    server.restart();
    until_redis_answers(&items).await;
}
