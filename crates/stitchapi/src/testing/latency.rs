//! A store with latency: every verb travels to the store behind and back on a clock, as on a
//! networked backend. A zero-latency memory store hides the races a fleet store shows;
//! this one shows them, in virtual time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::store::{Capabilities, Reservation, StitchStore, StoreError};
use crate::time::{Clock, Timestamp};

/// Wraps a store so that every verb takes `delay` on `clock` (a round trip): half of it on the
/// way to the store behind, where the verb runs, and the rest on the way back. Concurrent
/// callers interleave as they would over a network: a read-modify-write across two verbs loses
/// updates here, an atomic verb does not; and a caller cancelled on the way back has had its
/// verb applied without learning the answer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stitchapi::store::StoreError> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stitchapi::store::{MemoryStore, StitchStore};
/// use stitchapi::testing::{LatencyStore, ManualClock};
/// use stitchapi::time::Clock;
///
/// let clock = ManualClock::auto_advance();
/// let store = LatencyStore::new(MemoryStore::new(), Arc::new(clock.clone()), Duration::from_millis(3));
/// let start = clock.now();
/// store.set("k", Some("v".into()), None).await?;
/// assert_eq!(clock.now().saturating_duration_since(start), Duration::from_millis(3));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LatencyStore<S> {
    inner: S,
    clock: Arc<dyn Clock>,
    delay: Duration,
}

impl<S: StitchStore> LatencyStore<S> {
    /// `inner`, reached after `delay` on `clock` for every verb.
    pub fn new(inner: S, clock: Arc<dyn Clock>, delay: Duration) -> Self {
        LatencyStore {
            inner,
            clock,
            delay,
        }
    }

    /// The store behind the latency.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs `verb` on the store behind after half the delay, and answers after the rest.
    async fn round_trip<T>(&self, verb: impl Future<Output = T>) -> T {
        let there = self.delay / 2;
        self.clock.sleep(there).await;
        let answer = verb.await;
        self.clock.sleep(self.delay - there).await;
        answer
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<S: StitchStore> StitchStore for LatencyStore<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.round_trip(self.inner.get(key)).await
    }
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.round_trip(self.inner.set(key, value, ttl)).await
    }
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.round_trip(self.inner.increment(key, ttl)).await
    }
    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        self.round_trip(self.inner.reserve(key, spacing, now, latest, ttl))
            .await
    }
    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.round_trip(self.inner.lease(key, token, limit, ttl, now))
            .await
    }
    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        self.round_trip(self.inner.release(key, token)).await
    }
    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.round_trip(self.inner.create(key, value, ttl)).await
    }
    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.round_trip(self.inner.renew_if(key, expected, ttl))
            .await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.round_trip(self.inner.delete_if(key, expected)).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}
