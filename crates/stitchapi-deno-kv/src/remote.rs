//! KV Connect (feature `remote`): the protocol `Deno.openKv("https://…")` speaks to
//! `denokv serve` and Deno Deploy, over the stitchapi transport, so it runs natively and on
//! wasm32.
//!
//! A metadata exchange (`POST <url>` with the access token, JSON) names the protocol version,
//! the database id, the strongly consistent endpoint and the token of the data path; it is
//! cached until its `expiresAt`. The data path is `POST <endpoint>/snapshot_read` and
//! `/atomic_write` with protobuf bodies (`denokv_proto::datapath`) and the protocol headers
//! (`x-denokv-version`, `x-denokv-database-id`; `x-transaction-domain-id` on version 1).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use denokv_proto::datapath as pb;
use denokv_proto::{AtomicWrite, KvValue, MutationKind};
use stitchapi::Secret;
use stitchapi::store::{StoreError, StoreErrorKind};
use stitchapi::time::{Clock, Timestamp, timeout};
use stitchapi::transport::{DynTransport, TransportRequest};

use crate::store::{Entry, KvBackend, NAME};

/// The protocol versions this client speaks.
const SUPPORTED_VERSIONS: [u32; 3] = [1, 2, 3];

/// Metadata is exchanged again this long before its `expiresAt` (clock skew).
const REFRESH_MARGIN: Duration = Duration::from_secs(5);

/// How much of an error body a message quotes.
const QUOTED_BODY: usize = 200;

const USER_AGENT: &str = concat!("stitchapi-deno-kv/", env!("CARGO_PKG_VERSION"));

/// How to reach a Deno KV database over KV Connect: its URL, its access token, the transport
/// and the response timeout. [`DenoKvStore::remote`](crate::DenoKvStore::remote) makes the
/// store; [`DenoKvStore::connect`](crate::DenoKvStore::connect) is the short form with the
/// defaults.
///
/// ```no_run
/// # fn demo(transport: stitchapi::transport::DynTransport) -> Result<(), stitchapi::store::StoreError> {
/// use std::time::Duration;
/// use stitchapi::Secret;
/// use stitchapi_deno_kv::{DenoKvStore, KvConnect};
///
/// let options = KvConnect::new("https://kv.example.com", Secret::env("DENO_KV_ACCESS_TOKEN"))?
///     .with_transport(transport) // a Worker's fetch, say
///     .with_response_timeout(Duration::from_secs(1));
/// let store = DenoKvStore::remote(options);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KvConnect {
    url: url::Url,
    token: Secret,
    /// `None` without the `reqwest` feature until `with_transport`.
    transport: Option<DynTransport>,
    timeout: Duration,
}

impl KvConnect {
    /// The database at `url` (`http(s)`; the metadata exchange is a `POST` to it) with its
    /// access `token` (as given to `denokv serve --access-token`, or a Deno Deploy access
    /// token), over stitchapi's reqwest transport (feature `reqwest`, on by default), with a
    /// response timeout of 5 s.
    pub fn new(url: &str, token: impl Into<Secret>) -> Result<KvConnect, StoreError> {
        let invalid =
            |problem: String| StoreError::new(NAME, "connect", StoreErrorKind::Backend, problem);
        let parsed = url::Url::parse(url).map_err(|e| {
            invalid(format!(
                "the KV Connect URL {url:?} is not a URL ({e}): pass the database's \
                 http(s) address, e.g. \"http://127.0.0.1:4512\""
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the KV Connect URL {url:?} is not http(s): pass the database's http(s) address"
            )));
        }
        #[cfg(feature = "reqwest")]
        let transport: Option<DynTransport> =
            Some(Arc::new(stitchapi::transport::ReqwestTransport::new()));
        #[cfg(not(feature = "reqwest"))]
        let transport: Option<DynTransport> = None;
        Ok(KvConnect {
            url: parsed,
            token: token.into(),
            transport,
            timeout: Duration::from_secs(5),
        })
    }

