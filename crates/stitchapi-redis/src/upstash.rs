//! Upstash: Redis over HTTPS REST, through the stitchapi transport, so it also runs in a
//! Cloudflare Worker (wasm32).
//!
//! Every verb is one `POST` of a JSON command array (`["GET", "k"]`) with a bearer token; the
//! atomic verbs run the same Lua scripts as the TCP store by `EVALSHA`, falling back to `EVAL`
//! when Upstash answers `NOSCRIPT`, and `create` is one `SET key value NX [PX ttl]`. Replies
//! are asked for base64-encoded (`Upstash-Encoding: base64`), so values come back byte for
//! byte. A value that is not UTF-8 is stored as a marked base64 string, and `renew_if` and
//! `delete_if` compare that stored string, so a lock whose token is not UTF-8 is owned only
//! through the REST store (the core's tokens are hex, the same bytes over REST and TCP).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};
use stitchapi::store::{
    Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError, StoreErrorKind,
};
use stitchapi::time::{Clock, SystemClock, Timestamp, timeout};
use stitchapi::transport::{DynTransport, TransportRequest};

use crate::scripts;

const NAME: &str = "upstash";

/// Values that are not UTF-8 are stored as this prefix plus their base64, since a REST command
/// carries strings. UTF-8 values (stitchapi stores JSON) are stored as they are.
const BINARY_MARKER: &str = "\u{0}stitchapi-b64:";

/// A script and its SHA-1, for `EVALSHA`.
#[derive(Clone, Debug)]
struct LuaScript {
    source: &'static str,
    sha: String,
}

impl LuaScript {
    fn new(source: &'static str) -> Self {
        LuaScript {
            source,
            sha: sha1_smol::Sha1::from(source).digest().to_string(),
        }
    }
}

/// A [`StitchStore`] on Upstash (Redis over HTTPS REST): every verb, fleet-wide, from any
/// runtime that can make an HTTP request, Workers included.
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use stitchapi_redis::UpstashStore;
///
/// let store = UpstashStore::new("https://eu1-example.upstash.io", std::env::var("UPSTASH_TOKEN")?)?;
/// let api = stitchapi::Seam::builder("https://api.example.com").store(Arc::new(store)).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UpstashStore {
    endpoint: url::Url,
    /// `Bearer <token>`, marked sensitive.
    bearer: http::HeaderValue,
    /// `None` without the `reqwest` feature until `with_transport`.
    transport: Option<DynTransport>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    server_time: bool,
    increment: LuaScript,
    reserve: LuaScript,
    lease: LuaScript,
    release: LuaScript,
    renew_if: LuaScript,
    delete_if: LuaScript,
}

