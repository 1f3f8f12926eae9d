//! Redis stopped in the middle of a fleet run, then restarted: worker processes that fail
//! closed fail their calls with clear `Store` errors, workers that fail open carry on, no call
//! outlives `timeout.total`, nothing panics, and after the restart every worker works again
//! without being restarted.

use crate::common;

use std::time::Duration;

use common::{RedisServer, finish, fleet};
use stitchapi_examples::fleet::{CallReport, FleetUpstream, StorePlan, WorkerPlan};

const TOTAL_MS: f64 = 2_000.0;

fn fell_back(call: &CallReport) -> bool {
    call.throttle
        .iter()
        .any(|detail| detail.starts_with("store failed"))
}

fn check_bounded_and_recovered(id: &str, calls: &[CallReport]) {
    let slowest = calls.iter().map(|call| call.elapsed_ms).fold(0.0, f64::max);
    let failed = calls.iter().filter(|call| !call.ok).count();
    let fell = calls.iter().filter(|call| fell_back(call)).count();
    eprintln!(
        "{id}: {} calls, {failed} failed, {fell} fell back, slowest {slowest:.1} ms",
        calls.len()
    );
    assert!(
        calls.len() > 20,
        "worker {id} made only {} calls",
        calls.len()
    );
    for call in calls {
        assert!(
            call.elapsed_ms <= TOTAL_MS + 50.0,
            "worker {id}: a call took {} ms, past timeout.total",
            call.elapsed_ms
        );
    }
    let last = &calls[calls.len() - 5..];
    assert!(
        last.iter().all(|call| call.ok && !fell_back(call)),
        "worker {id} did not recover: {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_closed_or_open_and_every_worker_recovers() {
    let _alone = common::alone().await;
    let mut redis = RedisServer::start();
    let upstream = FleetUpstream::start().await.unwrap();
    let plan = WorkerPlan::new("", StorePlan::redis(redis.url()), upstream.url(), "/hit")
        .with_rate("50/s")
        .with_timeout("2s")
        .with_pause_ms(20);

    let mut closed = fleet(&plan, 2).await;
    let mut open = fleet(&plan.clone().with_fail_open(true), 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for worker in closed.iter_mut().chain(open.iter_mut()) {
        worker.stop().await.unwrap();
    }
    let closed = finish(closed).await;
    let open = finish(open).await;

    for (i, calls) in closed.iter().enumerate() {
        let id = format!("closed-{i}");
        check_bounded_and_recovered(&id, calls);
        let failed: Vec<_> = calls.iter().filter(|call| !call.ok).collect();
        assert!(!failed.is_empty(), "worker {id} never saw the outage");
        for call in failed {
            assert_eq!(call.kind.as_deref(), Some("Store"), "{call:?}");
            let message = call.error.as_deref().unwrap_or_default();
            assert!(message.starts_with("redis store: "), "{message}");
        }
    }
    for (i, calls) in open.iter().enumerate() {
        let id = format!("open-{i}");
        check_bounded_and_recovered(&id, calls);
        assert!(calls.iter().all(|call| call.ok), "worker {id}: {calls:?}");
        assert!(
            calls.iter().any(fell_back),
            "worker {id} never reported falling back"
        );
    }
}
