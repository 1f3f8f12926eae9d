//! The single-flight registry and the fleet lead, in virtual time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::error::ErrorKind;
use crate::store::{MemoryStore, StitchStore};
use crate::time::ManualClock;

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn one_thousand_identical_calls_run_once() {
    let flights = Arc::new(Flights::<u32>::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let (go, gate) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (flights, runs, mut gate) = (flights.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                flights
                    .run("k", None, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|g| *g).await;
                        Ok((42, ()))
                    })
                    .await
            })
        })
        .collect();
    settle().await;
    go.send(true).unwrap();
    let mut led = 0;
    for task in tasks {
        let (value, extra) = task.await.unwrap().unwrap();
        assert_eq!(value, 42);
        led += usize::from(extra.is_some());
    }
    assert_eq!((runs.load(Ordering::SeqCst), led), (1, 1));
    assert_eq!(flights.in_flight(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_leaders_error_is_shared_and_does_not_stick() {
    let flights = Arc::new(Flights::<u32>::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let (go, gate) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (flights, runs, mut gate) = (flights.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                flights
                    .run("k", None, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|g| *g).await;
                        Err::<(u32, ()), _>(Error::new(ErrorKind::Auth, "token endpoint down"))
                    })
                    .await
            })
        })
        .collect();
    settle().await;
    go.send(true).unwrap();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error.message(), "token endpoint down");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let (value, extra) = flights
        .run("k", None, || async { Ok((7, ())) })
        .await
        .unwrap();
    assert_eq!((value, extra), (7, Some(())));
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_leader_hands_over_to_one_follower() {
    let flights = Arc::new(Flights::<u32>::default());
    let leader = {
        let flights = flights.clone();
        tokio::spawn(async move {
            flights
                .run("k", None, std::future::pending::<Result<(u32, ()), Error>>)
                .await
        })
    };
    settle().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let followers: Vec<_> = (0..3)
        .map(|_| {
            let (flights, runs) = (flights.clone(), runs.clone());
            tokio::spawn(async move {
                flights
                    .run("k", None, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok((9, ()))
                    })
                    .await
            })
        })
        .collect();
    settle().await;
    leader.abort();
    for follower in followers {
        assert_eq!(follower.await.unwrap().unwrap().0, 9);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one follower took over");
    assert_eq!(flights.in_flight(), 0);
}

fn fleet<'a>(store: &DynStore, clock: &'a ManualClock, timing: FleetTiming) -> FleetFlight<'a> {
    FleetFlight {
        store: store.clone(),
        lock_key: "lock:k".into(),
        timing,
        clock,
        deadline: None,
    }
}

/// One "process" leading the fleet flight for `k`: its work takes `work` of virtual time,
/// then writes `done:k`; `running` counts works in progress and `max` the most at once.
async fn process(
    store: DynStore,
    clock: ManualClock,
    timing: FleetTiming,
    work: Duration,
    running: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
) -> Result<(u32, Flown), Error> {
    let done = || async { Ok(store.get("done:k").await?.map(|_| 1)) };
    let fetch = || async {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        clock.sleep(work).await;
        store.set("done:k", Some("1".into()), None).await?;
        running.fetch_sub(1, Ordering::SeqCst);
        Ok(1)
    };
    lead(Some(fleet(&store, &clock, timing)), done, fetch).await
}

