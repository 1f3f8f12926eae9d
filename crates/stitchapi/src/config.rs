//! Declarations as data: every option has a serde form, so a seam and its stitches can live in
//! a TOML or JSON file (the `stitch` CLI runs such files).
//!
//! Durations are strings with a unit (`"10s"`, `"250ms"`, `"1.5m"`) or, in a file only, a
//! number of whole milliseconds (`each = 1500`); builders take a `Duration` or a string.
//! Unknown fields, bad durations, bad statuses and bad methods are errors naming the field,
//! never silent defaults.
//!
//! Limits have defaults (a total timeout of 30 s, `Retry-After` honoured up to 60 s); a
//! [`Limit`] of `"none"` lifts one explicitly: `timeout = "none"`,
//! `timeout = { total = "none", each = "2m" }`, `retry = { max_retry_after = "none" }`.
//!
//! Parsing a file never panics, whatever it holds: text that is not TOML, values of the wrong
//! type and out-of-range numbers are errors (the property tests in `tests/it/fuzz_parsers.rs`
//! hold it to that).
//!
//! ```
//! use stitchapi::config::SeamConfig;
//!
//! let config: SeamConfig = toml::from_str(r#"
//!     base_url = "https://api.example.com/v1"
//!     headers = { x-app = "demo" }
//!     retry = 3
//!     timeout = { total = "10s", each = "4s" }
//!
//!     [stitches.get_user]
//!     path = "/users/{id}"
//!     retry = { attempts = 5, on = [429, 503], backoff = "decorrelated-jitter", base = "50ms" }
//!
//!     [stitches.create_user]
//!     method = "POST"
//!     path = "/users"
//!     idempotency = true
//! "#).unwrap();
//! let catalog = config.build().unwrap();
//! assert_eq!(catalog.stitches.len(), 2);
//! # let _ = catalog.get("get_user").unwrap();
//! ```

mod auth;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::Method;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::Cache;
use crate::circuit::Circuit;
use crate::duration::DurationSpec;
use crate::error::{BuildError, Error, Result};
use crate::headers::DeclaredHeaders;
use crate::output::Output;
use crate::policy::{Backoff, Idempotency, Retry, StatusMatch, Timeout};
use crate::query::ArrayFormat;
use crate::seam::{Seam, SeamBuilder};
use crate::stitch::{Stitch, StitchBuilder};
use crate::store::StitchStore;
use crate::throttle::Throttle;

pub use auth::{ApiKeyIn, AuthConfig, SecretConfig};
pub use store::{StoreConfig, StoreSpec};

/// A retry policy: `retry = 3` or a table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Total attempts, the first included.
    pub attempts: Option<u32>,
    /// Statuses to retry (default 429, 502, 503, 504).
    pub on: Option<Vec<u16>>,
    /// The curve: `"fixed"`, `"expo"`, `"expo-jitter"` (default), `"decorrelated-jitter"`.
    pub backoff: Option<Backoff>,
    /// The first wait (default `"100ms"`).
    pub base: Option<DurationSpec>,
    /// The longest computed wait (default `"10s"`).
    pub max: Option<DurationSpec>,
    /// Honour `Retry-After` (default true).
    #[serde(alias = "respect")]
    pub respect_retry_after: Option<bool>,
    /// Cap on an honoured `Retry-After` (default `"60s"`; `"none"` for no cap).
    pub max_retry_after: Option<Limit>,
}

/// A time limit: a duration (`"30s"`, or whole milliseconds) or `"none"` for no limit at all.
///
/// ```
/// use stitchapi::config::{Limit, TimeoutConfig};
///
/// let config: TimeoutConfig = toml::from_str(r#"total = "none""#).unwrap();
/// assert_eq!(config.total, Some(Limit::Unlimited));
/// let config: TimeoutConfig = toml::from_str(r#"total = "45s""#).unwrap();
/// assert_eq!(config.total, Some(Limit::After("45s".into())));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most this long.
    After(DurationSpec),
    /// No limit (`"none"`).
    Unlimited,
}

