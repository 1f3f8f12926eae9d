//! Seams share base URL, headers, defaults, clock and store; members' own settings win.

use crate::support;

use std::sync::Arc;

use serde_json::json;
use stitchapi::config::SeamConfig;
use stitchapi::testing::ManualClock;
use stitchapi::{Input, Seam, Stitch, Timeout};
use support::{Answer, Upstream};

#[tokio::test]
async fn members_inherit_and_override() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/v1/users",
        [
            Answer::status(503),
            Answer::json(200, json!({"data": [1, 2]})),
        ],
    );
    upstream.script("/v1/ping", [Answer::status(503)]);
    let api = Seam::builder(format!("{}/v1/", upstream.url()))
        .header("x-app", "demo")
        .header("x-env", "test")
        .retry(2)
        .clock(Arc::new(ManualClock::auto_advance()))
        // Sleeps end at once on this clock, so would a timer racing the real upstream: no timeout.
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let list = api
        .get("/users")
        .header("x-env", "member")
        .pick("data")
        .build()
        .unwrap();
    assert_eq!(list.call(Input::new()).await.unwrap(), json!([1, 2]));
    let hit = &upstream.hits()[1];
    assert_eq!(hit.target, "/v1/users");
    assert_eq!(hit.headers["x-app"], "demo");
    assert_eq!(hit.headers["x-env"], "member");

    let ping = api.get("ping").retry(1).build().unwrap();
    let error = ping.call(Input::new()).await.unwrap_err();
    assert_eq!(error.attempts(), 1, "the member's own retry wins");
}

#[tokio::test]
async fn an_absolute_member_url_is_used_as_is() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    b.script("/elsewhere", [Answer::status(200)]);
    let api = Seam::builder(a.url()).build().unwrap();
    let stitch = api.get(format!("{}/elsewhere", b.url())).build().unwrap();
    stitch.call(Input::new()).await.unwrap();
    assert_eq!((a.hit_count(), b.hit_count()), (0, 1));
}

#[tokio::test]
async fn members_share_one_store() {
    let api = Seam::builder("https://api.example.com").build().unwrap();
    let a = api.get("/a").build().unwrap();
    let b = api.get("/b").build().unwrap();
    assert!(Arc::ptr_eq(a.store(), b.store()));
    assert!(Arc::ptr_eq(a.store(), api.store()));
    let standalone = Stitch::get("https://api.example.com/c").build().unwrap();
    assert!(!Arc::ptr_eq(standalone.store(), api.store()));
}

#[test]
fn invalid_declarations_fail_at_build_naming_field_and_fix() {
    let cases: Vec<(Result<(), stitchapi::BuildError>, &str)> = vec![
        (
            Seam::builder("api.example.com").build().map(drop),
            "base_url:",
        ),
        (
            Seam::builder("ftp://api.example.com").build().map(drop),
            "base_url: the scheme \"ftp\"",
        ),
        (
            Seam::builder("https://x.example")
                .timeout("ten seconds")
                .build()
                .map(drop),
            "timeout.total: invalid duration",
        ),
        (
            Seam::builder("https://x.example")
                .header("bad header", "v")
                .build()
                .map(drop),
            "headers: the name given to header call #1 is not a valid header name",
        ),
        (
            Stitch::get("/users").build().map(drop),
            "url: \"/users\" is not an absolute URL",
        ),
        (
            Stitch::get("https://x.example/{id").build().map(drop),
            "url: invalid URL template",
        ),
        (
            Stitch::get("https://x.example").retry(0).build().map(drop),
            "retry.attempts:",
        ),
        (
            Stitch::get("https://x.example")
                .accept([99])
                .build()
                .map(drop),
            "accept: 99 is not an HTTP status",
        ),
        (
            Stitch::get("https://x.example")
                .pick("a..b")
                .build()
                .map(drop),
            "pick:",
        ),
        (
            Stitch::get("https://x.example")
                .text()
                .pick("a")
                .build()
                .map(drop),
            "pick: pick applies to JSON output only",
        ),
        (
            Stitch::get("https://x.example")
                .max_response_bytes(0)
                .build()
                .map(drop),
            "max_response_bytes:",
        ),
        (
            Stitch::post("https://x.example")
                .idempotency(stitchapi::Idempotency::new().header("a b"))
                .build()
                .map(drop),
            "idempotency.header:",
        ),
    ];
    for (result, prefix) in cases {
        let error = result.expect_err(prefix);
        assert!(
            prefix.starts_with(&format!("{}:", error.field())),
            "{error}: the field is {}",
            error.field()
        );
        assert!(
            error.to_string().starts_with(prefix),
            "{error} should start with {prefix}"
        );
        assert!(
            error.to_string().contains("Fix: "),
            "{error} should say how to fix it"
        );
    }
}

