//! The options a seam shares with its members, and the builder methods that set them.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::Auth;
use crate::cache::Cache;
use crate::circuit::Circuit;
use crate::error::{Error, Result};
use crate::policy::{Idempotency, Retry, StatusMatch, Timeout};
use crate::query::ArrayFormat;
use crate::store::{DynStore, MemoryStore};
use crate::throttle::Throttle;
use crate::time::{Clock, SystemClock};
use crate::transport::{DynTransport, default_transport};

/// The largest response body read by default: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A static header as declared: parsed when declared, or the reason it is invalid, reported
/// by `build()` (never with the value, which may be a secret).
#[derive(Clone)]
pub(crate) enum DeclaredHeader {
    Valid(HeaderName, HeaderValue),
    /// The `n`-th `.header(..)` call (1-based) of its builder had an invalid name; `name` is
    /// the text when it is known (config files).
    BadName {
        n: usize,
        name: Option<String>,
    },
    /// A valid name with an invalid value.
    BadValue(HeaderName),
}

impl DeclaredHeader {
    fn name(&self) -> Option<&HeaderName> {
        match self {
            DeclaredHeader::Valid(name, _) | DeclaredHeader::BadValue(name) => Some(name),
            DeclaredHeader::BadName { .. } => None,
        }
    }

    /// Parses a header; `n` is the position of the call, for the error.
    pub(crate) fn parse<K, V>(n: usize, name: K, value: V) -> DeclaredHeader
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        let Ok(name) = HeaderName::try_from(name) else {
            return DeclaredHeader::BadName { n, name: None };
        };
        match HeaderValue::try_from(value) {
            Ok(value) => DeclaredHeader::Valid(name, value),
            Err(_) => DeclaredHeader::BadValue(name),
        }
    }

    /// Parses a header written as text (a config file): a bad name is named in the error.
    pub(crate) fn parse_text(n: usize, name: &str, value: &str) -> DeclaredHeader {
        match DeclaredHeader::parse(n, name, value) {
            DeclaredHeader::BadName { n, .. } => DeclaredHeader::BadName {
                n,
                name: Some(name.to_owned()),
            },
            parsed => parsed,
        }
    }
}

/// Options that a seam passes down to its members; a member's own value wins.
#[derive(Clone, Default)]
pub(crate) struct Settings {
    pub headers: Vec<DeclaredHeader>,
    /// How many `.header(..)` calls the builder saw, to name a header whose name is invalid.
    pub header_calls: usize,
    pub retry: Option<Retry>,
    pub timeout: Option<Timeout>,
    pub accept: Option<StatusMatch>,
    pub idempotency: Option<Idempotency>,
    pub retry_non_idempotent: Option<bool>,
    pub max_response_bytes: Option<usize>,
    pub redirects: Option<crate::policy::Redirects>,
    pub array_format: Option<ArrayFormat>,
    pub transport: Option<DynTransport>,
    pub clock: Option<Arc<dyn Clock>>,
    pub store: Option<DynStore>,
    /// Not inherited: a seam's throttle is one bucket its members share, chained before their
    /// own.
    pub throttle: Option<Throttle>,
    pub circuit: Option<Circuit>,
    pub cache: Option<Cache>,
    pub auth: Option<Auth>,
    pub vault_key: Option<crate::auth::VaultKey>,
    /// Inherited as a list: the seam's hooks run first, then the member's own.
    pub hooks: crate::policy::hooks::Hooks,
}

impl Settings {
    /// `self` over `parent`: own values win; headers are the parent's, then own (same names
    /// replaced).
    pub(crate) fn inherit(self, parent: &Settings) -> Settings {
        let mut headers = parent.headers.clone();
        for header in self.headers {
            headers.retain(|existing| header.name().is_none() || existing.name() != header.name());
            headers.push(header);
        }
        Settings {
            headers,
            header_calls: self.header_calls,
            retry: self.retry.or_else(|| parent.retry.clone()),
            timeout: self.timeout.or_else(|| parent.timeout.clone()),
            accept: self.accept.or_else(|| parent.accept.clone()),
            idempotency: self.idempotency.or_else(|| parent.idempotency.clone()),
            retry_non_idempotent: self.retry_non_idempotent.or(parent.retry_non_idempotent),
            max_response_bytes: self.max_response_bytes.or(parent.max_response_bytes),
            redirects: self.redirects.or(parent.redirects),
            array_format: self.array_format.or(parent.array_format),
            transport: self.transport.or_else(|| parent.transport.clone()),
            clock: self.clock.or_else(|| parent.clock.clone()),
            store: self.store.or_else(|| parent.store.clone()),
            throttle: self.throttle,
            circuit: self.circuit.or_else(|| parent.circuit.clone()),
            cache: self.cache.or_else(|| parent.cache.clone()),
            auth: self.auth.or_else(|| parent.auth.clone()),
            vault_key: self.vault_key.or_else(|| parent.vault_key.clone()),
            hooks: self.hooks.after(&parent.hooks),
        }
    }

