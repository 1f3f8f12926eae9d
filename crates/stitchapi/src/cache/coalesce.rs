//! In-process single-flight: the first caller for a key runs the fetch, concurrent callers with
//! the same key wait for its result. A leader's failure (or cancellation) is not shared: each
//! follower then runs its own fetch. Runtime-agnostic (a oneshot channel and `Shared`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures_channel::oneshot;
use futures_util::FutureExt as _;
use futures_util::future::Shared;

type Waiter<T> = Shared<oneshot::Receiver<T>>;

/// The flights in progress, by key.
pub(crate) struct Flights<T: Clone> {
    map: Mutex<HashMap<String, Waiter<T>>>,
}

impl<T: Clone> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// How a caller got its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// It ran the fetch (as the leader, or after the leader failed).
    Ran,
    /// It shared the leader's result.
    Followed,
}

/// Ends the leader's flight, also when its fetch is cancelled. Only the leader that inserted
/// the key removes it, so the entry it removes is its own.
struct Guard<'a, T: Clone> {
    flights: &'a Flights<T>,
    key: &'a str,
}

impl<T: Clone> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(self.key);
    }
}

impl<T: Clone> Flights<T> {
    pub(crate) fn new() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys have a flight in progress.
    pub(crate) fn in_flight(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Runs `fetch` as the leader for `key`, or waits for the leader's result. The leader's
    /// fetch returns the shared value and its own extra `X`; a follower that ran its own fetch
    /// after a leader failure gets its own `X` too.
    pub(crate) async fn run<F, Fut, X, E>(
        &self,
        key: &str,
        fetch: F,
    ) -> Result<(T, Role, Option<X>), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, X), E>>,
    {
        let leader = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(key) {
                Some(waiter) => Err(waiter.clone()),
                None => {
                    let (tx, rx) = oneshot::channel();
                    map.insert(key.to_owned(), rx.shared());
                    Ok(tx)
                }
            }
        };
        match leader {
            Ok(tx) => {
                let guard = Guard { flights: self, key };
                let result = fetch().await;
                drop(guard);
                match result {
                    Ok((value, extra)) => {
                        let _ = tx.send(value.clone());
                        Ok((value, Role::Ran, Some(extra)))
                    }
                    // Dropping `tx` tells the followers to fetch on their own.
                    Err(e) => Err(e),
                }
            }
            Err(waiter) => match waiter.await {
                Ok(value) => Ok((value, Role::Followed, None)),
                Err(oneshot::Canceled) => {
                    let (value, extra) = fetch().await?;
                    Ok((value, Role::Ran, Some(extra)))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "current_thread")]
    async fn one_thousand_identical_calls_fetch_once() {
        let flights = Arc::new(Flights::<u32>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let flights = flights.clone();
            let calls = calls.clone();
            let mut go = go_rx.clone();
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = go.wait_for(|g| *g).await;
                        Ok::<_, ()>((42, ()))
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        go_tx.send(true).unwrap();
        let mut followed = 0;
        for t in tasks {
            let (v, role, _) = t.await.unwrap().unwrap();
            assert_eq!(v, 42);
            followed += usize::from(role == Role::Followed);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(followed, 999);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_leader_failure_is_not_shared() {
        let flights = Arc::new(Flights::<u32>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let flights = flights.clone();
            let calls = calls.clone();
            let mut go = go_rx.clone();
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k", || async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        let _ = go.wait_for(|g| *g).await;
                        if n == 0 {
                            Err("leader failed")
                        } else {
                            Ok((7, ()))
                        }
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        go_tx.send(true).unwrap();
        let results: Vec<_> = futures_util::future::join_all(tasks).await;
        let failures = results
            .iter()
            .filter(|r| r.as_ref().unwrap().is_err())
            .count();
        assert_eq!(failures, 1, "only the leader sees its failure");
        // Each follower ran its own fetch.
        assert_eq!(calls.load(Ordering::SeqCst), 10);
        for r in results.into_iter().flatten().flatten() {
            assert_eq!((r.0, r.1), (7, Role::Ran));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_leader_releases_its_followers() {
        let flights = Arc::new(Flights::<u32>::new());
        let f2 = flights.clone();
        let leader = tokio::spawn(async move {
            f2.run("k", std::future::pending::<Result<(u32, ()), ()>>)
                .await
        });
        tokio::task::yield_now().await;
        let f3 = flights.clone();
        let follower =
            tokio::spawn(async move { f3.run("k", || async { Ok::<_, ()>((9, ())) }).await });
        tokio::task::yield_now().await;
        leader.abort();
        let (v, role, _) = follower.await.unwrap().unwrap();
        assert_eq!((v, role), (9, Role::Ran));
        assert_eq!(flights.in_flight(), 0);
    }
}