    /// Sends the requests through `transport` (a Worker's fetch, a recording proxy).
    pub fn with_transport(mut self, transport: DynTransport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How long one request (the metadata exchange, a read, a write) may wait for its answer
    /// before the call fails with a `Timeout` store error (default 5 s), on the store's clock.
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn into_backend(self) -> RemoteBackend {
        RemoteBackend {
            options: self,
            metadata: futures_util::lock::Mutex::new(None),
        }
    }

    /// The URL without credentials or query, for `Debug` and errors.
    fn shown_url(&self) -> String {
        format!(
            "{}{}",
            self.url.origin().ascii_serialization(),
            self.url.path()
        )
    }
}

impl fmt::Debug for KvConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvConnect")
            .field("url", &self.shown_url())
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a metadata exchange gave: how to reach the data path, until when.
struct Metadata {
    version: u32,
    database_id: http::HeaderValue,
    /// The strongly consistent endpoint, resolved, without a trailing `/`.
    endpoint: String,
    /// `Bearer <token>` of the data path, marked sensitive.
    bearer: http::HeaderValue,
    expires_at: Timestamp,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataReply {
    version: u32,
    #[serde(alias = "uuid")]
    database_id: String,
    endpoints: Vec<EndpointReply>,
    token: String,
    expires_at: String,
}

#[derive(serde::Deserialize)]
struct EndpointReply {
    url: String,
    consistency: String,
}

/// The KV Connect backend: the options and the cached metadata.
pub(crate) struct RemoteBackend {
    options: KvConnect,
    /// Held across an exchange, so concurrent calls wait for one exchange.
    metadata: futures_util::lock::Mutex<Option<Arc<Metadata>>>,
}

fn error(operation: &'static str, kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
    StoreError::new(NAME, operation, kind, message)
}

/// The start of an error body, as text.
fn quoted(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(QUOTED_BODY) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn sensitive_bearer(operation: &'static str, token: &str) -> Result<http::HeaderValue, StoreError> {
    let mut bearer = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        error(
            operation,
            StoreErrorKind::Backend,
            "the access token is not a valid header value",
        )
    })?;
    bearer.set_sensitive(true);
    Ok(bearer)
}

impl RemoteBackend {
    /// Sends one request, bounded by the response timeout on `clock`.
    async fn send(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        request: TransportRequest,
    ) -> Result<http::Response<Bytes>, StoreError> {
        let Some(transport) = &self.options.transport else {
            return Err(error(
                operation,
                StoreErrorKind::Backend,
                "the KV Connect store has no transport: enable the `reqwest` feature of \
                 stitchapi-deno-kv, or pass one with `KvConnect::with_transport`",
            ));
        };
        let limit = self.options.timeout;
        match timeout(clock, limit, transport.send(request)).await {
            Some(Ok(response)) => Ok(response),
            Some(Err(e)) => Err(error(
                operation,
                StoreErrorKind::Unavailable,
                format!(
                    "the KV Connect server at {} could not be reached: {e}",
                    self.options.shown_url()
                ),
            )
            .with_source(e)),
            None => Err(error(
                operation,
                StoreErrorKind::Timeout,
                format!(
                    "the KV Connect server at {} gave no answer within {}ms",
                    self.options.shown_url(),
                    limit.as_millis()
                ),
            )),
        }
    }

    /// The cached metadata, exchanged again when it is (about to be) past its `expiresAt`,
    /// or when it is `rejected` (the data path refused it).
    async fn metadata(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        rejected: Option<&Arc<Metadata>>,
    ) -> Result<Arc<Metadata>, StoreError> {
        let mut cached = self.metadata.lock().await;
        if let Some(current) = &*cached {
            let fresh = clock.now() + REFRESH_MARGIN < current.expires_at;
            if fresh && !rejected.is_some_and(|r| Arc::ptr_eq(r, current)) {
                return Ok(current.clone());
            }
        }
        let exchanged = Arc::new(self.exchange(operation, clock).await?);
        *cached = Some(exchanged.clone());
        Ok(exchanged)
    }

