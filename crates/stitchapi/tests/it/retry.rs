//! Retries against a real loopback upstream, in virtual time.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stitchapi::testing::ManualClock;
use stitchapi::time::Clock;
use stitchapi::transport::TransportErrorKind;
use stitchapi::{Backoff, ErrorKind, Input, Retry, Stitch, Timeout};
use support::{Answer, RudeServer, Upstream};

/// Virtual time in which every sleep ends at once, so backoff and `Retry-After` take no real
/// time. Such a clock would end any timer racing the real upstream at once too, so the stitches
/// on it declare `Timeout::none()` (every stitch has a 30 s total by default); the deadline
/// tests move a plain `ManualClock` by hand instead.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::auto_advance())
}

#[tokio::test]
async fn retries_503_503_then_succeeds() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/flaky",
        [
            Answer::status(503),
            Answer::status(503),
            Answer::json(200, json!({"ok": true})),
        ],
    );
    let clock = clock();
    let stitch = Stitch::get(format!("{}/flaky", upstream.url()))
        .retry(Retry::attempts(3).backoff(Backoff::Expo).base("100ms"))
        .clock(clock.clone())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.data, json!({"ok": true}));
    assert_eq!(reply.attempts, 3);
    assert_eq!(upstream.hit_count(), 3);
    // Expo from 100 ms: 100 ms then 200 ms, in virtual time.
    assert_eq!(reply.elapsed, Duration::from_millis(300));
}

#[tokio::test]
async fn exhausted_retries_fail_with_the_last_response() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/down",
        [Answer::json(503, json!({"error": "maintenance"}))],
    );
    let stitch = Stitch::get(format!("{}/down", upstream.url()))
        .retry(3)
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http);
    assert_eq!(error.to_string(), "HTTP 503");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.body_json(), Some(json!({"error": "maintenance"})));
    assert_eq!(error.url().unwrap().path(), "/down");
    assert_eq!(upstream.hit_count(), 3);
    // A 503 may pass later: the caller may requeue the call.
    assert!(error.is_retryable());
    assert_eq!(error.transport_kind(), None);
}

#[tokio::test]
async fn a_status_not_listed_is_not_retried() {
    let upstream = Upstream::start().await;
    upstream.script("/bad", [Answer::status(400)]);
    let stitch = Stitch::get(format!("{}/bad", upstream.url()))
        .retry(5)
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!((error.attempts(), upstream.hit_count()), (1, 1));
    assert!(!error.is_retryable(), "a 400 fails again");
}

/// A port nothing listens on: the connection is refused, which the error says as its transport
/// kind; the engine retries it (a GET), and so may the caller.
#[tokio::test]
async fn a_refused_connection_is_a_retryable_connect_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let stitch = Stitch::get(format!("http://{address}/items"))
        .retry(3)
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    assert_eq!(error.transport_kind(), Some(TransportErrorKind::Connect));
    assert_eq!(error.store_kind(), None);
    assert!(error.is_retryable());
    assert_eq!(error.attempts(), 3, "retried like any transport failure");
    assert!(
        error.to_string().starts_with("connection failed"),
        "{error}"
    );
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/limited",
        [
            Answer::status(429).header("retry-after", "7"),
            Answer::status(200),
        ],
    );
    let stitch = Stitch::get(format!("{}/limited", upstream.url()))
        .retry(2)
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.elapsed, Duration::from_secs(7));
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let upstream = Upstream::start().await;
    // ManualClock starts at 2026-01-01T00:00:00Z: this date is 30 s later.
    upstream.script(
        "/limited",
        [
            Answer::status(503).header("retry-after", "Thu, 01 Jan 2026 00:00:30 GMT"),
            Answer::status(200),
        ],
    );
    let stitch = Stitch::get(format!("{}/limited", upstream.url()))
        .retry(2)
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.elapsed, Duration::from_secs(30));
}

#[tokio::test]
async fn a_wait_that_would_cross_the_deadline_fails_at_once() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/limited",
        [
            Answer::status(503).header("retry-after", "30"),
            Answer::status(200),
        ],
    );
    // A plain manual clock: the attempt timer must not fire, and nothing may sleep.
    let clock = Arc::new(ManualClock::new());
    let start = clock.now();
    let stitch = Stitch::get(format!("{}/limited", upstream.url()))
        .retry(3)
        .timeout(Timeout::total("5s"))
        .clock(clock.clone())
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(
        error.to_string().starts_with("timed out after 5000ms"),
        "{error}"
    );
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503), "{error:?}");
    assert_eq!(upstream.hit_count(), 1);
    // It did not sleep uselessly.
    assert_eq!(clock.now(), start);
}

#[tokio::test]
async fn max_retry_after_caps_what_is_honoured() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/limited",
        [
            Answer::status(429).header("retry-after", "120"),
            Answer::status(200),
        ],
    );
    let stitch = Stitch::get(format!("{}/limited", upstream.url()))
        .retry(Retry::attempts(3).max_retry_after("10s"))
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn retry_after_can_be_ignored() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/limited",
        [
            Answer::status(429).header("retry-after", "120"),
            Answer::status(200),
        ],
    );
    let stitch = Stitch::get(format!("{}/limited", upstream.url()))
        .retry(
            Retry::attempts(2)
                .respect_retry_after(false)
                .backoff(Backoff::Fixed)
                .base("50ms"),
        )
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.elapsed, Duration::from_millis(50));
}

