//! The Upstash REST store, against a faithful Upstash-protocol front on a real redis-server.

mod support;

use std::time::Duration;

use stitchapi::store::{StitchStore, StitchStoreExt, StoreErrorKind};
use stitchapi::testing::{ConformanceOptions, store_conformance};
use stitchapi_redis::UpstashStore;
use support::RedisServer;
use support::upstash::UpstashFront;

#[tokio::test]
async fn upstash_passes_the_conformance_kit_with_and_without_a_prefix() {
    let server = RedisServer::start();
    let front = UpstashFront::start(&server.url(), "test-token-123").await;
    let store = UpstashStore::new(&front.url(), front.token.clone()).unwrap();
    store_conformance(&store, ConformanceOptions::new())
        .await
        .assert_ok();
    let prefixed = UpstashStore::new(&front.url(), front.token.clone())
        .unwrap()
        .prefixed("edge:");
    store_conformance(&prefixed, ConformanceOptions::new())
        .await
        .assert_ok();
}

#[tokio::test]
async fn values_written_over_tcp_read_back_over_rest_byte_for_byte() {
    let server = RedisServer::start();
    let front = UpstashFront::start(&server.url(), "test-token-123").await;
    let rest = UpstashStore::new(&front.url(), front.token.clone()).unwrap();
    let tcp = stitchapi_redis::RedisStore::from_url(&server.url()).unwrap();
    for text in ["null", "123", "true", r#"{"x":1}"#, "[1,2]", "héllo"] {
        tcp.set("v", Some(text.into()), None).await.unwrap();
        assert_eq!(
            rest.get("v").await.unwrap().as_deref(),
            Some(text.as_bytes()),
            "{text}"
        );
        rest.set("w", Some(text.into()), None).await.unwrap();
        assert_eq!(
            tcp.get("w").await.unwrap().as_deref(),
            Some(text.as_bytes()),
            "{text}"
        );
    }
    // A counter made by one is read and bumped by the other.
    assert_eq!(tcp.increment("n", None).await.unwrap(), 1);
    assert_eq!(rest.increment("n", None).await.unwrap(), 2);
    assert_eq!(rest.get("n").await.unwrap().as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_store_error() {
    let server = RedisServer::start();
    let front = UpstashFront::start(&server.url(), "test-token-123").await;
    let store = UpstashStore::new(&front.url(), "wrong-token").unwrap();
    let error = store.get("k").await.unwrap_err();
    assert_eq!(error.backend(), "upstash");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable);
    assert!(
        error.to_string().contains("HTTP 401: Unauthorized"),
        "{error}"
    );
    assert!(
        !format!("{store:?}").contains("wrong-token"),
        "the token never reaches Debug"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_at_once() {
    let store = UpstashStore::new("http://127.0.0.1:9", "t").unwrap();
    let started = std::time::Instant::now();
    let error = store.increment("k", None).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
}

#[tokio::test]
async fn a_silent_endpoint_times_out_instead_of_hanging() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = UpstashStore::new(&format!("http://{addr}"), "t")
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let error = store.increment("k", None).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    assert!(
        error.to_string().contains("no answer within 500ms"),
        "{error}"
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn a_token_that_cannot_be_a_header_fails_at_construction() {
    let error = UpstashStore::new("https://example.upstash.io", "bad\ntoken").unwrap_err();
    assert!(
        error.to_string().contains("not a valid header value"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("bad"),
        "the token never reaches errors"
    );
}
