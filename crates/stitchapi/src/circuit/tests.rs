//! The circuit breaker in virtual time, alone and as a fleet over one shared store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::ErrorKind;
use crate::circuit::{Breaker, Circuit, Transition};
use crate::store::{DynStore, StitchStore};
use crate::test_stores::FleetStore;
use crate::time::{Clock, ManualClock};

fn breaker(store: DynStore, clock: &ManualClock) -> Breaker {
    Circuit::new(3, "30s")
        .build("api", store, Arc::new(clock.clone()))
        .unwrap()
}

/// One logical call through the breaker: `outcome` is what the network would say; `calls`
/// counts how often the network was touched.
async fn call(breaker: &Breaker, calls: &AtomicUsize, ok: bool) -> Result<Transition, ErrorKind> {
    let admission = breaker.admit().await.map_err(|e| e.kind())?;
    calls.fetch_add(1, Ordering::SeqCst);
    breaker.record(admission, ok).await.map_err(|e| e.kind())
}

#[tokio::test]
async fn opens_after_n_failures_and_fails_fast_without_calling() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let breaker = breaker(Arc::new(store), &clock);
    let calls = AtomicUsize::new(0);
    assert_eq!(call(&breaker, &calls, false).await, Ok(Transition::None));
    assert_eq!(call(&breaker, &calls, false).await, Ok(Transition::None));
    assert_eq!(call(&breaker, &calls, false).await, Ok(Transition::Opened));
    for _ in 0..5 {
        assert_eq!(
            call(&breaker, &calls, true).await,
            Err(ErrorKind::CircuitOpen)
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "open calls never reach the network"
    );
    let error = breaker.admit().await.unwrap_err();
    assert_eq!(error.message(), "circuit open");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let clock = ManualClock::new();
    let breaker = breaker(Arc::new(FleetStore::new(&clock)), &clock);
    let calls = AtomicUsize::new(0);
    for _ in 0..2 {
        call(&breaker, &calls, false).await.unwrap();
    }
    assert_eq!(call(&breaker, &calls, true).await, Ok(Transition::Closed));
    for _ in 0..2 {
        assert_eq!(call(&breaker, &calls, false).await, Ok(Transition::None));
    }
    assert!(
        breaker.admit().await.is_ok(),
        "two failures after a reset do not open it"
    );
}

#[tokio::test]
async fn the_healthy_path_is_one_read_and_no_write() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let breaker = breaker(Arc::new(store.clone()), &clock);
    let calls = AtomicUsize::new(0);
    for _ in 0..10 {
        assert_eq!(call(&breaker, &calls, true).await, Ok(Transition::None));
    }
    assert_eq!(store.gets.load(Ordering::SeqCst), 10);
    assert_eq!(store.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn half_open_admits_exactly_one_trial_across_a_fleet() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let fleet: Vec<Breaker> = (0..3)
        .map(|_| breaker(Arc::new(store.clone()), &clock))
        .collect();
    let calls = AtomicUsize::new(0);
    for breaker in &fleet {
        call(breaker, &calls, false).await.unwrap();
    }
    assert!(fleet[1].admit().await.is_err());
    clock.advance(Duration::from_secs(30));

    // Many concurrent callers on three breakers: exactly one trial goes through.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let breaker = fleet[i % 3].clone();
        tasks.push(tokio::spawn(async move { breaker.admit().await }));
    }
    let mut trials = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(admission) => trials.push(admission),
            Err(e) => assert_eq!(e.kind(), ErrorKind::CircuitOpen),
        }
    }
    assert_eq!(trials.len(), 1);
    let trial = trials.pop().unwrap();
    assert!(trial.is_trial());
    // While the trial runs, everyone else still fails fast.
    assert!(fleet[2].admit().await.is_err());
    // The trial succeeds: the breaker closes for the whole fleet.
    assert_eq!(
        fleet[0].record(trial, true).await.unwrap(),
        Transition::Closed
    );
    for breaker in &fleet {
        assert!(!breaker.admit().await.unwrap().is_trial());
    }
}

#[tokio::test]
async fn a_failed_trial_reopens_with_a_fresh_cooldown() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let a = breaker(Arc::new(store.clone()), &clock);
    let b = breaker(Arc::new(store), &clock);
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        call(&a, &calls, false).await.unwrap();
    }
    clock.advance(Duration::from_secs(45));
    let trial = b.admit().await.unwrap();
    assert!(trial.is_trial());
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.record(trial, false).await.unwrap(), Transition::Opened);
    // A fresh 30 s cooldown from the failed trial.
    clock.advance(Duration::from_millis(29_999));
    assert_eq!(a.admit().await.unwrap_err().kind(), ErrorKind::CircuitOpen);
    clock.advance(Duration::from_millis(1));
    let trial = a.admit().await.unwrap();
    assert!(trial.is_trial());
    assert!(b.admit().await.is_err(), "one trial per epoch");
    assert_eq!(a.record(trial, true).await.unwrap(), Transition::Closed);
}

#[tokio::test]
async fn a_crashed_trial_frees_its_lock_after_a_cooldown() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock);
    let breaker = breaker(Arc::new(store), &clock);
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        call(&breaker, &calls, false).await.unwrap();
    }
    clock.advance(Duration::from_secs(30));
    let crashed = breaker.admit().await.unwrap();
    drop(crashed); // never recorded
    assert!(breaker.admit().await.is_err());
    clock.advance(Duration::from_secs(30));
    assert!(breaker.admit().await.unwrap().is_trial());
}

