//! The throttle in virtual time: pacing, FIFO, caps, leases, deadlines, capabilities, store
//! failures, fleets, seam chaining and host pools.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::DynStore;
use crate::test_stores::{FleetStore, drive, settle};
use crate::throttle::{AcquireError, Limiter, Pool, StoreFailure, Throttle};
use crate::time::{Clock, ManualClock};
use crate::{ErrorKind, MemoryStore};

const MS: Duration = Duration::from_millis(1);

fn memory(clock: &ManualClock) -> DynStore {
    Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())))
}

fn build(throttle: Throttle, key: &str, store: DynStore, clock: &ManualClock) -> Limiter {
    throttle
        .build(key, store, Arc::new(clock.clone()))
        .unwrap()
        .unwrap()
}

/// Spawns one acquire per limiter in order and returns the grant times relative to the start.
async fn grant_times(clock: &ManualClock, limiters: Vec<Limiter>) -> Vec<Duration> {
    let t0 = clock.now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let n = limiters.len();
    for limiter in limiters {
        let (times, clock) = (times.clone(), clock.clone());
        tokio::spawn(async move {
            let grant = limiter.acquire(None).await.unwrap();
            times
                .lock()
                .unwrap()
                .push(clock.now().saturating_duration_since(t0));
            drop(grant);
        });
    }
    drive(clock, || times.lock().unwrap().len() == n).await;
    let mut times = times.lock().unwrap().clone();
    times.sort();
    times
}

fn spaced(n: u32, spacing: Duration) -> Vec<Duration> {
    (0..n).map(|i| spacing * i).collect()
}

#[tokio::test]
async fn paces_exactly_at_five_per_second() {
    let clock = ManualClock::new();
    let limiter = build(Throttle::new("5/s"), "k", memory(&clock), &clock);
    let times = grant_times(&clock, vec![limiter; 12]).await;
    assert_eq!(times, spaced(12, MS * 200));
}

#[tokio::test]
async fn serves_waiters_in_fifo_order() {
    let clock = ManualClock::new();
    let limiter = build(Throttle::concurrency(1), "k", memory(&clock), &clock);
    let order = Arc::new(Mutex::new(Vec::new()));
    for id in 0..8 {
        let (limiter, order, clock) = (limiter.clone(), order.clone(), clock.clone());
        tokio::spawn(async move {
            let _grant = limiter.acquire(None).await.unwrap();
            order.lock().unwrap().push(id);
            clock.sleep(MS * 10).await;
        });
    }
    drive(&clock, || order.lock().unwrap().len() == 8).await;
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
}

