//! Single-flight for credential work (token fetches, logins): at most one fetch per key at a
//! time in this process, and, over a fleet-scope store, across the fleet through a store lock.
//!
//! In-process: callers queue on a per-key async mutex and, once through, first check whether
//! the work is already done (a fresh value in the vault). Fleet: the caller through the local
//! mutex increments `lock:<key>` in the vault with a short TTL; the one that reads 1 does the
//! work and deletes the lock; the others poll the vault on the clock until the value appears
//! or the lock's TTL has passed, then do the work themselves.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::AuthContext;
use crate::error::Error;
use crate::store::{Scope, StitchStoreExt};

/// Default fleet lock TTL (and the longest a loser waits before fetching itself).
pub(crate) const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(10);
/// Default interval between a loser's polls of the vault.
pub(crate) const DEFAULT_POLL: Duration = Duration::from_millis(50);

/// Per-key single-flight registry, shared by the clones of one strategy.
#[derive(Default)]
pub(crate) struct Flights {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Flights {
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

impl Flights {
    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.to_owned()).or_default().clone()
    }

    fn release(&self, key: &str, slot: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else waits, forget the key.
        if Arc::strong_count(&slot) == 2 {
            locks.remove(key);
        }
    }

    /// Runs `fetch` for `key` single-flight. `done` says whether the work is already done and
    /// returns its result; it runs once the local lock is held and while polling for another
    /// process. Returns `done`'s value or `fetch`'s.
    pub(crate) async fn run<T, C, CF, F, FF>(
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
        let slot = self.slot(key);
        let result = async {
            let _guard = slot.lock().await;
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
        .await;
        self.release(key, slot);
        result
    }
}
