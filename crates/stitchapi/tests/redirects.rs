//! Redirects are followed by the engine; credentials never cross to another origin.

mod support;

use serde_json::json;
use stitchapi::transport::TransportErrorKind;
use stitchapi::{ErrorKind, Input, Seam, Stitch};
use support::{Answer, Upstream};

fn with_credentials(builder: stitchapi::StitchBuilder) -> stitchapi::StitchBuilder {
    builder
        .header("authorization", "Bearer s3cret")
        .header("cookie", "session=abc")
        .header("proxy-authorization", "Basic eDp5")
        .header("x-trace", "keep-me")
}

#[tokio::test]
async fn a_cross_origin_hop_drops_credentials() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    // Same host, another port: a different origin.
    a.script(
        "/start",
        [Answer::status(307).header("location", &format!("{}/land", b.url()))],
    );
    b.script("/land", [Answer::json(200, json!({"landed": true}))]);
    let stitch = with_credentials(Stitch::get(format!("{}/start", a.url())))
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.data["landed"], true);
    assert_eq!(reply.url.as_str(), format!("{}/land", b.url()));
    let landed = &b.hits()[0];
    for name in ["authorization", "cookie", "proxy-authorization", "x-trace"] {
        assert!(!landed.headers.contains_key(name), "{name} crossed origins");
    }
    assert!(a.hits()[0].headers.contains_key("authorization"));
}

/// Headers set directly on the seam, the stitch and the call, none of them known safe.
const UNSAFE: [&str; 5] = [
    "x-api-key",
    "x-amz-security-token",
    "x-auth-token",
    "private-token",
    "x-custom-session",
];

fn with_direct_tokens(api: stitchapi::SeamBuilder) -> stitchapi::SeamBuilder {
    api.header("x-api-key", "seam-key")
        .header("accept-language", "fr")
}

fn call_input() -> Input {
    Input::new()
        .header("private-token", "call-token")
        .header("x-custom-session", "call-session")
        .header("cache-control", "no-cache")
}

#[tokio::test]
async fn a_cross_origin_hop_forwards_only_headers_known_safe() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    // Same host, another port: another origin.
    a.script(
        "/start",
        [Answer::status(302).header("location", &format!("{}/land", b.url()))],
    );
    b.script("/land", [Answer::json(200, json!({"landed": true}))]);
    let api = with_direct_tokens(Seam::builder(a.url())).build().unwrap();
    let stitch = api
        .get("/start")
        .header("x-amz-security-token", "stitch-token")
        .header("x-auth-token", "stitch-auth")
        .header("accept", "application/vnd.example+json")
        .build()
        .unwrap();
    let reply = stitch.call_detailed(call_input()).await.unwrap();
    assert_eq!(reply.data["landed"], true);

    let sent = &a.hits()[0];
    for name in UNSAFE {
        assert!(
            sent.headers.contains_key(name),
            "{name} was not sent at all"
        );
    }
    let landed = &b.hits()[0];
    for name in UNSAFE {
        assert!(!landed.headers.contains_key(name), "{name} crossed origins");
    }
    assert_eq!(landed.headers["accept"], "application/vnd.example+json");
    assert_eq!(landed.headers["accept-language"], "fr");
    assert_eq!(landed.headers["cache-control"], "no-cache");
}

#[tokio::test]
async fn a_cross_origin_307_resends_the_body_with_its_content_type_only() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    a.script(
        "/orders",
        [Answer::status(307).header("location", &format!("{}/orders", b.url()))],
    );
    b.script("/orders", [Answer::json(201, json!({"id": 1}))]);
    let api = with_direct_tokens(Seam::builder(a.url())).build().unwrap();
    let stitch = api
        .post("/orders")
        .header("x-amz-security-token", "stitch-token")
        .header("x-auth-token", "stitch-auth")
        .idempotency()
        .build()
        .unwrap();
    stitch
        .call(call_input().json(&json!({"item": "x"})))
        .await
        .unwrap();
    assert!(a.hits()[0].headers.contains_key("idempotency-key"));
    let landed = &b.hits()[0];
    assert_eq!(landed.method, "POST");
    assert_eq!(&landed.body[..], br#"{"item":"x"}"#);
    assert_eq!(landed.headers["content-type"], "application/json");
    for name in UNSAFE.iter().chain(&["idempotency-key"]) {
        assert!(
            !landed.headers.contains_key(*name),
            "{name} crossed origins"
        );
    }
}