/// Regression (two leaders at once): a leader whose work outlives its lock's TTL keeps the
/// lock, so no other process starts the same work.
#[tokio::test(flavor = "current_thread")]
async fn a_leader_slower_than_its_lock_ttl_keeps_the_fleet_waiting() {
    let clock = ManualClock::new();
    let store: DynStore = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let timing = FleetTiming {
        lock_ttl: Duration::from_secs(1),
        ..FleetTiming::default()
    };
    let (running, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(process(
                store.clone(),
                clock.clone(),
                timing,
                Duration::from_secs(10),
                running.clone(),
                max.clone(),
            ))
        })
        .collect();
    for _ in 0..250 {
        settle().await;
        clock.advance(Duration::from_millis(50));
    }
    let mut flown = Vec::new();
    for task in tasks {
        flown.push(task.await.unwrap().unwrap().1);
    }
    assert_eq!(max.load(Ordering::SeqCst), 1, "{flown:?}");
    assert_eq!(
        flown.iter().filter(|f| **f == Flown::FleetFilled).count(),
        3,
        "{flown:?}"
    );
    // The lock is gone, released by its owner.
    assert_eq!(store.get("lock:k").await.unwrap(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_fleet_the_leader_runs_at_once() {
    let (value, flown) = lead(None, || async { Ok(None) }, || async { Ok(5) })
        .await
        .unwrap();
    assert_eq!((value, flown), (5, Flown::Led { waited: false }));
}

#[tokio::test(flavor = "current_thread")]
async fn a_store_that_fails_the_lock_is_skipped() {
    #[derive(Debug)]
    struct NoCreate(MemoryStore);
    #[async_trait::async_trait]
    impl StitchStore for NoCreate {
        fn name(&self) -> &'static str {
            "no-create"
        }
        fn capabilities(&self) -> crate::store::Capabilities {
            self.0.capabilities()
        }
        async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>, crate::store::StoreError> {
            self.0.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Option<bytes::Bytes>,
            ttl: Option<Duration>,
        ) -> Result<(), crate::store::StoreError> {
            self.0.set(key, value, ttl).await
        }
        async fn increment(
            &self,
            key: &str,
            ttl: Option<Duration>,
        ) -> Result<i64, crate::store::StoreError> {
            self.0.increment(key, ttl).await
        }
    }
    let clock = ManualClock::new();
    let store: DynStore = Arc::new(NoCreate(MemoryStore::new()));
    let result = lead(
        Some(fleet(&store, &clock, FleetTiming::default())),
        || async { Ok(None) },
        || async { Ok(3) },
    )
    .await
    .unwrap();
    assert_eq!(result, (3, Flown::Led { waited: false }));
}

#[tokio::test(flavor = "current_thread")]
async fn a_follower_waits_no_longer_than_its_deadline() {
    let clock = ManualClock::new();
    let flights = Arc::new(Flights::<u32>::default());
    let leader = {
        let flights = flights.clone();
        tokio::spawn(async move {
            flights
                .run("k", None, std::future::pending::<Result<(u32, ()), Error>>)
                .await
        })
    };
    settle().await;
    let deadline = clock.now() + Duration::from_secs(2);
    let follower = {
        let (flights, clock) = (flights.clone(), clock.clone());
        tokio::spawn(async move {
            flights
                .run(
                    "k",
                    Some((&clock as &dyn crate::time::Clock, deadline)),
                    || async {
                        Err::<(u32, ()), _>(Error::new(ErrorKind::Timeout, "its own timeout"))
                    },
                )
                .await
        })
    };
    settle().await;
    assert!(!follower.is_finished());
    clock.advance(Duration::from_secs(2));
    let error = follower.await.unwrap().unwrap_err();
    assert_eq!(error.message(), "its own timeout");
    leader.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_fleet_waiter_waits_no_longer_than_its_deadline() {
    let clock = ManualClock::new();
    let store: DynStore = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    // Another process holds the lock and keeps it (a live, slow holder).
    assert!(store.create("lock:k", "other".into(), None).await.unwrap());
    let deadline = clock.now() + Duration::from_secs(3);
    let waiter = {
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(async move {
            let mut flight = fleet(&store, &clock, FleetTiming::default());
            flight.deadline = Some(deadline);
            lead(flight.into(), || async { Ok(None) }, || async { Ok(7_u32) }).await
        })
    };
    for _ in 0..59 {
        settle().await;
        clock.advance(Duration::from_millis(50));
    }
    settle().await;
    assert!(!waiter.is_finished(), "still waiting before its deadline");
    clock.advance(Duration::from_millis(100));
    settle().await;
    assert_eq!(
        waiter.await.unwrap().unwrap(),
        (7, Flown::Led { waited: true })
    );
}
