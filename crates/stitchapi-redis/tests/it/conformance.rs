//! The store conformance kit against a real redis-server.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use stitchapi::store::{Reservation, StitchStore, StitchStoreExt};
use stitchapi::testing::store_conformance;
use stitchapi::time::Timestamp;
use stitchapi_redis::RedisStore;
use support::RedisServer;

#[tokio::test]
async fn redis_passes_the_conformance_kit() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url()).unwrap();
    let report = store_conformance(&store, support::kit_options()).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report}");
}

#[tokio::test]
async fn redis_with_a_key_prefix_passes_and_prefixes_every_key() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url())
        .unwrap()
        .prefixed("app:");
    let report = store_conformance(&store, support::kit_options()).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report}");

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

    let granted = |reservation: Reservation| match reservation {
        Reservation::Granted(at) => at,
        Reservation::Refused(at) => panic!("a reserve without a latest was refused at {at}"),
    };
    let first = granted(
        store
            .reserve("rl:x", spacing, behind, None, None)
            .await
            .unwrap(),
    );
    let second = granted(
        store
            .reserve("rl:x", spacing, ahead, None, None)
            .await
            .unwrap(),
    );
    let third = granted(
        store
            .reserve("rl:x", spacing, behind, None, None)
            .await
            .unwrap(),
    );

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

#[tokio::test]
async fn server_time_compares_latest_on_the_callers_clock_and_a_refusal_moves_nothing() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url())
        .unwrap()
        .with_server_time(true);
    // A caller an hour behind Redis: its `latest` is on its own clock.
    let behind = Timestamp::from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            - Duration::from_secs(3600),
    );
    let spacing = Duration::from_secs(10);
    let ttl = Some(Duration::from_secs(60));
    let first = store
        .reserve("rl:late", spacing, behind, Some(behind), ttl)
        .await
        .unwrap();
    assert_eq!(
        first,
        Reservation::Granted(behind),
        "a fresh cell grants at once, on the caller's clock, even with latest = now"
    );
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let cell: String = redis::cmd("GET")
        .arg("rl:late")
        .query(&mut connection)
        .unwrap();

    // The next grant is about 10 s away on any clock: refused with a latest 5 s out.
    let refused = store
        .reserve(
            "rl:late",
            spacing,
            behind,
            Some(behind + Duration::from_secs(5)),
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let Reservation::Refused(at) = refused else {
        panic!("granted past latest: {refused:?}");
    };
    let wait = at.saturating_duration_since(behind);
    assert!(
        (Duration::from_secs(9)..=spacing).contains(&wait),
        "the refusal reports the grant it could have had, {wait:?} away on the caller's clock"
    );
    let after: String = redis::cmd("GET")
        .arg("rl:late")
        .query(&mut connection)
        .unwrap();
    assert_eq!(after, cell, "a refusal does not move the cell");
    let pttl: i64 = redis::cmd("PTTL")
        .arg("rl:late")
        .query(&mut connection)
        .unwrap();
    assert!(
        (1..=60_000).contains(&pttl),
        "a refusal does not refresh the TTL (PTTL {pttl})"
    );

    // A latest past it is granted the same slot.
    let granted = store
        .reserve("rl:late", spacing, behind, Some(at), ttl)
        .await
        .unwrap();
    assert!(granted.is_granted(), "{granted:?}");
    // Redis's clock moved on while the caller's `now` stood still, so the same slot comes
    // back a little earlier on the caller's clock.
    let off = at.saturating_duration_since(granted.at());
    assert!(
        off < Duration::from_millis(100) && granted.at() <= at,
        "granted {off:?} before the refused slot"
    );
}

