//! A store whose backend is down.

use std::time::Duration;

use bytes::Bytes;

use crate::store::{
    Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError, StoreErrorKind,
};
use crate::time::Timestamp;

/// A fleet store whose backend is down: every verb fails with
/// [`StoreErrorKind::Unavailable`], for tests of what a stitch does when its store fails
/// (fail-closed or fail-open throttles, a cache that serves uncached).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use stitchapi::store::{StitchStore, StoreErrorKind};
/// use stitchapi::testing::DownStore;
///
/// let error = DownStore.get("k").await.unwrap_err();
/// assert_eq!(error.kind(), StoreErrorKind::Unavailable);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DownStore;

fn down(op: &'static str) -> StoreError {
    StoreError::new(
        "down",
        op,
        StoreErrorKind::Unavailable,
        "connection refused",
    )
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl StitchStore for DownStore {
    fn name(&self) -> &'static str {
        "down"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
            .with_consistency(Consistency::Strong)
            .with_atomic_increment(true)
            .with_reserve(true)
            .with_lease(true)
            .with_conditional_writes(true)
    }
    async fn get(&self, _: &str) -> Result<Option<Bytes>, StoreError> {
        Err(down("get"))
    }
    async fn set(&self, _: &str, _: Option<Bytes>, _: Option<Duration>) -> Result<(), StoreError> {
        Err(down("set"))
    }
    async fn increment(&self, _: &str, _: Option<Duration>) -> Result<i64, StoreError> {
        Err(down("increment"))
    }
    async fn reserve(
        &self,
        _: &str,
        _: Duration,
        _: Timestamp,
        _: Option<Timestamp>,
        _: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        Err(down("reserve"))
    }
    async fn lease(
        &self,
        _: &str,
        _: &str,
        _: u32,
        _: Duration,
        _: Timestamp,
    ) -> Result<bool, StoreError> {
        Err(down("lease"))
    }
    async fn release(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(down("release"))
    }
    async fn create(&self, _: &str, _: Bytes, _: Option<Duration>) -> Result<bool, StoreError> {
        Err(down("create"))
    }
    async fn renew_if(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, StoreError> {
        Err(down("renew_if"))
    }
    async fn delete_if(&self, _: &str, _: &[u8]) -> Result<bool, StoreError> {
        Err(down("delete_if"))
    }
}
