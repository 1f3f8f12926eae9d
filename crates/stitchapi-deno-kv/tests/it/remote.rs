//! The KV Connect store against a real `denokv serve`: the conformance kit, exact counts under
//! contention, data written embedded and served remotely, clear errors for a wrong token and
//! an unreachable server, and the metadata exchanged again when it expires.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stitchapi::store::{Scope, StitchStore, StoreErrorKind};
use stitchapi::time::{ManualClock, SystemClock};
use stitchapi_deno_kv::{DenoKvStore, KvConnect};

use crate::support::{Counting, Denokv, Scratch, free_port, passes_every_rule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_connect_passes_the_conformance_kit() {
    let server = Denokv::start();
    let store = server.store();
    assert_eq!(store.capabilities().scope, Scope::Fleet);
    assert!(store.capabilities().owned_locks());
    passes_every_rule(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_through_four_clients_net_the_exact_sum() {
    // Four stores are four KV Connect clients: their races are lost on the server.
    let server = Denokv::start();
    let stores: Vec<_> = (0..4).map(|_| Arc::new(server.store())).collect();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..10 {
                    seen.push(
                        store
                            .increment("hits", Some(Duration::from_secs(60)))
                            .await
                            .unwrap(),
                    );
                }
                seen
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    answers.sort_unstable();
    assert_eq!(
        answers,
        (1..=320).collect::<Vec<i64>>(),
        "every count answered once"
    );
    assert_eq!(
        stores[0].get("hits").await.unwrap().as_deref(),
        Some(&b"320"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_embedded_is_served_by_denokv_under_the_same_keys() {
    let scratch = Scratch::new("embedded");
    let path = scratch.path("kv.sqlite");
    let embedded = DenoKvStore::open(&path).unwrap();
    embedded.set("kept", Some("v".into()), None).await.unwrap();
    embedded
        .set(
            "for-a-minute",
            Some("w".into()),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(embedded.increment("n", None).await.unwrap(), 1);
    embedded.close().await.unwrap();
    drop(embedded);

    let server = Denokv::serve(&path);
    let remote = server.store();
    assert_eq!(
        remote.get("kept").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        remote.get("for-a-minute").await.unwrap().as_deref(),
        Some(&b"w"[..])
    );
    assert_eq!(remote.increment("n", None).await.unwrap(), 2);
    let other = server.store().with_prefix("other");
    assert_eq!(other.get("kept").await.unwrap(), None);
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_error_that_never_shows_a_token() {
    let server = Denokv::start();
    let wrong = "wrong-token-0123456789";
    let store = DenoKvStore::connect(&server.url(), wrong).unwrap();
    assert!(!format!("{store:?}").contains(wrong), "{store:?}");
    let error = store.get("k").await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("deno-kv store: get failed"),
        "{message}"
    );
    assert!(message.contains("access token was refused"), "{message}");
    assert!(message.contains("--access-token"), "{message}");
    assert!(!message.contains(wrong), "{message}");
    assert!(!message.contains(&server.token), "{message}");

    // The right token works with nothing rebuilt but the store.
    server.store().get("k").await.unwrap();
}

#[tokio::test]
async fn bad_urls_are_refused_naming_the_field() {
    let error = DenoKvStore::connect("127.0.0.1:4512", "token-0123456789").unwrap_err();
    assert!(error.to_string().contains("KV Connect URL"), "{error}");
    let error = DenoKvStore::connect("redis://127.0.0.1", "token-0123456789").unwrap_err();
    assert!(error.to_string().contains("not http(s)"), "{error}");
}

#[tokio::test]
async fn an_unreachable_server_fails_in_bounded_time() {
    // Nothing listens: refused at once.
    let port = free_port();
    let store =
        DenoKvStore::connect(&format!("http://127.0.0.1:{port}"), "token-0123456789").unwrap();
    let started = Instant::now();
    let error = store.increment("n", None).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        error.to_string().contains("could not be reached"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A socket that accepts and never answers: the response timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let options = KvConnect::new(&url, "token-0123456789")
        .unwrap()
        .with_response_timeout(Duration::from_millis(300));
    let store = DenoKvStore::remote(options);
    let started = Instant::now();
    let error = store.get("k").await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    assert!(
        error.to_string().contains("no answer within 300ms"),
        "{error}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn metadata_is_exchanged_once_and_again_when_it_expires() {
    let server = Denokv::start();
    let counting = Counting::new();
    // The store's clock starts at the real time (denokv's metadata expires one day after the
    // exchange) and moves only when the test advances it.
    let clock = Arc::new(ManualClock::at(stitchapi::time::Clock::now(
        &SystemClock::new(),
    )));
    let options = KvConnect::new(&server.url(), server.token.as_str())
        .unwrap()
        .with_transport(counting.clone());
    let store = DenoKvStore::remote(options).with_clock(clock.clone());

    store.set("k", Some("v".into()), None).await.unwrap();
    assert_eq!(counting.exchanges(), 1);
    for _ in 0..3 {
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    // A minute before expiresAt: still cached.
    clock.advance(Duration::from_secs(24 * 3600 - 60));
    store.get("k").await.unwrap();
    assert_eq!(counting.exchanges(), 1, "cached until it expires");
    assert_eq!(counting.data.load(std::sync::atomic::Ordering::SeqCst), 5);

    clock.advance(Duration::from_secs(60));
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(counting.exchanges(), 2, "exchanged again at expiresAt");
    assert_eq!(counting.data.load(std::sync::atomic::Ordering::SeqCst), 6);
}
