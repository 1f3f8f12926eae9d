//! The worker process: one seam on the shared store, a few call loops, JSON reports.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use stitchapi::runtime::BoxFuture;
use stitchapi::store::StitchStore;
use stitchapi::throttle::{StoreFailure, Throttle};
use stitchapi::time::{Clock, SystemClock, Timestamp};
use stitchapi::{
    Auth, Cache, Coalesce, CookieSession, Event, Input, OAuth2, Phase, Retry, Seam, Secret, Stitch,
};
use stitchapi_deno_kv::DenoKvStore;
use stitchapi_redis::RedisStore;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::plan::{AuthPlan, CallReport, DENO_KV_TOKEN_ENV, Report, StorePlan, WorkerPlan};

/// The client id and secret the fleet upstream's token endpoint accepts.
pub(crate) const CLIENT: (&str, &str) = ("fleet", "s3cret");
/// The principal cookie-session workers call as.
const PRINCIPAL: &str = "fleet-user";

/// Runs a worker described by `plan` (JSON) until its workload is done, `run_for_ms` has
/// passed, or stdin says `stop` (or closes). Prints [`Report`]s to stdout, one per line.
///
/// This is the whole `fleet-worker` binary; it exits the process when done, so calls still
/// waiting for the throttle are abandoned, as a stopped worker's would be.
pub fn run_worker(plan: &str) -> ! {
    let plan: WorkerPlan = match serde_json::from_str(plan) {
        Ok(plan) => plan,
        Err(error) => fail(format!("the plan is not a WorkerPlan: {error}")),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| fail(format!("no runtime: {error}")));
    if plan.server_time && !matches!(plan.store, StorePlan::Redis { .. }) {
        fail(
            "server_time takes `now` from Redis TIME: a Deno KV store has none \
             (set server_time only with a Redis store)"
                .to_owned(),
        );
    }
    runtime.block_on(async {
        let stitch = build(&plan).unwrap_or_else(|error| fail(error.to_string()));
        report(&Report::Ready);
        run(&plan, &stitch).await;
        report(&Report::Done);
    });
    std::process::exit(0)
}

fn fail(message: String) -> ! {
    eprintln!("fleet-worker: {message}");
    std::process::exit(2)
}

