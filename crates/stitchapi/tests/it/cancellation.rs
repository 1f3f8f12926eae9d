//! Cancellation and overload through whole calls against a real upstream: a cancelled call
//! gives back what it took (a fleet concurrency slot, a pacing reservation), a caller's own
//! deadline never counts against the upstream's circuit, and a failing shared fetch is not
//! repeated by every waiter.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use stitchapi::testing::{FleetStore, LatencyStore, ManualClock};
use stitchapi::throttle::Throttle;
use stitchapi::time::Clock;
use stitchapi::{Cache, Coalesce, ErrorKind, Input, Seam, Stitch};
use support::{Answer, Upstream};
use tokio::task::JoinHandle;

/// Lets spawned tasks run until `clock` has at least `n` sleepers.
async fn until_sleepers(clock: &ManualClock, n: usize) {
    for _ in 0..100_000 {
        if clock.pending() >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "expected {n} sleepers on the clock, found {}",
        clock.pending()
    );
}

/// Advances `clock` in 1 ms steps (letting real I/O progress between steps) until `task`
/// ends; panics if it takes more than `limit` of virtual time. Returns the virtual time taken.
async fn drive<T>(clock: &ManualClock, task: &JoinHandle<T>, limit: Duration) -> Duration {
    let start = clock.now();
    while !task.is_finished() {
        let taken = clock.now().saturating_duration_since(start);
        assert!(
            taken <= limit,
            "the task was still running after {limit:?} of virtual time"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
        clock.advance(Duration::from_millis(1));
    }
    clock.now().saturating_duration_since(start)
}

#[tokio::test]
async fn a_call_cancelled_while_its_fleet_lease_is_in_flight_frees_the_slot() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let clock = ManualClock::new();
    // 2 ms to the store, 2 ms back: the lease is granted before its answer arrives.
    let store = LatencyStore::new(
        FleetStore::new(clock.clone()),
        Arc::new(clock.clone()),
        Duration::from_millis(4),
    );
    let api = Seam::builder(upstream.url())
        .store(Arc::new(store))
        .throttle(Throttle::concurrency(1))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let items = api.get("/items").build().unwrap();

    let cancelled = tokio::spawn({
        let items = items.clone();
        async move { items.call(Input::new()).await }
    });
    // The lease on its way to the store (the call's deadline is checked, not slept on, until
    // its request goes out).
    until_sleepers(&clock, 1).await;
    clock.advance(Duration::from_millis(2));
    // The store has granted the slot; its answer is still on the way back.
    until_sleepers(&clock, 1).await;
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());

    // The slot must be given back, not held until the 30 s lease expires.
    let next = tokio::spawn(async move { items.call(Input::new()).await });
    let taken = drive(&clock, &next, Duration::from_secs(5)).await;
    next.await.unwrap().unwrap();
    assert!(
        taken < Duration::from_secs(1),
        "the next call waited {taken:?} for a slot nobody holds"
    );
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn a_throttle_wait_past_the_callers_deadline_does_not_open_the_circuit() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/items", upstream.url()))
        .throttle("1/10s")
        .timeout("1s")
        .circuit(2, "30s")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap();
    // A burst: the throttle refuses these at once, nothing reaches the upstream.
    for _ in 0..3 {
        let error = stitch.call(Input::new()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert_eq!(error.attempts(), 0);
    }
    assert_eq!(upstream.hit_count(), 1);
    // The upstream was healthy all along: the circuit must still be closed.
    clock.advance(Duration::from_secs(10));
    stitch
        .call(Input::new())
        .await
        .expect("the circuit stays closed: the caller's deadline is not the upstream's failure");
    assert_eq!(upstream.hit_count(), 2);
}

#[tokio::test]
async fn the_circuit_counts_the_upstreams_last_answer_not_the_callers_deadline() {
    use stitchapi::{Backoff, Retry};
    let upstream = Upstream::start().await;
    // A retryable 408 (the caller's, not the service's failure), then the retry wait would
    // cross the deadline: the call fails with a timeout, which the upstream did not cause.
    upstream.script("/slow-client", [Answer::status(408)]);
    upstream.script("/down", [Answer::status(503)]);
    let clock = ManualClock::new();
    let stitch = |path: &str| {
        Stitch::get(format!("{}{path}", upstream.url()))
            .retry(
                Retry::attempts(3)
                    .on([408, 503])
                    .backoff(Backoff::Fixed)
                    .base("2s"),
            )
            .timeout("1s")
            .circuit(1, "30s")
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
    };
    let slow_client = stitch("/slow-client");
    for _ in 0..2 {
        let error = slow_client.call(Input::new()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    }
    assert_eq!(upstream.hit_count(), 2, "the circuit stayed closed");
    // The same timeout after a 503 is the service's failure: it opens the circuit.
    let down = stitch("/down");
    let error = down.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    let error = down.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen, "{error}");
    assert_eq!(upstream.hit_count(), 3);
}