impl UpstashStore {
    /// A store on the Upstash database at `url` (its REST URL) with its REST `token`, over
    /// stitchapi's reqwest transport (feature `reqwest`, on by default; without it, pass a
    /// transport with [`with_transport`](Self::with_transport), or every command fails saying
    /// so).
    pub fn new(url: &str, token: impl Into<String>) -> Result<UpstashStore, StoreError> {
        let invalid =
            |problem: String| StoreError::new(NAME, "connect", StoreErrorKind::Backend, problem);
        let parsed = url::Url::parse(url)
            .map_err(|e| invalid(format!("the REST URL {url:?} is not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!("the REST URL {url:?} is not http(s)")));
        }
        parsed
            .as_str()
            .parse::<http::Uri>()
            .map_err(|e| invalid(format!("the REST URL {url:?} is not a URI ({e})")))?;
        let endpoint = parsed;
        let token: String = token.into();
        if token.is_empty() {
            return Err(invalid(
                "the REST token is empty: pass the database's REST token".to_owned(),
            ));
        }
        let mut bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid("the REST token is not a valid header value".to_owned()))?;
        bearer.set_sensitive(true);
        #[cfg(feature = "reqwest")]
        let transport: Option<DynTransport> =
            Some(Arc::new(stitchapi::transport::ReqwestTransport::new()));
        #[cfg(not(feature = "reqwest"))]
        let transport: Option<DynTransport> = None;
        Ok(UpstashStore {
            endpoint,
            bearer,
            transport,
            clock: Arc::new(SystemClock::new()),
            timeout: Duration::from_secs(2),
            server_time: false,
            increment: LuaScript::new(scripts::INCREMENT),
            reserve: LuaScript::new(scripts::RESERVE),
            lease: LuaScript::new(scripts::LEASE),
            release: LuaScript::new(scripts::RELEASE),
            renew_if: LuaScript::new(scripts::RENEW_IF),
            delete_if: LuaScript::new(scripts::DELETE_IF),
        })
    }

    /// Sends the commands through `transport` (a Worker's fetch, a test double).
    pub fn with_transport(mut self, transport: DynTransport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Times commands out on `clock` (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long a command may wait for its answer (default 2 s; as
    /// `RedisOptions::with_response_timeout`).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Takes `now` for `reserve` and `lease` from Redis's clock instead of the caller's.
    pub fn with_server_time(mut self, server_time: bool) -> Self {
        self.server_time = server_time;
        self
    }

    fn error(
        operation: &'static str,
        kind: StoreErrorKind,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError::new(NAME, operation, kind, message)
    }

    /// Sends one command and returns its (base64-decoded where it is a string) result.
    async fn command(
        &self,
        operation: &'static str,
        command: &[Value],
    ) -> Result<Value, StoreError> {
        let body = serde_json::to_vec(command)
            .map_err(|e| Self::error(operation, StoreErrorKind::InvalidData, e.to_string()))?;
        let mut headers = http::HeaderMap::with_capacity(3);
        headers.insert(http::header::AUTHORIZATION, self.bearer.clone());
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert("upstash-encoding", http::HeaderValue::from_static("base64"));
        let request = TransportRequest::new(http::Method::POST, self.endpoint.clone())
            .with_headers(headers)
            .with_body(body);
        let Some(transport) = &self.transport else {
            return Err(Self::error(
                operation,
                StoreErrorKind::Backend,
                "the Upstash store has no transport: enable the `reqwest` feature of \
                 stitchapi-redis, or pass one with `with_transport` (in a Worker: \
                 `stitchapi_cloudflare::WorkerTransport`)"
                    .to_owned(),
            ));
        };
        let send = transport.send(request);
        let response = match timeout(&*self.clock, self.timeout, send).await {
            Some(result) => result.map_err(|e| {
                Self::error(
                    operation,
                    StoreErrorKind::Unavailable,
                    format!("the REST endpoint could not be reached: {e}"),
                )
                .with_source(e)
            })?,
            None => {
                return Err(Self::error(
                    operation,
                    StoreErrorKind::Timeout,
                    format!("no answer within {}ms", self.timeout.as_millis()),
                ));
            }
        };
        let status = response.status();
        let mut reply: Value = serde_json::from_slice(response.body()).map_err(|_| {
            Self::error(
                operation,
                StoreErrorKind::Backend,
                format!("HTTP {}: the reply is not JSON", status.as_u16()),
            )
        })?;
        if let Some(message) = reply.get("error").and_then(Value::as_str) {
            let kind = match status.as_u16() {
                401 | 403 => StoreErrorKind::Unavailable,
                _ => StoreErrorKind::Backend,
            };
            return Err(Self::error(
                operation,
                kind,
                format!("HTTP {}: {message}", status.as_u16()),
            ));
        }
        if !status.is_success() {
            return Err(Self::error(
                operation,
                StoreErrorKind::Backend,
                format!("HTTP {}", status.as_u16()),
            ));
        }
        let result = reply.get_mut("result").map(Value::take).ok_or_else(|| {
            Self::error(
                operation,
                StoreErrorKind::Backend,
                "the reply has no result",
            )
        })?;
        decode(result)
            .map_err(|message| Self::error(operation, StoreErrorKind::InvalidData, message))
    }

    /// Runs a script by `EVALSHA`, loading it with `EVAL` when Upstash does not know it yet.
    async fn script(
        &self,
        operation: &'static str,
        script: &LuaScript,
        key: &str,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Value, StoreError> {
        let mut command = vec![json!("EVALSHA"), json!(script.sha), json!(1), json!(key)];
        command.extend(args.into_iter().map(Value::String));
        match self.command(operation, &command).await {
            Err(error) if error.to_string().to_ascii_uppercase().contains("NOSCRIPT") => {
                command[0] = json!("EVAL");
                command[1] = json!(script.source);
                self.command(operation, &command).await
            }
            other => other,
        }
    }
}

/// Decodes a base64-encoded reply: strings are base64, arrays recurse, numbers and null stay.
fn decode(value: Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(encoded) => {
            let bytes = BASE64
                .decode(encoded.as_bytes())
                .map_err(|e| format!("a reply string is not base64 ({e})"))?;
            // Bytes that are not UTF-8 travel on in the marked base64 form `value_bytes` reads.
            Value::String(String::from_utf8(bytes).unwrap_or_else(|e| {
                let raw = e.into_bytes();
                format!("{BINARY_MARKER}{}", BASE64.encode(raw))
            }))
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(decode).collect::<Result<_, _>>()?)
        }
        other => other,
    })
}

/// The bytes a stored string stands for.
fn value_bytes(text: &str) -> Result<Bytes, String> {
    match text.strip_prefix(BINARY_MARKER) {
        Some(encoded) => BASE64
            .decode(encoded.as_bytes())
            .map(Bytes::from)
            .map_err(|e| format!("a binary value is corrupt ({e})")),
        None => Ok(Bytes::copy_from_slice(text.as_bytes())),
    }
}

/// The string a value is stored as (and so what `renew_if` and `delete_if` compare).
fn stored_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.starts_with(BINARY_MARKER) => text.to_owned(),
        _ => format!("{BINARY_MARKER}{}", BASE64.encode(value)),
    }
}