    /// Adds a declared header, replacing one of the same name.
    pub(crate) fn push_header(&mut self, header: DeclaredHeader) {
        if let Some(name) = header.name() {
            self.headers
                .retain(|existing| existing.name() != Some(name));
        }
        self.headers.push(header);
    }

    pub(crate) fn header_map(&self) -> Result<HeaderMap> {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for header in &self.headers {
            match header {
                DeclaredHeader::Valid(name, value) => {
                    map.insert(name.clone(), value.clone());
                }
                DeclaredHeader::BadName {
                    name: Some(name), ..
                } => {
                    return Err(Error::config(
                        &format!("headers.{name}"),
                        format!("{name:?} is not a valid header name"),
                        "use a token such as \"x-app\"",
                    ));
                }
                DeclaredHeader::BadName { n, name: None } => {
                    return Err(Error::config(
                        "headers",
                        format!("the name given to header call #{n} is not a valid header name"),
                        "use a token such as \"x-app\" or a constant such as http::header::ACCEPT",
                    ));
                }
                DeclaredHeader::BadValue(name) => {
                    return Err(Error::config(
                        &format!("headers.{name}"),
                        "the value is not a valid header value (it has a newline or control character)",
                        "remove control characters from the value",
                    ));
                }
            }
        }
        Ok(map)
    }

    /// The state every member shares: one clock, one store, one transport.
    pub(crate) fn runtime(&self) -> Result<Runtime> {
        let clock: Arc<dyn Clock> = match &self.clock {
            Some(clock) => clock.clone(),
            None => Arc::new(SystemClock::new()),
        };
        let system_clock = (&*clock as &dyn std::any::Any).is::<SystemClock>();
        let store: DynStore = match &self.store {
            Some(store) => store.clone(),
            None => Arc::new(MemoryStore::with_clock(clock.clone())),
        };
        let transport = match &self.transport {
            Some(transport) => transport.clone(),
            None => default_transport()?,
        };
        Ok(Runtime {
            transport,
            clock,
            system_clock,
            store,
        })
    }
}

/// The shared runtime of a stitch: its transport, clock and store.
#[derive(Clone)]
pub(crate) struct Runtime {
    pub transport: DynTransport,
    pub clock: Arc<dyn Clock>,
    /// `clock` is the default [`SystemClock`], whose timers are tokio's on native targets:
    /// the engine then times attempts with tokio's own (unboxed) timeout.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub system_clock: bool,
    pub store: DynStore,
}