impl From<&str> for Limit {
    /// `"none"` (any case) is [`Limit::Unlimited`]; anything else a duration, checked at build.
    fn from(text: &str) -> Self {
        if text.trim().eq_ignore_ascii_case("none") {
            Limit::Unlimited
        } else {
            Limit::After(DurationSpec::from(text))
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Limit::After(duration) => duration.serialize(serializer),
            Limit::Unlimited => serializer.serialize_str("none"),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Millis(millis) => Limit::After(DurationSpec::from_millis(millis)),
            Raw::Text(text) => Limit::from(text.as_str()),
        })
    }
}

/// Timeouts: `timeout = "10s"` (total), `timeout = "none"`, or `{ total, each }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Budget for the whole call (default `"30s"`; `"none"` for no limit).
    pub total: Option<Limit>,
    /// Limit per attempt.
    #[serde(alias = "per_attempt")]
    pub each: Option<DurationSpec>,
}

/// Idempotency keys: `idempotency = true` or `{ header = "x-key" }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// The header name (default `Idempotency-Key`).
    pub header: Option<String>,
}

/// How the response body is returned by a declared stitch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// JSON (default), as `serde_json::Value`.
    #[default]
    Json,
    /// Text, as a JSON string.
    Text,
}

/// Options a seam shares with its members, as data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedConfig {
    /// Static headers (their `Debug` prints only [safe](crate::headers) values).
    #[serde(default, skip_serializing_if = "DeclaredHeaders::is_empty")]
    pub headers: DeclaredHeaders,
    /// Retry policy.
    #[serde(
        default,
        deserialize_with = "retry_shorthand",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry: Option<RetryConfig>,
    /// Timeouts.
    #[serde(
        default,
        deserialize_with = "timeout_shorthand",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<TimeoutConfig>,
    /// Non-2xx statuses that count as success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<u16>>,
    /// Idempotency keys for writes.
    #[serde(
        default,
        deserialize_with = "idempotency_shorthand",
        skip_serializing_if = "Option::is_none"
    )]
    pub idempotency: Option<IdempotencyConfig>,
    /// Retry transport errors of non-idempotent methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_non_idempotent: Option<bool>,
    /// Largest response body in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<usize>,
    /// Redirects an attempt follows: `false` (none: a 3xx is the answer), `true` (20), or a
    /// limit such as `5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirects: Option<crate::policy::Redirects>,
    /// How lists are written into the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_arrays: Option<ArrayFormat>,
    /// Throttle: `"10/s"` or `{ rate, concurrency, lease, pool, delegate, on, on_store_error }`.
    #[serde(default, skip_serializing)]
    pub throttle: Option<Throttle>,
    /// Circuit breaker: `[5, "30s"]` or `{ failures, cooldown }`.
    #[serde(default, skip_serializing)]
    pub circuit: Option<Circuit>,
    /// Response cache: `"5m"` or `{ ttl, vary, ignore_headers, entries, tenancy, methods, coalesce }`.
    #[serde(default, skip_serializing)]
    pub cache: Option<Cache>,
    /// Authentication: `{ type = "bearer", token = { env = "API_TOKEN" } }` (see
    /// [`AuthConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
}

/// One stitch, as data. Inside a seam use `path` (relative to the base URL) or `url`
/// (absolute); on its own, `url`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StitchConfig {
    /// Name (default: the key in the seam's table, or `"<METHOD> <url>"`).
    pub name: Option<String>,
    /// HTTP method (default GET).
    pub method: Option<String>,
    /// Absolute URL template.
    pub url: Option<String>,
    /// URL template relative to the seam's base URL.
    pub path: Option<String>,
    /// Dot-path into the response JSON.
    pub pick: Option<String>,
    /// `json` (default) or `text`.
    pub output: Option<OutputFormat>,
    /// Path variables that may be empty (`allow_empty = ["id"]`); any other empty path value
    /// is refused, since it would change the endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_empty: Vec<String>,
    /// A JSON Schema the output must match. Kept as data here: the `stitch` CLI checks it
    /// (a Rust caller adds a [`validate`](StitchBuilder::validate) rule instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// The shared options, own values winning over the seam's.
    #[serde(flatten)]
    pub shared: SharedConfig,
}