fn report(report: &Report) {
    let line = serde_json::to_string(report).expect("reports serialise");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The shared store the plan names; a Deno KV access token comes from the environment.
fn store(plan: &WorkerPlan) -> stitchapi::Result<Arc<dyn StitchStore>> {
    Ok(match &plan.store {
        StorePlan::Redis { url } => {
            Arc::new(RedisStore::from_url(url)?.with_server_time(plan.server_time))
        }
        StorePlan::DenoKv { url, .. } => {
            Arc::new(DenoKvStore::connect(url, Secret::env(DENO_KV_TOKEN_ENV))?)
        }
    })
}

fn build(plan: &WorkerPlan) -> stitchapi::Result<Stitch> {
    let mut seam = Seam::builder(&plan.upstream)
        .header("x-worker", &plan.id)
        .clock(Arc::new(SkewedClock {
            skew_ms: plan.clock_skew_ms,
            host: SystemClock::new(),
        }))
        .retry(Retry::none())
        .store(store(plan)?);
    let throttle = match (&plan.rate, plan.concurrency) {
        (Some(rate), Some(limit)) => Some(Throttle::new(rate.as_str()).with_concurrency(limit)),
        (Some(rate), None) => Some(Throttle::new(rate.as_str())),
        (None, Some(limit)) => Some(Throttle::concurrency(limit)),
        (None, None) => None,
    };
    if let Some(mut throttle) = throttle {
        throttle = throttle.on_store_error(if plan.fail_open {
            StoreFailure::FailOpen
        } else {
            StoreFailure::FailClosed
        });
        if let Some(lease) = &plan.lease {
            throttle = throttle.lease(lease.as_str());
        }
        seam = seam.throttle(throttle);
    }
    if let Some(total) = &plan.timeout {
        seam = seam.timeout(total.as_str());
    }
    if let Some((failures, cooldown)) = &plan.circuit {
        seam = seam.circuit(*failures, cooldown.as_str());
    }
    let lock = plan.lock_ms.map(Duration::from_millis);
    if plan.cache {
        // Every header that is not known safe keys the cache (a per-user token in any header
        // must never share an entry); the worker's diagnostic `x-worker` header does not
        // change the response, so the declaration says so.
        let mut cache = Cache::ttl("60s")
            .coalesce(Coalesce::Fleet)
            .ignore_headers(["x-worker"]);
        if let Some(lock) = lock {
            cache = cache.lock(lock);
        }
        seam = seam.cache(cache);
    }
    if plan.auth == Some(AuthPlan::OAuth2) {
        let token_url = format!("{}/oauth/token", plan.upstream);
        let mut oauth2 = OAuth2::client_credentials(token_url, CLIENT.0, CLIENT.1);
        if let Some(lock) = lock {
            oauth2 = oauth2.lock_ttl(lock);
        }
        seam = seam.auth(Auth::oauth2(oauth2));
    }
    let seam = seam.build()?;
    let mut stitch = seam.get(plan.path.as_str());
    if plan.auth == Some(AuthPlan::Cookie) {
        let login = seam.post("/login").build()?;
        let mut session = CookieSession::new(login, "session");
        if let Some(lock) = lock {
            session = session.lock_ttl(lock);
        }
        stitch = stitch.auth(Auth::cookie_session(session));
    }
    let stitch = stitch.build()?;
    Ok(match plan.auth {
        Some(AuthPlan::Cookie) => stitch.as_principal(PRINCIPAL),
        _ => stitch,
    })
}

/// Waits for `go`, then runs the call loops until they finish, the time is up, or `stop`.
async fn run(plan: &WorkerPlan, stitch: &Stitch) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim() == "go" => break,
            Ok(Some(_)) => continue,
            // Nobody will ever say go.
            _ => return,
        }
    }
    let started = Instant::now();
    let stop = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "stop" {
                break;
            }
        }
    };
    let time_up = async {
        match plan.run_for_ms {
            Some(ms) => {
                tokio::time::sleep_until((started + Duration::from_millis(ms)).into()).await
            }
            None => std::future::pending().await,
        }
    };
    let loops = join_all((0..plan.callers).map(|caller| call_loop(plan, stitch, caller)));
    tokio::select! {
        _ = loops => {}
        () = stop => {}
        () = time_up => {}
    }
}

async fn call_loop(plan: &WorkerPlan, stitch: &Stitch, caller: usize) {
    let mut made = 0;
    while plan.calls.is_none_or(|calls| made < calls) {
        report(&Report::Call(call(stitch, caller).await));
        made += 1;
        if plan.pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(plan.pause_ms)).await;
        }
    }
}

async fn call(stitch: &Stitch, caller: usize) -> CallReport {
    let started = Instant::now();
    let mut events = stitch.stream(Input::new());
    let mut report = CallReport {
        caller,
        ..CallReport::default()
    };
    while let Some(event) = events.next().await {
        match event {
            Event::Progress(progress) if progress.phase() == Phase::Cache => {
                report.cache.push(progress.to_string())
            }
            Event::Progress(progress) if progress.phase() == Phase::Throttled => {
                report.throttle.push(progress.to_string())
            }
            Event::Result {
                status,
                attempts,
                served,
                ..
            } => {
                report.ok = true;
                report.status = Some(status.as_u16());
                report.attempts = attempts;
                report.served = Some(format!("{served:?}"));
            }
            Event::Error { error } => {
                report.status = error.status().map(|status| status.as_u16());
                report.attempts = error.attempts();
                report.kind = Some(format!("{:?}", error.kind()));
                report.error = Some(error.to_string());
            }
            _ => {}
        }
    }
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

/// The host's clock, shifted: what a worker on a badly synced machine would read.
#[derive(Debug)]
struct SkewedClock {
    skew_ms: i64,
    host: SystemClock,
}

impl Clock for SkewedClock {
    fn now(&self) -> Timestamp {
        let skew = Duration::from_millis(self.skew_ms.unsigned_abs());
        if self.skew_ms < 0 {
            self.host.now() - skew
        } else {
            self.host.now() + skew
        }
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.host.sleep(duration)
    }
}
