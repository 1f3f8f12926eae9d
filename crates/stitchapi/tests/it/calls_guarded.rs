//! The circuit breaker through whole calls against a real upstream, in virtual time.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use stitchapi::testing::ManualClock;
use stitchapi::{ErrorKind, Input, MemoryStore, Seam, Stitch};
use support::{Answer, Upstream};

#[tokio::test]
async fn failures_open_the_circuit_and_a_trial_closes_it() {
    let upstream = Upstream::start().await;
    upstream.script("/flaky", [Answer::status(503)]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/flaky", upstream.url()))
        .circuit(2, "30s")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            stitch.call(Input::new()).await.unwrap_err().kind(),
            ErrorKind::Http
        );
    }
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    assert_eq!(error.to_string(), "circuit open");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(
        upstream.hit_count(),
        2,
        "an open circuit never touches the network"
    );

    clock.advance(Duration::from_secs(30));
    upstream.script("/flaky", [Answer::status(200)]);
    stitch.call(Input::new()).await.unwrap(); // the half-open trial succeeds
    stitch.call(Input::new()).await.unwrap(); // closed again
    assert_eq!(upstream.hit_count(), 4);
}

#[tokio::test]
async fn a_failed_trial_reopens_with_a_fresh_cooldown() {
    let upstream = Upstream::start().await;
    upstream.script("/down", [Answer::status(500)]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/down", upstream.url()))
        .circuit(1, "10s")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap_err();
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        stitch.call(Input::new()).await.unwrap_err().kind(),
        ErrorKind::Http
    ); // trial fails
    clock.advance(Duration::from_secs(9));
    assert_eq!(
        stitch.call(Input::new()).await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(upstream.hit_count(), 2);
}

#[tokio::test]
async fn client_errors_do_not_count_against_the_service() {
    let upstream = Upstream::start().await;
    upstream.script("/missing", [Answer::status(404)]);
    let stitch = Stitch::get(format!("{}/missing", upstream.url()))
        .circuit(1, "30s")
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            stitch.call(Input::new()).await.unwrap_err().kind(),
            ErrorKind::Http
        );
    }
    assert_eq!(upstream.hit_count(), 3);
}

#[tokio::test]
async fn one_store_means_one_breaker_for_every_process() {
    let upstream = Upstream::start().await;
    upstream.script("/down", [Answer::status(503)]);
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::with_clock(clock.clone()));
    let declare = || {
        let api = Seam::builder(upstream.url())
            .store(store.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        api.get("/down")
            .name("down")
            .circuit(2, "30s")
            .build()
            .unwrap()
    };
    let (worker_a, worker_b) = (declare(), declare());
    worker_a.call(Input::new()).await.unwrap_err();
    worker_a.call(Input::new()).await.unwrap_err();
    assert_eq!(
        worker_b.call(Input::new()).await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(upstream.hit_count(), 2);
}