/// A seam and its stitches, as data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeamConfig {
    /// The base URL of every member.
    pub base_url: String,
    /// The members, by name.
    #[serde(default)]
    pub stitches: BTreeMap<String, StitchConfig>,
    /// Where shared state lives: `"memory"` (default), `"redis://…"`, or a table (see
    /// [`StoreConfig`]). Parsed here, connected by the front end (the `stitch` CLI), since
    /// the core does not depend on the store crates.
    #[serde(
        default,
        deserialize_with = "store::store_shorthand",
        skip_serializing_if = "Option::is_none"
    )]
    pub store: Option<StoreConfig>,
    /// Options shared with the members.
    #[serde(flatten)]
    pub shared: SharedConfig,
}

/// A built seam and its declared stitches.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// The seam.
    pub seam: Seam,
    /// The stitches by name.
    pub stitches: BTreeMap<String, Stitch<Value>>,
}

impl Catalog {
    /// A stitch by name.
    pub fn get(&self, name: &str) -> Option<&Stitch<Value>> {
        self.stitches.get(name)
    }
}

impl SharedConfig {
    fn retry(&self) -> Option<Retry> {
        let config = self.retry.as_ref()?;
        let mut retry = Retry::attempts(config.attempts.unwrap_or(1));
        if let Some(on) = &config.on {
            retry = retry.on(on.iter().copied());
        }
        if let Some(backoff) = config.backoff {
            retry = retry.backoff(backoff);
        }
        if let Some(base) = &config.base {
            retry = retry.base(base.clone());
        }
        if let Some(max) = &config.max {
            retry = retry.max(max.clone());
        }
        if let Some(respect) = config.respect_retry_after {
            retry = retry.respect_retry_after(respect);
        }
        match &config.max_retry_after {
            Some(Limit::After(cap)) => retry = retry.max_retry_after(cap.clone()),
            Some(Limit::Unlimited) => retry = retry.no_max_retry_after(),
            None => {}
        }
        Some(retry)
    }

    fn timeout(&self) -> Option<Timeout> {
        let config = self.timeout.as_ref()?;
        let mut timeout = match &config.total {
            Some(Limit::After(total)) => Timeout::total(total.clone()),
            Some(Limit::Unlimited) => Timeout::none(),
            None => Timeout::default(),
        };
        if let Some(each) = &config.each {
            timeout = timeout.each(each.clone());
        }
        Some(timeout)
    }
}

/// Applies the shared options to a builder.
macro_rules! apply_shared {
    ($builder:expr, $shared:expr) => {{
        let shared: &SharedConfig = $shared;
        let mut builder = $builder;
        for (name, value) in &shared.headers {
            builder = builder.header_text(name, value);
        }
        if let Some(retry) = shared.retry() {
            builder = builder.retry(retry);
        }
        if let Some(timeout) = shared.timeout() {
            builder = builder.timeout(timeout);
        }
        if let Some(accept) = &shared.accept {
            builder = builder.accept(StatusMatch::codes(accept.iter().copied()));
        }
        if let Some(idempotency) = &shared.idempotency {
            let mut policy = Idempotency::new();
            if let Some(header) = &idempotency.header {
                policy = policy.header(header.clone());
            }
            builder = builder.idempotency(policy);
        }
        if let Some(retry) = shared.retry_non_idempotent {
            builder = builder.retry_non_idempotent(retry);
        }
        if let Some(limit) = shared.max_response_bytes {
            builder = builder.max_response_bytes(limit);
        }
        if let Some(redirects) = shared.redirects {
            builder = builder.redirects(redirects);
        }
        if let Some(format) = shared.query_arrays {
            builder = builder.query_arrays(format);
        }
        if let Some(throttle) = &shared.throttle {
            builder = builder.throttle(throttle.clone());
        }
        if let Some(circuit) = &shared.circuit {
            builder.settings.circuit = Some(circuit.clone());
        }
        if let Some(cache) = &shared.cache {
            builder = builder.cache(cache.clone());
        }
        builder
    }};
}

