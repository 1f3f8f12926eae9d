//! Throttle benchmarks: (1) what a throttle adds to a call that does not wait (a throttled
//! call minus the same call unthrottled, over `MockTransport`), next to governor's `check()`;
//! (2) pacing accuracy of "200/s" in real time through whole calls, next to governor's
//! `until_ready` and to the same throttle waiting on tokio's millisecond timer alone: rate error
//! and gap jitter.

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use http::Method;
use stitchapi::runtime::BoxFuture;
use stitchapi::testing::{MockResponse, MockTransport};
use stitchapi::throttle::Throttle;
use stitchapi::time::{Clock, SystemClock, Timestamp};
use stitchapi::{Input, Stitch};

/// A GET of `/hit` over a fresh mock transport (it records each request, hence one per run).
fn stitch(throttle: Option<&str>) -> stitchapi::Stitch {
    let mock = MockTransport::new();
    mock.route(Method::GET, "/hit", [MockResponse::status(200)]);
    let builder = Stitch::get("https://bench.example/hit").transport(Arc::new(mock));
    match throttle {
        Some(rate) => builder.throttle(Throttle::new(rate)).build(),
        None => builder.build(),
    }
    .expect("valid")
}

/// Mean nanoseconds per call over `n` calls, after a warm-up.
async fn per_call(stitch: &Stitch, n: u32) -> f64 {
    for _ in 0..1_000 {
        stitch.call(Input::new()).await.expect("call");
    }
    let start = Instant::now();
    for _ in 0..n {
        black_box(stitch.call(Input::new()).await.expect("call"));
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

const PACE_FOR: Duration = Duration::from_secs(4);
const GAP: f64 = 5_000.0;

/// "200/s" through whole calls on `clock`.
fn paced_stitch(clock: Arc<dyn Clock>) -> Stitch {
    let mock = MockTransport::new();
    mock.route(Method::GET, "/hit", [MockResponse::status(200)]);
    Stitch::get("https://bench.example/hit")
        .transport(Arc::new(mock))
        .throttle(Throttle::new("200/s"))
        .clock(clock)
        .build()
        .expect("valid")
}

/// The system clock with the default `sleep_precise` (tokio's millisecond timer alone): what
/// the throttle waited with before.
#[derive(Debug)]
struct CoarseClock(SystemClock);

impl Clock for CoarseClock {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.sleep(duration)
    }
}

/// The instants `acquire` returned at, for `PACE_FOR`.
async fn pace<F, Fut, T, E>(acquire: F) -> Vec<Instant>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    acquire().await.expect("first grant");
    let start = Instant::now();
    let mut grants = vec![start];
    while start.elapsed() < PACE_FOR {
        acquire().await.expect("grant");
        grants.push(Instant::now());
    }
    grants
}

/// Prints the achieved rate, its error, the gaps' jitter and how far they are off 5 ms.
fn report(round: u32, name: &str, grants: Vec<Instant>) {
    let gaps: Vec<f64> = grants
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]).as_secs_f64() * 1e6)
        .collect();
    let span = grants[grants.len() - 1]
        .duration_since(grants[0])
        .as_secs_f64();
    let rate = gaps.len() as f64 / span;
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let jitter =
        (gaps.iter().map(|gap| (gap - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
    let mut off: Vec<f64> = gaps.iter().map(|gap| (gap - GAP).abs()).collect();
    off.sort_by(f64::total_cmp);
    let at = |q: f64| off[((off.len() - 1) as f64 * q) as usize];
    println!(
        "  run {round} {name:<31} {rate:>7.2}/s  rate error {:+.3}%  jitter {jitter:>4.0} µs  off p50 {:>4.0} µs, p99 {:>5.0} µs, max {:>5.0} µs",
        (rate - 200.0) / 2.0,
        at(0.5),
        at(0.99),
        off[off.len() - 1],
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        const CALLS: u32 = 100_000;
        let bare = per_call(&stitch(None), CALLS).await;
        let throttled = per_call(&stitch(Some("1000000000/s")), CALLS).await;
        let ours = throttled - bare;
        const N: u32 = 2_000_000;
        let governor = RateLimiter::direct(Quota::per_second(
            NonZeroU32::new(1_000_000_000).expect("non-zero"),
        ));
        let start = Instant::now();
        for _ in 0..N {
            let _ = black_box(governor.check());
        }
        let theirs = start.elapsed().as_nanos() as f64 / f64::from(N);
        println!(
            "throttle cost per call (memory store, no wait): {ours:.1} ns ({throttled:.0} ns throttled, {bare:.0} ns bare); governor check(): {theirs:.1} ns; ratio {:.2} (target under 1000 ns)",
            ours / theirs
        );

        println!(
            "pacing \"200/s\" (5 ms apart) for {} s per run, 2 interleaved runs each; jitter is the standard deviation of the gaps between grants, off is |gap - 5 ms|:",
            PACE_FOR.as_secs()
        );
        for round in 1..=2 {
            let ours = paced_stitch(Arc::new(SystemClock::new()));
            report(round, "stitchapi (precise sleep)", pace(|| ours.call(Input::new())).await);
            let coarse = paced_stitch(Arc::new(CoarseClock(SystemClock::new())));
            report(round, "stitchapi, tokio sleep only", pace(|| coarse.call(Input::new())).await);
            let governor = RateLimiter::direct(
                Quota::per_second(NonZeroU32::new(200).expect("non-zero"))
                    .allow_burst(NonZeroU32::new(1).expect("non-zero")),
            );
            report(round, "governor until_ready (burst 1)", pace(|| async { governor.until_ready().await; Ok::<_, ()>(()) }).await);
        }
    });
}
