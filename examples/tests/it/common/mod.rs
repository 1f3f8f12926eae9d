//! Fleet test helpers: N `fleet-worker` processes on one real store (`redis-server` or
//! `denokv serve`) and one recording upstream.
#![allow(dead_code)]

#[path = "../../../../crates/stitchapi-redis/tests/it/support/server.rs"]
pub mod redis_server;

#[path = "../../../../crates/stitchapi-deno-kv/tests/it/support/server.rs"]
pub mod denokv_server;

use std::time::Duration;

use stitchapi_examples::fleet::{
    CallReport, StorePlan, Worker, WorkerPlan, finish_fleet, start_fleet,
};

pub use denokv_server::Denokv;
pub use redis_server::RedisServer;

/// Which store a fleet scenario shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A `redis-server`, the workers on `RedisStore`.
    Redis,
    /// A `denokv serve`, the workers on `DenoKvStore` over KV Connect.
    DenoKv,
}

impl Backend {
    /// Starts a fresh server of this kind on a free loopback port.
    pub fn start(self) -> FleetStore {
        match self {
            Backend::Redis => FleetStore::Redis(RedisServer::start()),
            Backend::DenoKv => FleetStore::DenoKv(Denokv::start()),
        }
    }
}

/// The running server a fleet shares; stopped when dropped.
pub enum FleetStore {
    Redis(RedisServer),
    DenoKv(Denokv),
}

impl FleetStore {
    /// The store as the workers' plans name it (a Deno KV token goes to their environment).
    pub fn plan(&self) -> StorePlan {
        match self {
            FleetStore::Redis(server) => StorePlan::redis(server.url()),
            FleetStore::DenoKv(server) => StorePlan::deno_kv(server.url(), server.token.as_str()),
        }
    }
}

/// The worker binary cargo built for these tests.
pub const WORKER: &str = env!("CARGO_BIN_EXE_fleet-worker");

/// Starts one worker (id `id`) and waits until it is ready.
/// Held by every fleet test for its whole run: the tests measure wall-clock pacing and
/// timeouts across processes, so they run one at a time even though they share one test
/// binary (on a 2-core machine, two fleets at once would be scheduling noise in each other's
/// figures).
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE_FLEET: std::sync::LazyLock<tokio::sync::Mutex<()>> =
        std::sync::LazyLock::new(|| tokio::sync::Mutex::new(()));
    ONE_FLEET.lock().await
}

pub async fn worker(plan: &WorkerPlan, id: &str) -> Worker {
    Worker::spawn(WORKER, &[], &plan.clone().with_id(id))
        .await
        .unwrap_or_else(|error| panic!("worker {id}: {error}"))
}

/// Starts `n` workers (`w0`, `w1`, ...) and, once all are ready, tells them all to go.
pub async fn fleet(plan: &WorkerPlan, n: usize) -> Vec<Worker> {
    start_fleet(WORKER, &[], plan, n)
        .await
        .unwrap_or_else(|error| panic!("starting the fleet: {error}"))
}

/// Waits (at most 60 s) for every worker to finish; each must exit cleanly. Returns each
/// worker's call reports.
pub async fn finish(workers: Vec<Worker>) -> Vec<Vec<CallReport>> {
    tokio::time::timeout(Duration::from_secs(60), finish_fleet(workers))
        .await
        .expect("workers still running after 60 s")
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|(_, calls)| calls)
        .collect()
}
