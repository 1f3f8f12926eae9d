//! The response cache: read-through into the stitch's store, with in-process (and optionally
//! fleet-wide) coalescing of identical concurrent calls.
//!
//! A cache is declared with [`Cache`]: `"5m"` is shorthand for `Cache::ttl("5m")`.
//!
//! ```
//! use stitchapi::{Cache, Coalesce, Tenancy};
//!
//! let short: Cache = "5m".into();
//! let full = Cache::ttl("5m")
//!     .vary(["accept-language"])
//!     .ignore_headers(["x-request-id"])
//!     .entries(500)
//!     .tenancy(Tenancy::App)
//!     .coalesce(Coalesce::Fleet);
//! # let _ = (short, full);
//! ```
//!
//! # What is cached, under which key
//!
//! - Only methods in `methods` (default `GET` and `HEAD`) are cached; others bypass.
//! - The key is derived from the *resolved* request: the method, the normalised URL (scheme,
//!   lowercase host, non-default port, path and query; user-info and fragment dropped), the
//!   body (JSON bodies in canonical form), the request's headers as below and, under
//!   [`Tenancy::Principal`], the bound principal.
//! - **Every header that is not [safe](crate::headers) enters the key**, whoever set it (the
//!   seam, the stitch or the call) and whatever its name (`authorization`, `x-api-key`,
//!   `x-auth-token`, `private-token`, `x-request-id`, ...), as one digest (hashed, never in
//!   clear). Two calls whose headers differ never share an entry, unless the declaration says
//!   a header does not change the response: [`Cache::ignore_headers`] (for example a request
//!   id or `traceparent`, which would otherwise make every call a miss). The idempotency key
//!   the engine generates never enters. [Safe headers](crate::headers::SAFE_HEADERS)
//!   (content negotiation, body description, `user-agent`, cache directives) stay out of the
//!   key unless named in [`vary`](Cache::vary) or in the response's `Vary`.
//! - What an **auth strategy** adds (a bearer token, an OAuth2 token, a session cookie) is
//!   applied after the key is derived and never enters it (tokens rotate); the tenancy keeps
//!   those callers apart. **Principal tenancy fails closed**: a bound principal enters the
//!   key; with no principal bound, a call through an auth strategy is **not cached**
//!   (bypass); any other call is cached under its key. Under [`Tenancy::App`] the principal
//!   never enters the key and calls through an auth strategy share entries: choose it only for
//!   data that is the same for everyone.
//! - The entry is the raw response (status, a few headers, the body) stored as JSON, with the
//!   TTL; a result is only written once it decoded and validated.
//! - **The response's `Vary` is learned** (RFC 9111 §4.1): a response that varies on request
//!   headers is stored per variant, picked by the request's values of those headers, so a
//!   response negotiated for one caller (`Accept-Language: fr`) is never served to another
//!   (`en`). `Vary: *` is never stored. A `Vary` header is honoured even when the
//!   declaration ignores it (the server said the response depends on it); the values of
//!   headers that are not safe enter a variant key hashed, never in clear.
//!
//! # Coalescing
//!
//! Identical concurrent misses share one fetch: every stitch of a seam (including members
//! built per request, and principal handles) shares one in-process registry, so they coalesce
//! however the stitch was built. The callers that waited share the fetch's outcome, its error
//! included. With [`Coalesce::Fleet`] and a store with owned locks, the fetch is also elected
//! across processes by an owned lock the fetcher keeps alive while it works; on a store
//! without owned locks fleet coalescing runs in each process and the build says so in a
//! `warn` trace.
//!
//! The store keys are listed in the [store docs](crate::store): generations
//! `cache:gen[:<id>]`, entries `cache:k2:...`, variants `cache:k2:...:v<32 hex>`, fill locks
//! `cache:lock:...`.

mod entry;
mod key;
#[cfg(test)]
mod runtime_tests;
mod store;

use std::fmt;
use std::time::Duration;

use http::{HeaderName, Method};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::DurationSpec;
use crate::error::{Error, Result};
use crate::tenancy::Tenancy;

pub(crate) use entry::CachedResponse;
pub(crate) use key::{Bypass, CacheKey, KeyRequest};
pub(crate) use store::{CacheIds, Fills, Outcome, ResponseCache, invalidate_seam};