#[tokio::test]
async fn owned_locks_live_by_real_ttls_and_a_zero_renewal_persists() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url()).unwrap();
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut pttl =
        |key: &str| -> i64 { redis::cmd("PTTL").arg(key).query(&mut connection).unwrap() };
    let ttl = Duration::from_millis(200);

    // Taken with a TTL, kept alive past it by renewals every third of it (as the core does).
    assert!(
        store
            .create("lock", "owner-a".into(), Some(ttl))
            .await
            .unwrap()
    );
    assert!((1..=200).contains(&pttl("lock")), "{}", pttl("lock"));
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(450) {
        tokio::time::sleep(Duration::from_millis(66)).await;
        assert!(store.renew_if("lock", b"owner-a", ttl).await.unwrap());
    }
    assert_eq!(
        store.get("lock").await.unwrap().as_deref(),
        Some(&b"owner-a"[..]),
        "renewed, the lock outlives its first TTL"
    );
    assert!(
        !store
            .create("lock", "owner-b".into(), Some(ttl))
            .await
            .unwrap()
    );

    // Owner a stalls: the lock expires, b takes it, and a's late calls leave b's lock alone.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.get("lock").await.unwrap(), None);
    assert!(
        store
            .create("lock", "owner-b".into(), Some(ttl))
            .await
            .unwrap()
    );
    assert!(!store.delete_if("lock", b"owner-a").await.unwrap());
    assert!(!store.renew_if("lock", b"owner-a", ttl).await.unwrap());
    assert_eq!(
        store.get("lock").await.unwrap().as_deref(),
        Some(&b"owner-b"[..])
    );

    // A zero TTL means no expiry: PERSIST, never PEXPIRE 0 (which would delete the key).
    assert!(
        store
            .renew_if("lock", b"owner-b", Duration::ZERO)
            .await
            .unwrap()
    );
    assert_eq!(pttl("lock"), -1, "the lock is persisted");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        store.get("lock").await.unwrap().as_deref(),
        Some(&b"owner-b"[..])
    );
    assert!(store.delete_if("lock", b"owner-b").await.unwrap());
    assert_eq!(pttl("lock"), -2, "released by its owner");

    // Tokens compare byte for byte, non-UTF-8 included; `create` without a TTL never expires.
    let token = [0xff, 0x00, b'\r', b'\n', 0x80];
    assert!(
        store
            .create("bin", token.to_vec().into(), None)
            .await
            .unwrap()
    );
    assert_eq!(pttl("bin"), -1);
    assert!(!store.delete_if("bin", &token[..4]).await.unwrap());
    assert!(store.renew_if("bin", &token, ttl).await.unwrap());
    assert!((1..=200).contains(&pttl("bin")));
    assert!(store.delete_if("bin", &token).await.unwrap());
}

/// `increment` is a `MULTI`/`EXEC` transaction, not a script: the TTL is set only when it
/// creates the counter, a key of another type fails and is left exactly as it was, and Redis
/// runs no Lua for it.
#[tokio::test]
async fn increment_sets_the_ttl_only_on_creation_without_lua() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(&server.url()).unwrap();
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut pttl =
        |key: &str| -> i64 { redis::cmd("PTTL").arg(key).query(&mut connection).unwrap() };
    let minute = Some(Duration::from_secs(60));

    assert_eq!(store.increment("window", minute).await.unwrap(), 1);
    assert!((59_000..=60_000).contains(&pttl("window")));
    assert_eq!(
        store
            .increment("window", Some(Duration::from_secs(3600)))
            .await
            .unwrap(),
        2
    );
    assert!(
        (1..=60_000).contains(&pttl("window")),
        "a later TTL does not extend the window"
    );

    store.set("kept", Some("5".into()), None).await.unwrap();
    assert_eq!(store.increment("kept", minute).await.unwrap(), 6);
    assert_eq!(pttl("kept"), -1, "an existing counter gets no TTL");
    assert_eq!(store.increment("forever", None).await.unwrap(), 1);
    assert_eq!(pttl("forever"), -1);

    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("RPUSH")
        .arg("list")
        .arg("x")
        .query(&mut connection)
        .unwrap();
    let error = store.increment("list", minute).await.unwrap_err();
    assert_eq!(
        error.kind(),
        stitchapi::store::StoreErrorKind::Backend,
        "{error}"
    );
    assert!(error.to_string().contains("WRONGTYPE"), "{error}");
    let kind: String = redis::cmd("TYPE")
        .arg("list")
        .query(&mut connection)
        .unwrap();
    assert_eq!(kind, "list", "the other key is left as it was");
    let ttl: i64 = redis::cmd("PTTL")
        .arg("list")
        .query(&mut connection)
        .unwrap();
    assert_eq!(ttl, -1, "and gets no TTL");

    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection)
        .unwrap();
    assert!(!stats.contains("cmdstat_eval"), "no script ran: {stats}");
    assert!(stats.contains("cmdstat_exec:calls=4"), "{stats}");
}
