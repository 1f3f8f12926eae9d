//! The Upstash REST store, against a faithful Upstash-protocol front on a real redis-server.

use crate::support;

use std::time::Duration;

use stitchapi::store::{Reservation, StitchStore, StitchStoreExt, StoreErrorKind};
use stitchapi::testing::store_conformance;
use stitchapi_redis::UpstashStore;
use support::RedisServer;
use support::upstash::UpstashFront;

#[tokio::test]
async fn upstash_passes_the_conformance_kit_with_and_without_a_prefix() {
    let server = RedisServer::start();
    let front = UpstashFront::start(&server.url(), "test-token-123").await;
    let store = UpstashStore::new(&front.url(), front.token.clone()).unwrap();
    let report = store_conformance(&store, support::kit_options()).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report}");
    let prefixed = UpstashStore::new(&front.url(), front.token.clone())
        .unwrap()
        .prefixed("edge:");
    let report = store_conformance(&prefixed, support::kit_options()).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report}");
}

#[tokio::test]
async fn owned_locks_over_rest_compare_tokens_byte_for_byte_and_interoperate_with_tcp() {
    let server = RedisServer::start();
    let front = UpstashFront::start(&server.url(), "test-token-123").await;
    let rest = UpstashStore::new(&front.url(), front.token.clone()).unwrap();
    let tcp = stitchapi_redis::RedisStore::from_url(&server.url()).unwrap();
    let ttl = Some(Duration::from_secs(60));

    // A non-UTF-8 token travels as marked base64; the comparison sees the same encoding.
    let token = [0xff, 0x00, b'\r', b'\n', 0x80];
    assert!(
        rest.create("bin", token.to_vec().into(), ttl)
            .await
            .unwrap()
    );
    assert!(!rest.create("bin", "other".into(), ttl).await.unwrap());
    assert_eq!(rest.get("bin").await.unwrap().as_deref(), Some(&token[..]));
    assert!(
        !rest
            .renew_if("bin", &token[..4], Duration::ZERO)
            .await
            .unwrap()
    );
    assert!(!rest.delete_if("bin", &token[..4]).await.unwrap());
    assert!(rest.renew_if("bin", &token, Duration::ZERO).await.unwrap());
    assert!(rest.delete_if("bin", &token).await.unwrap());
    assert_eq!(rest.get("bin").await.unwrap(), None);

    // A text token (the core's are hex) taken over one path is owned over the other.
    assert!(rest.create("lock", "3f2a".into(), ttl).await.unwrap());
    assert!(!tcp.create("lock", "9c1d".into(), ttl).await.unwrap());
    assert!(!tcp.delete_if("lock", b"9c1d").await.unwrap());
    assert!(
        tcp.renew_if("lock", b"3f2a", Duration::from_secs(1))
            .await
            .unwrap()
    );
    assert!(tcp.delete_if("lock", b"3f2a").await.unwrap());
    assert!(tcp.create("lock", "9c1d".into(), ttl).await.unwrap());
    assert!(!rest.delete_if("lock", b"3f2a").await.unwrap());
    assert!(rest.delete_if("lock", b"9c1d").await.unwrap());

    // A refused reserve over REST reports its slot and moves nothing.
    let now = stitchapi::time::Timestamp::from_unix(Duration::from_secs(1_767_225_600));
    let spacing = Duration::from_nanos(333_333_333);
    let first = rest.reserve("rl", spacing, now, None, ttl).await.unwrap();
    assert_eq!(first, Reservation::Granted(now));
    let refused = rest
        .reserve("rl", spacing, now, Some(now + spacing / 2), ttl)
        .await
        .unwrap();
    assert_eq!(refused, Reservation::Refused(now + spacing));
    let next = tcp
        .reserve("rl", spacing, now, Some(now + spacing), ttl)
        .await
        .unwrap();
    assert_eq!(
        next,
        Reservation::Granted(now + spacing),
        "exact to the nanosecond"
    );
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
        .with_response_timeout(Duration::from_millis(500));
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