/// The default TTL of the fleet fill lock (`lock`), renewed while the fetch runs.
pub use crate::flight::DEFAULT_LOCK_TTL;
/// The default interval between two store polls of a fleet waiter (`poll`).
pub use crate::flight::DEFAULT_POLL;

/// The default in-process LRU cap (`entries`).
pub const DEFAULT_ENTRIES: usize = 1000;

/// How identical concurrent misses share one fetch.
///
/// ```
/// use stitchapi::Coalesce;
///
/// let mode: Coalesce = serde_json::from_str("\"fleet\"").unwrap();
/// assert_eq!(mode, Coalesce::Fleet);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Coalesce {
    /// Every miss fetches on its own.
    Off,
    /// Identical concurrent misses in this process share one fetch (the default).
    #[default]
    Process,
    /// As `Process`, and across processes sharing the store: an owned store lock elects one
    /// fetcher, which keeps it alive while it fetches; the others poll the store for the
    /// entry it writes, and take over if the fetcher dies. Needs a store with owned locks;
    /// without them, this is `Process` (reported at build time).
    Fleet,
}

/// A response-cache declaration: a TTL and optional vary and ignored headers, LRU cap,
/// tenancy, methods and coalescing.
///
/// The TTL is required and must be positive (checked when the stitch is built). In config
/// files: `cache = "5m"` or `cache = { ttl = "5m", vary = ["accept-language"], ignore_headers
/// = ["x-request-id"], entries = 500, tenancy = "app", methods = ["GET", "QUERY"], coalesce =
/// "fleet" }`.
///
/// ```
/// use stitchapi::{Cache, Tenancy};
///
/// let cache = Cache::ttl("30s").vary(["accept-language"]).tenancy(Tenancy::App);
/// let from_toml: Cache = toml::from_str::<toml::Table>("cache = \"5m\"").unwrap()["cache"]
///     .clone()
///     .try_into()
///     .unwrap();
/// # let _ = (cache, from_toml);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Cache {
    ttl: DurationSpec,
    vary: Vec<String>,
    ignore_headers: Vec<String>,
    entries: Option<usize>,
    tenancy: Tenancy,
    methods: Option<Vec<String>>,
    coalesce: Coalesce,
    lock: Option<DurationSpec>,
    wait: Option<DurationSpec>,
    poll: Option<DurationSpec>,
}

impl Cache {
    /// A cache whose entries live for `ttl` (`"5m"`, a `Duration`, or milliseconds).
    pub fn ttl(ttl: impl Into<DurationSpec>) -> Self {
        Cache {
            ttl: ttl.into(),
            vary: Vec::new(),
            ignore_headers: Vec::new(),
            entries: None,
            tenancy: Tenancy::Principal,
            methods: None,
            coalesce: Coalesce::Process,
            lock: None,
            wait: None,
            poll: None,
        }
    }

    /// [Safe](crate::headers) request headers whose values enter the key (case-insensitive),
    /// such as `accept-language` for an endpoint that negotiates without sending `Vary`.
    /// Every header that is not safe enters the key already; naming one here changes nothing.
    pub fn vary<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.vary = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Request headers that do not change the response, left out of the key
    /// (case-insensitive; replaces an earlier list). By default every header that is not
    /// [safe](crate::headers) enters the key, so calls whose headers differ never share an
    /// entry; list here the ones that differ per call without changing the answer, such as a
    /// request id or trace context. Only list a header that carries no per-user credential:
    /// calls that differ only in an ignored header share one entry. Names are checked when the
    /// stitch is built; a name also in [`vary`](Cache::vary) is refused.
    ///
    /// ```
    /// use stitchapi::{Cache, Stitch};
    ///
    /// let cache = Cache::ttl("5m").ignore_headers(["x-request-id", "traceparent"]);
    /// let stitch = Stitch::get("https://api.example.com/prices").cache(cache).build();
    /// assert!(stitch.is_ok());
    ///
    /// let bad = Stitch::get("https://api.example.com/prices")
    ///     .cache(Cache::ttl("5m").ignore_headers(["x request id"]))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(bad.to_string().starts_with("cache.ignore_headers:"));
    /// ```
    pub fn ignore_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ignore_headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// The in-process LRU cap (default 1000): past it, the oldest key this process wrote or
    /// hit is deleted from the store, best effort.
    pub fn entries(mut self, entries: usize) -> Self {
        self.entries = Some(entries);
        self
    }

