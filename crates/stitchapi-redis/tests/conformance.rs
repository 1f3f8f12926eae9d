//! The store conformance kit against a real redis-server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use stitchapi::store::{StitchStore, StitchStoreExt};
use stitchapi::testing::{ConformanceOptions, store_conformance};
use stitchapi::time::Timestamp;
use stitchapi_redis::RedisStore;
use support::RedisServer;

#[tokio::test]
async fn redis_passes_the_conformance_kit() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url()).unwrap();
    let report = store_conformance(&store, ConformanceOptions::new()).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report}");
}

#[tokio::test]
async fn redis_with_a_key_prefix_passes_and_prefixes_every_key() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url())
        .unwrap()
        .prefixed("app:");
    store_conformance(&store, ConformanceOptions::new())
        .await
        .assert_ok();

    store.set("k", Some("v".into()), None).await.unwrap();
    store.increment("n", None).await.unwrap();
    let raw = RedisStore::from_url(&server.url()).unwrap();
    assert_eq!(raw.get("app:k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(raw.get("app:n").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(raw.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn values_are_stored_as_given_and_json_round_trips() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url()).unwrap();
    store
        .set_json("user", &serde_json::json!({"name": "Ada", "n": 7}), None)
        .await
        .unwrap();
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let raw: String = redis::cmd("GET")
        .arg("user")
        .query(&mut connection)
        .unwrap();
    assert_eq!(
        raw, r#"{"n":7,"name":"Ada"}"#,
        "other tools read the same JSON"
    );
    let back: serde_json::Value = store.get_json("user").await.unwrap().unwrap();
    assert_eq!(back["n"], 7);
    // A value written by another tool that is not JSON comes back as its raw bytes.
    redis::cmd("SET")
        .arg("plain")
        .arg("not json")
        .query::<()>(&mut connection)
        .unwrap();
    assert_eq!(
        store.get("plain").await.unwrap().as_deref(),
        Some(&b"not json"[..])
    );
}

#[tokio::test]
async fn server_time_paces_callers_with_skewed_clocks_as_one() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url())
        .unwrap()
        .with_server_time(true);
    // Two callers two hours apart share one pace; each grant comes back on the caller's own
    // clock, and the waits are measured by Redis's.
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let hour = Duration::from_secs(3600);
    let (behind, ahead) = (
        Timestamp::from_unix(host - hour),
        Timestamp::from_unix(host + hour),
    );
    let spacing = Duration::from_millis(100);
    let wait_ms = |grant: Timestamp, now: Timestamp| grant.as_millis_f64() - now.as_millis_f64();

    let first = store.reserve("rl:x", spacing, behind, None).await.unwrap();
    let second = store.reserve("rl:x", spacing, ahead, None).await.unwrap();
    let third = store.reserve("rl:x", spacing, behind, None).await.unwrap();

    // The elapsed real time between the calls comes off each later wait.
    let first_wait = wait_ms(first, behind);
    assert!(
        first_wait.abs() < 0.001,
        "the first grant waits {first_wait} ms"
    );
    let second_wait = wait_ms(second, ahead);
    assert!(
        (50.0..=100.001).contains(&second_wait),
        "the second grant waits {second_wait} ms, not about 100"
    );
    let third_wait = wait_ms(third, behind);
    assert!(
        (150.0..=200.001).contains(&third_wait),
        "the third grant waits {third_wait} ms, not about 200"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_store_error_not_a_hang() {
    let mut server = RedisServer::start();
    let store: Arc<dyn StitchStore> = Arc::new(RedisStore::from_url(&server.url()).unwrap());
    store.set("k", Some("v".into()), None).await.unwrap();
    server.stop();
    let started = std::time::Instant::now();
    let error = store.get("k").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(error.backend(), "redis");
    assert_eq!(error.operation(), "get");
    assert!(
        error.to_string().starts_with("redis store: get failed"),
        "{error}"
    );

    server.restart();
    // The same store reconnects by itself.
    let mut recovered = false;
    for _ in 0..50 {
        if store.set("k", Some("again".into()), None).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store never reconnected");
    assert_eq!(
        store.get("k").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}
