//! The extension points, in whole calls against a real loopback upstream: the retry
//! classifier, per-attempt request and response hooks, and `Stitch::with`.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use stitchapi::policy::{AttemptOutcome, AttemptRequest, AttemptResponse, RetryDecision};
use stitchapi::testing::ManualClock;
use stitchapi::{Auth, ErrorKind, Input, Retry, Seam, Served, Stitch, Timeout};
use support::{Answer, RudeServer, Upstream};

/// Virtual time in which every backoff sleep ends at once (stitches on it declare
/// `Timeout::none()`, as in `retry.rs`).
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::auto_advance())
}

/// Retries a response whose JSON body says the job is still pending.
fn retry_pending(outcome: &AttemptOutcome<'_>) -> Option<RetryDecision> {
    let AttemptOutcome::Response(response) = outcome else {
        return None;
    };
    let body: Value = serde_json::from_slice(response.body()).ok()?;
    (body["status"] == "pending").then_some(RetryDecision::Retry)
}

#[tokio::test]
async fn a_classifier_retries_a_pending_200() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/job",
        [
            Answer::json(200, json!({"status": "pending"})),
            Answer::json(200, json!({"status": "pending"})),
            Answer::json(200, json!({"status": "done"})),
        ],
    );
    let stitch = Stitch::get(format!("{}/job", upstream.url()))
        .retry(Retry::attempts(5).classify(retry_pending))
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.data, json!({"status": "done"}));
    assert_eq!(reply.attempts, 3);
    assert_eq!(upstream.hit_count(), 3);
}

#[tokio::test]
async fn a_classified_retry_with_no_attempt_left_fails_with_the_response() {
    let upstream = Upstream::start().await;
    upstream.script("/job", [Answer::json(200, json!({"status": "pending"}))]);
    let stitch = Stitch::get(format!("{}/job", upstream.url()))
        .retry(Retry::attempts(2).classify(retry_pending))
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http);
    assert_eq!(error.status(), Some(StatusCode::OK));
    assert_eq!(error.attempts(), 2);
    assert_eq!(error.body_json(), Some(json!({"status": "pending"})));
    assert_eq!(upstream.hit_count(), 2);
}

#[tokio::test]
async fn a_classifier_fails_fast_on_a_503_with_a_header() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/down",
        [
            Answer::status(503).header("x-outage", "permanent"),
            Answer::json(200, json!({"ok": true})),
        ],
    );
    let stitch = Stitch::get(format!("{}/down", upstream.url()))
        .retry(
            Retry::attempts(3).classify(|outcome: &AttemptOutcome<'_>| match outcome {
                AttemptOutcome::Response(r) if r.headers().contains_key("x-outage") => {
                    Some(RetryDecision::Fail)
                }
                _ => None,
            }),
        )
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http);
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(error.attempts(), 1);
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn a_classifier_succeeds_on_a_404_which_is_the_reply() {
    let upstream = Upstream::start().await;
    upstream.script("/user", [Answer::json(404, json!({"found": false}))]);
    let stitch = Stitch::get(format!("{}/user", upstream.url()))
        .retry(Retry::attempts(3).classify(|outcome: &AttemptOutcome<'_>| {
            (outcome.status() == Some(StatusCode::NOT_FOUND)).then_some(RetryDecision::Succeed)
        }))
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.data, json!({"found": false}));
    assert_eq!(reply.attempts, 1);
}

#[tokio::test]
async fn a_classifier_sees_send_errors_but_never_retries_a_blind_post() {
    let rude = RudeServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let retry = Retry::attempts(3).classify(move |outcome: &AttemptOutcome<'_>| {
        if let AttemptOutcome::Error(error) = outcome {
            log.lock().unwrap().push(error.kind());
        }
        Some(RetryDecision::Retry)
    });
    let get = Stitch::get(format!("{}/x", rude.url()))
        .retry(retry.clone())
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    assert_eq!(get.call(Input::new()).await.unwrap_err().attempts(), 3);
    assert_eq!(rude.requests(), 3);
    // A POST without an idempotency key: the classifier cannot make its failed send retried.
    let post = Stitch::post(format!("{}/x", rude.url()))
        .retry(retry)
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = post.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(error.attempts(), 1);
    assert_eq!(rude.requests(), 4);
    assert_eq!(*seen.lock().unwrap(), vec![ErrorKind::Transport; 4]);
}