    /// Whose entries these are (default [`Tenancy::Principal`], which fails closed).
    pub fn tenancy(mut self, tenancy: Tenancy) -> Self {
        self.tenancy = tenancy;
        self
    }

    /// The methods that are cached (default `GET` and `HEAD`); e.g. add `QUERY` or `POST` for a
    /// read-only GraphQL endpoint.
    pub fn methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.methods = Some(methods.into_iter().map(Into::into).collect());
        self
    }

    /// How identical concurrent misses share a fetch (default [`Coalesce::Process`]).
    pub fn coalesce(mut self, coalesce: Coalesce) -> Self {
        self.coalesce = coalesce;
        self
    }

    /// Fleet coalescing: how long the fetch lock outlives a fetcher that died (default 5s, at
    /// least 100ms); a live fetcher renews it every third of it.
    pub fn lock(mut self, ttl: impl Into<DurationSpec>) -> Self {
        self.lock = Some(ttl.into());
        self
    }

    /// Fleet coalescing: the longest a waiter polls the store before it fetches itself
    /// (default: as long as another process is fetching, within the call's timeout).
    pub fn wait(mut self, wait: impl Into<DurationSpec>) -> Self {
        self.wait = Some(wait.into());
        self
    }

    /// Fleet coalescing: the interval between two polls, jittered by ±50% (default 50ms).
    pub fn poll(mut self, poll: impl Into<DurationSpec>) -> Self {
        self.poll = Some(poll.into());
        self
    }

    /// Checks the declaration; `field` is its path in errors (e.g. `"cache"`).
    pub(crate) fn resolve(&self, field: &str) -> Result<CachePolicy> {
        let ttl_field = format!("{field}.ttl");
        let ttl = self.ttl.resolve(&ttl_field)?;
        if ttl.is_zero() {
            return Err(Error::config(
                &ttl_field,
                "a zero TTL would keep entries forever",
                "use a positive duration such as \"5m\"",
            ));
        }
        let vary = header_names(&self.vary, &format!("{field}.vary"), "accept-language")?;
        let ignored = header_names(
            &self.ignore_headers,
            &format!("{field}.ignore_headers"),
            "x-request-id",
        )?;
        if let Some(credential) = ignored
            .iter()
            .find(|name| crate::headers::CREDENTIAL_HEADERS.contains(&name.as_str()))
        {
            return Err(Error::config(
                &format!("{field}.ignore_headers"),
                format_args!(
                    "{credential:?} carries credentials: ignoring it would serve one user's entry to another"
                ),
                "remove it; to share entries across users on purpose, set `tenancy` to `app` and send no per-user header",
            ));
        }
        if let Some(both) = ignored.iter().find(|name| vary.contains(name)) {
            return Err(Error::config(
                &format!("{field}.ignore_headers"),
                format_args!("{both:?} is also in `vary`"),
                "keep it in one list: `vary` to key on it, `ignore_headers` to leave it out",
            ));
        }
        let entries = self.entries.unwrap_or(DEFAULT_ENTRIES);
        if entries == 0 {
            return Err(Error::config(
                &format!("{field}.entries"),
                "a cap of 0 entries would evict every entry it writes",
                "use a positive number such as 1000, or remove the cache",
            ));
        }
        let methods = match &self.methods {
            None => vec![Method::GET, Method::HEAD],
            Some(list) => {
                let mut methods = Vec::with_capacity(list.len());
                for m in list {
                    let upper = m.trim().to_ascii_uppercase();
                    let method = Method::from_bytes(upper.as_bytes()).map_err(|_| {
                        Error::config(
                            &format!("{field}.methods"),
                            format_args!("{m:?} is not an HTTP method"),
                            "list methods such as \"GET\", \"HEAD\", \"QUERY\"",
                        )
                    })?;
                    if !methods.contains(&method) {
                        methods.push(method);
                    }
                }
                if methods.is_empty() {
                    return Err(Error::config(
                        &format!("{field}.methods"),
                        "an empty list caches nothing",
                        "list at least one method, or remove the cache",
                    ));
                }
                methods
            }
        };
        let positive = |spec: &Option<DurationSpec>, name: &str, default: Duration| {
            let Some(spec) = spec else { return Ok(default) };
            let f = format!("{field}.{name}");
            let d = spec.resolve(&f)?;
            if d.is_zero() {
                return Err(Error::config(
                    &f,
                    "must be positive",
                    "use a duration such as \"5s\"",
                ));
            }
            Ok(d)
        };
        let lock_ttl = positive(&self.lock, "lock", DEFAULT_LOCK_TTL)?;
        let wait = match &self.wait {
            Some(_) => Some(positive(&self.wait, "wait", Duration::ZERO)?),
            None => None,
        };
        let poll = positive(&self.poll, "poll", DEFAULT_POLL)?;
        Ok(CachePolicy {
            ttl,
            vary,
            ignored,
            entries,
            tenancy: self.tenancy,
            methods,
            coalesce: self.coalesce,
            lock_ttl,
            wait,
            poll,
        })
    }
}

