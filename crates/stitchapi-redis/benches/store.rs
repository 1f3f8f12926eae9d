//! RedisStore verbs against raw redis-rs and redis-benchmark, on one spawned redis-server, in
//! one run: `cargo bench -p stitchapi-redis --bench store`.
//!
//! The target, `increment` and `reserve` at ≥ 0.9x raw redis-rs `INCR` on the same
//! connection setup (a `ConnectionManager`) at 1 and 16 concurrent tasks, is not met: Redis
//! runs Lua slower than a bare `INCR`. So the raw `EVALSHA` of the same script (hashed once,
//! as the store does) is printed as the fair peer.

#[path = "../tests/it/support/server.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use stitchapi::store::StitchStore;
use stitchapi::time::Timestamp;
use stitchapi_redis::RedisStore;
use support::RedisServer;

const OPS: usize = 20_000;

async fn throughput<F, Fut>(tasks: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_task = OPS / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    op(t * per_task + i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    (per_task * tasks) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn redis_benchmark(port: u16, clients: usize) -> Option<f64> {
    let output = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "incr",
            "-n",
            "50000",
            "-q",
        ])
        .args(["-c", &clients.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "INCR: 74074.07 requests per second, p50=0.343 msec"
    let line = text
        .lines()
        .rev()
        .find(|line| line.contains("requests per second"))?;
    // Progress updates share the line, separated by carriage returns.
    let line = line.rsplit('\r').next()?;
    let after = line.split(':').nth(1)?.trim();
    after.split_whitespace().next()?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let raw = ConnectionManager::new(client).await.unwrap();
    let store = Arc::new(RedisStore::from_url(&server.url()).unwrap());
    let now = Timestamp::from_unix(Duration::from_secs(1_767_225_600));

    for tasks in [1, 16] {
        let (mut raw_rates, mut incr_rates, mut reserve_rates) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut script_rates = Vec::new();
        for _round in 0..5 {
            let connection = raw.clone();
            raw_rates.push(
                throughput(tasks, move |i| {
                    let mut connection = connection.clone();
                    async move {
                        let _: i64 = redis::cmd("INCR")
                            .arg(format!("raw:{}", i % 64))
                            .query_async(&mut connection)
                            .await
                            .unwrap();
                    }
                })
                .await,
            );
            let connection = raw.clone();
            let script = redis::Script::new(stitchapi_redis::scripts::INCREMENT);
            script_rates.push(
                throughput(tasks, move |i| {
                    let mut connection = connection.clone();
                    let script = script.clone();
                    async move {
                        let _: i64 = script
                            .key(format!("lua:{}", i % 64))
                            .arg(60_000)
                            .invoke_async(&mut connection)
                            .await
                            .unwrap();
                    }
                })
                .await,
            );
            let s = store.clone();
            incr_rates.push(
                throughput(tasks, move |i| {
                    let s = s.clone();
                    async move {
                        s.increment(&format!("inc:{}", i % 64), Some(Duration::from_secs(60)))
                            .await
                            .unwrap();
                    }
                })
                .await,
            );
            let s = store.clone();
            reserve_rates.push(
                throughput(tasks, move |i| {
                    let s = s.clone();
                    async move {
                        s.reserve(
                            &format!("rl:{}", i % 64),
                            Duration::from_micros(10),
                            now,
                            None,
                            Some(Duration::from_secs(60)),
                        )
                        .await
                        .unwrap();
                    }
                })
                .await,
            );
        }
        let (raw_rate, incr_rate, reserve_rate) =
            (median(raw_rates), median(incr_rates), median(reserve_rates));
        let script_rate = median(script_rates);
        println!("{tasks} task(s), {OPS} ops, median of 5 rounds:");
        println!("  raw redis-rs INCR        {raw_rate:>9.0} ops/s");
        println!(
            "  raw redis-rs EVALSHA of the same INCR script {script_rate:>9.0} ops/s  ({:.2}x raw INCR: the server's Lua cost)",
            script_rate / raw_rate
        );
        println!(
            "  RedisStore::increment    {incr_rate:>9.0} ops/s  ({:.2}x raw INCR, {:.2}x raw EVALSHA)",
            incr_rate / raw_rate,
            incr_rate / script_rate
        );
        println!(
            "  RedisStore::reserve      {reserve_rate:>9.0} ops/s  ({:.2}x raw)",
            reserve_rate / raw_rate
        );
        match redis_benchmark(server.port, tasks) {
            Some(ceiling) => println!(
                "  redis-benchmark -t incr -c {tasks}: {ceiling:.0} req/s (the server's ceiling; increment at {:.2}x)",
                incr_rate / ceiling
            ),
            None => println!("  redis-benchmark not found (apt-get install -y redis-tools)"),
        }
    }
}
