//! [`DurableObjectStore`] and the Durable Object class behind it, [`StitchStoreObject`].
//!
//! # Protocol
//!
//! One Durable Object per store key (`namespace.id_from_name(key)`), so every verb on a key
//! runs in that key's single-threaded object, and one subrequest per verb:
//! `POST https://stitch-store/<verb>?key=<key>&<params>` with the value (or the expected
//! value) as the raw body. Durations and timestamps travel as whole nanoseconds, so GCRA
//! spacing keeps its sub-millisecond precision. The object answers `200` with the result as
//! the raw body (`get`: the value; `increment`: the decimal count; `reserve`:
//! `granted <ns>` or `refused <ns>`; `lease`/`create`/`renew_if`/`delete_if`: `1` or `0`),
//! `204` for a missing key or a verb with no result, `422` when the stored value is not what
//! the verb expects, and `400` for a malformed request.
//!
//! # Atomicity
//!
//! Each verb reads the object's storage, computes, and writes it back with no other I/O in
//! between. A Durable Object's input gate delivers no other request while a storage
//! operation is pending, and its output gate commits the writes of one request together, so
//! each verb is atomic and N concurrent verbs on one key serialise exactly.
//!
//! # Storage layout (per object)
//!
//! `v`: the value (bytes; a reserve cell is its time in decimal nanoseconds); `m`: JSON
//! metadata, `{"exp": <ms since the epoch>, "holders": {<token>: <expiry ns>}}` (the value's
//! deadline and the semaphore's holders, which live apart from the value). Expired values
//! are dropped when next touched.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stitchapi::store::{
    Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError, StoreErrorKind,
    normalize_ttl,
};
use stitchapi::throttle::gcra;
use stitchapi::time::Timestamp;
use wasm_bindgen::JsValue;
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, Result, State,
    durable_object,
};

const BACKEND: &str = "durable-object";
/// A Durable Object's storage accepts values up to 128 KiB.
const DO_MAX_VALUE_BYTES: usize = 128 * 1024;

pub use object::StitchStoreObject;

// `#[durable_object]` generates undocumented public glue (the JS class's methods).
#[allow(missing_docs)]
mod object {
    use super::*;

    /// The Durable Object class behind [`DurableObjectStore`]: one instance per store key,
    /// holding that key's value, TTL, GCRA cell and semaphore in transactional storage.
    ///
    /// Export it from your Worker (it is exported as soon as this crate is linked) and bind it in
    /// `wrangler.toml`:
    ///
    /// ```toml
    /// [[durable_objects.bindings]]
    /// name = "STITCH_STORE"
    /// class_name = "StitchStoreObject"
    ///
    /// [[migrations]]
    /// tag = "v1"
    /// new_sqlite_classes = ["StitchStoreObject"]
    /// ```
    #[durable_object]
    pub struct StitchStoreObject {
        pub(super) state: State,
    }

    impl fmt::Debug for StitchStoreObject {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("StitchStoreObject").finish_non_exhaustive()
        }
    }
}

impl DurableObject for StitchStoreObject {
    fn new(state: State, _env: Env) -> Self {
        StitchStoreObject { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let verb = url.path().trim_start_matches('/').to_owned();
        let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
        // Read the body first: after this, a verb does nothing but storage operations.
        let body = req.bytes().await?;
        match self.serve(&verb, &params, body).await {
            Ok(Some(answer)) => Response::from_bytes(answer),
            Ok(None) => Ok(Response::empty()?.with_status(204)),
            Err(Refusal::InvalidData(message)) => Ok(Response::error(message, 422)?),
            Err(Refusal::BadRequest(message)) => Ok(Response::error(message, 400)?),
            Err(Refusal::Storage(error)) => Ok(Response::error(error.to_string(), 500)?),
        }
    }
}

/// Why the object refused a verb.
enum Refusal {
    InvalidData(String),
    BadRequest(String),
    Storage(worker::Error),
}

impl From<worker::Error> for Refusal {
    fn from(error: worker::Error) -> Self {
        Refusal::Storage(error)
    }
}

impl From<JsValue> for Refusal {
    fn from(error: JsValue) -> Self {
        Refusal::Storage(error.into())
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    holders: BTreeMap<String, u64>,
}

fn param<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
) -> std::result::Result<Option<T>, Refusal> {
    params
        .get(name)
        .map(|text| {
            text.parse()
                .map_err(|_| Refusal::BadRequest(format!("bad `{name}`")))
        })
        .transpose()
}

fn required<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
) -> std::result::Result<T, Refusal> {
    param(params, name)?.ok_or_else(|| Refusal::BadRequest(format!("missing `{name}`")))
}