/// Request header names, checked, lowercased, sorted and deduplicated; `field` names the list
/// in errors and `example` is a name to suggest.
fn header_names(names: &[String], field: &str, example: &str) -> Result<Vec<HeaderName>> {
    let mut headers = Vec::with_capacity(names.len());
    for name in names {
        let lower = name.trim().to_ascii_lowercase();
        let header = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
            Error::config(
                field,
                format_args!("{name:?} is not a valid header name"),
                format_args!("name request headers such as \"{example}\""),
            )
        })?;
        headers.push(header);
    }
    headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    headers.dedup();
    Ok(headers)
}

impl From<&str> for Cache {
    fn from(ttl: &str) -> Self {
        Cache::ttl(ttl)
    }
}

impl From<String> for Cache {
    fn from(ttl: String) -> Self {
        Cache::ttl(ttl)
    }
}

impl From<Duration> for Cache {
    fn from(ttl: Duration) -> Self {
        Cache::ttl(ttl)
    }
}

/// A checked cache declaration.
#[derive(Clone, Debug)]
pub(crate) struct CachePolicy {
    pub(crate) ttl: Duration,
    pub(crate) vary: Vec<HeaderName>,
    /// Headers the declaration says do not change the response: never keyed.
    pub(crate) ignored: Vec<HeaderName>,
    pub(crate) entries: usize,
    pub(crate) tenancy: Tenancy,
    pub(crate) methods: Vec<Method>,
    pub(crate) coalesce: Coalesce,
    pub(crate) lock_ttl: Duration,
    pub(crate) wait: Option<Duration>,
    pub(crate) poll: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFields {
    ttl: DurationSpec,
    #[serde(default)]
    vary: Option<OneOrMany>,
    #[serde(default)]
    ignore_headers: Option<OneOrMany>,
    #[serde(default)]
    entries: Option<usize>,
    #[serde(default)]
    tenancy: Option<Tenancy>,
    #[serde(default)]
    methods: Option<OneOrMany>,
    #[serde(default)]
    coalesce: Option<Coalesce>,
    #[serde(default)]
    lock: Option<DurationSpec>,
    #[serde(default)]
    wait: Option<DurationSpec>,
    #[serde(default)]
    poll: Option<DurationSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

impl<'de> Deserialize<'de> for Cache {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CacheVisitor;
        impl<'de> Visitor<'de> for CacheVisitor {
            type Value = Cache;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TTL such as \"5m\" or a table { ttl, vary, ignore_headers, entries, tenancy, methods, coalesce }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cache, E> {
                Ok(Cache::ttl(v))
            }
            // A number in a file is whole milliseconds (never on the builder path).
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cache, E> {
                Ok(Cache::ttl(DurationSpec::from_millis(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cache, E> {
                u64::try_from(v)
                    .map(|v| Cache::ttl(DurationSpec::from_millis(v)))
                    .map_err(|_| E::custom("the TTL must be positive"))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cache, A::Error> {
                let f = CacheFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let mut cache = Cache::ttl(f.ttl);
                cache.vary = f.vary.map(OneOrMany::into_vec).unwrap_or_default();
                cache.ignore_headers = f
                    .ignore_headers
                    .map(OneOrMany::into_vec)
                    .unwrap_or_default();
                cache.entries = f.entries;
                cache.tenancy = f.tenancy.unwrap_or_default();
                cache.methods = f.methods.map(OneOrMany::into_vec);
                cache.coalesce = f.coalesce.unwrap_or_default();
                cache.lock = f.lock;
                cache.wait = f.wait;
                cache.poll = f.poll;
                Ok(cache)
            }
        }
        deserializer.deserialize_any(CacheVisitor)
    }
}

/// Access to the runtime cache for the crate's benchmarks. Not a stable API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod bench_support {
    use std::future::Future;
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{HeaderMap, Method, StatusCode};
    use url::Url;

    use super::{Cache, CachedResponse, KeyRequest, Outcome, ResponseCache, store::CacheIds};
    use crate::error::{Error, Result};
    use crate::flight::Flights;
    use crate::store::DynStore;
    use crate::time::Clock;

    /// One stitch's response cache over `store`.
    #[derive(Debug)]
    pub struct BenchCache(ResponseCache);

    impl BenchCache {
        /// A cache for the stitch `"bench"`.
        pub fn new(decl: Cache, store: DynStore, clock: Arc<dyn Clock>) -> Result<Self> {
            let ids = CacheIds {
                stitch_id: "bench".into(),
                seam_id: None,
            };
            Ok(BenchCache(ResponseCache::new(
                decl.resolve("cache")?,
                store,
                clock,
                ids,
                Arc::new(Flights::default()),
            )))
        }

        /// Key + lookup: the body length on a hit.
        pub async fn lookup(
            &self,
            method: &Method,
            url: &Url,
            headers: &HeaderMap,
        ) -> Option<usize> {
            let key = self.0.key(&request(method, url, headers)).ok()?;
            let hit = self.0.get(&key, headers).await.ok()?.hit?;
            Some(hit.body.len())
        }

        /// Key + lookup + (miss) coalesced fetch and write; `true` when it shared another
        /// call's fetch.
        pub async fn read_through<F, Fut>(
            &self,
            method: &Method,
            url: &Url,
            headers: &HeaderMap,
            fetch: F,
        ) -> Result<bool>
        where
            F: FnOnce() -> Fut,
            Fut: Future<Output = Result<Bytes>>,
        {
            let key = self
                .0
                .key(&request(method, url, headers))
                .map_err(|b| Error::input(format!("bypass: {}", b.reason())))?;
            let served = self
                .0
                .read_through(&key, headers, || async {
                    let body = fetch().await?;
                    Ok(CachedResponse::new(StatusCode::OK, &HeaderMap::new(), body))
                })
                .await?;
            Ok(served.outcome == Outcome::Coalesced)
        }
    }

    fn request<'a>(method: &'a Method, url: &'a Url, headers: &'a HeaderMap) -> KeyRequest<'a> {
        KeyRequest {
            method,
            url,
            headers,
            body: b"",
            principal: None,
            generated: None,
            credentialed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_required_positive_and_valid() {
        assert!(Cache::ttl("5m").resolve("cache").is_ok());
        let zero = Cache::ttl("0s").resolve("cache").unwrap_err();
        assert!(
            zero.to_string().starts_with("cache.ttl: a zero TTL"),
            "{zero}"
        );
        let bad = Cache::ttl("soon").resolve("cache").unwrap_err();
        assert!(
            bad.to_string().starts_with("cache.ttl: invalid duration"),
            "{bad}"
        );
    }

    #[test]
    fn defaults() {
        let p = Cache::ttl("5m").resolve("cache").unwrap();
        assert_eq!(p.ttl, Duration::from_secs(300));
        assert_eq!(p.entries, 1000);
        assert_eq!(p.tenancy, Tenancy::Principal);
        assert_eq!(p.methods, vec![Method::GET, Method::HEAD]);
        assert_eq!(p.coalesce, Coalesce::Process);
        assert_eq!(p.lock_ttl, DEFAULT_LOCK_TTL);
        assert_eq!(p.wait, None);
    }

    #[test]
    fn vary_and_ignored_headers_are_checked_names() {
        let e = Cache::ttl("1m")
            .ignore_headers(["x-ok", "x\nbad"])
            .resolve("cache")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cache.ignore_headers: \"x\\nbad\" is not a valid header name"),
            "{e}"
        );
        let p = Cache::ttl("1m")
            .ignore_headers(["X-Request-Id", "traceparent", "x-request-id"])
            .resolve("cache")
            .unwrap();
        let names: Vec<_> = p.ignored.iter().map(|h| h.as_str()).collect();
        assert_eq!(names, ["traceparent", "x-request-id"]);
        // A credential header cannot be declared irrelevant: users would share entries.
        for credential in ["Authorization", "cookie", "x-api-key", "private-token"] {
            let e = Cache::ttl("1m")
                .ignore_headers([credential])
                .resolve("cache")
                .unwrap_err();
            assert!(
                e.to_string().starts_with("cache.ignore_headers: ")
                    && e.to_string().contains("carries credentials"),
                "{e}"
            );
        }
        let e = Cache::ttl("1m")
            .vary(["bad header"])
            .resolve("cache")
            .unwrap_err();
        assert!(e.to_string().contains("not a valid header name"), "{e}");
        let p = Cache::ttl("1m")
            .vary(["X-B", "accept-language", "x-b"])
            .resolve("cache")
            .unwrap();
        let names: Vec<_> = p.vary.iter().map(|h| h.as_str()).collect();
        assert_eq!(names, ["accept-language", "x-b"]);
    }

    #[test]
    fn methods_and_entries_are_checked() {
        let p = Cache::ttl("1m")
            .methods(["get", "query"])
            .resolve("c")
            .unwrap();
        assert_eq!(p.methods[0], Method::GET);
        assert_eq!(p.methods[1].as_str(), "QUERY");
        assert!(Cache::ttl("1m").methods(["a b"]).resolve("c").is_err());
        assert!(
            Cache::ttl("1m")
                .methods(Vec::<String>::new())
                .resolve("c")
                .is_err()
        );
        assert!(Cache::ttl("1m").entries(0).resolve("c").is_err());
    }

    #[test]
    fn serde_shorthand_and_table() {
        let c: Cache = serde_json::from_str("\"5m\"").unwrap();
        assert_eq!(c, Cache::ttl("5m"));
        let c: Cache = serde_json::from_str("30000").unwrap();
        assert_eq!(c.resolve("c").unwrap().ttl, Duration::from_secs(30));
        let c: Cache = serde_json::from_str(
            r#"{"ttl":"5m","vary":"accept-language","ignore_headers":["X-Request-Id"],"entries":500,"tenancy":"app","methods":["GET","QUERY"],"coalesce":"fleet","lock":"3s"}"#,
        )
        .unwrap();
        let p = c.resolve("c").unwrap();
        assert_eq!(p.entries, 500);
        assert_eq!(p.ignored, [HeaderName::from_static("x-request-id")]);
        assert_eq!(p.tenancy, Tenancy::App);
        assert_eq!(p.coalesce, Coalesce::Fleet);
        assert_eq!(p.lock_ttl, Duration::from_secs(3));
        assert_eq!(p.wait, None);
        let c: Cache = serde_json::from_str(r#"{"ttl":"5m","wait":"2s"}"#).unwrap();
        assert_eq!(c.resolve("c").unwrap().wait, Some(Duration::from_secs(2)));
        let e = Cache::ttl("5m").wait("0s").resolve("cache").unwrap_err();
        assert!(
            e.to_string().starts_with("cache.wait: must be positive"),
            "{e}"
        );
        assert_eq!(p.vary.len(), 1);
        let e = serde_json::from_str::<Cache>(r#"{"ttl":"5m","ttls":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `ttls`"), "{e}");
        assert!(serde_json::from_str::<Cache>(r#"{"vary":"a"}"#).is_err());
        let t: toml::Table = toml::from_str("[cache]\nttl = \"1m\"\ncoalesce = \"off\"").unwrap();
        let c: Cache = t["cache"].clone().try_into().unwrap();
        assert_eq!(c.resolve("c").unwrap().coalesce, Coalesce::Off);
    }
}