fn parse_method(method: Option<&str>) -> Result<Method> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY",
    ];
    let Some(method) = method else {
        return Ok(Method::GET);
    };
    let upper = method.to_ascii_uppercase();
    if !KNOWN.contains(&upper.as_str()) {
        return Err(Error::config(
            "method",
            format!("{method:?} is not an HTTP method"),
            format!("use one of {}", KNOWN.join(", ")),
        ));
    }
    Method::from_bytes(upper.as_bytes())
        .map_err(|e| Error::config("method", e, "use GET, POST, ..."))
}

impl StitchConfig {
    fn builder(&self, seam: Option<&Seam>, key: Option<&str>) -> Result<StitchBuilder<Value>> {
        let method = parse_method(self.method.as_deref())?;
        let target = match (&self.url, &self.path, seam) {
            (Some(_), Some(_), _) => {
                return Err(Error::config(
                    "url",
                    "both url and path are set",
                    "keep one: url (absolute) or path (relative to the seam)",
                ));
            }
            (Some(url), None, _) => url.clone(),
            (None, Some(path), Some(_)) => path.clone(),
            (None, Some(_), None) => {
                return Err(Error::config(
                    "path",
                    "a path needs a seam's base URL",
                    "use url with an absolute URL, or declare the stitch in a seam",
                ));
            }
            (None, None, _) => {
                return Err(Error::config(
                    "url",
                    "no endpoint is set",
                    "set url (absolute) or path (relative to the seam)",
                ));
            }
        };
        let mut builder = match seam {
            Some(seam) => seam.stitch(method, target),
            None => Stitch::builder(method, target),
        };
        if let Some(name) = self.name.as_deref().or(key) {
            builder = builder.name(name);
        }
        if let Some(pick) = &self.pick {
            builder = builder.pick(pick.clone());
        }
        if self.output == Some(OutputFormat::Text) {
            builder = builder.with_output(Output::text_value());
        }
        for name in &self.allow_empty {
            builder = builder.allow_empty(name.clone());
        }
        if let Some(auth) = &self.shared.auth {
            builder = builder.auth(auth.build("auth", seam)?);
        }
        Ok(apply_shared!(builder, &self.shared))
    }

    /// Builds a standalone stitch (it needs an absolute `url`).
    pub fn build(&self) -> Result<Stitch<Value>, BuildError> {
        self.builder(None, None)
            .map_err(Error::into_build_error)?
            .build()
    }
}

impl SeamConfig {
    /// Builds the seam and every declared stitch; the first invalid option fails the whole
    /// catalog with an error naming it (`stitches.get_user.timeout.total: ...`).
    pub fn build(&self) -> Result<Catalog, BuildError> {
        self.build_with_store(None)
    }

    /// Builds the catalog over `store` (the [`store`](SeamConfig::store) the front end
    /// connected); `None` keeps the default in-process store.
    pub fn build_with_store(
        &self,
        store: Option<Arc<dyn StitchStore>>,
    ) -> Result<Catalog, BuildError> {
        let mut builder: SeamBuilder =
            apply_shared!(Seam::builder(self.base_url.clone()), &self.shared);
        let mut login_seam = Seam::builder(self.base_url.clone());
        if let Some(store) = store {
            login_seam = login_seam.store(store.clone());
            builder = builder.store(store);
        }
        if let Some(auth) = &self.shared.auth {
            // A cookie session's login is a stitch on the same base URL and store, without
            // the seam's auth (it is what opens the session).
            let login_seam = login_seam.build()?;
            let auth = auth
                .build("auth", Some(&login_seam))
                .map_err(Error::into_build_error)?;
            builder = builder.auth(auth);
        }
        let seam = builder.build()?;
        let mut stitches = BTreeMap::new();
        for (name, config) in &self.stitches {
            let stitch = config
                .builder(Some(&seam), Some(name))
                .map_err(Error::into_build_error)
                .and_then(StitchBuilder::build)
                .map_err(|e| e.within(&format!("stitches.{name}.")))?;
            stitches.insert(name.clone(), stitch);
        }
        Ok(Catalog { seam, stitches })
    }
}

