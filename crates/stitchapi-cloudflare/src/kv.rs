//! [`WorkersKvStore`]: a stitchapi store over a Workers KV namespace (cache, auth sessions).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stitchapi::store::{
    Capabilities, Consistency, Scope, StitchStore, StoreError, StoreErrorKind, normalize_ttl,
};
use worker::kv::KvStore;

const BACKEND: &str = "workers-kv";
/// KV refuses an `expirationTtl` under 60 s.
const KV_MIN_TTL_SECS: u64 = 60;
/// KV's value size limit (25 MiB).
const KV_MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;

/// What the store keeps in an entry's KV metadata: the exact deadline, in ms since the epoch.
#[derive(Serialize, Deserialize, Default)]
struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<f64>,
}

/// A stitchapi store over a Workers KV namespace binding: for the response cache and auth
/// sessions and tokens, shared by every isolate of the Worker.
///
/// - `get`/`set`/`delete` map to KV's; values are stored as bytes.
/// - TTLs are written as KV's `expirationTtl` in whole seconds with KV's 60 s floor,
///   `max(60, ceil(ms / 1000))` (declared as [`Capabilities::min_ttl`]); the exact deadline is
///   also kept in the entry's metadata, so a read never serves an entry past it.
/// - `increment` is a read then a write: **not atomic** (KV is eventually consistent and the
///   last write wins), so the store declares no `atomic_increment`, no `reserve`, no `lease`
///   and no conditional writes. A stitch or seam that declares a throttle over this store
///   fails to build, with an error naming the fix: [`DurableObjectStore`](crate).
///   Single-flight (logins, token refreshes, fleet cache fills) stays within each isolate.
/// - Cache invalidation does not count on KV: it writes a fresh generation, so an
///   invalidated entry never comes back; isolates that still read the old generation (KV
///   propagates a write within about 60 s) keep serving the old entries for that long.
///
/// ```ignore
/// let store = WorkersKvStore::new(env.kv("MY_KV")?);
/// let seam = Seam::builder("https://api.example.com").store(Arc::new(store)).build()?;
/// ```
#[derive(Clone)]
pub struct WorkersKvStore {
    kv: KvStore,
}

impl fmt::Debug for WorkersKvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersKvStore").finish_non_exhaustive()
    }
}

impl WorkersKvStore {
    /// A store over `kv`, e.g. `env.kv("MY_KV")?`.
    pub fn new(kv: KvStore) -> Self {
        WorkersKvStore { kv }
    }

    /// The `expirationTtl` KV is given for `ttl`: `max(60, ceil(ms / 1000))` seconds, or
    /// `None` for no expiry.
    pub fn kv_ttl_secs(ttl: Option<Duration>) -> Option<u64> {
        normalize_ttl(ttl).map(|ttl| {
            let secs = u64::try_from(ttl.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
            secs.max(KV_MIN_TTL_SECS)
        })
    }

    async fn read(
        &self,
        key: &str,
        operation: &'static str,
    ) -> Result<Option<(Vec<u8>, Meta)>, StoreError> {
        let (value, meta) = self
            .kv
            .get(key)
            .bytes_with_metadata::<Meta>()
            .await
            .map_err(|e| kv_error(operation, e))?;
        let Some(value) = value else {
            return Ok(None);
        };
        let meta = meta.unwrap_or_default();
        if meta.exp.is_some_and(|exp| exp <= now_ms()) {
            return Ok(None);
        }
        Ok(Some((value, meta)))
    }

    async fn write(
        &self,
        key: &str,
        value: &[u8],
        exp_ms: Option<f64>,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        let mut put = self
            .kv
            .put_bytes(key, value)
            .map_err(|e| kv_error(operation, e))?;
        if let Some(exp) = exp_ms {
            // An absolute expiry, at least KV's floor from now (the deadline itself is kept
            // in the metadata and checked on every read).
            let floor = now_ms() / 1000.0 + KV_MIN_TTL_SECS as f64;
            let secs = (exp / 1000.0).max(floor).ceil() as u64;
            put = put
                .expiration(secs)
                .metadata(Meta { exp: Some(exp) })
                .map_err(|e| kv_error(operation, e))?;
        }
        put.execute().await.map_err(|e| kv_error(operation, e))
    }
}

fn now_ms() -> f64 {
    worker::js_sys::Date::now()
}

fn kv_error(operation: &'static str, error: worker::kv::KvError) -> StoreError {
    StoreError::new(
        BACKEND,
        operation,
        StoreErrorKind::Backend,
        error.to_string(),
    )
}

/// The deadline of a TTL written now, in ms since the epoch: the TTL rounded up to whole
/// seconds and KV's 60 s floor, exactly as KV keeps it.
fn deadline(ttl: Option<Duration>) -> Option<f64> {
    WorkersKvStore::kv_ttl_secs(ttl).map(|secs| now_ms() + secs as f64 * 1000.0)
}

#[async_trait::async_trait(?Send)]
impl StitchStore for WorkersKvStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
            .with_consistency(Consistency::Eventual)
            .with_min_ttl(Some(Duration::from_secs(KV_MIN_TTL_SECS)))
            .with_max_value_bytes(Some(KV_MAX_VALUE_BYTES))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .read(key, "get")
            .await?
            .map(|(value, _)| Bytes::from(value)))
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        match value {
            None => self.kv.delete(key).await.map_err(|e| kv_error("set", e)),
            Some(value) => self.write(key, &value, deadline(ttl), "set").await,
        }
    }

    /// A read then a write (not atomic): a missing or expired counter starts at 1 with `ttl`;
    /// an existing one keeps its deadline (a fixed window).
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let (count, exp) = match self.read(key, "increment").await? {
            None => (1, deadline(ttl)),
            Some((value, meta)) => {
                let count = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|text| text.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        StoreError::new(
                            BACKEND,
                            "increment",
                            StoreErrorKind::InvalidData,
                            format!("the value at {key:?} is not a counter"),
                        )
                    })?;
                (count.saturating_add(1), meta.exp)
            }
        };
        self.write(key, count.to_string().as_bytes(), exp, "increment")
            .await?;
        Ok(count)
    }
}
