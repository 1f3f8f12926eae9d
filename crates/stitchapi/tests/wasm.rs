//! The core's behaviour on wasm32, run under `wasm-bindgen-test` in Node: URL templates, a
//! whole call retried with backoff and `Retry-After` in virtual time, per-attempt timeouts on
//! the real JavaScript timers, and the store
//! conformance kit on the memory store. Edge behaviour is tested, not only compiled.
//!
//! `scripts/test` runs it with
//! `cargo test -p stitchapi --features testing --target wasm32-unknown-unknown --test wasm`
//! (the runner is `wasm-bindgen-test-runner`, installed by `scripts/edge-tools`). On native
//! targets this file is empty: the same behaviour is tested by `tests/it`.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use stitchapi::store::MemoryStore;
use stitchapi::template::UrlTemplate;
use stitchapi::testing::{
    ConformanceOptions, ManualClock, MockResponse, MockTransport, store_conformance, store_rules,
};
use stitchapi::time::Clock;
use stitchapi::{Backoff, ErrorKind, Input, Retry, Served, Stitch, Timeout};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn rfc_6570_examples_expand() {
    let vars: Vec<(&str, Value)> = vec![
        ("var", json!("value")),
        ("hello", json!("Hello World!")),
        ("path", json!("/foo/bar")),
        ("list", json!(["red", "green", "blue"])),
        ("keys", json!({"semi": ";", "dot": ".", "comma": ","})),
        ("x", json!("1024")),
        ("y", json!("768")),
    ];
    let cases = [
        ("{var}", "value"),
        ("{hello}", "Hello%20World%21"),
        ("{+hello}", "Hello%20World!"),
        ("{+path}/here", "/foo/bar/here"),
        ("map?{x,y}", "map?1024,768"),
        ("{#path,x}/here", "#/foo/bar,1024/here"),
        ("{/list*}", "/red/green/blue"),
        ("{?x,y}", "?x=1024&y=768"),
        ("{?list}", "?list=red,green,blue"),
        ("{;x,y}", ";x=1024;y=768"),
        ("{&x}", "&x=1024"),
        ("{var:3}", "val"),
    ];
    for (template, expected) in cases {
        let parsed = UrlTemplate::parse(template).unwrap();
        assert_eq!(
            parsed.expand_to_string(&vars).unwrap(),
            expected,
            "{template}"
        );
    }
}

#[wasm_bindgen_test]
fn a_value_never_changes_the_path_shape() {
    let template = UrlTemplate::parse("https://api.example.com/users/{id}").unwrap();
    let expand = |value: &str| template.expand_to_string(&vec![("id", json!(value))]);
    assert_eq!(
        expand("a/b?c#d").unwrap(),
        "https://api.example.com/users/a%2Fb%3Fc%23d"
    );
    // A value that would be a `..` segment once a server decodes `%2F` is refused.
    assert!(expand("../admin").is_err());
}

fn users(mock: &MockTransport, clock: &ManualClock) -> Stitch {
    Stitch::get("https://api.example.com/users/{id}")
        .retry(
            Retry::attempts(3)
                .on([503])
                .backoff(Backoff::ExpoJitter)
                .base(Duration::from_millis(100)),
        )
        .timeout(Timeout::total(Duration::from_secs(10)).each(Duration::from_secs(2)))
        .transport(Arc::new(mock.clone()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

#[wasm_bindgen_test]
async fn a_call_retries_with_backoff_and_honours_retry_after() {
    let mock = MockTransport::new();
    mock.route(
        Method::GET,
        "/users/7",
        [
            MockResponse::status(503),
            MockResponse::status(503).header("retry-after", "3"),
            MockResponse::json(200, &json!({"id": 7})),
        ],
    );
    let clock = ManualClock::auto_advance();
    let started = clock.now();
    let reply = users(&mock, &clock)
        .call_detailed(Input::new().param("id", 7))
        .await
        .unwrap();
    assert_eq!(reply.data["id"], 7);
    assert_eq!((reply.attempts, reply.served), (3, Served::Network));
    // One expo-jitter wait (at most the 100 ms base), then the 3 s the upstream asked for.
    let waited = clock.now().saturating_duration_since(started);
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_millis(3_100),
        "{waited:?}"
    );
    assert_eq!(mock.requests().len(), 3);
}

#[wasm_bindgen_test]
async fn a_call_that_keeps_failing_says_why_and_how_often() {
    let mock = MockTransport::new();
    mock.route(Method::GET, "/users/1", [MockResponse::status(503)]);
    let clock = ManualClock::auto_advance();
    let error = users(&mock, &clock)
        .call(Input::new().param("id", 1))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(error.attempts(), 3);
    assert!(error.is_retryable());
}

#[wasm_bindgen_test]
async fn a_silent_upstream_ends_each_attempt_at_its_timeout_on_the_real_clock() {
    // The system clock of wasm32 (`web-time` and JavaScript timers), not a manual one.
    let mock = MockTransport::new();
    mock.route(Method::GET, "/slow", [MockResponse::hang()]);
    let stitch = Stitch::get("https://api.example.com/slow")
        .retry(Retry::attempts(2).base(Duration::from_millis(10)))
        .timeout(Timeout::total(Duration::from_secs(5)).each(Duration::from_millis(50)))
        .transport(Arc::new(mock.clone()))
        .build()
        .unwrap();
    let started = web_time::Instant::now();
    let error = stitch.call(Input::new()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.attempts(), 2);
    assert_eq!(mock.requests().len(), 2);
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[wasm_bindgen_test]
async fn the_memory_store_passes_the_conformance_kit() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(Arc::new(clock.clone()));
    let report = store_conformance(
        &store,
        ConformanceOptions::new().with_manual_clock(clock.clone()),
    )
    .await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), store_rules().count());
}