/// Deserialises `field = <shorthand>` or `field = { ... }`.
fn shorthand_or_table<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    from_shorthand: fn(ShortValue) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ShorthandVisitor<T> {
        expecting: &'static str,
        from_shorthand: fn(ShortValue) -> std::result::Result<T, String>,
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ShorthandVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
            (self.from_shorthand)(ShortValue::Number(v))
                .map(Some)
                .map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
            let v = u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))?;
            self.visit_u64(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
            (self.from_shorthand)(ShortValue::Text(v.to_owned()))
                .map(Some)
                .map_err(E::custom)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
            (self.from_shorthand)(ShortValue::Bool)
                .map_err(E::custom)
                .map(|t| if v { Some(t) } else { None })
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    deserializer.deserialize_any(ShorthandVisitor {
        expecting,
        from_shorthand,
    })
}

/// A scalar shorthand.
enum ShortValue {
    Number(u64),
    Text(String),
    Bool,
}

fn retry_shorthand<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<RetryConfig>, D::Error> {
    shorthand_or_table(d, "a number of attempts or a retry table", |v| match v {
        ShortValue::Number(n) => Ok(RetryConfig {
            attempts: Some(u32::try_from(n).map_err(|_| format!("{n} attempts is too many"))?),
            ..RetryConfig::default()
        }),
        _ => Err("retry must be a number of attempts (retry = 3) or a table".to_owned()),
    })
}

fn timeout_shorthand<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<TimeoutConfig>, D::Error> {
    shorthand_or_table(d, "a duration (\"10s\") or a timeout table", |v| match v {
        ShortValue::Number(ms) => Ok(TimeoutConfig {
            total: Some(Limit::After(DurationSpec::from_millis(ms))),
            each: None,
        }),
        ShortValue::Text(text) => Ok(TimeoutConfig {
            total: Some(Limit::from(text.as_str())),
            each: None,
        }),
        ShortValue::Bool => {
            Err("timeout must be a duration (\"10s\"), \"none\" or { total, each }".to_owned())
        }
    })
}

