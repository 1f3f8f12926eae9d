//! Redirects, followed by the engine so credentials never cross origins: on a cross-origin
//! hop only the headers in [`crate::headers::SAFE_HEADERS`] are forwarded (an allow-list).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};
use url::Url;

use super::{DynTransport, RequestContext, TransportErrorKind};
use crate::error::Error;
use crate::headers;

/// The most redirects one attempt follows.
pub(crate) const MAX_REDIRECTS: usize = 20;

/// One request as the engine sends it: buffered, so it can be resent and redirected. Its
/// `Debug` redacts headers that are not safe and shows the body's length only.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: Url,
    /// `url` as an `http::Uri` (without fragment).
    pub uri: http::Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Headers an auth strategy added; dropped on a cross-origin hop, even one whose name is
    /// on the safe list.
    pub credential_headers: Vec<HeaderName>,
    pub body_limit: usize,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("method", &self.method)
            .field(
                "url",
                &format_args!("{}", crate::error::RedactedUrl(&self.url)),
            )
            .field("headers", &headers::redacted(&self.headers))
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish_non_exhaustive()
    }
}

/// What an attempt got back: the response and the URL it finally came from.
#[derive(Debug)]
pub(crate) struct Received {
    pub response: http::Response<Bytes>,
    pub url: Url,
}

/// Whether two URLs share scheme, host and port (default ports included).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `url` as an `http::Uri`, without its fragment.
pub(crate) fn uri_of(url: &Url) -> Result<http::Uri, Error> {
    url[..url::Position::AfterQuery]
        .parse()
        .map_err(|e| Error::input(format!("the request URL is not a valid URI ({e})")))
}

fn to_request(outgoing: &Outgoing) -> http::Request<Bytes> {
    let mut request = http::Request::new(outgoing.body.clone());
    *request.method_mut() = outgoing.method.clone();
    *request.uri_mut() = outgoing.uri.clone();
    *request.headers_mut() = outgoing.headers.clone();
    request.extensions_mut().insert(RequestContext::new(
        outgoing.url.clone(),
        outgoing.body_limit,
    ));
    request
}

/// Sends `outgoing`, following up to [`MAX_REDIRECTS`] redirects. On a cross-origin hop
/// (scheme, host or port differs) only [safe headers](crate::headers) are kept, and never one
/// an auth strategy added; 303 (and 301/302 after a POST) turn into a bodiless GET.
pub(crate) async fn send(transport: &DynTransport, first: &Outgoing) -> Result<Received, Error> {
    // Cloned only when a redirect changes the request.
    let mut redirected: Option<Outgoing> = None;
    for _ in 0..=MAX_REDIRECTS {
        let outgoing = redirected.as_ref().unwrap_or(first);
        let request = to_request(outgoing);
        let response = transport
            .send(request)
            .await
            .map_err(|e| Error::from(e).with_url(outgoing.url.clone()))?;
        let status = response.status();
        let location = match status {
            StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT => response
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| outgoing.url.join(location).ok()),
            _ => None,
        };
        let Some(next) = location else {
            return Ok(Received {
                response,
                url: outgoing.url.clone(),
            });
        };
        if !matches!(next.scheme(), "http" | "https") {
            return Err(Error::transport(
                TransportErrorKind::Redirect,
                format!(
                    "refused a redirect to a non-HTTP scheme ({})",
                    next.scheme()
                ),
            )
            .with_url(outgoing.url.clone()));
        }
        let mut outgoing = redirected.take().unwrap_or_else(|| first.clone());
        let to_get = status == StatusCode::SEE_OTHER && outgoing.method != Method::HEAD
            || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                && outgoing.method == Method::POST;
        if to_get {
            outgoing.method = Method::GET;
            outgoing.body = Bytes::new();
            // Every `content-*` header described the body that is gone.
            let described: Vec<_> = outgoing
                .headers
                .keys()
                .filter(|name| name.as_str().starts_with("content-"))
                .cloned()
                .collect();
            for name in described {
                outgoing.headers.remove(name);
            }
        }
        if !same_origin(&outgoing.url, &next) {
            // An allow-list: only headers known to carry no credential cross origins.
            headers::retain_safe(&mut outgoing.headers);
            // And never what an auth strategy added, whatever its name.
            for name in std::mem::take(&mut outgoing.credential_headers) {
                outgoing.headers.remove(name);
            }
        }
        outgoing.uri = uri_of(&next)?;
        outgoing.url = next;
        redirected = Some(outgoing);
    }
    let last = redirected.as_ref().unwrap_or(first);
    Err(Error::transport(
        TransportErrorKind::Redirect,
        format!("too many redirects (more than {MAX_REDIRECTS})"),
    )
    .with_url(last.url.clone()))
}
