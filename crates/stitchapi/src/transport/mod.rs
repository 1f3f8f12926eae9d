//! The transport seam: a [`TransportRequest`] in, an `http::Response<Bytes>` out.
//!
//! Bodies are buffered [`Bytes`], so every retry resends the exact body. The engine follows
//! redirects itself, so that on a cross-origin hop it forwards only the
//! [safe headers](crate::headers) (an allow-list); a transport must not follow them. [`ReqwestTransport`] is the default; `stitchapi::testing::MockTransport` serves
//! scripted responses in unit tests; anything else (a Worker's `fetch`, a recording proxy)
//! plugs in by implementing [`Transport`].
//!
//! The request carries its URL as the parsed [`url::Url`] (what reqwest and `fetch` take), so
//! no transport parses it again; one built on `http` types converts it with
//! [`TransportRequest::into_http`].
//!
//! ```
//! use bytes::Bytes;
//! use stitchapi::transport::{Transport, TransportError, TransportRequest};
//!
//! /// A transport that answers every request with 204.
//! #[derive(Debug)]
//! struct NoContent;
//!
//! #[async_trait::async_trait]
//! impl Transport for NoContent {
//!     async fn send(
//!         &self,
//!         _request: TransportRequest,
//!     ) -> Result<http::Response<Bytes>, TransportError> {
//!         Ok(http::Response::builder().status(204).body(Bytes::new()).unwrap())
//!     }
//! }
//! ```

pub(crate) mod redirect;
#[cfg(feature = "reqwest")]
mod reqwest;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{BoxError, Error};
use crate::runtime::{MaybeSend, MaybeSync};

#[cfg(feature = "reqwest")]
pub use self::reqwest::ReqwestTransport;

/// Sends one HTTP request and reads its whole response.
///
/// Implementations must not follow redirects, must honour the request's
/// [`body_limit`](TransportRequest::body_limit), and must stop all work when the returned future
/// is dropped (that is how per-attempt timeouts cancel a request).
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Transport: MaybeSend + MaybeSync + fmt::Debug + 'static {
    /// Sends `request` and returns the response with its body read.
    async fn send(
        &self,
        request: TransportRequest,
    ) -> Result<http::Response<Bytes>, TransportError>;
}

/// One redirect the engine followed: the response that redirected, and the URL that gave it.
/// A [`Reply`](crate::Reply) lists them in [`redirects`](crate::Reply::redirects), in order.
///
/// ```
/// # async fn demo(old_link: stitchapi::Stitch) -> stitchapi::Result<()> {
/// let reply = old_link.call_detailed(stitchapi::Input::new()).await?;
/// for hop in &reply.redirects {
///     println!("{} from {}", hop.status, hop.url);
/// }
/// println!("{} from {}", reply.status, reply.url);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedirectHop {
    /// The redirect's status (301, 302, 303, 307 or 308).
    pub status: http::StatusCode,
    /// The URL that answered with the redirect.
    pub url: url::Url,
    /// The redirect response's headers (its `Location`, any `Set-Cookie`).
    pub headers: http::HeaderMap,
}

/// A shared, type-erased transport.
pub type DynTransport = Arc<dyn Transport>;

/// One request for a [`Transport`] to send: method, parsed URL, headers, buffered body, and
/// the largest response body the sender accepts.
///
/// ```
/// use http::Method;
/// use stitchapi::transport::TransportRequest;
///
/// let url = url::Url::parse("https://api.example.com/users/7#top").unwrap();
/// let request = TransportRequest::new(Method::GET, url).with_body_limit(1 << 20);
/// assert_eq!(request.body_limit, Some(1 << 20));
/// assert!(format!("{request:?}").contains("api.example.com/users/7"));
/// let http = request.into_http().unwrap();
/// assert_eq!(http.uri(), "https://api.example.com/users/7"); // no fragment
/// ```
/// Its `Debug` redacts the URL's query values and the headers that are not
/// [safe](crate::headers), and shows the body's length only.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransportRequest {
    /// The method.
    pub method: http::Method,
    /// The URL (a fragment, if any, is not sent).
    pub url: url::Url,
    /// The headers. Values the engine marks sensitive (credentials) are hidden by `Debug`.
    pub headers: http::HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
    /// The largest response body, in bytes: a transport stops reading past it and fails with
    /// [`TransportErrorKind::BodyTooLarge`]. `None`: no limit.
    pub body_limit: Option<usize>,
}

