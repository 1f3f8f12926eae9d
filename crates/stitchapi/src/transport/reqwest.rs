//! The default transport, over reqwest (hyper with rustls on native, `fetch` on wasm32).

use bytes::Bytes;
#[cfg(not(target_arch = "wasm32"))]
use bytes::BytesMut;

use super::{Transport, TransportError, TransportErrorKind, TransportRequest};
use crate::runtime::BoxFuture;

/// The default [`Transport`]: a [`reqwest::Client`] that never follows redirects (the engine
/// does, so it can strip credentials on cross-origin hops) and enforces the request's
/// [`body_limit`](TransportRequest::body_limit) while reading.
///
/// ```
/// use std::sync::Arc;
/// use stitchapi::transport::ReqwestTransport;
///
/// let transport = Arc::new(ReqwestTransport::new());
/// let stitch = stitchapi::Stitch::get("https://api.example.com/health")
///     .transport(transport)
///     .build()
///     .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport over a new client with redirects off.
    pub fn new() -> Self {
        let builder = reqwest::Client::builder();
        #[cfg(not(target_arch = "wasm32"))]
        let builder = builder.redirect(reqwest::redirect::Policy::none());
        // Building only fails when the TLS backend cannot initialise; fall back to the
        // defaults, which then report the same problem per request instead of panicking.
        let client = builder.build().unwrap_or_else(|_| reqwest::Client::new());
        ReqwestTransport { client }
    }

    /// A transport over a client you configured. Turn its redirect following off
    /// (`redirect(Policy::none())`) or the engine cannot strip credentials on redirects.
    pub fn from_client(client: reqwest::Client) -> Self {
        ReqwestTransport { client }
    }
}

impl Default for ReqwestTransport {
    fn default() -> Self {
        Self::new()
    }
}

fn map_error(error: reqwest::Error) -> TransportError {
    // A failed connection is also a request error to reqwest: ask about it first.
    #[cfg(not(target_arch = "wasm32"))]
    if error.is_connect() && !error.is_timeout() {
        return TransportError::new(
            TransportErrorKind::Connect,
            format!("connection failed: {}", describe(&error)),
        )
        .with_source(error.without_url());
    }
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_body() || error.is_decode() {
        TransportErrorKind::Body
    } else if error.is_request() || error.is_builder() {
        TransportErrorKind::Request
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, describe(&error)).with_source(error.without_url())
}

/// The error chain's messages, without the URL.
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text = "request failed".to_owned();
    }
    text
}

// Written out rather than with `async_trait`: the request is handed to reqwest before the
// future is boxed, so the boxed future holds reqwest's pending call and not the request too.
impl Transport for ReqwestTransport {
    fn send<'life0, 'async_trait>(
        &'life0 self,
        request: TransportRequest,
    ) -> BoxFuture<'async_trait, Result<http::Response<Bytes>, TransportError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let limit = request.body_limit;
        // The parsed URL goes to reqwest as it is: nothing is parsed or converted again.
        let mut built = reqwest::Request::new(request.method, request.url);
        *built.headers_mut() = request.headers;
        if !request.body.is_empty() {
            *built.body_mut() = Some(request.body.into());
        }
        let pending = self.client.execute(built);
        Box::pin(async move {
            #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
            let mut response = pending.await.map_err(map_error)?;
            if let (Some(limit), Some(length)) = (limit, response.content_length())
                && length > limit as u64
            {
                return Err(TransportError::body_too_large(limit));
            }
            let builder = http::Response::builder().status(response.status());
            #[cfg(not(target_arch = "wasm32"))]
            let builder = builder.version(response.version());
            #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
            let mut builder = builder;
            if let Some(headers) = builder.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            #[cfg(not(target_arch = "wasm32"))]
            let body = {
                // A body that arrives in one chunk (most small ones) is kept as it is, not copied.
                let mut first: Option<Bytes> = None;
                let mut joined = BytesMut::new();
                let mut read = 0;
                while let Some(chunk) = response.chunk().await.map_err(map_error)? {
                    read += chunk.len();
                    if limit.is_some_and(|limit| read > limit) {
                        return Err(TransportError::body_too_large(limit.unwrap_or_default()));
                    }
                    match first.take() {
                        None if joined.is_empty() => first = Some(chunk),
                        earlier => {
                            if let Some(earlier) = earlier {
                                joined.extend_from_slice(&earlier);
                            }
                            joined.extend_from_slice(&chunk);
                        }
                    }
                }
                first.unwrap_or_else(|| joined.freeze())
            };
            #[cfg(target_arch = "wasm32")]
            let body = {
                let body = response.bytes().await.map_err(map_error)?;
                if limit.is_some_and(|limit| body.len() > limit) {
                    return Err(TransportError::body_too_large(limit.unwrap_or_default()));
                }
                body
            };
            builder
                .body(body)
                .map_err(|e| TransportError::new(TransportErrorKind::Body, e.to_string()))
        })
    }
}
