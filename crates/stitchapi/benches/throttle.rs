//! Throttle benchmarks: (1) cost of one acquire that does not wait, next to governor's
//! `check()`; (2) pacing accuracy of "200/s" over 5 s of real time.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use stitchapi::MemoryStore;
use stitchapi::throttle::Throttle;
use stitchapi::time::{Clock, SystemClock};

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let limiter = Throttle::new("1000000000/s")
            .build("bench", Arc::new(MemoryStore::new()), clock.clone())
            .expect("valid")
            .expect("not delegate");
        const N: u32 = 2_000_000;
        for _ in 0..10_000 {
            drop(limiter.acquire(None).await.expect("grant"));
        }
        let start = Instant::now();
        for _ in 0..N {
            drop(black_box(limiter.acquire(None).await.expect("grant")));
        }
        let ours = start.elapsed().as_nanos() as f64 / f64::from(N);

        let governor = RateLimiter::direct(Quota::per_second(
            NonZeroU32::new(1_000_000_000).expect("non-zero"),
        ));
        let start = Instant::now();
        for _ in 0..N {
            let _ = black_box(governor.check());
        }
        let theirs = start.elapsed().as_nanos() as f64 / f64::from(N);
        println!(
            "acquire (memory store, no wait): {ours:.1} ns; governor check(): {theirs:.1} ns; ratio {:.2} (target under 1000 ns)",
            ours / theirs
        );

        let limiter = Throttle::new("200/s")
            .build("pace", Arc::new(MemoryStore::new()), clock.clone())
            .expect("valid")
            .expect("not delegate");
        let start = Instant::now();
        let mut grants = 0u32;
        let mut last = start;
        while start.elapsed() < Duration::from_secs(5) {
            drop(limiter.acquire(None).await.expect("grant"));
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
