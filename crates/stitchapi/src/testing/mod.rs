//! Test support (feature `testing`): the store conformance kit, a scripted [`MockTransport`],
//! the [`ManualClock`] for virtual time, a fleet-scoped memory store ([`FleetStore`]), a
//! store with network-like latency ([`LatencyStore`]), and one whose backend is down
//! ([`DownStore`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
//! use std::sync::Arc;
//! use http::Method;
//! use stitchapi::testing::{ManualClock, MockResponse, MockTransport};
//! use stitchapi::{Input, Retry, Stitch};
//!
//! let mock = MockTransport::new();
//! mock.route(Method::GET, "/users/7", [
//!     MockResponse::status(503),
//!     MockResponse::json(200, &serde_json::json!({"id": 7})),
//! ]);
//! let get_user = Stitch::get("https://api.example.com/users/{id}")
//!     .retry(Retry::attempts(3))
//!     .transport(Arc::new(mock.clone()))
//!     .clock(Arc::new(ManualClock::auto_advance())) // backoff sleeps take no real time
//!     .build()?;
//! let user = get_user.call(Input::new().param("id", 7)).await?;
//! assert_eq!(user["id"], 7);
//! assert_eq!(mock.request_count(), 2);
//! # Ok(()) }
//! ```

mod conformance;
mod down;
mod latency;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

pub use self::conformance::*;
pub use self::down::DownStore;
pub use self::latency::LatencyStore;
pub use crate::time::ManualClock;
use crate::transport::{Transport, TransportError, TransportErrorKind, TransportRequest};

/// A [`MemoryStore`](crate::MemoryStore) that declares [`Scope::Fleet`](crate::store::Scope):
/// several seams over one `FleetStore` behave like processes sharing a Redis, so fleet-wide
/// throttles, circuits, tokens and caches can be tested in one process, in virtual time.
///
/// ```
/// use std::sync::Arc;
/// use stitchapi::store::{Scope, StitchStore};
/// use stitchapi::testing::{FleetStore, ManualClock};
///
/// let store = FleetStore::new(ManualClock::new());
/// assert_eq!(store.capabilities().scope, Scope::Fleet);
/// let worker_a = stitchapi::Seam::builder("https://api.example.com").store(Arc::new(store.clone())).build().unwrap();
/// let worker_b = stitchapi::Seam::builder("https://api.example.com").store(Arc::new(store)).build().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct FleetStore {
    inner: crate::MemoryStore,
}

impl FleetStore {
    /// A fleet-scoped memory store whose TTLs run on `clock`.
    pub fn new(clock: impl crate::time::Clock) -> Self {
        FleetStore {
            inner: crate::MemoryStore::with_clock(Arc::new(clock)),
        }
    }

    /// The memory store underneath.
    pub fn memory(&self) -> &crate::MemoryStore {
        &self.inner
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl crate::store::StitchStore for FleetStore {
    fn name(&self) -> &'static str {
        "fleet-memory"
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        crate::store::Capabilities {
            scope: crate::store::Scope::Fleet,
            ..self.inner.capabilities()
        }
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, crate::store::StoreError> {
        self.inner.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), crate::store::StoreError> {
        self.inner.set(key, value, ttl).await
    }
    async fn increment(
        &self,
        key: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<i64, crate::store::StoreError> {
        self.inner.increment(key, ttl).await
    }
    async fn reserve(
        &self,
        key: &str,
        spacing: std::time::Duration,
        now: crate::time::Timestamp,
        latest: Option<crate::time::Timestamp>,
        ttl: Option<std::time::Duration>,
    ) -> Result<crate::store::Reservation, crate::store::StoreError> {
        self.inner.reserve(key, spacing, now, latest, ttl).await
    }
    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: std::time::Duration,
        now: crate::time::Timestamp,
    ) -> Result<bool, crate::store::StoreError> {
        self.inner.lease(key, token, limit, ttl, now).await
    }
    async fn release(&self, key: &str, token: &str) -> Result<(), crate::store::StoreError> {
        self.inner.release(key, token).await
    }
    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<std::time::Duration>,
    ) -> Result<bool, crate::store::StoreError> {
        self.inner.create(key, value, ttl).await
    }
    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: std::time::Duration,
    ) -> Result<bool, crate::store::StoreError> {
        self.inner.renew_if(key, expected, ttl).await
    }
    async fn delete_if(
        &self,
        key: &str,
        expected: &[u8],
    ) -> Result<bool, crate::store::StoreError> {
        self.inner.delete_if(key, expected).await
    }
}

