//! The throttle through whole calls, against a real upstream: pacing in virtual time,
//! seam buckets, chaining, the concurrency cap on the wire, deadlines and delegate mode.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use stitchapi::store::StoreErrorKind;
use stitchapi::testing::ManualClock;
use stitchapi::throttle::Throttle;
use stitchapi::time::Clock;
use stitchapi::{ErrorKind, Input, Seam, Stitch, Timeout};
use support::{Answer, Upstream};

#[tokio::test]
async fn a_rate_spaces_the_calls() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let clock = Arc::new(ManualClock::auto_advance());
    let stitch = Stitch::get(format!("{}/items", upstream.url()))
        .throttle("10/s")
        .clock(clock.clone())
        // Sleeps end at once on this clock, so would a timer racing the real upstream: no timeout.
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let start = clock.now();
    for _ in 0..5 {
        stitch.call(Input::new()).await.unwrap();
    }
    assert_eq!(
        clock.now().saturating_duration_since(start),
        Duration::from_millis(400)
    );
    assert_eq!(upstream.hit_count(), 5);
}

#[tokio::test]
async fn a_seam_bucket_is_shared_and_a_member_throttle_only_tightens() {
    let upstream = Upstream::start().await;
    upstream.script("/a", [Answer::status(200)]);
    upstream.script("/b", [Answer::status(200)]);
    let clock = Arc::new(ManualClock::auto_advance());
    let api = Seam::builder(upstream.url())
        .throttle("10/s")
        .clock(clock.clone())
        // Sleeps end at once on this clock, so would a timer racing the real upstream: no timeout.
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let a = api.get("/a").build().unwrap();
    let b = api.get("/b").build().unwrap();
    let start = clock.now();
    for _ in 0..2 {
        a.call(Input::new()).await.unwrap();
        b.call(Input::new()).await.unwrap();
    }
    // One bucket: four calls at 100 ms spacing.
    assert_eq!(
        clock.now().saturating_duration_since(start),
        Duration::from_millis(300)
    );

    let slow = api.get("/a").name("slow").throttle("2/s").build().unwrap();
    let start = clock.now();
    for _ in 0..3 {
        slow.call(Input::new()).await.unwrap();
    }
    // The member's 500 ms spacing dominates the seam's 100 ms.
    assert!(clock.now().saturating_duration_since(start) >= Duration::from_millis(1000));
}

#[tokio::test]
async fn the_concurrency_cap_holds_on_the_wire() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/slow",
        [Answer::status(200).delayed(Duration::from_millis(100))],
    );
    let stitch = Stitch::get(format!("{}/slow", upstream.url()))
        .throttle(Throttle::concurrency(2))
        .build()
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let stitch = stitch.clone();
            tokio::spawn(async move { stitch.call(Input::new()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(upstream.hit_count(), 8);
    assert_eq!(upstream.max_in_flight(), 2);
}

#[tokio::test]
async fn a_throttle_wait_past_the_deadline_fails_at_once() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let clock = Arc::new(ManualClock::new());
    let stitch = Stitch::get(format!("{}/items", upstream.url()))
        .throttle("1/10s")
        .timeout("1s")
        .clock(clock.clone())
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.to_string(), "timed out after 1000ms");
    assert_eq!(error.attempts(), 0);
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn delegate_mode_hands_429_to_the_caller() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/limited",
        [Answer::status(429)
            .header("retry-after", "7")
            .body("slow down")],
    );
    let stitch = Stitch::get(format!("{}/limited", upstream.url()))
        .throttle(Throttle::delegate())
        .retry(3)
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.to_string(), "rate limited (HTTP 429)");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(error.body_bytes().map(|b| &b[..]), Some(&b"slow down"[..]));
    assert_eq!(upstream.hit_count(), 1, "never retried");
}

/// The throttle's store is down and the throttle fails closed (the default): the call fails
/// before anything is sent, with the store's own kind reachable from the error.
#[tokio::test]
async fn a_store_failure_names_its_store_kind() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let stitch = Stitch::get(format!("{}/items", upstream.url()))
        .throttle("10/s")
        .store(Arc::new(stitchapi::testing::DownStore))
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store, "{error:?}");
    assert_eq!(error.store_kind(), Some(StoreErrorKind::Unavailable));
    assert_eq!(error.transport_kind(), None);
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "down store: reserve failed: connection refused"
    );
    assert_eq!(upstream.hit_count(), 0, "nothing was sent");
}

#[test]
fn invalid_throttles_fail_at_build() {
    let error = Stitch::get("https://x.example")
        .throttle("ten per second")
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "throttle.rate");
    assert!(error.to_string().starts_with("throttle.rate: "), "{error}");
}

#[tokio::test]
async fn a_fleet_slot_is_free_when_the_call_returns() {
    // A process that exits right after its last call must not leave its lease behind: the
    // release is awaited, not left to a background task.
    use stitchapi::testing::FleetStore;
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let clock = ManualClock::auto_advance();
    let stitch = Stitch::get(format!("{}/items", upstream.url()))
        .throttle(Throttle::concurrency(1))
        .store(Arc::new(FleetStore::new(clock.clone())))
        .clock(Arc::new(clock.clone()))
        // Sleeps end at once on this clock, so would a timer racing the real upstream: no timeout.
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let start = clock.now();
    for _ in 0..3 {
        stitch.call(Input::new()).await.unwrap();
    }
    assert_eq!(
        clock.now().saturating_duration_since(start),
        Duration::ZERO,
        "a call waited for the previous call's slot"
    );
}
