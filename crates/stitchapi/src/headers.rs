//! Which request headers are safe: one list, used wherever a header may carry a secret.
//!
//! A header is **safe** when its standard meaning carries no credential, no session and no
//! per-user identity. The list is [`SAFE_HEADERS`], and it is short on purpose:
//!
//! | Header | Why it is safe |
//! |---|---|
//! | `accept`, `accept-encoding`, `accept-language` | content negotiation |
//! | `content-type`, `content-length`, `content-encoding`, `content-language` | describe the body |
//! | `cache-control`, `pragma` | cache directives |
//! | `user-agent` | names the client software |
//!
//! Every other header is treated as a possible secret, whatever its name: `authorization`,
//! `cookie`, `proxy-authorization`, `x-api-key`, `x-amz-security-token`, `x-auth-token`,
//! `private-token`, and any custom header. Conditional headers (`if-none-match`, ...) and
//! `range` are left out too: their values come from (and only mean something to) the origin
//! that served them, and ETags can track a user. `idempotency-key` is left out: it is not a
//! credential, but nothing says another origin should receive it.
//!
//! The list decides three things, the same way everywhere:
//!
//! - **Redirects.** On a cross-origin hop (scheme, host or port differs), only safe headers
//!   are forwarded. Every other header is dropped, however it was set (on the seam, the
//!   stitch or the call, or by an auth strategy), and stays dropped for the rest of the
//!   redirect chain, even if it leads back to the first origin. A same-origin hop keeps every
//!   header. A hop that turns the request into a GET (303, or 301/302 after a POST) drops the
//!   body and its `content-*` headers; a 307 or 308 resends both.
//! - **Cache keys.** Every header that is not safe enters the cache key, as one digest of
//!   the names and values (never in clear), so two calls whose headers differ never share an
//!   entry, unless the cache declaration lists the header in
//!   [`Cache::ignore_headers`](crate::Cache::ignore_headers). Safe headers stay out of the key
//!   unless named in [`Cache::vary`](crate::Cache::vary) or in the response's `Vary`.
//! - **Redaction.** `Debug` of an [`Input`](crate::Input), of config headers
//!   ([`DeclaredHeaders`]) and of [`redacted`] prints the values of safe headers only; every
//!   other value prints as `<redacted>`.
//!
//! ```
//! use http::header::{HeaderMap, HeaderName};
//! use stitchapi::headers;
//!
//! assert!(headers::is_safe(&HeaderName::from_static("accept-language")));
//! assert!(!headers::is_safe(&HeaderName::from_static("x-amz-security-token")));
//!
//! let mut map = HeaderMap::new();
//! map.insert("accept", "application/json".parse().unwrap());
//! map.insert("private-token", "glpat-s3cret".parse().unwrap());
//! let shown = format!("{:?}", headers::redacted(&map));
//! assert_eq!(shown, r#"{"accept": "application/json", "private-token": "<redacted>"}"#);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

use http::header::{self, HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

/// The headers known to carry no credential and no per-user identity (see the
/// [module docs](self) for what this decides). Lowercase, sorted.
pub static SAFE_HEADERS: &[HeaderName] = &[
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::CACHE_CONTROL,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::PRAGMA,
    header::USER_AGENT,
];

/// Whether `name` is in [`SAFE_HEADERS`].
///
/// ```
/// use http::header::HeaderName;
///
/// assert!(stitchapi::headers::is_safe(&http::header::ACCEPT));
/// assert!(!stitchapi::headers::is_safe(&HeaderName::from_static("x-api-key")));
/// ```
pub fn is_safe(name: &HeaderName) -> bool {
    SAFE_HEADERS.contains(name)
}

/// Headers whose standard or common meaning is a credential or a session: a cache declaration
/// may not ignore them (two users' entries would be shared).
pub(crate) const CREDENTIAL_HEADERS: [&str; 7] = [
    "authorization",
    "cookie",
    "private-token",
    "proxy-authorization",
    "x-amz-security-token",
    "x-api-key",
    "x-auth-token",
];

/// Whether the header spelled `name` (any case) is in [`SAFE_HEADERS`]. A string that is not
/// a header name is not safe.
fn is_safe_str(name: &str) -> bool {
    HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).is_ok_and(|n| is_safe(&n))
}

/// Marks every value that is not safe as sensitive (`HeaderValue::set_sensitive`): HTTP/2
/// header compression never indexes it, and `Debug` of the request prints `Sensitive`.
pub(crate) fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        value.set_sensitive(!is_safe(name));
    }
}

