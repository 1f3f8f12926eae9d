//! The cookie rules shared by cookie sessions and redirect chains: which `Set-Cookie`s are
//! kept (the RFC 6265bis storage rules `cookie_store` does not apply itself) and how kept
//! cookies join a request's `Cookie` header.

use cookie_store::{CookieDomain, CookieStore, RawCookie};
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue, InvalidHeaderValue, SET_COOKIE};
use url::{Host, Url};

/// Keeps the admitted `Set-Cookie`s of a response from `url` in `jar` (see [`admit`]);
/// `refused` hears the name of each refused cookie and why.
pub(crate) fn keep(
    jar: &mut CookieStore,
    headers: &HeaderMap,
    url: &Url,
    mut refused: impl FnMut(&str, &'static str),
) {
    for value in headers.get_all(SET_COOKIE) {
        let Some(cookie) = value
            .to_str()
            .ok()
            .and_then(|text| RawCookie::parse(text).ok())
        else {
            continue;
        };
        match admit(cookie, url) {
            Ok(cookie) => {
                let _ = jar.insert_raw(&cookie, url);
            }
            Err((name, why)) => refused(&name, why),
        }
    }
}

/// The cookies of `jar` to send to `url`: unexpired, matching its host, path and scheme, and
/// never one scoped to a public suffix other than `url`'s own host.
pub(crate) fn to_send<'j>(
    jar: &'j CookieStore,
    url: &Url,
) -> impl Iterator<Item = (&'j str, &'j str)> {
    jar.matches(url)
        .into_iter()
        // A jar stored before public suffixes were refused may still hold such a cookie.
        .filter(move |cookie| !is_wide(&cookie.domain, url))
        .map(|cookie| cookie.name_value())
}

/// Adds `name=value` to the request's `Cookie` header (one header, `; `-separated), replacing
/// a cookie of the same name; the header is marked sensitive.
pub(crate) fn add_to_request(
    headers: &mut HeaderMap,
    name: &str,
    value: &str,
) -> Result<(), InvalidHeaderValue> {
    let mut parts: Vec<&str> = Vec::new();
    let existing: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    for header in &existing {
        let Ok(text) = header.to_str() else { continue };
        for part in text
            .split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            if part.split('=').next().unwrap_or("").trim() != name {
                parts.push(part);
            }
        }
    }
    let pair = format!("{name}={value}");
    parts.push(&pair);
    let mut header = HeaderValue::from_str(&parts.join("; "))?;
    header.set_sensitive(true);
    headers.insert(COOKIE, header);
    Ok(())
}

/// The storage rules of RFC 6265bis that `cookie_store` does not apply itself, checked before a
/// login's cookie enters the jar. `Err` names the cookie and why it was refused.
///
/// - A `Domain` that is a public suffix (`com`, `co.uk`, `github.io`, or any single label, by
///   the list's implicit `*` rule) is refused, unless it is the login's own host, where the
///   cookie becomes host-only. The list is the `psl` crate's, compiled in: nothing is fetched
///   at run time, and it is as fresh as the `psl` version the build resolved.
/// - `Secure` is accepted only from a secure origin (`https`, or loopback and `localhost`, as
///   the jar itself counts them when it replays).
/// - `__Secure-` (any case) requires `Secure`; `__Host-` requires `Secure`, no `Domain` and
///   `Path=/`.
///
/// The rest (domain and path matching, expiry, `HttpOnly`) is `cookie_store`'s, which clamps
/// a huge `Max-Age` or a far `Expires` to the year 9999 and takes a negative `Max-Age` as
/// expired.
pub(crate) fn admit<'c>(
    mut cookie: RawCookie<'c>,
    url: &Url,
) -> Result<RawCookie<'c>, (String, &'static str)> {
    let refuse = |cookie: &RawCookie<'_>, why| Err((cookie.name().to_owned(), why));
    if cookie.domain() == Some("") {
        // `Domain=` or `Domain=.`: ignored, as RFC 6265 advises.
        cookie.unset_domain();
    }
    let secure = cookie.secure() == Some(true);
    if secure && !is_secure_origin(url) {
        return refuse(&cookie, "Secure from an insecure origin");
    }
    let prefixed = |prefix: &str| {
        cookie
            .name()
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if prefixed("__Secure-") && !secure {
        return refuse(&cookie, "a __Secure- cookie without Secure");
    }
    if prefixed("__Host-") && !(secure && cookie.domain().is_none() && cookie.path() == Some("/")) {
        return refuse(
            &cookie,
            "a __Host- cookie needs Secure, Path=/ and no Domain",
        );
    }
    if let Some(domain) = cookie.domain() {
        match Host::parse(domain) {
            Ok(Host::Domain(domain)) if is_public_suffix(&domain) => {
                if url.host_str() == Some(domain.as_str()) {
                    cookie.unset_domain();
                } else {
                    return refuse(&cookie, "its Domain is a public suffix");
                }
            }
            Ok(_) => {}
            Err(_) => return refuse(&cookie, "its Domain is not a host name"),
        }
    }
    Ok(cookie)
}

/// Whether `domain` (lowercase ASCII) is a public suffix: listed, or a single label.
pub(crate) fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes()).is_some_and(|suffix| suffix.as_bytes().len() == domain.len())
}

/// Whether a stored cookie's domain is a public suffix other than `url`'s own host.
fn is_wide(domain: &CookieDomain, url: &Url) -> bool {
    matches!(domain, CookieDomain::Suffix(domain)
        if is_public_suffix(domain) && url.host_str() != Some(domain.as_str()))
}

/// `https`, or a loopback or `localhost` host: the origins `cookie_store` sends `Secure`
/// cookies to.
fn is_secure_origin(url: &Url) -> bool {
    url.scheme() == "https"
        || match url.host() {
            Some(Host::Domain(host)) => host == "localhost",
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}