#[tokio::test]
async fn transport_errors_are_retried_only_when_safe() {
    let rude = RudeServer::start().await;
    let post = |builder: stitchapi::StitchBuilder| {
        builder
            .retry(3)
            .clock(clock())
            .timeout(Timeout::none())
            .build()
            .unwrap()
    };

    let blind = post(Stitch::post(format!("{}/pay", rude.url())));
    let error = blind
        .call(Input::new().json(&json!({"amount": 5})))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    assert_eq!(error.attempts(), 1);
    assert_eq!(rude.requests(), 1, "a POST must not be resent blindly");

    let opted_in = post(Stitch::post(format!("{}/pay", rude.url())).retry_non_idempotent(true));
    opted_in.call(Input::new()).await.unwrap_err();
    assert_eq!(rude.requests(), 1 + 3);

    let keyed = post(
        Stitch::post(format!("{}/pay", rude.url())).idempotency(stitchapi::Idempotency::new()),
    );
    keyed.call(Input::new()).await.unwrap_err();
    assert_eq!(rude.requests(), 4 + 3);

    let get = post(Stitch::get(format!("{}/pay", rude.url())));
    let error = get.call(Input::new()).await.unwrap_err();
    assert_eq!(error.attempts(), 3);
    assert_eq!(rude.requests(), 7 + 3);
    assert!(error.is_retryable());
    assert!(error.transport_kind().is_some(), "{error:?}");
}

#[tokio::test]
async fn idempotency_keys_are_stable_per_call_and_unique_across_calls() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/pay",
        [
            Answer::status(503),
            Answer::status(503),
            Answer::status(201),
        ],
    );
    let stitch = Stitch::post(format!("{}/pay", upstream.url()))
        .retry(3)
        .idempotency(stitchapi::Idempotency::new())
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    stitch
        .call(Input::new().json(&json!({"amount": 5})))
        .await
        .unwrap();
    stitch
        .call(Input::new().json(&json!({"amount": 5})))
        .await
        .unwrap();
    let keys: Vec<String> = upstream
        .hits()
        .iter()
        .map(|hit| hit.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 4);
    assert!(keys[0] == keys[1] && keys[1] == keys[2], "{keys:?}");
    assert_ne!(keys[2], keys[3]);
    assert_eq!(keys[0].len(), 36);
    // Every retry resends the exact body.
    assert!(
        upstream
            .hits()
            .iter()
            .all(|hit| &hit.body[..] == br#"{"amount":5}"#)
    );

    // A key the caller sent is kept.
    stitch
        .call(Input::new().header("Idempotency-Key", "mine"))
        .await
        .unwrap();
    assert_eq!(upstream.hits()[4].headers["idempotency-key"], "mine");
}

#[tokio::test]
async fn custom_idempotency_header_and_key_and_no_key_on_reads() {
    let upstream = Upstream::start().await;
    upstream.script("/orders", [Answer::status(200)]);
    let create = Stitch::put(format!("{}/orders", upstream.url()))
        .idempotency(
            stitchapi::Idempotency::new()
                .header("x-request-key")
                .key_with(|request| format!("{}-{}", request.method, request.body.len())),
        )
        .build()
        .unwrap();
    create
        .call(Input::new().body("abc", "text/plain"))
        .await
        .unwrap();
    let read = Stitch::get(format!("{}/orders", upstream.url()))
        .idempotency(stitchapi::Idempotency::new())
        .build()
        .unwrap();
    read.call(Input::new()).await.unwrap();
    let hits = upstream.hits();
    assert_eq!(hits[0].headers["x-request-key"], "PUT-3");
    assert!(!hits[1].headers.contains_key("idempotency-key"));
}

#[tokio::test]
async fn accept_turns_a_status_into_a_result() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users/9",
        [Answer::json(404, json!({"error": "no such user"}))],
    );
    let stitch = Stitch::get(format!("{}/users/{{id}}", upstream.url()))
        .accept([404])
        .build()
        .unwrap();
    let reply = stitch
        .call_detailed(Input::new().param("id", 9))
        .await
        .unwrap();
    assert_eq!(reply.status.as_u16(), 404);
    assert_eq!(reply.data["error"], "no such user");
}

#[tokio::test]
async fn a_status_both_retried_and_accepted_is_accepted_on_the_last_attempt() {
    let upstream = Upstream::start().await;
    upstream.script("/busy", [Answer::status(503)]);
    let stitch = Stitch::get(format!("{}/busy", upstream.url()))
        .retry(3)
        .accept([503])
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.attempts), (503, 3));
    assert_eq!(upstream.hit_count(), 3);
}

