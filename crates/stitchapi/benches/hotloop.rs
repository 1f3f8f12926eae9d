//! A fixed number of uncached calls, one side only, for profiling and CPU counting: the same
//! stitch (retry, total and per-attempt timeouts, typed output) as the `overhead` bench, or
//! the same GET and decode on bare reqwest, against the shared loopback server.
//!
//! `HOTLOOP_SIDE=stitchapi|reqwest HOTLOOP_CALLS=200000 HOTLOOP_CONCURRENCY=1 cargo bench -p
//! stitchapi --bench hotloop`, under `perf record` or `perf stat -e task-clock`. It prints the
//! process CPU time per call (user + system, server included), so the difference between the
//! two sides is what the stitch costs per call.

use std::time::{Duration, Instant};

mod support;

use stitchapi::{Input, Retry, Stitch, Timeout};
use support::{User, serve};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let side: String = env("HOTLOOP_SIDE", "stitchapi".to_owned());
    let calls: u64 = env("HOTLOOP_CALLS", 100_000);
    let concurrency: u64 = env("HOTLOOP_CONCURRENCY", 1);
    let base = serve().await;
    let stitch = Stitch::get(format!("{base}/users/{{id}}"))
        .output::<User>()
        .retry(Retry::attempts(3))
        .timeout(Timeout::total("10s").each("4s"))
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let stitchapi = side == "stitchapi";
    assert!(
        stitchapi || side == "reqwest",
        "HOTLOOP_SIDE is stitchapi or reqwest"
    );
    let one = move |stitch: Stitch<User>, client: reqwest::Client, base: String| async move {
        let user = if stitchapi {
            stitch.call(Input::new().param("id", 7)).await.unwrap()
        } else {
            let response = client
                .get(format!("{base}/users/{}", 7))
                .timeout(Duration::from_secs(4))
                .send()
                .await
                .unwrap();
            serde_json::from_slice::<User>(&response.bytes().await.unwrap()).unwrap()
        };
        assert_eq!(user.id, 7);
    };
    // Warm-up: connections open, allocator caches filled.
    for _ in 0..1_000 {
        one(stitch.clone(), client.clone(), base.clone()).await;
    }
    let cpu_before = cpu_time();
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let (stitch, client, base) = (stitch.clone(), client.clone(), base.clone());
            let share = calls / concurrency + u64::from(task < calls % concurrency);
            tokio::spawn(async move {
                for _ in 0..share {
                    one(stitch.clone(), client.clone(), base.clone()).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let wall = start.elapsed();
    let cpu = cpu_time() - cpu_before;
    println!(
        "{side}: {calls} calls at {concurrency} concurrent in {:.2} s: {:.0} calls/s, {:.2} µs CPU per call (server included)",
        wall.as_secs_f64(),
        calls as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / calls as f64,
    );
}

/// User + system CPU time of this process so far, from `/proc/self/stat` (Linux).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc/self/stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}
