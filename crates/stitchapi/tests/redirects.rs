//! Redirects are followed by the engine; credentials never cross to another origin.

mod support;

use serde_json::json;
use stitchapi::{ErrorKind, Input, Stitch};
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
    for name in ["authorization", "cookie", "proxy-authorization"] {
        assert!(!landed.headers.contains_key(name), "{name} crossed origins");
    }
    assert_eq!(landed.headers["x-trace"], "keep-me");
    assert!(a.hits()[0].headers.contains_key("authorization"));
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
