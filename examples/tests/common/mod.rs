//! Fleet test helpers: N `fleet-worker` processes on one real Redis and one recording upstream.
#![allow(dead_code)]

#[path = "../../../crates/stitchapi-redis/tests/support/server.rs"]
pub mod redis_server;

use std::time::Duration;

use stitchapi_examples::fleet::{CallReport, Worker, WorkerPlan};

pub use redis_server::RedisServer;

/// The worker binary cargo built for these tests.
pub const WORKER: &str = env!("CARGO_BIN_EXE_fleet-worker");

/// Starts one worker (id `id`) and waits until it is ready.
pub async fn worker(plan: &WorkerPlan, id: &str) -> Worker {
    Worker::spawn(WORKER, &[], &plan.clone().with_id(id))
        .await
        .unwrap_or_else(|error| panic!("worker {id}: {error}"))
}

/// Starts `n` workers (`w0`, `w1`, ...) and, once all are ready, tells them all to go.
pub async fn fleet(plan: &WorkerPlan, n: usize) -> Vec<Worker> {
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        workers.push(worker(plan, &format!("w{i}")).await);
    }
    for worker in &mut workers {
        worker.go().await.expect("go");
    }
    workers
}

/// Waits (at most 60 s) for every worker to finish; each must exit cleanly. Returns each
/// worker's call reports.
pub async fn finish(workers: Vec<Worker>) -> Vec<Vec<CallReport>> {
    let mut reports = Vec::with_capacity(workers.len());
    for worker in workers {
        let id = worker.id.clone();
        let (calls, status) = tokio::time::timeout(Duration::from_secs(60), worker.finish())
            .await
            .unwrap_or_else(|_| panic!("worker {id} still running after 60 s"))
            .unwrap_or_else(|error| panic!("worker {id}: {error}"));
        assert!(status.success(), "worker {id} exited with {status}");
        reports.push(calls);
    }
    reports
}