fn idempotency_shorthand<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<IdempotencyConfig>, D::Error> {
    shorthand_or_table(d, "true, false or an idempotency table", |v| match v {
        ShortValue::Bool => Ok(IdempotencyConfig::default()),
        _ => Err("idempotency must be true, false or { header = \"...\" }".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seam(toml_text: &str) -> std::result::Result<SeamConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn shorthands_and_tables() {
        let config = seam(
            r#"
            base_url = "https://api.example.com"
            retry = 3
            timeout = "10s"
            idempotency = true
            [stitches.a]
            path = "/a"
            timeout = { total = "5s", each = 1500 }
            retry = { attempts = 2, backoff = "fixed", respect = false }
            "#,
        )
        .unwrap();
        assert_eq!(config.shared.retry.as_ref().unwrap().attempts, Some(3));
        assert_eq!(
            config.shared.idempotency,
            Some(IdempotencyConfig::default())
        );
        let a = &config.stitches["a"];
        assert_eq!(
            a.shared.timeout.as_ref().unwrap().each,
            Some(DurationSpec::from(std::time::Duration::from_millis(1500)))
        );
        assert_eq!(
            a.shared.retry.as_ref().unwrap().respect_retry_after,
            Some(false)
        );
        config.build().unwrap();
    }

    #[test]
    fn unknown_fields_are_errors() {
        let error = seam("base_url = \"https://x.example\"\nretries = 3").unwrap_err();
        assert!(error.contains("unknown field `retries`"), "{error}");
        let error = seam("base_url = \"https://x.example\"\n[stitches.a]\npath = \"/a\"\nretry = { attemps = 2 }").unwrap_err();
        assert!(error.contains("unknown field `attemps`"), "{error}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let config = seam("base_url = \"https://x.example\"\n[stitches.get_user]\npath = \"/u\"\ntimeout = { total = \"10x\" }").unwrap();
        let error = config.build().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("stitches.get_user.timeout.total: invalid duration \"10x\""),
            "{error}"
        );
        // The same as data: the field in the file, the problem and the fix.
        assert_eq!(error.field(), "stitches.get_user.timeout.total");
        assert!(error.problem().starts_with("invalid duration \"10x\""));
        assert_eq!(
            error.fix(),
            "write a number with a unit: \"10s\", \"250ms\", \"1.5m\""
        );
        assert_eq!(
            error.to_string(),
            format!(
                "stitches.get_user.timeout.total: {}. Fix: {}",
                error.problem(),
                error.fix()
            )
        );
        let config =
            seam("base_url = \"https://x.example\"\n[stitches.a]\nmethod = \"GTE\"\npath = \"/u\"")
                .unwrap();
        let error = config.build().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("stitches.a.method: \"GTE\" is not an HTTP method"),
            "{error}"
        );
        let error = seam("base_url = \"https://x.example\"\n[stitches.a]\npath = \"/u\"\nretry = { backoff = \"exponential\" }").unwrap_err();
        assert!(error.contains("unknown variant `exponential`"), "{error}");
    }

    #[test]
    fn stateful_options_have_serde_forms() {
        let config = seam(
            r#"
            base_url = "https://api.example.com"
            throttle = "10/s"
            [stitches.a]
            path = "/a"
            circuit = [5, "30s"]
            cache = "5m"
            throttle = { rate = "2/s", concurrency = 2 }
            "#,
        )
        .unwrap();
        config.build().unwrap();
        let error = seam("base_url = \"https://x.example\"\n[stitches.a]\npath = \"/a\"\ncache = { ttl = \"5m\", tll = 1 }").unwrap_err();
        assert!(error.contains("unknown field `tll`"), "{error}");
        let config = seam("base_url = \"https://x.example\"\nthrottle = \"fast\"").unwrap();
        assert!(
            config
                .build()
                .unwrap_err()
                .to_string()
                .starts_with("throttle")
        );
    }

    #[test]
    fn limits_can_be_lifted_with_none() {
        let config = seam(
            r#"
            base_url = "https://api.example.com"
            timeout = "none"
            [stitches.a]
            path = "/a"
            [stitches.b]
            path = "/b"
            timeout = { total = "NONE", each = "2m" }
            retry = { attempts = 2, max_retry_after = "none" }
            [stitches.c]
            path = "/c"
            timeout = { each = "2s" }
            retry = { attempts = 2, max_retry_after = 5000 }
            "#,
        )
        .unwrap();
        assert_eq!(
            config.stitches["b"].shared.timeout.as_ref().unwrap().total,
            Some(Limit::Unlimited)
        );
        let catalog = config.build().unwrap();
        let debug = |name: &str| format!("{:?}", catalog.get(name).unwrap());
        assert!(
            debug("a").contains("Timeout { total: none, each: none }"),
            "{}",
            debug("a")
        );
        assert!(
            debug("b").contains("Timeout { total: none, each: 120s }"),
            "{}",
            debug("b")
        );
        assert!(
            debug("b").contains("max_retry_after: none"),
            "{}",
            debug("b")
        );
        assert!(
            debug("c").contains("Timeout { total: 30s, each: 2s }"),
            "{}",
            debug("c")
        );
        assert!(debug("c").contains("max_retry_after: 5s"), "{}", debug("c"));
        let error = seam("base_url = \"https://x.example\"\ntimeout = { total = \"never\" }")
            .unwrap()
            .build()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("timeout.total: invalid duration \"never\""),
            "{error}"
        );
        let text = toml::to_string(&TimeoutConfig {
            total: Some(Limit::Unlimited),
            each: Some(DurationSpec::from("2s")),
        })
        .unwrap();
        assert_eq!(text, "total = \"none\"\neach = \"2s\"\n");
    }

    #[test]
    fn json_works_too() {
        let config: StitchConfig = serde_json::from_str(r#"{"url": "https://x.example/a/{id}", "retry": {"attempts": 3, "on": [503]}, "output": "text"}"#).unwrap();
        let stitch = config.build().unwrap();
        assert_eq!(stitch.template().as_str(), "https://x.example/a/{id}");
    }
}
