//! A fleet on one Redis: `cargo run --example fleet` (with `REDIS_URL=redis://host:port/db`,
//! or a `redis-server` on the PATH, which it starts on a free port).
//!
//! Starts four worker processes (copies of this program) that declare the same seam on a
//! `RedisStore`, and one local API that records every request. The workers share one
//! `"20/s"` throttle, one cache with fleet-wide single-flight and one OAuth2 token, and the API
//! shows it: 20 requests a second in total, one fetch for four cold caches, one token POST.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stitchapi_examples::fleet::{
    AuthPlan, CallReport, FleetUpstream, StorePlan, WorkerPlan, finish_fleet, run_worker,
    start_fleet,
};

const WORKERS: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        run_worker(args.get(2).map(String::as_str).unwrap_or_default());
    }
    tokio::runtime::Runtime::new()?.block_on(demo())
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let redis = Redis::find_or_start()?;
    println!("Redis at {}; {WORKERS} worker processes", redis.url);

    println!("\n== one throttle: \"20/s\" for 3 s across {WORKERS} processes, 2 callers each");
    let upstream = FleetUpstream::start().await?;
    let plan = WorkerPlan::new("", StorePlan::redis(&redis.url), upstream.url(), "/hit")
        .with_rate("20/s")
        .with_callers(2)
        .with_run_for_ms(3_000);
    run(&plan).await?;
    let arrivals = upstream.arrivals();
    let closest = arrivals.windows(2).map(|w| w[1].at - w[0].at).min();
    println!(
        "   the API saw {} requests, never two closer than {:?}",
        arrivals.len(),
        closest.unwrap_or_default()
    );
    for i in 0..WORKERS {
        let id = format!("w{i}");
        let share = arrivals
            .iter()
            .filter(|a| a.worker.as_deref() == Some(&id))
            .count();
        println!("   worker {id}: {share}");
    }

    println!("\n== one cache: {WORKERS} cold workers ask for the same report at once");
    let upstream = FleetUpstream::start().await?;
    let plan = WorkerPlan::new("", StorePlan::redis(&redis.url), upstream.url(), "/data")
        .with_cache()
        .with_calls(1);
    for (id, calls) in run(&plan).await? {
        let how = calls
            .first()
            .map(|call| call.cache.join(", "))
            .unwrap_or_default();
        println!("   worker {id}: {how}");
    }
    println!(
        "   the API was asked {} time(s)",
        upstream.count("GET", "/data")
    );

    println!("\n== one token: {WORKERS} cold workers call an OAuth2-protected endpoint");
    let upstream = FleetUpstream::start().await?;
    let plan = WorkerPlan::new("", StorePlan::redis(&redis.url), upstream.url(), "/reports")
        .with_auth(AuthPlan::OAuth2)
        .with_calls(1);
    run(&plan).await?;
    println!(
        "   {} token request(s) for {} calls",
        upstream.count("POST", "/oauth/token"),
        upstream.count("GET", "/reports")
    );
    Ok(())
}

/// Runs `plan` on the fleet (copies of this program) and collects each worker's calls; any
/// failed call is an error.
async fn run(
    plan: &WorkerPlan,
) -> Result<Vec<(String, Vec<CallReport>)>, Box<dyn std::error::Error>> {
    let program = std::env::current_exe()?;
    let workers = start_fleet(&program, &["worker"], plan, WORKERS).await?;
    let reports = finish_fleet(workers).await?;
    for (id, calls) in &reports {
        if let Some(failed) = calls.iter().find(|call| !call.ok) {
            return Err(format!("worker {id}: {:?}", failed.error).into());
        }
    }
    Ok(reports)
}

/// The Redis the fleet shares: `REDIS_URL`, or a private `redis-server` stopped on drop.
struct Redis {
    url: String,
    server: Option<Child>,
}

impl Redis {
    fn find_or_start() -> Result<Redis, Box<dyn std::error::Error>> {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Ok(Redis { url, server: None });
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let server = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|error| {
                format!(
                    "no REDIS_URL and no redis-server to start ({error}): \
                     set REDIS_URL=redis://host:port/0 or `apt-get install -y redis-server`"
                )
            })?;
        let redis = Redis {
            url: format!("redis://127.0.0.1:{port}/0"),
            server: Some(server),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(server) = &mut self.server {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