    /// The metadata exchange.
    async fn exchange(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
    ) -> Result<Metadata, StoreError> {
        let token = self.options.token.expose().map_err(|e| {
            error(
                operation,
                StoreErrorKind::Backend,
                format!("the KV Connect access token is not available: {e}"),
            )
        })?;
        if token.is_empty() {
            return Err(error(
                operation,
                StoreErrorKind::Backend,
                "the KV Connect access token is empty: pass the database's access token",
            ));
        }
        let body =
            serde_json::to_vec(&serde_json::json!({ "supportedVersions": SUPPORTED_VERSIONS }))
                .unwrap_or_default();
        let mut request = TransportRequest::new(http::Method::POST, self.options.url.clone())
            .with_body(Bytes::from(body));
        let headers = &mut request.headers;
        headers.insert(
            http::header::AUTHORIZATION,
            sensitive_bearer(operation, &token)?,
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        let response = self.send(operation, clock, request).await?;
        let status = response.status();
        if !status.is_success() {
            let (kind, fix) = match status.as_u16() {
                401 | 403 | 404 => (
                    StoreErrorKind::Unavailable,
                    "the access token was refused: pass the token the database was given \
                     (`denokv serve --access-token`, or a Deno Deploy access token)",
                ),
                300..=399 => (
                    StoreErrorKind::Backend,
                    "the metadata exchange was redirected: pass the URL it redirects to",
                ),
                500..=599 => (StoreErrorKind::Unavailable, "the server failed"),
                _ => (StoreErrorKind::Backend, "the metadata exchange was refused"),
            };
            return Err(error(
                operation,
                kind,
                format!(
                    "KV Connect metadata exchange with {}: HTTP {}: {fix} ({})",
                    self.options.shown_url(),
                    status.as_u16(),
                    quoted(response.body())
                ),
            ));
        }
        let invalid = |problem: String| {
            error(
                operation,
                StoreErrorKind::Backend,
                format!(
                    "KV Connect metadata from {}: {problem}",
                    self.options.shown_url()
                ),
            )
        };
        let reply: MetadataReply = serde_json::from_slice(response.body())
            .map_err(|e| invalid(format!("the reply is not KV Connect metadata ({e})")))?;
        if !SUPPORTED_VERSIONS.contains(&reply.version) {
            return Err(invalid(format!(
                "the server chose protocol version {}, this client speaks 1 to 3",
                reply.version
            )));
        }
        let strong = reply
            .endpoints
            .iter()
            .find(|endpoint| endpoint.consistency == "strong")
            .ok_or_else(|| invalid("no endpoint is strongly consistent".to_owned()))?;
        let endpoint =
            self.options.url.join(&strong.url).map_err(|e| {
                invalid(format!("the endpoint {:?} is not a URL ({e})", strong.url))
            })?;
        let expires_at = chrono::DateTime::parse_from_rfc3339(&reply.expires_at).map_err(|e| {
            invalid(format!(
                "expiresAt {:?} is not a date ({e})",
                reply.expires_at
            ))
        })?;
        let expires_at = Timestamp::from_unix(Duration::from_millis(
            u64::try_from(expires_at.timestamp_millis()).unwrap_or(0),
        ));
        let database_id = http::HeaderValue::from_str(&reply.database_id)
            .map_err(|_| invalid("the database id is not a header value".to_owned()))?;
        tracing::debug!(
            url = %self.options.shown_url(),
            version = reply.version,
            expires_at = %expires_at,
            "KV Connect metadata exchanged"
        );
        Ok(Metadata {
            version: reply.version,
            database_id,
            endpoint: endpoint.as_str().trim_end_matches('/').to_owned(),
            bearer: sensitive_bearer(operation, &reply.token)?,
            expires_at,
        })
    }

    /// One data-path call: `POST <endpoint>/<path>` with `message`. A refused token (401,
    /// 403) exchanges the metadata again and retries once, as does `refresh` (the caller saw
    /// the endpoint disabled). Returns the reply and the protocol version.
    async fn call<M: prost::Message + Default>(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        path: &str,
        message: &impl prost::Message,
        refresh: bool,
    ) -> Result<(M, u32), StoreError> {
        let body = Bytes::from(message.encode_to_vec());
        let mut metadata = self.metadata(operation, clock, None).await?;
        if refresh {
            metadata = self.metadata(operation, clock, Some(&metadata)).await?;
        }
        let mut retried = false;
        loop {
            let uri = format!("{}/{path}", metadata.endpoint);
            let url = url::Url::parse(&uri).map_err(|e| {
                error(
                    operation,
                    StoreErrorKind::Backend,
                    format!("the data path URL {uri:?} is not a URL ({e})"),
                )
            })?;
            let mut request =
                TransportRequest::new(http::Method::POST, url).with_body(body.clone());
            let headers = &mut request.headers;
            headers.insert(http::header::AUTHORIZATION, metadata.bearer.clone());
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-protobuf"),
            );
            headers.insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static(USER_AGENT),
            );
            if metadata.version == 1 {
                headers.insert("x-transaction-domain-id", metadata.database_id.clone());
            } else {
                headers.insert("x-denokv-database-id", metadata.database_id.clone());
                headers.insert(
                    "x-denokv-version",
                    http::HeaderValue::from(metadata.version),
                );
            }
            let response = self.send(operation, clock, request).await?;
            let status = response.status();
            if status.is_success() {
                let reply = M::decode(response.into_body()).map_err(|e| {
                    error(
                        operation,
                        StoreErrorKind::Backend,
                        format!("the {path} reply is not protobuf ({e})"),
                    )
                })?;
                return Ok((reply, metadata.version));
            }
            if matches!(status.as_u16(), 401 | 403) && !retried {
                // The data-path token may have been rotated before `expiresAt`.
                retried = true;
                metadata = self.metadata(operation, clock, Some(&metadata)).await?;
                continue;
            }
            let kind = if status.is_server_error() || matches!(status.as_u16(), 401 | 403) {
                StoreErrorKind::Unavailable
            } else {
                StoreErrorKind::Backend
            };
            return Err(error(
                operation,
                kind,
                format!(
                    "KV Connect {path}: HTTP {}: {}",
                    status.as_u16(),
                    quoted(response.body())
                ),
            ));
        }
    }
}

