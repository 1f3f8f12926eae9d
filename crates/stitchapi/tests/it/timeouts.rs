//! Per-attempt and total timeouts against a real upstream that never answers, in virtual
//! time: the test moves the manual clock once the request has really arrived.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use stitchapi::testing::ManualClock;
use stitchapi::{Backoff, ErrorKind, Input, Retry, Stitch, Timeout};
use support::{Answer, Upstream};

/// Waits until the engine sleeps on the clock (an attempt timer or a backoff).
async fn until_sleeping(clock: &ManualClock, sleepers: usize) {
    for _ in 0..10_000 {
        if clock.pending() >= sleepers {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the call never started to wait");
}

#[tokio::test]
async fn each_cancels_a_slow_attempt_and_the_retry_uses_a_new_connection() {
    let upstream = Upstream::start().await;
    upstream.script("/slow", [Answer::hang(), Answer::status(200)]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/slow", upstream.url()))
        .retry(Retry::attempts(2).backoff(Backoff::Fixed).base("100ms"))
        .timeout(Timeout::per_attempt("2s"))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { stitch.call_detailed(Input::new()).await });
    upstream.wait_for_hits(1).await;
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_secs(2)); // the attempt times out
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_millis(100)); // the backoff ends
    let reply = call.await.unwrap().unwrap();
    assert_eq!(reply.attempts, 2);
    assert_eq!(reply.elapsed, Duration::from_millis(2100));
    assert_eq!(upstream.hit_count(), 2);
    assert_eq!(
        upstream.connections(),
        2,
        "the timed-out connection must not be reused"
    );
}

#[tokio::test]
async fn total_bounds_the_whole_call() {
    let upstream = Upstream::start().await;
    upstream.script("/slow", [Answer::hang()]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/slow", upstream.url()))
        .retry(3)
        .timeout("5s")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { stitch.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_secs(5));
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.to_string(), "timed out after 5000ms");
    assert_eq!(error.attempts(), 1);
}

#[tokio::test]
async fn the_attempt_limit_is_the_smaller_of_each_and_what_is_left() {
    let upstream = Upstream::start().await;
    upstream.script("/slow", [Answer::hang()]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/slow", upstream.url()))
        .retry(Retry::attempts(5).backoff(Backoff::Fixed).base("500ms"))
        .timeout(Timeout::total("3s").each("2s"))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { stitch.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_secs(2)); // attempt 1: per-attempt timeout
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_millis(500)); // backoff
    upstream.wait_for_hits(2).await;
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_millis(500)); // attempt 2: only 500 ms were left
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(error.to_string(), "timed out after 3000ms");
    assert_eq!(error.attempts(), 2);
}

#[tokio::test]
async fn a_post_that_times_out_is_not_resent() {
    let upstream = Upstream::start().await;
    upstream.script("/pay", [Answer::hang(), Answer::status(201)]);
    let clock = ManualClock::new();
    let stitch = Stitch::post(format!("{}/pay", upstream.url()))
        .retry(3)
        .timeout(Timeout::per_attempt("1s"))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { stitch.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_secs(1));
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(error.to_string(), "timed out after 1000ms");
    assert_eq!(upstream.hit_count(), 1);
}

/// A stitch that declares no timeout still has a total one (30 s): a server that accepts the
/// request and never answers cannot hang the call.
#[tokio::test]
async fn an_undeclared_call_to_a_silent_server_ends_at_the_default_total() {
    let upstream = Upstream::start().await;
    upstream.script("/silent", [Answer::hang()]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/silent", upstream.url()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { stitch.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    until_sleeping(&clock, 1).await;
    clock.advance(Duration::from_secs(29));
    tokio::task::yield_now().await;
    assert!(!call.is_finished(), "the default total is 30 s, not less");
    clock.advance(Duration::from_secs(1));
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.to_string(), "timed out after 30000ms");
    assert_eq!(error.attempts(), 1);
}

/// `Debug` of a declaration shows the limits in force, defaults included.
#[test]
fn debug_shows_the_default_limits() {
    let stitch = Stitch::get("https://api.example.com/items")
        .build()
        .unwrap();
    let debug = format!("{stitch:?}");
    assert!(
        debug.contains("timeout: Timeout { total: 30s, each: none }"),
        "{debug}"
    );
    assert!(debug.contains("max_retry_after: 60s"), "{debug}");
    let unbounded = Stitch::get("https://api.example.com/items")
        .retry(Retry::attempts(3).no_max_retry_after())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let debug = format!("{unbounded:?}");
    assert!(
        debug.contains("timeout: Timeout { total: none, each: none }"),
        "{debug}"
    );
    assert!(debug.contains("max_retry_after: none"), "{debug}");
    let per_attempt = Stitch::get("https://api.example.com/items")
        .timeout(Timeout::per_attempt("2s"))
        .build()
        .unwrap();
    let debug = format!("{per_attempt:?}");
    assert!(
        debug.contains("timeout: Timeout { total: 30s, each: 2s }"),
        "{debug}"
    );
}

/// `Timeout::none()` is the explicit way to have no limit at all: no timer is armed.
#[tokio::test]
async fn no_timeout_must_be_asked_for() {
    let upstream = Upstream::start().await;
    upstream.script("/silent", [Answer::hang()]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/silent", upstream.url()))
        .timeout(Timeout::none())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { stitch.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(clock.pending(), 0, "no timer may be armed");
    clock.advance(Duration::from_secs(365 * 86_400));
    tokio::task::yield_now().await;
    assert!(!call.is_finished());
    call.abort();
}

/// A per-attempt limit longer than the total could never apply: refused, naming the field.
#[test]
fn a_per_attempt_limit_beyond_the_total_is_refused() {
    let error = Stitch::get("https://api.example.com/items")
        .timeout(Timeout::per_attempt("45s"))
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "timeout.each");
    assert!(
        error.to_string().starts_with(
            "timeout.each: 45s is longer than the total (30s, the default), so it would never apply"
        ),
        "{error}"
    );
    Stitch::get("https://api.example.com/items")
        .timeout(Timeout::total("2m").each("45s"))
        .build()
        .unwrap();
    Stitch::get("https://api.example.com/items")
        .timeout(Timeout::per_attempt("45s").no_total())
        .build()
        .unwrap();
}
