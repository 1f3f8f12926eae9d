//! The owned fleet lock: taken with a random token only if absent (`create`), kept alive
//! while its holder works (`renew_if`), released only if still ours (`delete_if`).
//!
//! A holder that stalls past the lock's TTL (a paused process, a long GC) loses the lock to
//! the next holder; when it wakes, its renewal and its release both find another token and
//! change nothing, so it can never free its successor's lock.

use std::time::Duration;

use bytes::Bytes;

use crate::runtime::spawn_detached;
use crate::store::{DynStore, StoreError};
use crate::time::Clock;

/// The shortest TTL a fleet lock is held for: a shorter one (zero would mean "never
/// expires" in the store) is raised to it.
pub(crate) const MIN_LOCK_TTL: Duration = Duration::from_millis(100);

/// A lock key in a store, with the TTL a holder keeps it for.
#[derive(Clone, Debug)]
pub(crate) struct FleetLock {
    store: DynStore,
    key: String,
    ttl: Duration,
}

impl FleetLock {
    /// The lock at `key` in `store` (which must have owned locks), held for `ttl` at a time
    /// (at least [`MIN_LOCK_TTL`]).
    pub(crate) fn new(store: DynStore, key: String, ttl: Duration) -> Self {
        FleetLock {
            store,
            key,
            ttl: ttl.max(MIN_LOCK_TTL),
        }
    }

    /// Takes the lock if nobody holds it: `Some` with the held lock, `None` when another
    /// holder has it.
    ///
    /// The held lock exists before the store is asked: if this future is dropped while
    /// `create` is in flight, or the store answers with an error, the store may have taken the
    /// lock, and dropping the held lock releases it (a `delete_if` of a token the store does
    /// not hold changes nothing). Only a definite "taken by another" disarms it.
    pub(crate) async fn try_acquire(&self) -> Result<Option<HeldLock>, StoreError> {
        let mut held = HeldLock {
            lock: self.clone(),
            token: Bytes::from(format!("{:032x}", fastrand::u128(..))),
            released: false,
        };
        let taken = self
            .store
            .create(&self.key, held.token.clone(), Some(self.ttl))
            .await?;
        if taken {
            Ok(Some(held))
        } else {
            held.released = true;
            Ok(None)
        }
    }
}

/// A lock this holder took. [`release`](HeldLock::release) it when done; dropped instead (a
/// cancelled holder), it is released in the background.
#[derive(Debug)]
#[must_use = "a held lock is released by `release` or when dropped"]
pub(crate) struct HeldLock {
    lock: FleetLock,
    token: Bytes,
    released: bool,
}

impl HeldLock {
    /// This holder's token, the lock's value while it holds it.
    pub(crate) fn token(&self) -> &[u8] {
        &self.token
    }

    /// The lock's TTL.
    pub(crate) fn ttl(&self) -> Duration {
        self.lock.ttl
    }

    /// The store the lock is in.
    pub(crate) fn store(&self) -> &DynStore {
        &self.lock.store
    }

    /// Runs `work` while renewing the lock every third of its TTL, so a holder that works
    /// longer than the TTL keeps it. Renewal stops when it finds the lock taken by another
    /// holder (this one stalled past the TTL); `work` still runs to its end.
    pub(crate) async fn hold<F: std::future::Future>(
        &self,
        clock: &dyn Clock,
        work: F,
    ) -> F::Output {
        let every = self.lock.ttl / 3;
        let renew = async {
            loop {
                clock.sleep(every).await;
                match self
                    .lock
                    .store
                    .renew_if(&self.lock.key, &self.token, self.lock.ttl)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            key = %self.lock.key,
                            "the lock's TTL ran out while its holder was stalled; another holder may be working"
                        );
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%error, key = %self.lock.key, "lock renewal failed; retrying");
                    }
                }
            }
        };
        let work = std::pin::pin!(work);
        let renew = std::pin::pin!(renew);
        match futures_util::future::select(work, renew).await {
            futures_util::future::Either::Left((output, _)) => output,
            futures_util::future::Either::Right(((), work)) => work.await,
        }
    }

    /// Releases the lock if this holder still owns it; a store error is traced, and the lock
    /// then expires by its TTL.
    pub(crate) async fn release(mut self) {
        self.released = true;
        release(&self.lock, &self.token).await;
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let lock = self.lock.clone();
        let token = self.token.clone();
        spawn_detached(async move { release(&lock, &token).await });
    }
}

