//! A view of a store that prefixes every key: the vault view and per-tenant namespaces.

use std::time::Duration;

use bytes::Bytes;

use super::{Capabilities, Reservation, StitchStore, StoreError};
use crate::time::Timestamp;

/// A view of `inner` that prefixes every key with `prefix`.
///
/// Auth sessions and tokens live in the `vault:` view of a seam's store, kept apart from cache
/// and throttle keys. Every verb is forwarded with the prefixed key; `name`, `capabilities`
/// and `close` are the inner store's (closing a view closes the store behind it). Optional
/// verbs the inner store lacks fail as they would on the inner store.
///
/// Usually built with [`StitchStoreExt::prefixed`](super::StitchStoreExt::prefixed).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stitchapi::store::StoreError> {
/// use stitchapi::store::{MemoryStore, PrefixedStore, StitchStore};
///
/// let store = MemoryStore::new();
/// let vault = PrefixedStore::new(store.clone(), "vault:");
/// vault.set("oauth2:github", Some("token".into()), None).await?;
/// assert_eq!(store.get("vault:oauth2:github").await?.as_deref(), Some(&b"token"[..]));
/// assert_eq!(vault.prefix(), "vault:");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PrefixedStore<S> {
    inner: S,
    prefix: String,
}

impl<S> PrefixedStore<S> {
    /// A view of `inner` under `prefix` (concatenated as is: include any separator).
    pub fn new(inner: S, prefix: impl Into<String>) -> Self {
        PrefixedStore {
            inner,
            prefix: prefix.into(),
        }
    }

    /// The prefix added to every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store behind the view.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Gives back the store behind the view.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<S: StitchStore> StitchStore for PrefixedStore<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(&self.key(key)).await
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.inner.set(&self.key(key), value, ttl).await
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.inner.increment(&self.key(key), ttl).await
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        self.inner
            .reserve(&self.key(key), spacing, now, latest, ttl)
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
        self.inner
            .lease(&self.key(key), token, limit, ttl, now)
            .await
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        self.inner.release(&self.key(key), token).await
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.inner.create(&self.key(key), value, ttl).await
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew_if(&self.key(key), expected, ttl).await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.inner.delete_if(&self.key(key), expected).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{DynStore, MemoryStore, StitchStoreExt, StoreErrorKind};
    use crate::time::{Clock, ManualClock};

    #[tokio::test]
    async fn writes_through_the_view_land_under_the_prefix() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let vault = store.prefixed("vault:");
        assert_eq!(vault.prefix(), "vault:");
        assert_eq!(vault.name(), "memory");
        assert_eq!(vault.capabilities(), store.capabilities());

        vault.set("token", Some("abc".into()), None).await.unwrap();
        assert_eq!(
            store.get("vault:token").await.unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(store.get("token").await.unwrap(), None);
        assert_eq!(
            vault.get("token").await.unwrap().as_deref(),
            Some(&b"abc"[..])
        );

        assert_eq!(vault.increment("n", None).await.unwrap(), 1);
        assert_eq!(store.increment("vault:n", None).await.unwrap(), 2);

        let now = clock.now();
        let second = Duration::from_secs(1);
        assert_eq!(
            vault.reserve("r", second, now, None, None).await.unwrap(),
            Reservation::Granted(now)
        );
        assert_eq!(
            store
                .reserve("vault:r", second, now, None, None)
                .await
                .unwrap(),
            Reservation::Granted(now + second)
        );

        assert!(vault.create("l", "a".into(), None).await.unwrap());
        assert!(!store.create("vault:l", "b".into(), None).await.unwrap());
        assert!(vault.renew_if("l", b"a", second).await.unwrap());
        assert!(!vault.delete_if("l", b"b").await.unwrap());
        assert!(store.delete_if("vault:l", b"a").await.unwrap());

        assert!(vault.lease("s", "a", 1, second, now).await.unwrap());
        assert!(!store.lease("vault:s", "b", 1, second, now).await.unwrap());
        vault.release("s", "a").await.unwrap();
        assert!(store.lease("vault:s", "b", 1, second, now).await.unwrap());

        vault.delete("token").await.unwrap();
        assert_eq!(store.get("vault:token").await.unwrap(), None);

        vault.close().await.unwrap();
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn views_nest_and_wrap_shared_stores() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let view = PrefixedStore::new(store.clone(), "a:").prefixed("b:");
        assert_eq!(view.prefix(), "b:");
        assert_eq!(view.inner().prefix(), "a:");
        view.set("k", Some("v".into()), None).await.unwrap();
        assert_eq!(
            store.get("a:b:k").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }

    #[derive(Debug)]
    struct Plain;

    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    impl StitchStore for Plain {
        fn name(&self) -> &'static str {
            "plain"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(crate::store::Scope::Fleet)
        }
        async fn get(&self, _key: &str) -> Result<Option<Bytes>, StoreError> {
            Ok(None)
        }
        async fn set(
            &self,
            _key: &str,
            _value: Option<Bytes>,
            _ttl: Option<Duration>,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn increment(&self, _key: &str, _ttl: Option<Duration>) -> Result<i64, StoreError> {
            Ok(1)
        }
    }

    #[tokio::test]
    async fn missing_verbs_stay_missing() {
        let view = PrefixedStore::new(Plain, "vault:");
        assert!(!view.capabilities().reserve);
        let error = view
            .reserve(
                "r",
                Duration::from_secs(1),
                Timestamp::UNIX_EPOCH,
                None,
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unsupported);
        assert_eq!(error.backend(), "plain");
        let error = view.release("s", "t").await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unsupported);
        let error = view.delete_if("l", b"t").await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unsupported);
        assert!(!view.capabilities().owned_locks());
    }
}
