//! Single-flight for credential work (token fetches, logins): at most one fetch per key at a
//! time in this process, and, over a fleet-scope store, across the fleet through a store lock.
//!
//! In-process: the first caller for a key leads (checks whether the work is already done, a
//! fresh value in the vault, then does it); concurrent callers wait for and share its result. Fleet: the caller through the local
//! mutex increments `lock:<key>` in the vault with a short TTL; the one that reads 1 does the
//! work and deletes the lock; the others poll the vault on the clock until the value appears
//! or the lock's TTL has passed, then do the work themselves.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use super::AuthContext;
use crate::error::Error;
use crate::store::{Scope, StitchStoreExt};

/// Default fleet lock TTL (and the longest a loser waits before fetching itself).
pub(crate) const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(10);
/// A forced refresh is satisfied by a credential obtained this recently (so that callers
/// that all saw a 401 for the same credential cause one refresh, not one each).
pub(crate) const REFRESH_GRACE: Duration = Duration::from_secs(1);
/// Default interval between a loser's polls of the vault.
pub(crate) const DEFAULT_POLL: Duration = Duration::from_millis(50);

/// Per-key single-flight registry, shared by the clones of one strategy. Concurrent callers
/// for one key share the leader's result, its error included (a failure does not stick: the
/// entry is gone once the flight settles). A leader whose future is dropped hands over: a
/// waiting caller becomes the next leader.
pub(crate) struct Flights<T> {
    inflight: Mutex<HashMap<String, Receiver<T>>>,
}

type Receiver<T> = tokio::sync::watch::Receiver<Option<Result<T, Error>>>;

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flights")
    }
}

/// Timing of the fleet lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlightTiming {
    pub lock_ttl: Duration,
    pub poll: Duration,
}

impl Default for FlightTiming {
    fn default() -> Self {
        FlightTiming {
            lock_ttl: DEFAULT_LOCK_TTL,
            poll: DEFAULT_POLL,
        }
    }
}

enum Role<T> {
    Leader(tokio::sync::watch::Sender<Option<Result<T, Error>>>),
    Follower(Receiver<T>),
}

/// Removes the in-flight entry when the leader settles or is dropped.
struct Settle<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
}

impl<T> Drop for Settle<'_, T> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.remove(self.key);
    }
}

impl<T: Clone> Flights<T> {
    /// Runs `fetch` for `key` single-flight. `done` says whether the work is already done and
    /// returns its result; the leader runs it first and, while another process holds the
    /// fleet lock, on every poll. Returns `done`'s value or `fetch`'s.
    pub(crate) async fn run<C, CF, F, FF>(
        &self,
        cx: &AuthContext<'_>,
        scheme: &'static str,
        key: &str,
        timing: FlightTiming,
        done: C,
        fetch: F,
    ) -> Result<T, Error>
    where
        C: Fn() -> CF,
        CF: Future<Output = Result<Option<T>, Error>>,
        F: FnOnce() -> FF,
        FF: Future<Output = Result<T, Error>>,
    {
        loop {
            let role = {
                let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                match map.get(key) {
                    Some(rx) => Role::Follower(rx.clone()),
                    None => {
                        let (tx, rx) = tokio::sync::watch::channel(None);
                        map.insert(key.to_owned(), rx);
                        Role::Leader(tx)
                    }
                }
            };
            match role {
                Role::Follower(mut rx) => {
                    loop {
                        if let Some(result) = rx.borrow_and_update().clone() {
                            return result;
                        }
                        if rx.changed().await.is_err() {
                            break;
                        }
                    }
                    if let Some(result) = rx.borrow().clone() {
                        return result;
                    }
                    // The leader was dropped before it finished: lead (or follow) anew.
                    continue;
                }
                Role::Leader(tx) => {
                    let settle = Settle { flights: self, key };
                    let result = lead(cx, scheme, key, timing, &done, fetch).await;
                    tx.send_replace(Some(result.clone()));
                    drop(settle);
                    return result;
                }
            }
        }
    }
}

async fn lead<T, C, CF, F, FF>(
    cx: &AuthContext<'_>,
    scheme: &'static str,
    key: &str,
    timing: FlightTiming,
    done: &C,
    fetch: F,
) -> Result<T, Error>
where
    C: Fn() -> CF,
    CF: Future<Output = Result<Option<T>, Error>>,
    F: FnOnce() -> FF,
    FF: Future<Output = Result<T, Error>>,
{
    if let Some(value) = done().await? {
        return Ok(value);
    }
    let caps = cx.store.capabilities();
    if caps.scope != Scope::Fleet || !caps.atomic_increment {
        return fetch().await;
    }
    let lock_key = format!("lock:{key}");
    match cx.vault.increment(&lock_key, Some(timing.lock_ttl)).await {
        Ok(1) => {
            // Re-check: the previous holder may have finished just before we locked.
            let result = match done().await {
                Ok(Some(value)) => Ok(value),
                Ok(None) => fetch().await,
                Err(e) => Err(e),
            };
            let _ = cx.vault.delete(&lock_key).await;
            result
        }
        Ok(_) => {
            cx.emit(
                scheme,
                "wait",
                "another process holds the refresh lock; waiting for its result",
            );
            let start = cx.clock.now();
            while cx.clock.now().saturating_duration_since(start) < timing.lock_ttl {
                cx.clock.sleep(timing.poll).await;
                if let Some(value) = done().await? {
                    return Ok(value);
                }
            }
            cx.emit(
                scheme,
                "wait",
                "the refresh lock holder did not finish in time; refreshing here",
            );
            fetch().await
        }
        Err(error) => {
            cx.emit(
                scheme,
                "wait",
                format!("store lock unavailable ({error}); refreshing without it"),
            );
            fetch().await
        }
    }
}