async fn release(lock: &FleetLock, token: &[u8]) {
    match lock.store.delete_if(&lock.key, token).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(key = %lock.key, "the lock had passed to another holder; left alone");
        }
        Err(error) => {
            tracing::debug!(%error, key = %lock.key, "lock release failed; it expires by its TTL");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{MemoryStore, StitchStore};
    use crate::time::ManualClock;

    fn lock(clock: &ManualClock, ttl: Duration) -> (FleetLock, DynStore) {
        let store: DynStore = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
        (FleetLock::new(store.clone(), "lock:k".into(), ttl), store)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_frees_it() {
        let clock = ManualClock::new();
        let (lock, store) = lock(&clock, Duration::from_secs(5));
        let held = lock.try_acquire().await.unwrap().unwrap();
        assert!(lock.try_acquire().await.unwrap().is_none());
        held.release().await;
        assert_eq!(store.get("lock:k").await.unwrap(), None);
        assert!(lock.try_acquire().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_stale_holder_never_releases_its_successor() {
        let clock = ManualClock::new();
        let (lock, store) = lock(&clock, Duration::from_secs(5));
        let stale = lock.try_acquire().await.unwrap().unwrap();
        clock.advance(Duration::from_secs(5));
        let successor = lock.try_acquire().await.unwrap().unwrap();
        stale.release().await;
        assert!(lock.try_acquire().await.unwrap().is_none(), "still held");
        assert_eq!(
            store.get("lock:k").await.unwrap().as_deref(),
            Some(&successor.token[..])
        );
        successor.release().await;
        assert_eq!(store.get("lock:k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn holding_renews_past_the_ttl() {
        let clock = ManualClock::new();
        let (lock, _store) = lock(&clock, Duration::from_secs(3));
        let held = lock.try_acquire().await.unwrap().unwrap();
        let work = held.hold(&clock, async {
            // Ten TTLs of work, in one-second steps of virtual time.
            for _ in 0..30 {
                tokio::task::yield_now().await;
                clock.advance(Duration::from_secs(1));
                tokio::task::yield_now().await;
                assert!(
                    lock.try_acquire().await.unwrap().is_none(),
                    "held throughout"
                );
            }
        });
        work.await;
        held.release().await;
        assert!(lock.try_acquire().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_zero_ttl_still_expires_and_renews_at_a_pace() {
        let clock = ManualClock::new();
        let (lock, store) = lock(&clock, Duration::ZERO);
        let held = lock.try_acquire().await.unwrap().unwrap();
        // Renewed on a 100 ms TTL: held through ten renewals, never a busy loop.
        held.hold(&clock, async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
                clock.advance(MIN_LOCK_TTL / 3);
            }
        })
        .await;
        assert!(lock.try_acquire().await.unwrap().is_none(), "renewed");
        // A holder that crashed loses it after the floor, not never.
        std::mem::forget(held);
        clock.advance(MIN_LOCK_TTL);
        assert_eq!(store.get("lock:k").await.unwrap(), None);
        assert!(lock.try_acquire().await.unwrap().is_some());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_take_cancelled_after_the_store_granted_it_is_released() {
        let clock = ManualClock::new();
        let memory = MemoryStore::with_clock(Arc::new(clock.clone()));
        let store: DynStore = Arc::new(crate::testing::LatencyStore::new(
            memory.clone(),
            Arc::new(clock.clone()),
            Duration::from_millis(4),
        ));
        let lock = FleetLock::new(store, "lock:k".into(), Duration::from_secs(60));
        let mut taking = Box::pin(lock.try_acquire());
        assert!(futures_util::FutureExt::now_or_never(&mut taking).is_none());
        // The create reaches the store and takes the lock; the answer is on its way back.
        clock.advance(Duration::from_millis(2));
        assert!(futures_util::FutureExt::now_or_never(&mut taking).is_none());
        drop(taking);
        for _ in 0..10 {
            tokio::task::yield_now().await;
            clock.advance(Duration::from_millis(2));
        }
        assert_eq!(memory.get("lock:k").await.unwrap(), None, "released");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_holder_releases_in_the_background() {
        let clock = ManualClock::new();
        let (lock, _store) = lock(&clock, Duration::from_secs(60));
        drop(lock.try_acquire().await.unwrap().unwrap());
        tokio::task::yield_now().await;
        assert!(lock.try_acquire().await.unwrap().is_some());
    }
}