#[tokio::test]
async fn a_same_origin_hop_keeps_headers_set_directly() {
    let a = Upstream::start().await;
    a.script("/start", [Answer::status(302).header("location", "/land")]);
    a.script("/land", [Answer::status(200)]);
    let api = with_direct_tokens(Seam::builder(a.url())).build().unwrap();
    let stitch = api
        .get("/start")
        .header("x-amz-security-token", "stitch-token")
        .header("x-auth-token", "stitch-auth")
        .build()
        .unwrap();
    stitch.call(call_input()).await.unwrap();
    let landed = &a.hits()[1];
    assert_eq!(landed.headers["x-api-key"], "seam-key");
    assert_eq!(landed.headers["x-amz-security-token"], "stitch-token");
    assert_eq!(landed.headers["x-auth-token"], "stitch-auth");
    assert_eq!(landed.headers["private-token"], "call-token");
    assert_eq!(landed.headers["x-custom-session"], "call-session");
}

#[tokio::test]
async fn headers_dropped_on_a_cross_origin_hop_stay_dropped_on_the_way_back() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    a.script(
        "/start",
        [Answer::status(302).header("location", &format!("{}/bounce", b.url()))],
    );
    b.script(
        "/bounce",
        [Answer::status(302).header("location", &format!("{}/land", a.url()))],
    );
    a.script("/land", [Answer::status(200)]);
    let api = with_direct_tokens(Seam::builder(a.url())).build().unwrap();
    api.get("/start")
        .build()
        .unwrap()
        .call(call_input())
        .await
        .unwrap();
    let back = &a.hits()[1];
    assert_eq!(back.target, "/land");
    assert!(!back.headers.contains_key("x-api-key"));
    assert!(!back.headers.contains_key("private-token"));
    assert_eq!(back.headers["accept-language"], "fr");
}

#[tokio::test]
async fn a_same_origin_hop_keeps_credentials() {
    let a = Upstream::start().await;
    a.script("/start", [Answer::status(302).header("location", "/land")]);
    a.script("/land", [Answer::status(200)]);
    let stitch = with_credentials(Stitch::get(format!("{}/start", a.url())))
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap();
    assert_eq!(a.hits()[1].headers["authorization"], "Bearer s3cret");
}

#[tokio::test]
async fn see_other_after_a_post_becomes_a_bodiless_get() {
    let a = Upstream::start().await;
    a.script(
        "/orders",
        [Answer::status(303).header("location", "/orders/1")],
    );
    a.script("/orders/1", [Answer::json(200, json!({"id": 1}))]);
    let stitch = Stitch::post(format!("{}/orders", a.url())).build().unwrap();
    let reply = stitch
        .call_detailed(Input::new().json(&json!({"item": "x"})))
        .await
        .unwrap();
    assert_eq!(reply.data["id"], 1);
    let followed = &a.hits()[1];
    assert_eq!(followed.method, "GET");
    assert!(followed.body.is_empty());
    assert!(!followed.headers.contains_key("content-type"));
}

#[tokio::test]
async fn a_redirect_loop_stops_after_twenty_hops() {
    let a = Upstream::start().await;
    a.script("/loop", [Answer::status(302).header("location", "/loop")]);
    let stitch = Stitch::get(format!("{}/loop", a.url())).build().unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(error.to_string(), "too many redirects (more than 20)");
    assert_eq!(a.hit_count(), 21);
    assert_eq!(error.transport_kind(), Some(TransportErrorKind::Redirect));
    assert!(!error.is_retryable());

    // The same loop meets every attempt, so a retry policy does not resend it.
    let retried = Stitch::get(format!("{}/loop", a.url()))
        .retry(3)
        .build()
        .unwrap();
    let error = retried.call(Input::new()).await.unwrap_err();
    assert_eq!(error.transport_kind(), Some(TransportErrorKind::Redirect));
    assert_eq!((error.attempts(), a.hit_count()), (1, 21 + 21));
}

#[tokio::test]
async fn errors_carry_the_final_url() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    a.script(
        "/start",
        [Answer::status(301).header("location", &format!("{}/broken", b.url()))],
    );
    b.script("/broken", [Answer::status(500)]);
    let stitch = Stitch::get(format!("{}/start", a.url())).build().unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.url().unwrap().as_str(), format!("{}/broken", b.url()));
}