#[tokio::test]
async fn a_signing_hook_signs_every_attempt_afresh() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/orders",
        [
            Answer::status(503),
            Answer::status(503),
            Answer::json(200, json!({"id": 1})),
        ],
    );
    let stitch = Stitch::put(format!("{}/orders", upstream.url()))
        .retry(3)
        .on_request(|request: &mut AttemptRequest<'_>| {
            let signature = format!(
                "{} {} len={} attempt={}",
                request.method(),
                request.url().path(),
                request.body().len(),
                request.attempt()
            );
            // Appended: were a retry to start from the previous attempt's request, the
            // header would pile up.
            request
                .headers_mut()
                .append("x-signature", signature.parse()?);
            Ok(())
        })
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    stitch
        .call(Input::new().json(&json!({"item": "a"})))
        .await
        .unwrap();
    let signatures: Vec<Vec<String>> = upstream
        .hits()
        .iter()
        .map(|hit| {
            hit.headers
                .get_all("x-signature")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        signatures,
        (1..=3)
            .map(|n| vec![format!("PUT /orders len=12 attempt={n}")])
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_request_hook_never_sees_the_bearer_token_and_seam_hooks_run_first() {
    let upstream = Upstream::start().await;
    upstream.script("/me", [Answer::json(200, json!({}))]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (seam_log, stitch_log) = (log.clone(), log.clone());
    let api = Seam::builder(upstream.url())
        .auth(Auth::bearer("s3cret-token"))
        .on_request(move |request: &mut AttemptRequest<'_>| {
            let headers = format!("{:?}", request.headers());
            seam_log.lock().unwrap().push(format!(
                "seam: authorization={} token-seen={}",
                request.headers().contains_key("authorization"),
                headers.contains("s3cret")
            ));
            request.headers_mut().insert("x-trace", "t-1".parse()?);
            Ok(())
        })
        .build()
        .unwrap();
    let me = api
        .get("/me")
        .on_request(move |request: &mut AttemptRequest<'_>| {
            stitch_log.lock().unwrap().push(format!(
                "stitch: x-trace={:?}",
                request.headers().get("x-trace").unwrap()
            ));
            Ok(())
        })
        .build()
        .unwrap();
    me.call(Input::new()).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "seam: authorization=false token-seen=false".to_owned(),
            "stitch: x-trace=\"t-1\"".to_owned(),
        ]
    );
    let hit = &upstream.hits()[0];
    assert_eq!(hit.headers["authorization"], "Bearer s3cret-token");
    assert_eq!(hit.headers["x-trace"], "t-1");
}

#[tokio::test]
async fn a_response_hook_sees_every_attempt() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/flaky",
        [Answer::status(503), Answer::json(200, json!({"ok": true}))],
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let stitch = Stitch::get(format!("{}/flaky", upstream.url()))
        .retry(3)
        .on_response(move |response: &AttemptResponse<'_>| {
            log.lock().unwrap().push((
                response.attempt(),
                response.status(),
                response.url().path().to_owned(),
                response.body().len(),
            ));
            Ok(())
        })
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (1, StatusCode::SERVICE_UNAVAILABLE, "/flaky".to_owned(), 0),
            (2, StatusCode::OK, "/flaky".to_owned(), 11),
        ]
    );
}