#[tokio::test]
async fn a_half_open_trial_that_never_reaches_the_upstream_is_given_back() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(503), Answer::status(200)]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/items", upstream.url()))
        .throttle("1/10s")
        .timeout("1s")
        .circuit(1, "5s")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    assert_eq!(
        stitch.call(Input::new()).await.unwrap_err().status(),
        Some(http::StatusCode::SERVICE_UNAVAILABLE)
    );
    // Cooled down, but the throttle still refuses: the trial is taken and given back.
    clock.advance(Duration::from_secs(6));
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    // The throttle allows a call again: this one is the trial, and it closes the circuit.
    clock.advance(Duration::from_secs(4));
    stitch.call(Input::new()).await.unwrap();
    let throttled = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(
        throttled.kind(),
        ErrorKind::Timeout,
        "throttled again, circuit closed"
    );
    assert_eq!(upstream.hit_count(), 2);
}

#[tokio::test]
async fn cancelled_waiters_give_their_pacing_slots_back() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let clock = ManualClock::new();
    let stitch = Stitch::get(format!("{}/items", upstream.url()))
        .throttle("10/s")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let stitch = stitch.clone();
            tokio::spawn(async move { stitch.call(Input::new()).await })
        })
        .collect();
    // One call is granted at once; 49 wait for their turns (100 ms apart).
    until_sleepers(&clock, 49).await;
    upstream.wait_for_hits(1).await;
    clock.advance(Duration::from_millis(150));
    upstream.wait_for_hits(2).await;
    for call in &calls {
        call.abort();
    }
    for call in calls {
        let _ = call.await;
    }
    // The next call's turn is the one after the last call that went out (at 100 ms): 200 ms,
    // 50 ms from now; not 5 s, behind 48 callers who are gone.
    let next = tokio::spawn({
        let stitch = stitch.clone();
        async move { stitch.call(Input::new()).await }
    });
    let taken = drive(&clock, &next, Duration::from_secs(6)).await;
    next.await.unwrap().unwrap();
    // 50 ms, plus the virtual milliseconds the driver adds while real I/O is in flight; behind
    // the cancelled callers it would be 4.85 s.
    assert!(
        taken < Duration::from_millis(500),
        "the next call waited {taken:?} behind cancelled callers"
    );
    assert_eq!(upstream.hit_count(), 3);
}

#[tokio::test]
async fn a_fleet_reservation_left_by_a_cancelled_call_costs_at_most_its_deadline() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(200)]);
    let clock = ManualClock::new();
    let store = Arc::new(FleetStore::new(clock.clone()));
    let stitch = |timeout: &str| {
        Stitch::get(format!("{}/items", upstream.url()))
            .throttle("10/s")
            .timeout(timeout)
            .store(store.clone())
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
    };
    let (stitch, patient) = (stitch("1s"), stitch("10s"));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let stitch = stitch.clone();
            tokio::spawn(async move { stitch.call(Input::new()).await })
        })
        .collect();
    // Only the calls whose turn comes within their 1 s deadline reserve one (at 0, 100 ms,
    // ..., 1 s); the others are refused at once and reserve nothing.
    upstream.wait_for_hits(1).await;
    let mut finished = 0;
    for _ in 0..5_000 {
        finished = calls.iter().filter(|call| call.is_finished()).count();
        if finished >= 40 && clock.pending() >= 10 {
            break;
        }
        // Real time: the first call's response is on its way over loopback.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        finished, 40,
        "39 refused at once, and the first call went out"
    );
    for call in &calls {
        call.abort();
    }
    for call in calls {
        let _ = call.await;
    }
    // The cancelled calls' turns stay spent in the fleet's cell, but they end within one
    // deadline: the next caller waits at most that long (1.1 s: the turn after the last, plus
    // the virtual milliseconds the driver adds while real I/O is in flight). Without the
    // deadline bound, 49 turns would make it 4.9 s.
    let next = tokio::spawn(async move { patient.call(Input::new()).await });
    let taken = drive(&clock, &next, Duration::from_secs(6)).await;
    next.await.unwrap().unwrap();
    assert!(
        taken < Duration::from_millis(1500),
        "the next call waited {taken:?}: more than one deadline's worth of reservations"
    );
    drop(stitch);
}

#[tokio::test]
async fn waiters_share_the_failure_of_the_shared_fetch() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/prices",
        [Answer::status(503).delayed(Duration::from_millis(400))],
    );
    let stitch = Stitch::get(format!("{}/prices", upstream.url()))
        .cache("1m")
        .build()
        .unwrap();
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let stitch = stitch.clone();
            tokio::spawn(async move { stitch.call(Input::new()).await })
        })
        .collect();
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(error.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    }
    assert_eq!(
        upstream.hit_count(),
        1,
        "the waiters shared the leader's failure"
    );
}

#[tokio::test]
async fn fleet_waiters_share_the_failure_of_the_shared_fetch() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/prices",
        [Answer::status(503).delayed(Duration::from_millis(400))],
    );
    let store = Arc::new(FleetStore::new(stitchapi::time::SystemClock::new()));
    // Ten "processes" over one fleet store, each with 20 identical calls.
    let workers: Vec<_> = (0..10)
        .map(|_| {
            Seam::builder(upstream.url())
                .store(store.clone())
                .build()
                .unwrap()
                .get("/prices")
                .cache(Cache::ttl("1m").coalesce(Coalesce::Fleet).poll("5ms"))
                .build()
                .unwrap()
        })
        .collect();
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let stitch = workers[i % 10].clone();
            tokio::spawn(async move { stitch.call(Input::new()).await })
        })
        .collect();
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(error.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    }
    assert_eq!(
        upstream.hit_count(),
        1,
        "the fleet's waiters shared the leader's failure"
    );
}
