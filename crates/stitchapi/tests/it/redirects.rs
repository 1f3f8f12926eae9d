//! Redirects are followed by the engine; credentials never cross to another origin.

use crate::support;

use serde_json::json;
use stitchapi::policy::Redirects;
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
        .idempotency(stitchapi::Idempotency::new())
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
    assert_eq!(
        error.to_string(),
        format!(
            "too many redirects (more than 20); the next was to {}/loop",
            a.url()
        )
    );
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

/// A chain `/r/0 -> /r/1 -> ... -> /r/{hops}` answering JSON at the end.
fn chain(upstream: &Upstream, hops: usize) {
    for n in 0..hops {
        upstream.script(
            &format!("/r/{n}"),
            [Answer::status(302).header("location", &format!("/r/{}", n + 1))],
        );
    }
    upstream.script(
        &format!("/r/{hops}"),
        [Answer::json(200, json!({"end": hops}))],
    );
}

#[tokio::test]
async fn too_many_redirects_names_the_last_url_sent_and_the_next() {
    let a = Upstream::start().await;
    chain(&a, 10);
    let stitch = Stitch::get(format!("{}/r/0", a.url()))
        .redirects(Redirects::limit(3))
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.transport_kind(), Some(TransportErrorKind::Redirect));
    // /r/0 and three redirects followed: /r/3 was the last URL sent.
    assert_eq!(a.hit_count(), 4);
    assert_eq!(error.url().unwrap().as_str(), format!("{}/r/3", a.url()));
    assert_eq!(
        error.to_string(),
        format!(
            "too many redirects (more than 3); the next was to {}/r/4",
            a.url()
        )
    );
}

#[tokio::test]
async fn a_refused_redirect_names_the_url_that_asked_for_it() {
    let a = Upstream::start().await;
    a.script("/start", [Answer::status(302).header("location", "/next")]);
    a.script(
        "/next",
        [Answer::status(302).header("location", "ftp://files.example.com/x")],
    );
    let stitch = Stitch::get(format!("{}/start", a.url())).build().unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.transport_kind(), Some(TransportErrorKind::Redirect));
    assert_eq!(error.url().unwrap().as_str(), format!("{}/next", a.url()));
    assert!(
        error.to_string().contains("non-HTTP scheme (ftp)"),
        "{error}"
    );
}

#[tokio::test]
async fn the_reply_lists_the_redirects_it_followed() {
    let a = Upstream::start().await;
    chain(&a, 2);
    let stitch = Stitch::get(format!("{}/r/0", a.url())).build().unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.data["end"], 2);
    let hops: Vec<(u16, String)> = reply
        .redirects
        .iter()
        .map(|hop| (hop.status.as_u16(), hop.url.to_string()))
        .collect();
    assert_eq!(
        hops,
        [
            (302, format!("{}/r/0", a.url())),
            (302, format!("{}/r/1", a.url()))
        ]
    );
    assert_eq!(reply.redirects[0].headers["location"], "/r/1");
    assert_eq!(reply.url.as_str(), format!("{}/r/2", a.url()));
}

#[tokio::test]
async fn a_stitch_that_follows_no_redirect_answers_with_the_3xx() {
    let a = Upstream::start().await;
    chain(&a, 1);
    let stitch = Stitch::get(format!("{}/r/0", a.url()))
        .redirects(Redirects::none())
        .text()
        .build()
        .unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.status, 302);
    assert_eq!(reply.headers["location"], "/r/1");
    assert!(reply.redirects.is_empty());
    assert_eq!(a.hit_count(), 1, "the redirect was not followed");

    // Declared on a seam, its members inherit it; a member can follow again.
    let api = Seam::builder(a.url())
        .redirects(Redirects::none())
        .build()
        .unwrap();
    let raw = api.get("/r/0").text().build().unwrap();
    assert_eq!(raw.call_detailed(Input::new()).await.unwrap().status, 302);
    let following = api
        .get("/r/0")
        .redirects(Redirects::limit(1))
        .build()
        .unwrap();
    assert_eq!(following.call(Input::new()).await.unwrap()["end"], 1);
}

#[tokio::test]
async fn a_config_file_can_turn_redirects_off() {
    let a = Upstream::start().await;
    chain(&a, 1);
    let config: stitchapi::config::SeamConfig = toml::from_str(&format!(
        r#"
        base_url = "{}"
        redirects = false

        [stitches.first]
        path = "/r/0"
        output = "text"
        "#,
        a.url()
    ))
    .unwrap();
    let catalog = config.build().unwrap();
    let reply = catalog
        .get("first")
        .unwrap()
        .call_detailed(Input::new())
        .await
        .unwrap();
    assert_eq!(reply.status, 302);
}

#[tokio::test]
async fn cookies_a_redirect_sets_go_only_to_later_hops_of_its_chain_that_match() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    a.script(
        "/start",
        [Answer::status(302)
            .header("set-cookie", "hop=1; Path=/")
            .header("set-cookie", "narrow=1; Path=/elsewhere")
            .header("location", "/land")],
    );
    // Cookies are scoped by host, not port (RFC 6265 §8.5): the other site is another host.
    let other_host = format!("http://localhost:{}", b.addr.port());
    a.script(
        "/land",
        [Answer::status(307).header("location", &format!("{other_host}/away"))],
    );
    b.script("/away", [Answer::json(200, json!({"ok": true}))]);
    let stitch = Stitch::get(format!("{}/start", a.url()))
        .header("cookie", "mine=2")
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap();
    let hits = a.hits();
    assert_eq!(hits[0].headers["cookie"], "mine=2");
    // As a browser does: the same-origin hop carries the new cookie where its path matches.
    assert_eq!(hits[1].target, "/land");
    assert_eq!(hits[1].headers["cookie"], "mine=2; hop=1");
    // Another host gets none of them.
    assert!(!b.hits()[0].headers.contains_key("cookie"));
    // And nothing outlives the call.
    stitch.call(Input::new()).await.unwrap();
    assert_eq!(a.hits()[2].headers["cookie"], "mine=2");
}

#[tokio::test]
async fn debug_of_a_reply_never_prints_a_cookie_it_was_given() {
    let a = Upstream::start().await;
    a.script(
        "/start",
        [Answer::status(302)
            .header("set-cookie", "session=hop-secret; Path=/")
            .header("location", "/end")],
    );
    a.script(
        "/end",
        [Answer::json(200, json!({})).header("set-cookie", "session=final-secret")],
    );
    let stitch = Stitch::get(format!("{}/start", a.url())).build().unwrap();
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.headers["set-cookie"], "session=final-secret");
    let debug = format!("{reply:?}");
    assert!(debug.contains("Sensitive"), "{debug}");
    assert!(!debug.contains("secret"), "{debug}");
}
