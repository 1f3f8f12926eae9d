//! The embedded store (`denokv_sqlite`) against the conformance kit and under contention.

use std::sync::Arc;
use std::time::Duration;

use stitchapi::store::{Scope, StitchStore, StoreErrorKind};
use stitchapi_deno_kv::DenoKvStore;

use crate::support::{Scratch, passes_every_rule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_passes_the_conformance_kit() {
    let store = DenoKvStore::in_memory().unwrap();
    assert_eq!(store.capabilities().scope, Scope::Process);
    assert!(store.capabilities().owned_locks());
    passes_every_rule(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_passes_the_conformance_kit_and_keeps_its_data() {
    let scratch = Scratch::new("conformance");
    let path = scratch.path("kv.sqlite");
    let store = DenoKvStore::open(&path).unwrap();
    assert_eq!(store.capabilities().scope, Scope::Fleet);
    passes_every_rule(&store).await;
    store.set("kept", Some("v".into()), None).await.unwrap();
    store
        .increment("n", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);

    let reopened = DenoKvStore::open(&path).unwrap();
    assert_eq!(
        reopened.get("kept").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(reopened.increment("n", None).await.unwrap(), 2);
    // Another prefix is another key space: the prefix is a key segment of its own.
    let other = DenoKvStore::open(&path).unwrap().with_prefix("other");
    assert_eq!(other.get("kept").await.unwrap(), None);
    drop((reopened, other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_from_many_tasks_net_the_exact_sum() {
    // 64 tasks on one store, and 4 stores (4 SQLite connections, like 4 processes) on a file.
    let memory = Arc::new(DenoKvStore::in_memory().unwrap());
    let scratch = Scratch::new("sum");
    let path = scratch.path("kv.sqlite");
    let files: Vec<_> = (0..4)
        .map(|_| Arc::new(DenoKvStore::open(&path).unwrap()))
        .collect();
    for stores in [vec![memory], files] {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = stores[i % stores.len()].clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        store
                            .increment("hits", Some(Duration::from_secs(60)))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            stores[0].get("hits").await.unwrap().as_deref(),
            Some(&b"640"[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_tiny_loop_bound_losers_fail_with_conflict_and_the_count_stays_exact() {
    // 8 stores on one file race each other (within one store, loops on a key take turns).
    let scratch = Scratch::new("races");
    let path = scratch.path("kv.sqlite");
    let stores: Vec<_> = (0..8)
        .map(|_| Arc::new(DenoKvStore::open(&path).unwrap().with_max_races(1)))
        .collect();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move { store.increment("n", None).await })
        })
        .collect();
    let (mut granted, mut conflicts) = (0i64, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => granted += 1,
            Err(error) => {
                assert_eq!(error.kind(), StoreErrorKind::Conflict, "{error}");
                assert!(error.to_string().contains("lost 1 compare-and-set race"));
                conflicts += 1;
            }
        }
    }
    assert_eq!(granted + conflicts, 64);
    assert!(conflicts > 0, "no race was lost: the test proves nothing");
    let count: i64 = std::str::from_utf8(&stores[0].get("n").await.unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(count, granted, "a failed increment never counted");
    drop(stores);
}