/// The builder methods shared by `SeamBuilder` and `StitchBuilder`, over a `settings` field.
macro_rules! settings_setters {
    () => {
        /// Adds a static header sent with every request (a later one with the same name
        /// replaces it). Like `reqwest::RequestBuilder::header`, it takes anything that
        /// converts into a [`HeaderName`](http::header::HeaderName) and a
        /// [`HeaderValue`](http::header::HeaderValue): `http::header::ACCEPT`, `"x-app"`, a
        /// `String`. An invalid name or value is reported by `build()`, naming the header but
        /// never showing its value.
        pub fn header<K, V>(mut self, name: K, value: V) -> Self
        where
            http::header::HeaderName: TryFrom<K>,
            http::header::HeaderValue: TryFrom<V>,
        {
            self.settings.header_calls += 1;
            let header =
                $crate::settings::DeclaredHeader::parse(self.settings.header_calls, name, value);
            self.settings.push_header(header);
            self
        }

        /// A header written as text in a config file: an invalid name is named in the error.
        pub(crate) fn header_text(mut self, name: &str, value: &str) -> Self {
            self.settings.header_calls += 1;
            let header = $crate::settings::DeclaredHeader::parse_text(
                self.settings.header_calls,
                name,
                value,
            );
            self.settings.push_header(header);
            self
        }

        /// The retry policy; `3` is shorthand for `Retry::attempts(3)`.
        pub fn retry(mut self, retry: impl Into<$crate::Retry>) -> Self {
            self.settings.retry = Some(retry.into());
            self
        }

        /// The timeouts; a [`Duration`](std::time::Duration) or `"10s"` is shorthand for
        /// `Timeout::total(..)`.
        pub fn timeout(mut self, timeout: impl Into<$crate::Timeout>) -> Self {
            self.settings.timeout = Some(timeout.into());
            self
        }

        /// Statuses that count as success although they are not 2xx
        /// (`[StatusCode::NOT_FOUND]`, `[404]`, or a predicate). A status also listed in `retry.on` is retried first, then accepted on
        /// the last attempt.
        pub fn accept(mut self, statuses: impl Into<$crate::policy::StatusMatch>) -> Self {
            self.settings.accept = Some(statuses.into());
            self
        }

        /// Adds an idempotency key to writes: `Idempotency::new()` is an `Idempotency-Key`
        /// header holding a random UUID v4, the same on every retry of a call; the header
        /// name and the key function can be changed.
        pub fn idempotency(mut self, idempotency: $crate::Idempotency) -> Self {
            self.settings.idempotency = Some(idempotency);
            self
        }

        /// Also retry transport errors and per-attempt timeouts of non-idempotent methods
        /// (POST, PATCH) that carry no idempotency key. Off by default: such a retry can
        /// duplicate a write the server already performed.
        pub fn retry_non_idempotent(mut self, retry: bool) -> Self {
            self.settings.retry_non_idempotent = Some(retry);
            self
        }

        /// The largest response body accepted (default 16 MiB); a larger one fails with a
        /// `Transport` error without being read past the limit.
        pub fn max_response_bytes(mut self, limit: usize) -> Self {
            self.settings.max_response_bytes = Some(limit);
            self
        }

        /// How many redirects an attempt follows (default
        /// [`Redirects::limit`]($crate::policy::Redirects::limit)`(20)`);
        /// [`Redirects::none()`]($crate::policy::Redirects::none) returns a `3xx` as the
        /// answer. A cross-origin hop never carries a credential either way.
        pub fn redirects(mut self, redirects: $crate::policy::Redirects) -> Self {
            self.settings.redirects = Some(redirects);
            self
        }

        /// How list values are written into the query (default `tag=a&tag=b`).
        pub fn query_arrays(mut self, format: $crate::ArrayFormat) -> Self {
            self.settings.array_format = Some(format);
            self
        }

        /// The transport (default: reqwest).
        pub fn transport(
            mut self,
            transport: std::sync::Arc<dyn $crate::transport::Transport>,
        ) -> Self {
            self.settings.transport = Some(transport);
            self
        }

        /// The clock (default: the system clock). Tests pass a `ManualClock`.
        pub fn clock(mut self, clock: std::sync::Arc<dyn $crate::time::Clock>) -> Self {
            self.settings.clock = Some(clock);
            self
        }

        /// Throttles calls: a rate and/or a concurrency cap, in this process or, with a shared
        /// store, fleet-wide (`Throttle::new(Rate::per_second(n)).with_concurrency(4)`; a
        /// [`Rate`]($crate::throttle::Rate) or `"10/s"` alone is shorthand for
        /// `Throttle::new(..)`). On a seam it is one budget all members share; a member's own
        /// throttle is applied after it.
        pub fn throttle(mut self, throttle: impl Into<$crate::throttle::Throttle>) -> Self {
            self.settings.throttle = Some(throttle.into());
            self
        }

        /// A circuit breaker: after `failures` consecutive failures of requests sent
        /// (transport errors, timeouts, 5xx, 429) calls fail fast with `CircuitOpen` for
        /// `cooldown` (a [`Duration`](std::time::Duration), or a string such as `"30s"`; a
        /// bare integer is not accepted), then one trial call at a time (fleet-wide with a
        /// shared store) decides whether it closes.
        pub fn circuit(
            mut self,
            failures: u32,
            cooldown: impl Into<$crate::duration::DurationSpec>,
        ) -> Self {
            self.settings.circuit = Some($crate::circuit::Circuit::new(failures, cooldown));
            self
        }

        /// Caches successful responses in the store (`"5m"`, or `Cache::ttl("5m").vary(..)`):
        /// GET and HEAD by default, keyed by the resolved request and the principal, with
        /// identical concurrent calls coalesced into one.
        pub fn cache(mut self, cache: impl Into<$crate::Cache>) -> Self {
            self.settings.cache = Some(cache.into());
            self
        }

        /// Authenticates every request (`Auth::bearer(..)`, `Auth::oauth2(..)`,
        /// `Auth::cookie_session(..)`, ...). The credential lives in the store's vault and never
        /// reaches events, errors or traces.
        pub fn auth(mut self, auth: $crate::Auth) -> Self {
            self.settings.auth = Some(auth);
            self
        }

        /// Encrypts the auth vault (tokens, refresh tokens, cookie jars) at rest with `key`:
        /// see [`VaultKey`]($crate::auth::VaultKey). Every process sharing the store must use
        /// the same key; an entry that does not open is treated as absent.
        pub fn vault_key(mut self, key: $crate::auth::VaultKey) -> Self {
            self.settings.vault_key = Some(key);
            self
        }

        /// Adds a hook that runs before every attempt's send, on that attempt's request and
        /// before the auth strategy adds its credential: see
        /// [`RequestHook`]($crate::policy::RequestHook). Several run in declaration order, a
        /// seam's before its member's; a hook that fails fails the call (kind
        /// [`Hook`]($crate::ErrorKind::Hook)), without a retry.
        pub fn on_request(mut self, hook: impl $crate::policy::RequestHook) -> Self {
            self.settings.hooks.request.push(std::sync::Arc::new(hook));
            self
        }

        /// Adds a hook that observes every attempt's response before the retry decision: see
        /// [`ResponseHook`]($crate::policy::ResponseHook). Several run in declaration order, a
        /// seam's before its member's; a hook that fails fails the call (kind
        /// [`Hook`]($crate::ErrorKind::Hook)), without a retry.
        pub fn on_response(mut self, hook: impl $crate::policy::ResponseHook) -> Self {
            self.settings.hooks.response.push(std::sync::Arc::new(hook));
            self
        }

        /// The store that keeps the state (default: a new `MemoryStore`).
        pub fn store(mut self, store: std::sync::Arc<dyn $crate::store::StitchStore>) -> Self {
            self.settings.store = Some(store);
            self
        }
    };
}

pub(crate) use settings_setters;