/// A versionstamp from the wire.
fn versionstamp(operation: &'static str, raw: &[u8]) -> Result<[u8; 10], StoreError> {
    raw.try_into().map_err(|_| {
        error(
            operation,
            StoreErrorKind::Backend,
            format!("a versionstamp has {} bytes, not 10", raw.len()),
        )
    })
}

fn pb_value(value: KvValue) -> pb::KvValue {
    let (data, encoding) = denokv_proto::encode_value_owned(value);
    pb::KvValue {
        data,
        encoding: i32::try_from(encoding).unwrap_or_default(),
    }
}

/// An atomic write as its protobuf message.
fn pb_write(write: AtomicWrite) -> pb::AtomicWrite {
    let checks = write
        .checks
        .into_iter()
        .map(|check| pb::Check {
            key: check.key,
            versionstamp: check.versionstamp.map(|v| v.to_vec()).unwrap_or_default(),
        })
        .collect();
    let mutations = write
        .mutations
        .into_iter()
        .map(|mutation| {
            let mut out = pb::Mutation {
                key: mutation.key,
                expire_at_ms: mutation.expire_at.map_or(0, |at| at.timestamp_millis()),
                ..Default::default()
            };
            let (kind, value) = match mutation.kind {
                MutationKind::Set(value) => (pb::MutationType::MSet, Some(value)),
                MutationKind::Delete => (pb::MutationType::MDelete, None),
                MutationKind::Sum {
                    value,
                    min_v8,
                    max_v8,
                    clamp,
                } => {
                    out.sum_min = min_v8;
                    out.sum_max = max_v8;
                    out.sum_clamp = clamp;
                    (pb::MutationType::MSum, Some(value))
                }
                MutationKind::Min(value) => (pb::MutationType::MMin, Some(value)),
                MutationKind::Max(value) => (pb::MutationType::MMax, Some(value)),
                MutationKind::SetSuffixVersionstampedKey(value) => {
                    (pb::MutationType::MSetSuffixVersionstampedKey, Some(value))
                }
            };
            out.mutation_type = kind as i32;
            out.value = value.map(pb_value);
            out
        })
        .collect();
    pb::AtomicWrite {
        checks,
        mutations,
        enqueues: Vec::new(),
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl KvBackend for RemoteBackend {
    async fn read(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        key: &[u8],
    ) -> Result<Option<Entry>, StoreError> {
        let mut end = key.to_vec();
        end.push(0);
        let message = pb::SnapshotRead {
            ranges: vec![pb::ReadRange {
                start: key.to_vec(),
                end,
                limit: 1,
                reverse: false,
            }],
        };
        let mut refresh = false;
        let output = loop {
            let (output, version): (pb::SnapshotReadOutput, u32) = self
                .call(operation, clock, "snapshot_read", &message, refresh)
                .await?;
            if version >= 3 && output.status == pb::SnapshotReadStatus::SrUnspecified as i32 {
                return Err(error(
                    operation,
                    StoreErrorKind::Backend,
                    "KV Connect snapshot_read: the reply has no status",
                ));
            }
            let disabled = output.read_disabled
                || output.status == pb::SnapshotReadStatus::SrReadDisabled as i32
                || !output.read_is_strongly_consistent;
            if !disabled {
                break output;
            }
            if refresh {
                return Err(error(
                    operation,
                    StoreErrorKind::Unavailable,
                    "KV Connect snapshot_read: the endpoint refused a strongly consistent \
                     read, again after a metadata exchange",
                ));
            }
            refresh = true;
        };
        let Some(entry) = output
            .ranges
            .into_iter()
            .next()
            .and_then(|range| range.values.into_iter().next())
        else {
            return Ok(None);
        };
        let value = denokv_proto::decode_value(entry.value, i64::from(entry.encoding)).ok_or_else(
            || {
                error(
                    operation,
                    StoreErrorKind::InvalidData,
                    format!("an entry has an unknown value encoding {}", entry.encoding),
                )
            },
        )?;
        Ok(Some((value, versionstamp(operation, &entry.versionstamp)?)))
    }

    async fn write(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        write: AtomicWrite,
    ) -> Result<bool, StoreError> {
        let message = pb_write(write);
        let mut refresh = false;
        loop {
            let (output, _): (pb::AtomicWriteOutput, u32) = self
                .call(operation, clock, "atomic_write", &message, refresh)
                .await?;
            match pb::AtomicWriteStatus::try_from(output.status) {
                Ok(pb::AtomicWriteStatus::AwSuccess) => return Ok(true),
                Ok(pb::AtomicWriteStatus::AwCheckFailure) => return Ok(false),
                Ok(pb::AtomicWriteStatus::AwWriteDisabled) if !refresh => refresh = true,
                Ok(pb::AtomicWriteStatus::AwWriteDisabled) => {
                    return Err(error(
                        operation,
                        StoreErrorKind::Unavailable,
                        "KV Connect atomic_write: writes are disabled on this endpoint, again \
                         after a metadata exchange",
                    ));
                }
                _ => {
                    return Err(error(
                        operation,
                        StoreErrorKind::Backend,
                        format!("KV Connect atomic_write: unknown status {}", output.status),
                    ));
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!("kv-connect {}", self.options.shown_url())
    }
}
