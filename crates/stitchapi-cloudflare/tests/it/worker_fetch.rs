//! `GET /users/{id}` through the example Worker: retry, validation, error details, redirects
//! and timeouts, inside workerd.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Answer, TOKEN, Upstream, Worker, user};

fn unavailable() -> Answer {
    Answer::Json(503, json!({ "error": "try later" }))
}

#[tokio::test]
async fn retries_503_twice_then_returns_the_typed_user() {
    let upstream = Upstream::start([unavailable(), unavailable()]).await;
    let worker = Worker::start(&upstream.url()).await;

    let (status, body) = worker.get("/users/7").await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["user"], user(7));
    assert_eq!(body["attempts"], 3);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|s| s.path == "/users/7"));
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );
    // Expo-jitter backoff really slept inside workerd between attempts (base 100 ms: the
    // first delay is up to 100 ms, the second up to 200 ms, jitter may pick anything below).
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps.iter().all(|gap| *gap < Duration::from_secs(1)),
        "{gaps:?}"
    );
    let elapsed = body["elapsed_ms"].as_f64().expect("elapsed_ms");
    assert!(
        elapsed > 0.0,
        "the Worker's clock did not move across I/O: {body}"
    );
}

#[tokio::test]
async fn an_invalid_body_is_a_validation_error_with_its_json_path() {
    let upstream = Upstream::start([Answer::Json(
        200,
        json!({ "id": 7, "name": "Ada", "email": 42 }),
    )])
    .await;
    let worker = Worker::start(&upstream.url()).await;

    let (status, body) = worker.get("/users/7").await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["kind"], "validation");
    assert_eq!(body["path"], "$.email", "{body}");
    assert_eq!(body["status"], 200);
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["url"], format!("{}/users/7", upstream.url()));
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn the_error_carries_status_attempts_and_url_after_retries_run_out() {
    let upstream = Upstream::start([unavailable(), unavailable(), unavailable()]).await;
    let worker = Worker::start(&upstream.url()).await;

    let (status, body) = worker.get("/users/8").await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["kind"], "http");
    assert_eq!(body["status"], 503);
    assert_eq!(body["attempts"], 3);
    assert_eq!(body["url"], format!("{}/users/8", upstream.url()));
    assert!(
        !body["message"].as_str().unwrap_or_default().contains(TOKEN),
        "the token leaked into the error: {body}"
    );
    assert_eq!(upstream.seen().len(), 3);
}

#[tokio::test]
async fn a_cross_origin_redirect_does_not_carry_the_bearer_token() {
    // Another port is another origin.
    let other = Upstream::start([]).await;
    let upstream = Upstream::start([Answer::Redirect(format!("{}/users/9", other.url()))]).await;
    let worker = Worker::start(&upstream.url()).await;

    let (status, body) = worker.get("/users/9").await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], user(9));
    // The engine, not workerd, followed the redirect (workerd would drop the bearer on its
    // own too, so this is what proves the transport left redirects to the engine).
    assert_eq!(
        body["redirects"],
        json!([format!("{}/users/9", upstream.url())]),
        "{body}"
    );
    assert_eq!(body["url"], format!("{}/users/9", other.url()));
    let first = upstream.seen();
    let second = other.seen();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        first[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    // The engine, not workerd, followed the redirect, and dropped the credential.
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].authorization, None, "the token crossed origins");
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_the_bearer_token() {
    let upstream = Upstream::start([Answer::Redirect("/users/10".to_owned())]).await;
    let worker = Worker::start(&upstream.url()).await;

    let (status, body) = worker.get("/users/5").await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], user(10));
    assert_eq!(
        body["redirects"],
        json!([format!("{}/users/5", upstream.url())]),
        "{body}"
    );
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );
}

#[tokio::test]
async fn a_hanging_upstream_ends_each_attempt_at_the_per_attempt_timeout() {
    let hang = || Answer::Hang(Duration::from_secs(20));
    let upstream = Upstream::start([hang(), hang(), hang()]).await;
    let worker = Worker::start(&upstream.url()).await;

    let started = Instant::now();
    let (status, body) = worker.get("/users/3").await;
    let elapsed = started.elapsed();

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["kind"], "timeout", "{body}");
    assert_eq!(body["attempts"], 3, "{body}");
    assert_eq!(upstream.seen().len(), 3);
    // Three attempts of 500 ms plus two backoff sleeps (under 100 + 200 ms): the attempts
    // ended at their timeout, long before the 20 s hang or the 5 s total.
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    let inside = body["elapsed_ms"].as_f64().expect("elapsed_ms");
    assert!(
        (1500.0..4000.0).contains(&inside),
        "the Worker measured {inside} ms"
    );
}
