//! Throttle benchmarks: (1) what a throttle adds to a call that does not wait (a throttled
//! call minus the same call unthrottled, over `MockTransport`), next to governor's `check()`;
//! (2) pacing accuracy of "200/s" over 5 s of real time, through whole calls.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use http::Method;
use stitchapi::testing::{MockResponse, MockTransport};
use stitchapi::throttle::Throttle;
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

        let paced = stitch(Some("200/s"));
        let start = Instant::now();
        let mut grants = 0u32;
        let mut last = start;
        while start.elapsed() < Duration::from_secs(5) {
            paced.call(Input::new()).await.expect("call");
            grants += 1;
            last = Instant::now();
        }
        let span = last.duration_since(start).as_secs_f64();
        let achieved = f64::from(grants - 1) / span;
        println!(
            "pacing \"200/s\" over {span:.3} s real time: {grants} grants, {achieved:.2}/s, error {:+.3}% (target within 1%)",
            (achieved - 200.0) / 200.0 * 100.0
        );
    });
}