impl fmt::Debug for TransportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportRequest")
            .field("method", &self.method)
            .field(
                "url",
                &format_args!("{}", crate::error::RedactedUrl(&self.url)),
            )
            .field("headers", &crate::headers::redacted(&self.headers))
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl TransportRequest {
    /// A request for `url` without headers, body or body limit.
    pub fn new(method: http::Method, url: url::Url) -> Self {
        TransportRequest {
            method,
            url,
            headers: http::HeaderMap::new(),
            body: Bytes::new(),
            body_limit: None,
        }
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: http::HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the largest response body accepted, in bytes.
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = Some(limit);
        self
    }

    /// The request as an `http::Request`, for transports built on `http` types: the URI is
    /// the URL without its fragment; the body limit is dropped (read it first). Fails with a
    /// [`Request`](TransportErrorKind::Request) error when the URL is not a valid URI.
    pub fn into_http(self) -> Result<http::Request<Bytes>, TransportError> {
        let uri: http::Uri = self.url[..url::Position::AfterQuery].parse().map_err(|e| {
            TransportError::new(
                TransportErrorKind::Request,
                format!("the request URL is not a valid URI ({e})"),
            )
        })?;
        let mut request = http::Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        Ok(request)
    }
}

/// What went wrong in a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// The transport's own timer ran out.
    Timeout,
    /// The request could not be built or sent.
    Request,
    /// The response body could not be read.
    Body,
    /// The response body is larger than the request's
    /// [`body_limit`](TransportRequest::body_limit).
    BodyTooLarge,
    /// The engine refused to follow a redirect: too many hops, or to a non-HTTP scheme.
    /// Set by the engine, which follows redirects itself; a transport never reports it.
    Redirect,
    /// Anything else.
    Other,
}

/// A failure to send a request or read its response.
///
/// Its message never contains the URL (which may carry an API key in its query).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl TransportError {
    /// A new transport error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The error for a body over `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        TransportError::new(
            TransportErrorKind::BodyTooLarge,
            format!("response body exceeds the limit of {limit} bytes"),
        )
    }
}

/// The default transport: reqwest, or an error naming the fix when the feature is off.
pub(crate) fn default_transport() -> Result<DynTransport, Error> {
    // Native: one client (one connection pool) for every stitch of the process.
    #[cfg(all(feature = "reqwest", not(target_arch = "wasm32")))]
    {
        static SHARED: std::sync::OnceLock<DynTransport> = std::sync::OnceLock::new();
        Ok(SHARED
            .get_or_init(|| Arc::new(ReqwestTransport::new()))
            .clone())
    }
    // wasm32: the client is a thin handle on `fetch`, and statics must be `Sync`.
    #[cfg(all(feature = "reqwest", target_arch = "wasm32"))]
    {
        Ok(Arc::new(ReqwestTransport::new()))
    }
    #[cfg(not(feature = "reqwest"))]
    {
        Err(Error::config(
            "transport",
            "no transport is configured and the `reqwest` feature is off",
            "enable the `reqwest` feature or pass `.transport(...)`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_query_values_and_credentials() {
        let url = url::Url::parse("https://api.example.com/v1?api_key=k-s3cret&page=2").unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer t-s3cret"),
        );
        let request = TransportRequest::new(http::Method::GET, url)
            .with_headers(headers)
            .with_body("b-s3cret");
        let shown = format!("{request:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("api.example.com/v1"), "{shown}");
        assert!(shown.contains("<8 bytes>"), "{shown}");
    }
}