/// One scripted answer of a [`MockTransport`] route.
#[derive(Clone, Debug)]
pub struct MockResponse {
    answer: Answer,
}

#[derive(Clone, Debug)]
enum Answer {
    Respond {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Fail(TransportErrorKind, String),
    Hang,
}

impl MockResponse {
    /// A response with `status` and an empty body. An invalid status becomes 500.
    pub fn status(status: u16) -> Self {
        MockResponse {
            answer: Answer::Respond {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                headers: HeaderMap::new(),
                body: Bytes::new(),
            },
        }
    }

    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        MockResponse::status(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// A text response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        MockResponse::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// A transport failure of `kind` instead of a response.
    pub fn fail(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        MockResponse {
            answer: Answer::Fail(kind, message.into()),
        }
    }

    /// A request that never completes (for timeout tests).
    pub fn hang() -> Self {
        MockResponse {
            answer: Answer::Hang,
        }
    }

    /// Adds a response header (ignored by failures; invalid ones are skipped).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Answer::Respond { headers, .. } = &mut self.answer
            && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            )
        {
            headers.append(name, value);
        }
        self
    }

    /// Sets the body.
    pub fn body(mut self, bytes: impl Into<Bytes>) -> Self {
        if let Answer::Respond { body, .. } = &mut self.answer {
            *body = bytes.into();
        }
        self
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The full URI.
    pub uri: http::Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

struct Route {
    method: Method,
    path: String,
    answers: VecDeque<MockResponse>,
}

#[derive(Default)]
struct MockState {
    routes: Vec<Route>,
    requests: Vec<RecordedRequest>,
}

/// A [`Transport`] that answers from scripts, for unit tests of the engine. Cheap to clone;
/// clones share routes and the request log.
///
/// Each route answers its responses in order and then repeats the last one. A request that
/// matches no route gets 404.
#[derive(Clone, Default)]
pub struct MockTransport {
    state: Arc<Mutex<MockState>>,
}

impl MockTransport {
    /// A mock with no routes.
    pub fn new() -> Self {
        MockTransport::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers `method path` (path without query) with `responses` in order.
    pub fn route(
        &self,
        method: Method,
        path: &str,
        responses: impl IntoIterator<Item = MockResponse>,
    ) -> &Self {
        self.state().routes.push(Route {
            method,
            path: path.to_owned(),
            answers: responses.into_iter().collect(),
        });
        self
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }
}

impl fmt::Debug for MockTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MockTransport")
            .field("routes", &state.routes.len())
            .field("requests", &state.requests.len())
            .finish()
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Transport for MockTransport {
    async fn send(
        &self,
        request: TransportRequest,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let (parts, body) = request.into_http()?.into_parts();
        let answer = {
            let mut state = self.state();
            state.requests.push(RecordedRequest {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                body,
            });
            let path = parts.uri.path();
            let route = state
                .routes
                .iter_mut()
                .find(|route| route.method == parts.method && route.path == path);
            match route {
                Some(route) if route.answers.len() > 1 => route.answers.pop_front(),
                Some(route) => route.answers.front().cloned(),
                None => None,
            }
        };
        match answer.map(|a| a.answer) {
            Some(Answer::Respond {
                status,
                headers,
                body,
            }) => {
                let mut response = http::Response::new(body);
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                Ok(response)
            }
            Some(Answer::Fail(kind, message)) => Err(TransportError::new(kind, message)),
            Some(Answer::Hang) => std::future::pending().await,
            None => {
                let mut response = http::Response::new(Bytes::from(format!(
                    "no mock route for {} {}",
                    parts.method,
                    parts.uri.path()
                )));
                *response.status_mut() = StatusCode::NOT_FOUND;
                Ok(response)
            }
        }
    }
}