#[tokio::test]
async fn a_declared_seam_runs_from_toml() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users/7",
        [
            Answer::status(502),
            Answer::json(200, json!({"data": {"id": 7}})),
        ],
    );
    upstream.script("/health", [Answer::status(200).body("ok")]);
    let config: SeamConfig = toml::from_str(&format!(
        r#"
        base_url = "{}"
        headers = {{ x-app = "from-toml" }}
        retry = {{ attempts = 2, backoff = "fixed", base = "1ms" }}
        [stitches.get_user]
        path = "/users/{{id}}"
        pick = "data"
        [stitches.health]
        path = "/health"
        output = "text"
        "#,
        upstream.url()
    ))
    .unwrap();
    let catalog = config.build().unwrap();
    let user = catalog
        .get("get_user")
        .unwrap()
        .call(Input::new().param("id", 7))
        .await
        .unwrap();
    assert_eq!(user, json!({"id": 7}));
    let health = catalog
        .get("health")
        .unwrap()
        .call(Input::new())
        .await
        .unwrap();
    assert_eq!(health, json!("ok"));
    assert_eq!(catalog.get("get_user").unwrap().name(), "get_user");
    assert_eq!(upstream.hits()[0].headers["x-app"], "from-toml");
}

/// The typed forms (`Duration`, `StatusCode`, `HeaderName`/`HeaderValue`, `Rate`) declare the
/// same calls as their string and number spellings, end to end against a real upstream.
#[tokio::test]
async fn typed_values_declare_whole_calls() {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use http::StatusCode;
    use http::header::{ACCEPT, HeaderName, HeaderValue};
    use stitchapi::Retry;
    use stitchapi::throttle::{Rate, Throttle};
    use stitchapi::time::Clock;

    let upstream = Upstream::start().await;
    upstream.script(
        "/v1/items",
        [
            Answer::status(503),
            Answer::status(404),
            Answer::status(200),
        ],
    );
    let clock = Arc::new(ManualClock::auto_advance());
    let api = Seam::builder(format!("{}/v1/", upstream.url()))
        .header(ACCEPT, "text/plain")
        .header(
            HeaderName::from_static("x-app"),
            HeaderValue::from_static("demo"),
        )
        .header(String::from("x-env"), String::from("test"))
        .clock(clock.clone())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let items = api
        .get("/items")
        .text()
        .retry(
            Retry::attempts(2)
                .on([StatusCode::SERVICE_UNAVAILABLE])
                .base(Duration::from_millis(10))
                .max(Duration::from_millis(10)),
        )
        .accept([StatusCode::NOT_FOUND])
        .throttle(Throttle::new(Rate::per_second(NonZeroU32::new(10).unwrap())).with_concurrency(1))
        .circuit(5, Duration::from_secs(30))
        .build()
        .unwrap();
    // 503 is retried (typed `on`), then the 404 is accepted (typed `accept`).
    let reply = items.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.attempts, 2);
    // The next call is paced 100 ms after the previous grant by the typed rate.
    let before = clock.now();
    items.call(Input::new()).await.unwrap();
    assert!(clock.now().saturating_duration_since(before) >= Duration::from_millis(90));
    let hits = upstream.hits();
    assert_eq!(hits.len(), 3);
    for hit in &hits {
        assert_eq!(hit.headers[ACCEPT], "text/plain");
        assert_eq!(hit.headers["x-app"], "demo");
        assert_eq!(hit.headers["x-env"], "test");
    }
}

/// A bad header value fails `build()` naming the header, never showing the value; a bad
/// status in any status option fails naming its field.
#[test]
fn typed_declarations_fail_naming_the_field() {
    use http::StatusCode;
    use stitchapi::Retry;
    use stitchapi::auth::{Auth, OAuth2};
    use stitchapi::throttle::Throttle;

    let error = Stitch::get("https://x.example")
        .header("x-token", "s3cret\nx-injected: 1")
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("headers.x-token: the value is not a valid header value"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    // A later header of the same name replaces a bad one.
    Seam::builder("https://x.example")
        .header("x-token", "bad\n")
        .header(http::header::HeaderName::from_static("x-token"), "good")
        .build()
        .unwrap();

    let oauth = OAuth2::client_credentials("https://auth.example/token", "id", "secret")
        .refresh_on([StatusCode::UNAUTHORIZED.as_u16(), 1000]);
    for (built, field) in [
        (
            Stitch::get("https://x.example")
                .retry(Retry::attempts(2).on([600]))
                .build()
                .map(drop),
            "retry.on: 600 is not an HTTP status",
        ),
        (
            Stitch::get("https://x.example")
                .throttle(Throttle::delegate().on([42]))
                .build()
                .map(drop),
            "throttle.on: 42 is not an HTTP status",
        ),
        (
            Stitch::get("https://x.example")
                .auth(Auth::oauth2(oauth.clone()))
                .build()
                .map(drop),
            "auth.oauth2.refresh_on: 1000 is not an HTTP status",
        ),
        (
            Seam::builder("https://x.example")
                .auth(Auth::oauth2(oauth))
                .build()
                .map(drop),
            "auth.oauth2.refresh_on: 1000 is not an HTTP status",
        ),
    ] {
        let error = built.unwrap_err();
        assert!(field.starts_with(error.field()), "{error}");
        assert!(error.to_string().starts_with(field), "{error}");
    }
    // Typed statuses are accepted everywhere.
    Stitch::get("https://x.example")
        .auth(Auth::oauth2(
            OAuth2::client_credentials("https://auth.example/token", "id", "secret")
                .refresh_on([StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]),
        ))
        .throttle(Throttle::delegate().on([StatusCode::TOO_MANY_REQUESTS]))
        .build()
        .unwrap();
}