#[tokio::test]
async fn declarations_are_checked() {
    let clock = ManualClock::new();
    let c: Arc<dyn Clock> = Arc::new(clock.clone());
    let store: DynStore = Arc::new(FleetStore::new(&clock));
    for (circuit, field) in [
        (
            Circuit::new(0, Duration::from_secs(30)),
            "circuit.failures:",
        ),
        (Circuit::new(3, "soon"), "circuit.cooldown:"),
        (Circuit::new(3, Duration::ZERO), "circuit.cooldown:"),
        (Circuit::new(3, "30"), "circuit.cooldown:"),
    ] {
        let error = circuit.build("k", store.clone(), c.clone()).unwrap_err();
        assert!(error.to_string().starts_with(field), "{error}");
    }
    let non_atomic: DynStore = Arc::new(FleetStore::new(&clock).non_atomic());
    assert!(non_atomic.capabilities().scope == crate::store::Scope::Fleet);
    let error = Circuit::new(3, "30s")
        .build("k", non_atomic, c)
        .unwrap_err();
    assert!(error.to_string().contains("atomic increment"), "{error}");
}

#[test]
fn serde_forms() {
    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        circuit: Circuit,
    }
    let doc: Doc = toml::from_str("circuit = [5, \"30s\"]").unwrap();
    assert_eq!(doc.circuit, Circuit::new(5, "30s"));
    let doc: Doc = toml::from_str("circuit = { failures = 5, cooldown = 30000 }").unwrap();
    assert_eq!(doc.circuit, Circuit::new(5, Duration::from_secs(30)));
    for bad in [
        "circuit = [5]",
        "circuit = [5, \"30s\", 1]",
        "circuit = { failures = 5 }",
        "circuit = { failures = 5, cooldown = \"30s\", key = \"x\" }",
    ] {
        assert!(toml::from_str::<Doc>(bad).is_err(), "{bad}");
    }
}

/// Regression: `record` read the count, added one and wrote it back, so concurrent failures
/// over a store with latency were counted once.
#[tokio::test(start_paused = true)]
async fn concurrent_failures_over_a_store_with_latency_are_all_counted() {
    use crate::MemoryStore;
    use crate::testing::LatencyStore;
    use crate::time::SystemClock;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let store: DynStore = Arc::new(LatencyStore::new(
        MemoryStore::with_clock(clock.clone()),
        clock.clone(),
        Duration::from_millis(3),
    ));
    let breaker = Circuit::new(10, "30s")
        .build("api", store.clone(), clock)
        .unwrap();
    // Ten callers admitted at once, all failing at once.
    let admissions = futures_util::future::join_all((0..10).map(|_| breaker.admit())).await;
    let transitions = futures_util::future::join_all(
        admissions
            .into_iter()
            .map(|admission| breaker.record(admission.unwrap(), false)),
    )
    .await;
    let opened = transitions
        .iter()
        .filter(|t| *t.as_ref().unwrap() == Transition::Opened)
        .count();
    assert_eq!(opened, 1, "{transitions:?}");
    assert_eq!(
        store.get(breaker.key()).await.unwrap().as_deref(),
        Some(&b"10"[..])
    );
    assert_eq!(
        breaker.admit().await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
}

/// Regression: the trial lock lived one cooldown, so a trial slower than the cooldown let a
/// second trial start beside it.
#[tokio::test(flavor = "current_thread")]
async fn a_trial_slower_than_the_cooldown_stays_the_only_trial() {
    let clock = ManualClock::new();
    let store: DynStore = Arc::new(FleetStore::new(&clock));
    let breaker = Circuit::new(1, "1s")
        .build("api", store, Arc::new(clock.clone()))
        .unwrap();
    let calls = AtomicUsize::new(0);
    assert_eq!(call(&breaker, &calls, false).await, Ok(Transition::Opened));
    clock.advance(Duration::from_secs(1));
    let trial = breaker.admit().await.unwrap();
    assert!(trial.is_trial());
    let finished = Arc::new(AtomicUsize::new(0));
    let task = {
        let (breaker, clock, finished) = (breaker.clone(), clock.clone(), finished.clone());
        tokio::spawn(async move {
            // A trial call that takes 20 s (twenty cooldowns, four lock TTLs).
            trial
                .hold(&clock, clock.sleep(Duration::from_secs(20)))
                .await;
            let transition = breaker.record(trial, true).await;
            finished.store(1, Ordering::SeqCst);
            transition
        })
    };
    for _ in 0..190 {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_millis(100));
        assert_eq!(
            breaker.admit().await.unwrap_err().kind(),
            ErrorKind::CircuitOpen,
            "a second trial started at {:?}",
            clock.now()
        );
    }
    while finished.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(100));
    }
    assert_eq!(task.await.unwrap().unwrap(), Transition::Closed);
    let admission = breaker.admit().await.unwrap();
    assert!(!admission.is_trial(), "closed again");
    breaker.record(admission, true).await.unwrap();
}

#[tokio::test]
async fn on_a_fleet_store_without_owned_locks_the_trial_is_per_process() {
    let clock = ManualClock::new();
    let store = FleetStore::new(&clock).without_owned_locks();
    let build = || {
        Circuit::new(1, "1s")
            .build("api", Arc::new(store.clone()), Arc::new(clock.clone()))
            .unwrap()
    };
    let (one, two) = (build(), build());
    let calls = AtomicUsize::new(0);
    call(&one, &calls, false).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let trial = one.admit().await.unwrap();
    assert!(trial.is_trial());
    assert_eq!(
        one.admit().await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    // The other process has its own trial: no lock that cannot be correct is taken.
    let other = two.admit().await.unwrap();
    assert!(other.is_trial());
    drop(trial);
    let again = one.admit().await.unwrap();
    assert!(again.is_trial(), "a dropped trial frees it");
    drop((other, again));
}