/// `SET key value [NX] [PX ttl]` as a REST command.
fn set_command(
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
    only_if_missing: bool,
) -> Vec<Value> {
    let mut command = vec![json!("SET"), json!(key), json!(stored_text(value))];
    command.extend(
        scripts::set_options(ttl, only_if_missing)
            .into_iter()
            .map(Value::String),
    );
    command
}

fn number(operation: &'static str, value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        UpstashStore::error(
            operation,
            StoreErrorKind::InvalidData,
            format!("expected a number, got {value}"),
        )
    })
}

impl fmt::Debug for UpstashStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstashStore")
            .field("endpoint", &self.endpoint.to_string())
            .field("token", &"<redacted>")
            .field("server_time", &self.server_time)
            .finish()
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl StitchStore for UpstashStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
            .with_consistency(Consistency::Strong)
            .with_atomic_increment(true)
            .with_reserve(true)
            .with_lease(true)
            .with_conditional_writes(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.command("get", &[json!("GET"), json!(key)]).await? {
            Value::Null => Ok(None),
            Value::String(text) => value_bytes(&text)
                .map(Some)
                .map_err(|m| Self::error("get", StoreErrorKind::InvalidData, m)),
            other => Ok(Some(Bytes::from(other.to_string()))),
        }
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let command = match value {
            None => vec![json!("DEL"), json!(key)],
            Some(value) => set_command(key, &value, ttl, false),
        };
        self.command("set", &command).await.map(drop)
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let args = scripts::increment_args(ttl);
        let result = self.script("increment", &self.increment, key, args).await?;
        number("increment", &result)
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        let args = scripts::reserve_args(spacing, now, latest, ttl, self.server_time);
        let result = self.script("reserve", &self.reserve, key, args).await?;
        result
            .as_str()
            .ok_or_else(|| format!("the script returned {result}, not a reservation"))
            .and_then(scripts::parse_reservation)
            .map_err(|m| Self::error("reserve", StoreErrorKind::InvalidData, m))
    }

    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let args = scripts::lease_args(token, limit, ttl, now, self.server_time);
        let result = self.script("lease", &self.lease, key, args).await?;
        Ok(number("lease", &result)? == 1)
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let args = scripts::release_args(token);
        self.script("release", &self.release, key, args)
            .await
            .map(drop)
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let command = set_command(key, &value, ttl, true);
        // `SET ... NX` answers "OK" when it wrote and null when the key exists.
        Ok(!self.command("create", &command).await?.is_null())
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let args = scripts::renew_if_args(stored_text(expected), ttl);
        let result = self.script("renew_if", &self.renew_if, key, args).await?;
        Ok(number("renew_if", &result)? == 1)
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let args = scripts::delete_if_args(stored_text(expected));
        let result = self.script("delete_if", &self.delete_if, key, args).await?;
        Ok(number("delete_if", &result)? == 1)
    }
}

/// Without the `reqwest` feature (as in a Worker), a store given no transport says so.
#[cfg(all(test, not(feature = "reqwest")))]
mod without_reqwest {
    use stitchapi::store::{StitchStore, StoreErrorKind};

    use super::UpstashStore;

    #[tokio::test]
    async fn a_store_without_a_transport_fails_naming_the_fix() {
        let store = UpstashStore::new("https://example.upstash.io", "token").unwrap();
        let error = store.get("k").await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Backend);
        let text = error.to_string();
        assert!(text.contains("no transport"), "{text}");
        assert!(text.contains("with_transport"), "{text}");
        assert!(!text.contains("token"), "{text}");
    }
}
