//! Test stores for the throttle and circuit tests: a fleet-scope wrapper over the memory
//! store that counts store calls (a store whose every verb fails is `testing::DownStore`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::MemoryStore;
use crate::store::{Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError};
use crate::time::{ManualClock, Timestamp};
use bytes::Bytes;

/// Forwards every verb to a shared memory store but reports fleet scope, with the optional
/// verbs chosen by the test.
#[derive(Debug, Clone)]
pub struct FleetStore {
    pub inner: Arc<MemoryStore>,
    pub reserve: bool,
    pub lease: bool,
    pub atomic_increment: bool,
    pub owned_locks: bool,
    /// Reports eventual consistency (a Workers-KV-like store) when set.
    pub eventual: bool,
    pub gets: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    /// When set, the next `release` never answers (and clears the flag).
    pub stall_release: Arc<AtomicBool>,
    pub releases: Arc<AtomicUsize>,
}

impl FleetStore {
    pub fn new(clock: &ManualClock) -> Self {
        FleetStore {
            inner: Arc::new(MemoryStore::with_clock(Arc::new(clock.clone()))),
            reserve: true,
            lease: true,
            atomic_increment: true,
            owned_locks: true,
            eventual: false,
            gets: Arc::default(),
            writes: Arc::default(),
            stall_release: Arc::default(),
            releases: Arc::default(),
        }
    }
    pub fn without_reserve(mut self) -> Self {
        self.reserve = false;
        self
    }
    pub fn without_lease(mut self) -> Self {
        self.lease = false;
        self
    }
    pub fn non_atomic(mut self) -> Self {
        self.atomic_increment = false;
        self
    }
    pub fn eventual(mut self) -> Self {
        self.eventual = true;
        self
    }
    pub fn without_owned_locks(mut self) -> Self {
        self.owned_locks = false;
        self
    }
}

#[async_trait::async_trait]
impl StitchStore for FleetStore {
    fn name(&self) -> &'static str {
        "fleet-test"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
            .with_consistency(if self.eventual {
                Consistency::Eventual
            } else {
                Consistency::Strong
            })
            .with_reserve(self.reserve)
            .with_lease(self.lease)
            .with_atomic_increment(self.atomic_increment)
            .with_conditional_writes(self.owned_locks)
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.set(key, value, ttl).await
    }
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.increment(key, ttl).await
    }
    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        if !self.reserve {
            return Err(StoreError::unsupported("fleet-test", "reserve"));
        }
        self.inner.reserve(key, spacing, now, latest, ttl).await
    }
    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.lease(key, token, limit, ttl, now).await
    }
    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        if self.stall_release.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(key, token).await
    }
    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        if !self.owned_locks {
            return Err(StoreError::unsupported("fleet-test", "create"));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.create(key, value, ttl).await
    }
    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew_if(key, expected, ttl).await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_if(key, expected).await
    }
}

/// Lets every spawned task run until it blocks.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Runs tasks and moves the manual clock to the next sleeper until `done()`.
pub async fn drive(clock: &ManualClock, mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        settle().await;
        if done() {
            return;
        }
        if clock.advance_to_next().is_none() {
            settle().await;
            if done() {
                return;
            }
            panic!("nothing sleeps and the test is not done");
        }
    }
    panic!("drive did not finish");
}