fn flag(yes: bool) -> Option<Vec<u8>> {
    Some(if yes { b"1".to_vec() } else { b"0".to_vec() })
}

impl StitchStoreObject {
    async fn read_value(&self) -> std::result::Result<Option<Vec<u8>>, Refusal> {
        let raw = JsFuture::from(self.state.storage().as_raw().get("v")?).await?;
        if raw.is_undefined() || raw.is_null() {
            return Ok(None);
        }
        Ok(Some(Uint8Array::new(&raw).to_vec()))
    }

    async fn read_meta(&self) -> std::result::Result<Meta, Refusal> {
        let text: Option<String> = self.state.storage().get("m").await?;
        Ok(text
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    async fn write_meta(&self, meta: &Meta) -> std::result::Result<(), Refusal> {
        let storage = self.state.storage();
        if meta.exp.is_none() && meta.holders.is_empty() {
            storage.delete("m").await?;
        } else {
            let text = serde_json::to_string(meta).unwrap_or_default();
            storage.put("m", text).await?;
        }
        Ok(())
    }

    /// The live value and the metadata (an expired value reads as missing).
    async fn load(&self) -> std::result::Result<(Option<Vec<u8>>, Meta), Refusal> {
        let meta = self.read_meta().await?;
        let value = self.read_value().await?;
        if meta.exp.is_some_and(|exp| exp <= now_ms()) {
            return Ok((None, meta));
        }
        Ok((value, meta))
    }

    async fn store(
        &self,
        value: Option<&[u8]>,
        ttl_ns: Option<u64>,
        mut meta: Meta,
    ) -> std::result::Result<(), Refusal> {
        let storage = self.state.storage();
        match value {
            Some(value) => {
                storage.put_raw("v", Uint8Array::from(value)).await?;
                meta.exp = ttl_ns
                    .filter(|ttl| *ttl > 0)
                    .map(|ttl| now_ms() + ttl as f64 / 1e6);
            }
            None => {
                storage.delete("v").await?;
                meta.exp = None;
            }
        }
        self.write_meta(&meta).await
    }

    async fn serve(
        &self,
        verb: &str,
        params: &HashMap<String, String>,
        body: Vec<u8>,
    ) -> std::result::Result<Option<Vec<u8>>, Refusal> {
        let ttl: Option<u64> = param(params, "ttl")?;
        match verb {
            "get" => Ok(self.load().await?.0),
            "set" => {
                let meta = self.read_meta().await?;
                self.store(Some(&body), ttl, meta).await?;
                Ok(None)
            }
            "delete" => {
                let meta = self.read_meta().await?;
                self.store(None, None, meta).await?;
                Ok(None)
            }
            "increment" => {
                let (value, meta) = self.load().await?;
                match value {
                    None => {
                        self.store(Some(b"1"), ttl, meta).await?;
                        Ok(Some(b"1".to_vec()))
                    }
                    Some(value) => {
                        let count = std::str::from_utf8(&value)
                            .ok()
                            .and_then(|text| text.trim().parse::<i64>().ok())
                            .ok_or_else(|| {
                                Refusal::InvalidData("the value is not a counter".into())
                            })?
                            .saturating_add(1);
                        // Keep the window: only the value changes.
                        self.state
                            .storage()
                            .put_raw("v", Uint8Array::from(count.to_string().as_bytes()))
                            .await?;
                        Ok(Some(count.to_string().into_bytes()))
                    }
                }
            }
            "reserve" => {
                let spacing = Duration::from_nanos(required(params, "spacing")?);
                let now = timestamp(required(params, "now")?);
                let latest = param::<u64>(params, "latest")?.map(timestamp);
                let (value, meta) = self.load().await?;
                let cell = match value {
                    None => None,
                    Some(value) => Some(
                        std::str::from_utf8(&value)
                            .ok()
                            .and_then(|text| text.parse::<u64>().ok())
                            .map(timestamp)
                            .ok_or_else(|| {
                                Refusal::InvalidData("the value is not a reserve cell".into())
                            })?,
                    ),
                };
                let (reservation, next) = gcra::step(cell, now, spacing, latest);
                if let (Reservation::Granted(_), Some(next)) = (reservation, next) {
                    self.store(Some(nanos(next).to_string().as_bytes()), ttl, meta)
                        .await?;
                }
                Ok(Some(
                    match reservation {
                        Reservation::Granted(at) => format!("granted {}", nanos(at)),
                        Reservation::Refused(at) => format!("refused {}", nanos(at)),
                    }
                    .into_bytes(),
                ))
            }
            "lease" => {
                let token: String = required(params, "token")?;
                let limit: usize = required(params, "limit")?;
                let now: u64 = required(params, "now")?;
                let ttl = ttl.unwrap_or(0);
                let mut meta = self.read_meta().await?;
                meta.holders.retain(|_, expiry| *expiry > now);
                let granted = meta.holders.contains_key(&token) || meta.holders.len() < limit;
                if granted {
                    meta.holders.insert(token, now.saturating_add(ttl));
                }
                self.write_meta(&meta).await?;
                Ok(flag(granted))
            }
            "release" => {
                let token: String = required(params, "token")?;
                let mut meta = self.read_meta().await?;
                if meta.holders.remove(&token).is_some() {
                    self.write_meta(&meta).await?;
                }
                Ok(None)
            }
            "create" => {
                let (value, meta) = self.load().await?;
                if value.is_some() {
                    return Ok(flag(false));
                }
                self.store(Some(&body), ttl, meta).await?;
                Ok(flag(true))
            }
            "renew_if" => {
                let (value, mut meta) = self.load().await?;
                if value.as_deref() != Some(&body[..]) {
                    return Ok(flag(false));
                }
                meta.exp = ttl
                    .filter(|ttl| *ttl > 0)
                    .map(|ttl| now_ms() + ttl as f64 / 1e6);
                self.write_meta(&meta).await?;
                Ok(flag(true))
            }
            "delete_if" => {
                let (value, meta) = self.load().await?;
                if value.as_deref() != Some(&body[..]) {
                    return Ok(flag(false));
                }
                self.store(None, None, meta).await?;
                Ok(flag(true))
            }
            other => Err(Refusal::BadRequest(format!("unknown verb `{other}`"))),
        }
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn timestamp(nanos: u64) -> Timestamp {
    Timestamp::from_unix(Duration::from_nanos(nanos))
}

fn nanos(at: Timestamp) -> u64 {
    u64::try_from(at.since_unix().as_nanos()).unwrap_or(u64::MAX)
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A stitchapi store over a Durable Object namespace bound to [`StitchStoreObject`]: the
/// whole contract (atomic `increment`, GCRA `reserve`, `lease`/`release`, and the owned-lock
/// verbs `create`/`renew_if`/`delete_if`), strongly consistent, fleet-wide. A throttle, the
/// circuit's single half-open trial and fleet single-flight are exact on it.
///
/// Cost: **one subrequest per verb** to the key's object (one object per key): a throttled
/// call pays one `reserve` (plus a `lease` and a `release` with a concurrency cap); a cached
/// call pays the generation reads and the entry read. Use [`WorkersKvStore`](crate) for the
/// cache and sessions when their reads dominate, and this store for anything that must count.
///
/// ```ignore
/// let store = DurableObjectStore::new(env.durable_object("STITCH_STORE")?);
/// let stitch = Stitch::get(url).throttle("10/s").store(store).build()?;
/// ```
#[derive(Clone)]
pub struct DurableObjectStore {
    namespace: ObjectNamespace,
}

impl fmt::Debug for DurableObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableObjectStore").finish_non_exhaustive()
    }
}

impl DurableObjectStore {
    /// A store over `namespace`, a binding of [`StitchStoreObject`], e.g.
    /// `env.durable_object("STITCH_STORE")?`.
    pub fn new(namespace: ObjectNamespace) -> Self {
        DurableObjectStore { namespace }
    }

    /// One verb: a subrequest to `key`'s object. Returns the status and the body.
    async fn call(
        &self,
        verb: &'static str,
        key: &str,
        params: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> std::result::Result<(u16, Vec<u8>), StoreError> {
        let failed =
            |kind: StoreErrorKind, message: String| StoreError::new(BACKEND, verb, kind, message);
        let mut url = worker::Url::parse(&format!("https://stitch-store/{verb}"))
            .map_err(|e| failed(StoreErrorKind::Backend, e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("key", key);
            for (name, value) in params {
                query.append_pair(name, value);
            }
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post);
        if let Some(body) = body {
            init.with_body(Some(Uint8Array::from(body).into()));
        }
        let request = Request::new_with_init(url.as_str(), &init)
            .map_err(|e| failed(StoreErrorKind::Backend, e.to_string()))?;
        let stub = self
            .namespace
            .id_from_name(key)
            .and_then(|id| id.get_stub())
            .map_err(|e| failed(StoreErrorKind::Unavailable, e.to_string()))?;
        let mut response = stub
            .fetch_with_request(request)
            .await
            .map_err(|e| failed(StoreErrorKind::Unavailable, e.to_string()))?;
        let status = response.status_code();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| failed(StoreErrorKind::Unavailable, e.to_string()))?;
        match status {
            200 | 204 => Ok((status, bytes)),
            422 => Err(failed(
                StoreErrorKind::InvalidData,
                format!("{key:?}: {}", String::from_utf8_lossy(&bytes)),
            )),
            _ => Err(failed(
                StoreErrorKind::Backend,
                format!(
                    "the object answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            )),
        }
    }

    async fn call_flag(
        &self,
        verb: &'static str,
        key: &str,
        params: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> std::result::Result<bool, StoreError> {
        let (_, answer) = self.call(verb, key, params, body).await?;
        Ok(answer == b"1")
    }
}

fn ttl_param(ttl: Option<Duration>) -> Vec<(&'static str, String)> {
    normalize_ttl(ttl)
        .map(|ttl| vec![("ttl", duration_nanos(ttl).to_string())])
        .unwrap_or_default()
}

fn bad_answer(verb: &'static str, answer: &[u8]) -> StoreError {
    StoreError::new(
        BACKEND,
        verb,
        StoreErrorKind::Backend,
        format!("unexpected answer {:?}", String::from_utf8_lossy(answer)),
    )
}

#[async_trait::async_trait(?Send)]
impl StitchStore for DurableObjectStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
            .with_consistency(Consistency::Strong)
            .with_atomic_increment(true)
            .with_reserve(true)
            .with_lease(true)
            .with_conditional_writes(true)
            .with_max_value_bytes(Some(DO_MAX_VALUE_BYTES))
    }

    async fn get(&self, key: &str) -> std::result::Result<Option<Bytes>, StoreError> {
        let (status, body) = self.call("get", key, &[], None).await?;
        Ok((status == 200).then(|| Bytes::from(body)))
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> std::result::Result<(), StoreError> {
        match value {
            Some(value) => self.call("set", key, &ttl_param(ttl), Some(&value)).await?,
            None => self.call("delete", key, &[], None).await?,
        };
        Ok(())
    }

    async fn increment(
        &self,
        key: &str,
        ttl: Option<Duration>,
    ) -> std::result::Result<i64, StoreError> {
        let (_, answer) = self.call("increment", key, &ttl_param(ttl), None).await?;
        std::str::from_utf8(&answer)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| bad_answer("increment", &answer))
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> std::result::Result<Reservation, StoreError> {
        let mut params = ttl_param(ttl);
        params.push(("spacing", duration_nanos(spacing).to_string()));
        params.push(("now", nanos(now).to_string()));
        if let Some(latest) = latest {
            params.push(("latest", nanos(latest).to_string()));
        }
        let (_, answer) = self.call("reserve", key, &params, None).await?;
        let text = std::str::from_utf8(&answer).unwrap_or_default();
        let parsed = text
            .split_once(' ')
            .and_then(|(word, at)| Some((word, timestamp(at.parse().ok()?))));
        match parsed {
            Some(("granted", at)) => Ok(Reservation::Granted(at)),
            Some(("refused", at)) => Ok(Reservation::Refused(at)),
            _ => Err(bad_answer("reserve", &answer)),
        }
    }

    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> std::result::Result<bool, StoreError> {
        let params = [
            ("token", token.to_owned()),
            ("limit", limit.to_string()),
            ("ttl", duration_nanos(ttl).to_string()),
            ("now", nanos(now).to_string()),
        ];
        self.call_flag("lease", key, &params, None).await
    }

    async fn release(&self, key: &str, token: &str) -> std::result::Result<(), StoreError> {
        self.call("release", key, &[("token", token.to_owned())], None)
            .await?;
        Ok(())
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> std::result::Result<bool, StoreError> {
        self.call_flag("create", key, &ttl_param(ttl), Some(&value))
            .await
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> std::result::Result<bool, StoreError> {
        self.call_flag("renew_if", key, &ttl_param(Some(ttl)), Some(expected))
            .await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> std::result::Result<bool, StoreError> {
        self.call_flag("delete_if", key, &[], Some(expected)).await
    }
}
