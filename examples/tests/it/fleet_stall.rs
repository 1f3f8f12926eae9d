//! Owned fleet locks across real processes: a leader frozen (SIGSTOP) past its lock's TTL
//! loses the lock to exactly one successor, and when it wakes (SIGCONT) its late release
//! leaves the successor's lock alone.

use crate::common;

use std::time::Duration;

use common::{RedisServer, finish, worker};
use stitchapi_examples::fleet::{AuthPlan, FleetUpstream, Report, StorePlan, Worker, WorkerPlan};

/// The lock TTL the workers run with: short, so a one-second stall outlives it.
const LOCK_MS: u64 = 1_000;

fn plan(redis: &RedisServer, upstream: &FleetUpstream, path: &str) -> WorkerPlan {
    WorkerPlan::new("", StorePlan::redis(redis.url()), upstream.url(), path)
        .with_timeout("20s")
        .with_lock_ms(LOCK_MS)
        .with_calls(1)
}

/// Starts `w0` alone, lets it go, and freezes it once its first request for `method path`
/// has reached the upstream: it then holds the fleet lock, and stops renewing it.
async fn frozen_leader(
    plan: &WorkerPlan,
    upstream: &FleetUpstream,
    method: &str,
    path: &str,
) -> Worker {
    let mut leader = worker(plan, "w0").await;
    leader.go().await.unwrap();
    assert!(
        upstream
            .wait_for(method, path, 1, Duration::from_secs(10))
            .await,
        "the leader never sent {method} {path}"
    );
    leader.pause().await.unwrap();
    leader
}

/// Starts `n` more workers (`w1`..) and lets them go; they find the lock held.
async fn waiters(plan: &WorkerPlan, n: usize) -> Vec<Worker> {
    let mut waiters = Vec::new();
    for i in 1..=n {
        let mut waiter = worker(plan, &format!("w{i}")).await;
        waiter.go().await.unwrap();
        waiters.push(waiter);
    }
    waiters
}

/// Reads reports until the worker's call report.
async fn its_call(worker: &mut Worker) -> stitchapi_examples::fleet::CallReport {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), worker.next_report())
            .await
            .expect("no call report within 20 s")
            .unwrap()
        {
            Some(Report::Call(call)) => return call,
            Some(_) => continue,
            None => panic!(
                "worker {} closed its output before its call report",
                worker.id
            ),
        }
    }
}

fn lock_keys(redis: &RedisServer, pattern: &str) -> Vec<(String, String)> {
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut connection)
        .unwrap();
    keys.into_iter()
        .map(|key| {
            let token: String = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
            (key, token)
        })
        .collect()
}

#[tokio::test]
async fn a_frozen_cache_filler_is_replaced_once_and_its_late_release_frees_nothing() {
    let _alone = common::alone().await;
    let redis = RedisServer::start();
    let upstream = FleetUpstream::start().await.unwrap();
    // Every fill takes 1.5 s at the upstream.
    let path = "/hold/1500";
    let plan = plan(&redis, &upstream, path).with_cache();

    let mut leader = frozen_leader(&plan, &upstream, "GET", path).await;
    let frozen_at = std::time::Instant::now();
    let held = lock_keys(&redis, "cache:lock:*");
    assert_eq!(held.len(), 1, "the leader holds the fill lock: {held:?}");
    let others = waiters(&plan, 3).await;

    // The leader's lock runs out while it is frozen: exactly one waiter takes over.
    assert!(
        upstream
            .wait_for("GET", path, 2, Duration::from_secs(10))
            .await,
        "nobody took over the frozen leader's fill"
    );
    let taken_over_after = frozen_at.elapsed();
    assert!(
        taken_over_after >= Duration::from_millis(LOCK_MS - 100),
        "taken over after {taken_over_after:?}, before the lock's TTL"
    );
    let successor = lock_keys(&redis, "cache:lock:*");
    assert_eq!(successor.len(), 1);
    assert_ne!(successor[0].1, held[0].1, "a new owner's token");

    // The leader wakes up while the successor is still fetching; it finishes its own fill and
    // releases: the successor's lock must survive that release.
    leader.resume().await.unwrap();
    let call = its_call(&mut leader).await;
    assert!(call.ok, "{call:?}");
    assert_eq!(
        lock_keys(&redis, "cache:lock:*"),
        successor,
        "the late release freed the successor's lock"
    );

    let mut calls = vec![call];
    calls.extend(finish(others).await.concat());
    calls.extend(finish(vec![leader]).await.concat());
    assert!(calls.iter().all(|call| call.ok), "{calls:?}");
    assert_eq!(
        upstream.count("GET", path),
        2,
        "the frozen leader's fill and one takeover, never a third"
    );
    assert!(
        lock_keys(&redis, "cache:lock:*").is_empty(),
        "released at the end"
    );
}

#[tokio::test]
async fn a_frozen_token_fetcher_is_replaced_once() {
    let _alone = common::alone().await;
    let redis = RedisServer::start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = plan(&redis, &upstream, "/reports").with_auth(AuthPlan::OAuth2);

    let leader = frozen_leader(&plan, &upstream, "POST", "/oauth/token").await;
    assert_eq!(lock_keys(&redis, "vault:lock:*").len(), 1);
    let others = waiters(&plan, 3).await;
    assert!(
        upstream
            .wait_for("POST", "/oauth/token", 2, Duration::from_secs(10))
            .await,
        "nobody took over the frozen leader's token fetch"
    );
    // The leader stays frozen well past every waiter's own lock TTL: the takeover's token
    // serves them all, and no waiter fetches on its own.
    tokio::time::sleep(Duration::from_millis(2 * LOCK_MS)).await;
    assert_eq!(upstream.count("POST", "/oauth/token"), 2);
    leader.resume().await.unwrap();

    let mut calls = finish(others).await.concat();
    calls.extend(finish(vec![leader]).await.concat());
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|call| call.ok), "{calls:?}");
    assert_eq!(
        upstream.count("POST", "/oauth/token"),
        2,
        "the frozen leader's POST and one takeover, never one per waiter"
    );
    assert_eq!(upstream.count("GET", "/reports"), 4);
}