/// Marks a response's `Set-Cookie` values sensitive, so that `Debug` of a
/// [`Reply`](crate::Reply) or a [`RedirectHop`](crate::transport::RedirectHop) never prints a
/// session.
pub(crate) fn hide_set_cookies(headers: &mut HeaderMap) {
    // Every response passes here: a lookup first, since `entry` may grow the map.
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    if let http::header::Entry::Occupied(mut cookies) = headers.entry(header::SET_COOKIE) {
        for value in cookies.iter_mut() {
            value.set_sensitive(true);
        }
    }
}

/// Drops every header that is not safe (what a cross-origin redirect forwards).
pub(crate) fn retain_safe(headers: &mut HeaderMap) {
    let unsafe_names: Vec<HeaderName> = headers.keys().filter(|n| !is_safe(n)).cloned().collect();
    for name in unsafe_names {
        headers.remove(name);
    }
}

/// What `Debug` prints instead of a value that is not safe.
const REDACTED: &str = "<redacted>";

/// A `Debug` view of `headers` that prints the values of safe headers only.
///
/// ```
/// use http::HeaderMap;
///
/// let mut map = HeaderMap::new();
/// map.insert("x-api-key", "k-123".parse().unwrap());
/// assert_eq!(
///     format!("{:?}", stitchapi::headers::redacted(&map)),
///     r#"{"x-api-key": "<redacted>"}"#
/// );
/// ```
pub fn redacted(headers: &HeaderMap) -> RedactedHeaders<'_> {
    RedactedHeaders(headers)
}

/// The `Debug` view returned by [`redacted`].
#[derive(Clone, Copy)]
pub struct RedactedHeaders<'a>(&'a HeaderMap);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if is_safe(name) {
                map.entry(&name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
            } else {
                map.entry(&name.as_str(), &REDACTED);
            }
        }
        map.finish()
    }
}

/// The static headers of a config declaration (`headers = { x-app = "demo" }`): a map from
/// name to value whose `Debug` prints the values of [safe](self) headers only.
///
/// ```
/// use stitchapi::config::SeamConfig;
///
/// let config: SeamConfig = toml::from_str(r#"
///     base_url = "https://api.example.com"
///     headers = { accept = "application/json", x-api-key = "k-123" }
/// "#).unwrap();
/// assert_eq!(config.shared.headers["x-api-key"], "k-123");
/// let shown = format!("{config:?}");
/// assert!(shown.contains(r#""accept": "application/json""#));
/// assert!(!shown.contains("k-123"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeclaredHeaders(pub BTreeMap<String, String>);

impl DeclaredHeaders {
    /// Whether no header is declared.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for DeclaredHeaders {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for DeclaredHeaders {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<BTreeMap<String, String>> for DeclaredHeaders {
    fn from(map: BTreeMap<String, String>) -> Self {
        DeclaredHeaders(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for DeclaredHeaders {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        DeclaredHeaders(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a DeclaredHeaders {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for DeclaredHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if is_safe_str(name) {
                map.entry(name, value);
            } else {
                map.entry(name, &REDACTED);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_lowercase_sorted_and_standard() {
        let names: Vec<&str> = SAFE_HEADERS.iter().map(HeaderName::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for name in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "x-api-key",
            "x-amz-security-token",
            "x-auth-token",
            "private-token",
            "if-none-match",
            "range",
            "idempotency-key",
            "traceparent",
        ] {
            assert!(!is_safe(&HeaderName::from_static(name)), "{name}");
            assert!(!is_safe_str(name), "{name}");
        }
        assert!(is_safe_str("Accept-Language"));
        assert!(!is_safe_str("not a header"));
    }

    #[test]
    fn retain_safe_keeps_only_the_list() {
        let mut map = HeaderMap::new();
        map.insert("accept", "a/b".parse().unwrap());
        map.append("x-token", "1".parse().unwrap());
        map.append("x-token", "2".parse().unwrap());
        map.insert("user-agent", "ua".parse().unwrap());
        map.insert("cookie", "c=1".parse().unwrap());
        retain_safe(&mut map);
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "user-agent"]);
    }

    #[test]
    fn debug_views_redact_every_value_that_is_not_safe() {
        let mut map = HeaderMap::new();
        map.insert("content-type", "application/json".parse().unwrap());
        map.insert("x-custom-session", "sess-42".parse().unwrap());
        let shown = format!("{:?}", redacted(&map));
        assert!(shown.contains("application/json"), "{shown}");
        assert!(shown.contains("x-custom-session"), "{shown}");
        assert!(!shown.contains("sess-42"), "{shown}");

        let declared: DeclaredHeaders = [("User-Agent", "app/1"), ("X-Token", "t-9")]
            .into_iter()
            .collect();
        let shown = format!("{declared:?}");
        assert_eq!(shown, r#"{"User-Agent": "app/1", "X-Token": "<redacted>"}"#);
    }
}
