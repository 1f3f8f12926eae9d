//! Fleet behaviour across real processes: four `fleet-worker` processes share one real store
//! (`redis-server`, and `denokv serve` for the token and the cache) and one loopback upstream
//! that records every arrival.

use crate::common;

use common::{Backend, FleetStore, finish, fleet, worker};
use stitchapi_examples::fleet::{AuthPlan, FleetUpstream, WorkerPlan};

fn plan(store: &FleetStore, upstream: &FleetUpstream, path: &str) -> WorkerPlan {
    WorkerPlan::new("", store.plan(), upstream.url(), path).with_timeout("20s")
}

#[tokio::test]
async fn four_cold_workers_fetch_one_oauth2_token() {
    one_oauth2_token_for_four_cold_workers(Backend::Redis).await
}

#[tokio::test]
async fn four_cold_workers_fetch_one_oauth2_token_on_deno_kv() {
    one_oauth2_token_for_four_cold_workers(Backend::DenoKv).await
}

async fn one_oauth2_token_for_four_cold_workers(backend: Backend) {
    let _alone = common::alone().await;
    let store = backend.start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = plan(&store, &upstream, "/reports")
        .with_auth(AuthPlan::OAuth2)
        .with_calls(2);

    let calls: Vec<_> = finish(fleet(&plan, 4).await).await.concat();

    assert_eq!(calls.len(), 8);
    assert!(calls.iter().all(|call| call.ok), "{calls:?}");
    assert_eq!(
        upstream.count("POST", "/oauth/token"),
        1,
        "one token for the fleet"
    );
    assert_eq!(upstream.count("GET", "/reports"), 8);
}

#[tokio::test]
async fn four_cold_workers_log_in_once() {
    let _alone = common::alone().await;
    let redis = Backend::Redis.start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = plan(&redis, &upstream, "/me")
        .with_auth(AuthPlan::Cookie)
        .with_calls(2);

    let calls: Vec<_> = finish(fleet(&plan, 4).await).await.concat();

    assert!(calls.iter().all(|call| call.ok), "{calls:?}");
    assert_eq!(
        upstream.count("POST", "/login"),
        1,
        "one login for the fleet"
    );
    assert_eq!(upstream.count("GET", "/me"), 8, "no call was answered 401");
}

#[tokio::test]
async fn four_workers_asking_at_once_cause_one_upstream_request() {
    one_upstream_request_for_four_workers_at_once(Backend::Redis).await
}

#[tokio::test]
async fn four_workers_asking_at_once_cause_one_upstream_request_on_deno_kv() {
    one_upstream_request_for_four_workers_at_once(Backend::DenoKv).await
}

async fn one_upstream_request_for_four_workers_at_once(backend: Backend) {
    let _alone = common::alone().await;
    let store = backend.start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = plan(&store, &upstream, "/data").with_cache().with_calls(1);

    let calls: Vec<_> = finish(fleet(&plan, 4).await).await.concat();

    assert!(calls.iter().all(|call| call.ok), "{calls:?}");
    assert_eq!(upstream.count("GET", "/data"), 1, "one fetch for the fleet");
    let fetched: Vec<_> = calls
        .iter()
        .filter(|call| call.served.as_deref() == Some("Network"))
        .collect();
    assert_eq!(fetched.len(), 1, "{calls:?}");
    assert_eq!(fetched[0].cache, ["miss"]);
    assert!(fetched[0].attempts > 0, "{calls:?}");
    for served in calls
        .iter()
        .filter(|call| call.served.as_deref() != Some("Network"))
    {
        assert!(
            matches!(served.served.as_deref(), Some("CacheHit" | "FleetFilled")),
            "not served from the store: {served:?}"
        );
        assert!(
            served.cache.iter().any(|detail| detail.starts_with("hit")),
            "not served from the store: {served:?}"
        );
    }
}

#[tokio::test]
async fn failures_in_one_worker_open_the_circuit_for_all() {
    let _alone = common::alone().await;
    let redis = Backend::Redis.start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = plan(&redis, &upstream, "/fail").with_circuit(3, "60s");

    let mut first = worker(&plan.clone().with_calls(3), "first").await;
    first.go().await.unwrap();
    let failed = finish(vec![first]).await.concat();
    assert!(
        failed
            .iter()
            .all(|call| call.kind.as_deref() == Some("Http") && call.status == Some(500)),
        "{failed:?}"
    );

    let others = fleet(&plan.with_calls(2), 3).await;
    let refused = finish(others).await.concat();
    assert_eq!(refused.len(), 6);
    assert!(
        refused
            .iter()
            .all(|call| call.kind.as_deref() == Some("CircuitOpen") && call.attempts == 0),
        "{refused:?}"
    );
    assert_eq!(
        upstream.count("GET", "/fail"),
        3,
        "the open circuit sent nothing"
    );
}