#[tokio::test]
async fn a_failing_hook_fails_the_call_without_a_retry() {
    let upstream = Upstream::start().await;
    upstream.script("/x", [Answer::status(503), Answer::json(200, json!({}))]);
    let refuse = Stitch::get(format!("{}/x", upstream.url()))
        .retry(3)
        .on_request(|_: &mut AttemptRequest<'_>| Err("no signing key".into()))
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = refuse.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Hook);
    assert!(!error.is_retryable());
    assert_eq!(error.attempts(), 0);
    assert_eq!(
        error.to_string(),
        "the request hook #1 failed on attempt 1: no signing key"
    );
    assert_eq!(upstream.hit_count(), 0);

    let reject = Stitch::get(format!("{}/x", upstream.url()))
        .retry(3)
        .on_response(|_: &AttemptResponse<'_>| Ok(()))
        .on_response(|response: &AttemptResponse<'_>| {
            if response.headers().contains_key("x-signature") {
                Ok(())
            } else {
                Err("the response is not signed".into())
            }
        })
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let error = reject.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Hook);
    assert_eq!(error.attempts(), 1);
    assert!(
        error
            .to_string()
            .starts_with("the response hook #2 failed on attempt 1: the response is not signed"),
        "{error}"
    );
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn with_overrides_options_and_leaves_the_original_unchanged() {
    let upstream = Upstream::start().await;
    let flaky = [Answer::status(503), Answer::json(200, json!({"ok": true}))];
    let api = Seam::builder(upstream.url())
        .header("x-app", "demo")
        .clock(clock())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let impatient = api
        .get("/flaky")
        .retry(1)
        .build()
        .unwrap()
        .as_principal("alice");
    let patient = impatient
        .with(|b| b.retry(3).header("x-copy", "1"))
        .unwrap();
    assert_eq!(patient.principal(), Some("alice"));
    assert!(Arc::ptr_eq(patient.store(), impatient.store()));
    assert_eq!(patient.name(), impatient.name());

    upstream.script("/flaky", flaky.clone());
    let error = impatient.call(Input::new()).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(error.attempts(), 1);

    upstream.script("/flaky", flaky);
    let reply = patient.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.attempts, 2);
    let hits = upstream.hits();
    // The seam's options are still the copy's; its own header is not the original's.
    assert!(hits.iter().all(|hit| hit.headers["x-app"] == "demo"));
    let copied: Vec<bool> = hits
        .iter()
        .map(|h| h.headers.contains_key("x-copy"))
        .collect();
    assert_eq!(copied, [false, true, true]);
    // Options the edit does not touch are the original's.
    let timed = impatient
        .with(|b| b.timeout(Duration::from_secs(60)))
        .unwrap();
    assert!(format!("{timed:?}").contains("total: 60s"), "{timed:?}");
    assert!(format!("{timed:?}").contains("attempts: 1"), "{timed:?}");
    assert!(
        !format!("{impatient:?}").contains("total: 60s"),
        "{impatient:?}"
    );
}

#[tokio::test]
async fn with_refuses_a_bad_override_naming_the_field() {
    let stitch = Stitch::get("https://api.example.com/x").build().unwrap();
    let error = stitch.with(|b| b.retry(0)).unwrap_err();
    assert_eq!(error.field(), "retry.attempts");
}

#[tokio::test]
async fn a_copy_shares_what_lives_in_the_store() {
    let upstream = Upstream::start().await;
    upstream.script("/prices", [Answer::json(200, json!({"eur": 1.08}))]);
    let prices = Stitch::get(format!("{}/prices", upstream.url()))
        .cache("5m")
        .build()
        .unwrap();
    let traced = prices
        .with(|b| b.on_response(|_: &AttemptResponse<'_>| Ok(())))
        .unwrap();
    prices.call(Input::new()).await.unwrap();
    let reply = traced.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.served, Served::CacheHit);
    assert_eq!(upstream.hit_count(), 1);
    // A copy with its own name keys its own entries.
    let apart = prices.with(|b| b.name("prices-apart")).unwrap();
    let reply = apart.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.served, Served::Network);
    assert_eq!(upstream.hit_count(), 2);
}