async fn check_cap(limiter: Limiter, clock: &ManualClock, cap: usize) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..24u32 {
        let (limiter, clock) = (limiter.clone(), clock.clone());
        let (in_flight, max, done) = (in_flight.clone(), max.clone(), done.clone());
        tokio::spawn(async move {
            let grant = limiter.acquire(None).await.unwrap();
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            clock.sleep(MS * (5 + (i * 7) % 23)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(grant);
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    drive(clock, || done.load(Ordering::SeqCst) == 24).await;
    assert_eq!(
        max.load(Ordering::SeqCst),
        cap,
        "the cap is reached and never exceeded"
    );
}

#[tokio::test]
async fn concurrency_cap_is_never_exceeded_in_process() {
    let clock = ManualClock::new();
    let limiter = build(Throttle::concurrency(3), "k", memory(&clock), &clock);
    check_cap(limiter, &clock, 3).await;
}

#[tokio::test]
async fn concurrency_cap_is_never_exceeded_fleet_wide() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let a = build(
        Throttle::concurrency(3),
        "k",
        Arc::new(store.clone()),
        &clock,
    );
    let b = build(Throttle::concurrency(3), "k", Arc::new(store), &clock);
    assert!(a.is_store_backed());
    // Half the tasks on each "process".
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..20u32 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let clock2 = clock.clone();
        let (in_flight, max, done) = (in_flight.clone(), max.clone(), done.clone());
        tokio::spawn(async move {
            let grant = limiter.acquire(None).await.unwrap();
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            clock2.sleep(MS * (20 + (i * 7) % 23)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(grant);
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    drive(&clock, || done.load(Ordering::SeqCst) == 20).await;
    assert_eq!(max.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_expired_lease_frees_a_crashed_holder() {
    let clock = ManualClock::new();
    let store = Arc::new(FleetStore::new(&clock));
    let throttle = Throttle::concurrency(1).lease("1s");
    let crashed = build(throttle.clone(), "k", store.clone(), &clock);
    let alive = build(throttle, "k", store, &clock);
    // The holder "crashes": its permit is never dropped, so no release is sent.
    std::mem::forget(crashed.acquire(None).await.unwrap());
    let t0 = clock.now();
    let got = Arc::new(Mutex::new(None));
    let (got2, clock2) = (got.clone(), clock.clone());
    tokio::spawn(async move {
        let _grant = alive.acquire(None).await.unwrap();
        *got2.lock().unwrap() = Some(clock2.now());
    });
    drive(&clock, || got.lock().unwrap().is_some()).await;
    let waited = got.lock().unwrap().unwrap().saturating_duration_since(t0);
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert!(waited < Duration::from_millis(1050), "{waited:?}");
}

async fn cancelled_call_releases(store: DynStore, clock: &ManualClock) {
    let limiter = build(Throttle::concurrency(1), "k", store, clock);
    let (holder, clock2) = (limiter.clone(), clock.clone());
    let call = tokio::spawn(async move {
        let _grant = holder.acquire(None).await.unwrap();
        clock2.sleep(Duration::from_secs(3600)).await; // the call never ends on its own
    });
    settle().await;
    // The slot is held: a bounded acquire times out.
    let deadline = Some(clock.now());
    assert!(matches!(
        limiter.acquire(deadline).await,
        Err(AcquireError::DeadlineExceeded { .. })
    ));
    call.abort(); // the call's future is dropped
    settle().await;
    let t0 = clock.now();
    let grant = limiter.acquire(Some(clock.now())).await.unwrap();
    assert_eq!(
        clock.now(),
        t0,
        "granted at once, without waiting for a lease expiry"
    );
    drop(grant);
}

#[tokio::test]
async fn a_cancelled_call_releases_its_slot_in_process() {
    let clock = ManualClock::new();
    cancelled_call_releases(memory(&clock), &clock).await;
}

#[tokio::test]
async fn a_cancelled_call_releases_its_fleet_lease() {
    let clock = ManualClock::new();
    cancelled_call_releases(Arc::new(FleetStore::new(&clock)), &clock).await;
}

#[tokio::test]
async fn a_release_cut_short_finishes_in_the_background() {
    use futures_util::FutureExt;
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let limiter = build(
        Throttle::concurrency(1),
        "k",
        Arc::new(store.clone()),
        &clock,
    );
    let grant = limiter.acquire(None).await.unwrap();
    store.stall_release.store(true, Ordering::SeqCst);
    // The awaited release stalls, and its caller gives up on it.
    assert!(grant.permit.release().now_or_never().is_none());
    settle().await;
    assert_eq!(
        store.releases.load(Ordering::SeqCst),
        1,
        "released in the background"
    );
    assert!(
        limiter.acquire(Some(clock.now())).await.is_ok(),
        "the slot is free"
    );
}

#[tokio::test]
async fn waits_are_bounded_by_the_deadline() {
    let clock = ManualClock::new();
    for store in [
        memory(&clock),
        Arc::new(FleetStore::new(&clock)) as DynStore,
    ] {
        let limiter = build(Throttle::new("1/s"), "deadline", store, &clock);
        let t0 = clock.now();
        limiter.acquire(Some(t0)).await.unwrap();
        // The next grant is at t0 + 1s: past a 500 ms deadline, so it fails at once.
        let error = limiter.acquire(Some(t0 + MS * 500)).await.unwrap_err();
        assert!(matches!(error, AcquireError::DeadlineExceeded { waited } if waited.is_zero()));
        assert_eq!(clock.now(), t0, "no time passed");
        // A deadline at the grant is met: the refused acquire cost nothing, in the process
        // and in the store alike.
        let task = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire(Some(t0 + Duration::from_secs(1))).await })
        };
        let finished = Arc::new(AtomicUsize::new(0));
        let f2 = finished.clone();
        let waiter = tokio::spawn(async move {
            let grant = task.await.unwrap().unwrap();
            f2.store(1, Ordering::SeqCst);
            grant.waited
        });
        drive(&clock, || finished.load(Ordering::SeqCst) == 1).await;
        assert_eq!(waiter.await.unwrap(), Duration::from_secs(1));
        clock.advance(Duration::from_secs(5));
    }
}

#[tokio::test]
async fn concurrency_waits_are_bounded_by_the_deadline() {
    let clock = ManualClock::new();
    for store in [
        memory(&clock),
        Arc::new(FleetStore::new(&clock)) as DynStore,
    ] {
        let limiter = build(Throttle::concurrency(1), "k", store, &clock);
        let _held = limiter.acquire(None).await.unwrap();
        let t0 = clock.now();
        let (l2, done) = (limiter.clone(), Arc::new(Mutex::new(None)));
        let d2 = done.clone();
        tokio::spawn(async move {
            let result = l2.acquire(Some(t0 + MS * 300)).await;
            *d2.lock().unwrap() = Some(result.map(|_| ()));
        });
        drive(&clock, || done.lock().unwrap().is_some()).await;
        assert!(matches!(
            done.lock().unwrap().take().unwrap(),
            Err(AcquireError::DeadlineExceeded { .. })
        ));
        assert_eq!(clock.now(), t0 + MS * 300);
    }
}

#[tokio::test]
async fn missing_store_capabilities_are_build_errors() {
    let clock = ManualClock::new();
    let c: Arc<dyn Clock> = Arc::new(clock.clone());
    let bare = FleetStore::new(&clock).without_reserve().non_atomic();
    let error = Throttle::new("5/s")
        .build("k", Arc::new(bare), c.clone())
        .unwrap_err();
    assert_eq!(error.field(), "throttle.rate");
    let text = error.to_string();
    assert!(
        text.starts_with("throttle.rate: the fleet-test store"),
        "{text}"
    );
    assert!(
        text.contains("`reserve`") && text.contains("atomic `increment`") && text.contains("Fix:"),
        "{text}"
    );

    // A strongly consistent store merely lacks the verb; an eventually consistent one (Workers
    // KV) is told why it cannot count, and every such error names the Durable Object store.
    assert!(!text.contains("eventually consistent"), "{text}");
    assert!(text.contains("DurableObjectStore"), "{text}");
    let kv_like = FleetStore::new(&clock)
        .without_reserve()
        .non_atomic()
        .without_lease()
        .eventual();
    let error = Throttle::new("10/s")
        .build("k", Arc::new(kv_like.clone()), c.clone())
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("eventually consistent and the last write wins")
            && text.contains("DurableObjectStore"),
        "{text}"
    );
    let error = Throttle::concurrency(2)
        .build("k", Arc::new(kv_like), c.clone())
        .unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("throttle.concurrency:"), "{text}");
    assert!(
        text.contains("eventually consistent") && text.contains("DurableObjectStore"),
        "{text}"
    );

    let no_lease = FleetStore::new(&clock).without_lease();
    let error = Throttle::new("5/s")
        .with_concurrency(2)
        .build("k", Arc::new(no_lease.clone()), c.clone())
        .unwrap_err();
    assert!(
        error.to_string().starts_with("throttle.concurrency:"),
        "{error}"
    );
    assert!(error.to_string().contains("`lease`"), "{error}");
    // The rate alone is fine on that store.
    assert!(
        Throttle::new("5/s")
            .build("k", Arc::new(no_lease), c.clone())
            .is_ok()
    );

    for (throttle, field) in [
        (Throttle::new("fast"), "throttle.rate"),
        (Throttle::concurrency(0), "throttle.concurrency"),
        (Throttle::concurrency(1).lease("soon"), "throttle.lease"),
        (Throttle::delegate().on([99]), "throttle.on"),
        (
            Throttle::delegate().with_concurrency(1),
            "throttle.delegate",
        ),
    ] {
        let error = throttle.build("k", memory(&clock), c.clone()).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!("{field}:")),
            "{error}"
        );
    }
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn store_failures_fail_closed_by_default_and_can_fail_open() {
    use crate::testing::DownStore;
    let clock = ManualClock::new();
    let c: Arc<dyn Clock> = Arc::new(clock.clone());
    let closed = Throttle::new("5/s")
        .with_concurrency(2)
        .build("k", Arc::new(DownStore), c.clone())
        .unwrap()
        .unwrap();
    let error = closed.acquire(None).await.unwrap_err();
    assert!(matches!(error, AcquireError::Store(_)));
    let error: crate::Error = match error {
        AcquireError::Store(e) => e.into(),
        other => panic!("{other:?}"),
    };
    assert_eq!(error.kind(), ErrorKind::Store);
    assert_eq!(
        error.message(),
        "down store: lease failed: connection refused"
    );

    let open = Throttle::new("5/s")
        .with_concurrency(2)
        .on_store_error(StoreFailure::FailOpen)
        .build("k", Arc::new(DownStore), c)
        .unwrap()
        .unwrap();
    let times = grant_times(&clock, vec![open.clone(); 3]).await;
    assert_eq!(
        times,
        spaced(3, MS * 200),
        "the in-process fallback still paces"
    );
    clock.advance(Duration::from_secs(1));
    let grant = open.acquire(None).await.unwrap();
    assert_eq!(grant.fell_back.as_ref().unwrap().operation(), "lease");
    assert!(grant.permit.holds_slot());
}

#[tokio::test]
async fn three_limiters_pace_exactly_fleet_wide_through_reserve() {
    let clock = ManualClock::new();
    clock.advance(MS * 437); // start mid-window: reserve does not care
    let store = FleetStore::new(&clock);
    let limiters: Vec<Limiter> = (0..3)
        .map(|_| build(Throttle::new("5/s"), "k", Arc::new(store.clone()), &clock))
        .collect();
    let all: Vec<Limiter> = (0..15).map(|i| limiters[i % 3].clone()).collect();
    let times = grant_times(&clock, all).await;
    assert_eq!(times, spaced(15, MS * 200));
}

#[tokio::test]
async fn increment_fallback_paces_from_a_window_boundary() {
    let clock = ManualClock::new(); // START is on a whole second
    let store = FleetStore::new(&clock).without_reserve();
    let limiters: Vec<Limiter> = (0..3)
        .map(|_| build(Throttle::new("5/s"), "k", Arc::new(store.clone()), &clock))
        .collect();
    let all: Vec<Limiter> = (0..5).map(|i| limiters[i % 3].clone()).collect();
    let times = grant_times(&clock, all).await;
    assert_eq!(times, spaced(5, MS * 200));
}

#[tokio::test]
async fn increment_fallback_over_admits_when_a_fleet_starts_mid_window() {
    // Documented: the window's first slots are already in the past, so three processes that
    // start 500 ms into a window are all granted at once (3 grants where 5/s allows 1).
    let clock = ManualClock::new();
    clock.advance(MS * 500);
    let store = FleetStore::new(&clock).without_reserve();
    let limiters: Vec<Limiter> = (0..3)
        .map(|_| build(Throttle::new("5/s"), "k", Arc::new(store.clone()), &clock))
        .collect();
    let times = grant_times(&clock, limiters.clone()).await;
    assert_eq!(times, vec![Duration::ZERO; 3]);
    // Each process still spaces its own grants exactly: its next grant is 200 ms later.
    let grant = limiters[0].acquire(Some(clock.now())).await;
    assert!(matches!(grant, Err(AcquireError::DeadlineExceeded { .. })));
}

#[tokio::test]
async fn a_member_throttle_chained_after_the_seam_bucket_can_only_tighten() {
    let clock = ManualClock::new();
    let store = memory(&clock);
    let seam = build(Throttle::concurrency(1), "seam:s1", store.clone(), &clock);
    let member = build(Throttle::concurrency(5), "users", store.clone(), &clock);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..6 {
        let (seam, member, clock) = (seam.clone(), member.clone(), clock.clone());
        let (in_flight, max, done) = (in_flight.clone(), max.clone(), done.clone());
        tokio::spawn(async move {
            let grant = Limiter::acquire_chain([&seam, &member], None, false)
                .await
                .unwrap();
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            clock.sleep(MS * 10).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(grant);
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    drive(&clock, || done.load(Ordering::SeqCst) == 6).await;
    assert_eq!(
        max.load(Ordering::SeqCst),
        1,
        "the seam's cap of 1 wins over the member's 5"
    );

    // Rates: a loose seam bucket and a tight member; the member's spacing governs.
    let seam = build(Throttle::new("10/s"), "seam:s2", store.clone(), &clock);
    let member = build(Throttle::new("2/s"), "orders", store, &clock);
    let t0 = clock.now();
    let times = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..4 {
        let (seam, member, clock2, times) =
            (seam.clone(), member.clone(), clock.clone(), times.clone());
        tokio::spawn(async move {
            let _grant = Limiter::acquire_chain([&seam, &member], None, false)
                .await
                .unwrap();
            times
                .lock()
                .unwrap()
                .push(clock2.now().saturating_duration_since(t0));
        });
    }
    drive(&clock, || times.lock().unwrap().len() == 4).await;
    let mut times = times.lock().unwrap().clone();
    times.sort();
    assert_eq!(times, spaced(4, MS * 500));
}

#[tokio::test]
async fn a_host_pool_shares_one_budget_across_stitches_over_one_store() {
    let clock = ManualClock::new();
    let host = "pool-test.example.com:8443";
    let host_pool = || Throttle::new("5/s").pool(Pool::Host);
    // Over one store (in one process), stitches aimed at one host share its budget.
    let store = memory(&clock);
    let a = build(host_pool(), host, store.clone(), &clock);
    let b = build(host_pool(), host, store, &clock);
    assert!(a.is_store_backed());
    let times = grant_times(&clock, vec![a.clone(), b.clone(), a, b]).await;
    assert_eq!(times, spaced(4, MS * 200));

    // Over another store, the same host has its own budget.
    let a = build(host_pool(), host, memory(&clock), &clock);
    let b = build(host_pool(), host, memory(&clock), &clock);
    let times = grant_times(&clock, vec![a, b]).await;
    assert_eq!(times, vec![Duration::ZERO; 2]);

    // Without the host pool, two stitches over one store have their own budgets.
    let store = memory(&clock);
    let a = build(Throttle::new("5/s"), "a", store.clone(), &clock);
    let b = build(Throttle::new("5/s"), "b", store, &clock);
    let times = grant_times(&clock, vec![a, b]).await;
    assert_eq!(times, vec![Duration::ZERO; 2]);

    // Fleet-wide, the key is the host: two stitches share the store's cell.
    let store = FleetStore::new(&clock);
    let a = build(host_pool(), host, Arc::new(store.clone()), &clock);
    let b = build(host_pool(), host, Arc::new(store), &clock);
    let times = grant_times(&clock, vec![a, b]).await;
    assert_eq!(times, spaced(2, MS * 200));
}

/// Regression: a process-wide registry let the first host-pool limiter built for a host fix
/// that host's cap for every seam in the process, whatever their stores.
#[tokio::test]
async fn two_seams_with_different_host_caps_keep_their_own_caps() {
    let clock = ManualClock::new();
    let host = "caps.example.com";
    let capped = |cap| Throttle::concurrency(cap).pool(Pool::Host);
    // Built first, with a cap of 1, in its own seam (its own default store).
    let first = build(capped(1), host, memory(&clock), &clock);
    let second = build(capped(3), host, memory(&clock), &clock);
    check_cap(second, &clock, 3).await;
    check_cap(first.clone(), &clock, 1).await;

    // Over one shared store the holders are shared, and each limiter keeps its own cap: the
    // cap-1 seam never runs beside anything, the cap-3 seam fills up to 3.
    let store = memory(&clock);
    let narrow = build(capped(1), host, store.clone(), &clock);
    let wide = build(capped(3), host, store, &clock);
    let _held = narrow.acquire(None).await.unwrap();
    let t0 = clock.now();
    assert!(matches!(
        narrow.acquire(Some(t0)).await,
        Err(AcquireError::DeadlineExceeded { .. })
    ));
    let w1 = wide.acquire(Some(t0)).await.unwrap();
    let w2 = wide.acquire(Some(t0)).await.unwrap();
    assert!(matches!(
        wide.acquire(Some(t0)).await,
        Err(AcquireError::DeadlineExceeded { .. })
    ));
    drop((w1, w2));
}

#[tokio::test]
async fn rate_only_acquires_take_no_slot() {
    let clock = ManualClock::new();
    let limiter = build(Throttle::concurrency(1), "k", memory(&clock), &clock);
    let _held = limiter.acquire(None).await.unwrap();
    let grant = limiter.acquire_rate_only(Some(clock.now())).await.unwrap();
    assert!(!grant.permit.holds_slot());
}

#[test]
fn serde_forms() {
    let t: Throttle = toml::from_str::<toml::Table>("t = \"10/s\"").unwrap()["t"]
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(t, Throttle::new("10/s"));
    // The typed rate is the same declaration as its string.
    let ten = std::num::NonZeroU32::new(10).unwrap();
    assert_eq!(t, Throttle::new(crate::throttle::Rate::per_second(ten)));
    assert_eq!(t, Throttle::from(crate::throttle::Rate::per_second(ten)));
    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        throttle: Throttle,
    }
    let doc: Doc = toml::from_str(
        "[throttle]\nrate = \"10/s\"\nconcurrency = 4\nlease = \"20s\"\npool = \"host\"\non_store_error = \"fail-open\"\n",
    )
    .unwrap();
    assert_eq!(
        doc.throttle,
        Throttle::new("10/s")
            .with_concurrency(4)
            .lease("20s")
            .pool(Pool::Host)
            .on_store_error(StoreFailure::FailOpen)
    );
    let doc: Doc = toml::from_str("throttle = { delegate = true, on = [429, 503] }").unwrap();
    assert!(doc.throttle.is_rate_limited(503) && !doc.throttle.is_rate_limited(429 + 1));
    let doc: Doc = toml::from_str("throttle = { delegate = true, on = 420 }").unwrap();
    assert!(doc.throttle.is_rate_limited(420) && !doc.throttle.is_rate_limited(429));
    let doc: Doc = toml::from_str("throttle = { delegate = true }").unwrap();
    assert!(doc.throttle.is_rate_limited(429));
    for bad in [
        "throttle = { rate = \"10/s\", burst = 3 }",
        "throttle = {}",
        "throttle = { rate = \"10/s\", pool = \"region\" }",
        "throttle = 10",
    ] {
        assert!(toml::from_str::<Doc>(bad).is_err(), "{bad}");
    }
    let error = toml::from_str::<Doc>("throttle = { rate = \"10/s\", burst = 3 }").unwrap_err();
    assert!(error.to_string().contains("burst"), "{error}");
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn a_fleet_queue_longer_than_a_period_is_not_jumped() {
    use crate::testing::FleetStore;
    let clock = ManualClock::new();
    let store = Arc::new(FleetStore::new(clock.clone()));
    let limiter = |clock: &ManualClock| {
        Throttle::new("10/s")
            .build("shared", store.clone(), Arc::new(clock.clone()))
            .unwrap()
            .unwrap()
    };
    // Process A queues 30 grants at once: three seconds of pacing.
    let (done, mut order) = tokio::sync::mpsc::unbounded_channel();
    let a = limiter(&clock);
    for i in 0..30 {
        let (a, done) = (a.clone(), done.clone());
        tokio::spawn(async move {
            let _grant = a.acquire(None).await.unwrap();
            done.send(format!("a{i}")).unwrap();
        });
    }
    while clock.pending() < 29 {
        tokio::task::yield_now().await;
    }
    // More than one period later, process B asks: it must queue behind A's grants.
    clock.advance(Duration::from_millis(1500));
    let b = limiter(&clock);
    tokio::spawn(async move {
        let _grant = b.acquire(None).await.unwrap();
        done.send("b".to_owned()).unwrap();
    });
    let mut finished = Vec::new();
    while finished.len() < 31 {
        tokio::task::yield_now().await;
        while let Ok(name) = order.try_recv() {
            finished.push(name);
        }
        if clock.pending() > 0 && finished.len() < 31 {
            clock.advance_to_next();
        }
    }
    assert_eq!(
        finished.last().map(String::as_str),
        Some("b"),
        "{finished:?}"
    );
}

/// One acquire of a sequence: how far `now` moves first, and the caller's `latest` (an
/// offset from `now`), if any.
#[derive(Clone, Debug)]
struct Step {
    advance: Duration,
    latest: Option<Duration>,
}

fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
    use proptest::prelude::*;
    prop::collection::vec(
        (0..2_000_u64, prop::option::of(0..3_000_u64)).prop_map(|(advance, latest)| Step {
            advance: Duration::from_millis(advance),
            latest: latest.map(Duration::from_millis),
        }),
        1..40,
    )
}

mod agrees_with_the_store {
    use super::*;
    use crate::store::{Reservation, StitchStore};
    use proptest::prelude::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_in_process_limiter_agrees_with_the_store(
        spacing_ms in 1..500_u64,
        steps in steps(),
    ) {
        use crate::throttle::{AcquireError, Throttle};
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let runtime = runtime();
        let rate = format!("1/{spacing_ms}ms");
        let limiter = Throttle::new(rate.as_str())
            .build("p", Arc::new(MemoryStore::new()), Arc::new(clock.clone()))
            .unwrap()
            .unwrap();
        let spacing = Duration::from_millis(spacing_ms);
        for step in steps {
            clock.advance(step.advance);
            let now = clock.now();
            // A deadline the limiter refuses at once or grants without waiting on the clock:
            // only `latest >= now` deadlines are comparable (the limiter would sleep to them).
            let latest = now + step.latest.unwrap_or_default();
            let stored = runtime
                .block_on(store.reserve("rl:p", spacing, now, Some(latest), None))
                .unwrap();
            let (acquired, waited) = runtime.block_on(async {
                let acquire = limiter.acquire(Some(latest));
                futures_util::pin_mut!(acquire);
                // What resolves without time passing; a grant in the future waits for the
                // clock, which is then moved to it, as a caller would wait.
                match futures_util::future::poll_immediate(&mut acquire).await {
                    Some(result) => (result, false),
                    None => {
                        if let Reservation::Granted(at) = stored {
                            clock.advance(at.saturating_duration_since(now));
                        }
                        (acquire.await, true)
                    }
                }
            });
            match (stored, acquired) {
                (Reservation::Refused(_), Err(AcquireError::DeadlineExceeded { .. })) => {
                    prop_assert!(!waited);
                }
                (Reservation::Granted(at), Ok(grant)) => {
                    prop_assert_eq!(waited, at > now);
                    prop_assert_eq!(grant.waited(), at.saturating_duration_since(now));
                }
                (stored, acquired) => {
                    prop_assert!(false, "store {stored:?} but limiter {acquired:?}");
                }
            }
        }
    }
    }
}
