//! Redirects, followed by the engine so credentials never cross origins: on a cross-origin
//! hop only the headers in [`crate::headers::SAFE_HEADERS`] are forwarded (an allow-list).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};
use url::Url;

use cookie_store::CookieStore;

use super::{DynTransport, RedirectHop, TransportErrorKind, TransportRequest};
use crate::cookies;
use crate::error::{Error, RedactedUrl};
use crate::headers;
use crate::policy::Redirects;

/// One request as the engine sends it: buffered, so it can be resent and redirected. Its
/// `Debug` redacts headers that are not safe and shows the body's length only.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: Url,
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

/// What an attempt got back: the response, the URL it finally came from when a redirect
/// moved it, and the redirects followed on the way.
#[derive(Debug)]
pub(crate) struct Received {
    pub response: http::Response<Bytes>,
    /// The URL the response came from; `None`: the URL of the request sent (no redirect), which
    /// the caller holds, so it is not copied.
    pub redirected_to: Option<Url>,
    pub redirects: Vec<RedirectHop>,
}

impl Received {
    /// The URL the response came from, given the URL of the request that was sent.
    pub fn url<'a>(&'a self, sent: &'a Url) -> &'a Url {
        self.redirected_to.as_ref().unwrap_or(sent)
    }

    /// [`url`](Self::url), owned.
    pub fn into_url(redirected_to: Option<Url>, sent: &Url) -> Url {
        redirected_to.unwrap_or_else(|| sent.clone())
    }
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

fn to_request(outgoing: &Outgoing) -> TransportRequest {
    TransportRequest {
        method: outgoing.method.clone(),
        url: outgoing.url.clone(),
        headers: outgoing.headers.clone(),
        body: outgoing.body.clone(),
        body_limit: Some(outgoing.body_limit),
    }
}

/// Sends `outgoing`, following as many redirects as `policy` allows. On a cross-origin hop
/// (scheme, host or port differs) only [safe headers](crate::headers) are kept, and never one
/// an auth strategy added; 303 (and 301/302 after a POST) turn into a bodiless GET. Cookies a
/// redirect sets are sent on the chain's later hops where they match, as a browser does, and
/// nowhere else. Errors name the last URL sent.
pub(crate) async fn send(
    transport: &DynTransport,
    first: &Outgoing,
    policy: Redirects,
) -> Result<Received, Error> {
    // Cloned only when a redirect changes the request; boxed so that a call that is not
    // redirected does not carry its room.
    let mut redirected: Option<Box<Outgoing>> = None;
    let mut hops: Vec<RedirectHop> = Vec::new();
    // Made only when a redirect sets a cookie.
    let mut jar: Option<Box<CookieStore>> = None;
    loop {
        let outgoing = redirected.as_deref().unwrap_or(first);
        let request = to_request(outgoing);
        let mut response = transport
            .send(request)
            .await
            .map_err(|e| Error::from(e).with_url(outgoing.url.clone()))?;
        headers::hide_set_cookies(response.headers_mut());
        let status = response.status();
        let location = match status {
            StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
                if policy.follows() =>
            {
                response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|location| outgoing.url.join(location).ok())
            }
            _ => None,
        };
        let Some(next) = location else {
            return Ok(Received {
                response,
                redirected_to: redirected.map(|outgoing| outgoing.url),
                redirects: hops,
            });
        };
        let refuse = |problem: String| {
            Error::transport(TransportErrorKind::Redirect, problem).with_url(outgoing.url.clone())
        };
        if hops.len() >= policy.max() {
            return Err(refuse(format!(
                "too many redirects (more than {}); the next was to {}",
                policy.max(),
                RedactedUrl(&next)
            )));
        }
        if !matches!(next.scheme(), "http" | "https") {
            return Err(refuse(format!(
                "refused a redirect to a non-HTTP scheme ({})",
                next.scheme()
            )));
        }
        if uri_of(&next).is_err() {
            return Err(refuse(format!(
                "the redirect target {} is not a valid URI",
                RedactedUrl(&next)
            )));
        }
        let (parts, _) = response.into_parts();
        if parts.headers.contains_key(header::SET_COOKIE) {
            let jar = jar.get_or_insert_with(Box::default);
            cookies::keep(jar, &parts.headers, &outgoing.url, |name, why| {
                tracing::debug!(cookie = %name, reason = why, "refused a Set-Cookie of a redirect");
            });
        }
        hops.push(RedirectHop {
            status,
            url: outgoing.url.clone(),
            headers: parts.headers,
        });
        let mut outgoing = redirected.take().unwrap_or_else(|| Box::new(first.clone()));
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
        if let Some(jar) = &jar {
            for (name, value) in cookies::to_send(jar, &next) {
                // The jar only holds cookies that parsed from a header value.
                let _ = cookies::add_to_request(&mut outgoing.headers, name, value);
            }
        }
        outgoing.url = next;
        redirected = Some(outgoing);
    }
}