/// QUERY (the HTTP QUERY method draft) is safe and idempotent: no idempotency key, and a
/// transport error is retried like a GET's.
#[tokio::test]
async fn query_is_safe_and_idempotent() {
    let upstream = Upstream::start().await;
    upstream.script("/search", [Answer::status(200)]);
    let query = http::Method::from_bytes(b"QUERY").unwrap();
    let search = Stitch::builder(query.clone(), format!("{}/search", upstream.url()))
        .idempotency(stitchapi::Idempotency::new())
        .build()
        .unwrap();
    search
        .call(Input::new().json(&serde_json::json!({"q": "rust"})))
        .await
        .unwrap();
    let hit = &upstream.hits()[0];
    assert_eq!(hit.method.as_str(), "QUERY");
    assert!(!hit.headers.contains_key("idempotency-key"));

    let rude = RudeServer::start().await;
    let search = Stitch::builder(query, format!("{}/search", rude.url()))
        .retry(3)
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = search.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(rude.requests(), 3, "retried like a GET");
}

/// A `Retry-After` beyond `max_retry_after` (60 s by default) fails the call at once with the
/// upstream's error, whatever its size or form, even with only a per-attempt timeout: nothing
/// is parked, nothing overflows.
#[tokio::test]
async fn a_huge_retry_after_fails_at_once_with_the_upstream_error() {
    let cases = [
        ("99999999999", Duration::from_secs(99_999_999_999)),
        // Beyond u64 seconds: saturated, not ignored.
        ("99999999999999999999999999", Duration::from_secs(u64::MAX)),
        // ManualClock starts at 2026-01-01T00:00:00Z.
        (
            "Fri, 31 Dec 9999 23:59:59 GMT",
            Duration::from_secs(253_402_300_799 - 1_767_225_600),
        ),
        ("61", Duration::from_secs(61)),
    ];
    for (value, asked) in cases {
        let upstream = Upstream::start().await;
        upstream.script(
            "/busy",
            [
                Answer::json(503, json!({"error": "busy"})).header("retry-after", value),
                Answer::status(200),
            ],
        );
        // A plain manual clock: a call that sleeps would never come back.
        let clock = Arc::new(ManualClock::new());
        let start = clock.now();
        let stitch = Stitch::get(format!("{}/busy", upstream.url()))
            .retry(3)
            .timeout(Timeout::per_attempt("1s"))
            .clock(clock.clone())
            .build()
            .unwrap();
        let call = tokio::spawn(async move { stitch.call(Input::new()).await });
        let error = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap_or_else(|_| panic!("Retry-After {value:?} parked the call"))
            .unwrap()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Http, "{value}: {error:?}");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
        assert_eq!(error.body_json(), Some(json!({"error": "busy"})));
        assert_eq!(error.retry_after(), Some(asked), "{value}");
        assert_eq!(upstream.hit_count(), 1, "{value}");
        assert_eq!(clock.now(), start, "{value}: nothing may sleep");
    }
}

/// Both limits can be lifted explicitly: then a long `Retry-After` is honoured in full.
#[tokio::test]
async fn the_retry_after_cap_and_the_total_can_be_lifted() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/busy",
        [
            Answer::status(503).header("retry-after", "3600"),
            Answer::status(200),
        ],
    );
    let stitch = Stitch::get(format!("{}/busy", upstream.url()))
        .retry(Retry::attempts(2).no_max_retry_after())
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.elapsed, Duration::from_secs(3600));
    assert_eq!(upstream.hit_count(), 2);
}

/// `Duration::MAX` as a backoff bound is refused at build, naming the field; it used to
/// build and then panic on the first retry (`cannot convert float seconds to Duration`).
#[tokio::test]
async fn a_backoff_bound_beyond_an_hour_is_refused_at_build() {
    let upstream = Upstream::start().await;
    upstream.script("/flaky", [Answer::status(503), Answer::status(200)]);
    for (retry, field) in [
        (
            Retry::attempts(3)
                .backoff(Backoff::Fixed)
                .base(Duration::MAX)
                .max(Duration::MAX),
            "retry.base",
        ),
        (Retry::attempts(3).max(Duration::MAX), "retry.max"),
        (Retry::attempts(3).max("2h"), "retry.max"),
    ] {
        let built = Stitch::get(format!("{}/flaky", upstream.url()))
            .retry(retry)
            .clock(clock())
            .timeout(Timeout::none())
            .build();
        let error = match built {
            Ok(stitch) => panic!(
                "built; the call returned {:?}",
                stitch.call(Input::new()).await
            ),
            Err(error) => error,
        };
        assert_eq!(error.field(), field);
        assert!(
            error.to_string().starts_with(&format!("{field}: ")),
            "{error}"
        );
        assert!(error.to_string().contains("Fix: use at most 1h"), "{error}");
    }
    // An hour is accepted, and the longest curve stays within it.
    let stitch = Stitch::get(format!("{}/flaky", upstream.url()))
        .retry(
            Retry::attempts(2)
                .backoff(Backoff::Expo)
                .base("1h")
                .max("1h"),
        )
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.elapsed, Duration::from_secs(3600));
}
