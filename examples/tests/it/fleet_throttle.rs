//! Fleet-wide concurrency across real processes: `fleet-worker` processes on one real store
//! (`redis-server`, and `denokv serve` for the killed holder) share one lease set, watched
//! from one loopback upstream. (Pacing has its own module, `fleet_pacing`.)

use crate::common;

use std::time::{Duration, Instant};

use common::{Backend, RedisServer, finish, fleet, worker};
use stitchapi_examples::fleet::{FleetUpstream, StorePlan, WorkerPlan};

#[tokio::test]
async fn concurrency_three_holds_across_four_processes() {
    let _alone = common::alone().await;
    let redis = RedisServer::start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = WorkerPlan::new(
        "",
        StorePlan::redis(redis.url()),
        upstream.url(),
        "/hold/100",
    )
    .with_concurrency(3, "10s")
    .with_callers(3)
    .with_calls(3)
    .with_timeout("30s");

    let calls: Vec<_> = finish(fleet(&plan, 4).await).await.concat();

    assert_eq!(calls.len(), 36);
    assert!(calls.iter().all(|call| call.ok), "{calls:?}");
    assert_eq!(upstream.count("GET", "/hold/100"), 36);
    assert_eq!(
        upstream.max_in_flight(),
        3,
        "the cap is 3 and 12 callers want it"
    );
}

#[tokio::test]
async fn a_killed_holder_frees_its_slots_when_the_lease_ends() {
    a_killed_holder_frees_its_slots(Backend::Redis).await
}

#[tokio::test]
async fn a_killed_holder_frees_its_slots_when_the_lease_ends_on_deno_kv() {
    a_killed_holder_frees_its_slots(Backend::DenoKv).await
}

async fn a_killed_holder_frees_its_slots(backend: Backend) {
    let _alone = common::alone().await;
    let store = backend.start();
    let upstream = FleetUpstream::start().await.unwrap();
    let lease = Duration::from_millis(1_500);
    let plan = WorkerPlan::new("", store.plan(), upstream.url(), "/hang")
        .with_concurrency(3, "1500ms")
        .with_timeout("60s");

    // The holder takes all three slots on requests that never answer, and is killed.
    let mut holder = worker(&plan.clone().with_callers(3).with_calls(1), "holder").await;
    let holder_went = Instant::now();
    holder.go().await.unwrap();
    assert!(
        upstream
            .wait_for("GET", "/hang", 3, Duration::from_secs(10))
            .await
    );
    let holding = Instant::now();
    holder.kill().await.unwrap();

    let mut next = worker(
        &WorkerPlan {
            path: "/hit".into(),
            ..plan.with_calls(1)
        },
        "next",
    )
    .await;
    next.go().await.unwrap();
    let calls = finish(vec![next]).await.concat();
    assert!(calls[0].ok, "{calls:?}");

    let arrived = upstream
        .arrivals()
        .iter()
        .find(|a| a.path == "/hit")
        .map(|a| a.at)
        .unwrap();
    assert!(
        arrived >= holder_went + lease,
        "a slot was reused after {:?}, before its lease ended",
        arrived - holder_went
    );
    let late = Duration::from_millis(50 /* poll jitter */ + 250 /* slack */);
    assert!(
        arrived <= holding + lease + late,
        "the slot freed {:?} after the holder had them, lease {lease:?}",
        arrived - holding
    );
}
