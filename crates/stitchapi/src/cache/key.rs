//! The cache key: a canonical JSON string of the resolved request, hashed to 32 hex digits.
//!
//! The canonical object has sorted keys: `b` (body), `c` (digest of the keyed headers), `h`
//! (vary headers), `m` (method), `p` (principal), `u` (normalised URL), `x` (`"k2"`, the
//! key-schema version). Absent parts are left out, so a request without keyed headers has the
//! reference's key. A JSON body enters as its canonical JSON (keys sorted recursively,
//! integral floats written as integers); a UTF-8 body as a string; other bytes as
//! `"base64:<standard base64>"`. The hash is XXH64(seed 0) ++ XXH64(seed 0x9E3779B185EBCA87)
//! of the UTF-8 string, each as 16 lowercase hex digits, as in the TypeScript reference.
//!
//! Which headers enter follows [`crate::headers`]: every header that is not safe is *keyed*
//! (declared on the seam or stitch or set on the call), unless the declaration ignores it or
//! the engine generated it (the idempotency key). Keyed headers enter `c` as the 32-hex hash
//! of their canonical object `{"<name>":["<value>",...],...}` (names sorted, values in order;
//! a value that is not UTF-8 as `"base64:..."`), so their values are never in clear even in
//! the canonical string. `h` holds the values of the safe headers named in `vary`, in clear.

use std::fmt::Write as _;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;
use xxhash_rust::xxh64::xxh64;

use super::CachePolicy;
use super::entry::VariantList;
use crate::event::BypassReason;
use crate::headers;
use crate::tenancy::Tenancy;

const SEED_2: u64 = 0x9E37_79B1_85EB_CA87;

/// The resolved request a key is derived from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRequest<'a> {
    /// The method.
    pub(crate) method: &'a Method,
    /// The final URL (after template expansion and query).
    pub(crate) url: &'a Url,
    /// The request headers as they will be sent.
    pub(crate) headers: &'a HeaderMap,
    /// The request body as it will be sent (empty for none).
    pub(crate) body: &'a [u8],
    /// The principal bound with `seam.as_principal(..)`, if any.
    pub(crate) principal: Option<&'a str>,
    /// A header the engine generated for this call (the idempotency key): it never enters
    /// the key, or no two calls would share one.
    pub(crate) generated: Option<&'a HeaderName>,
    /// Whether an auth strategy applies to this call. The key is derived before auth is
    /// applied (auth works on a per-attempt copy), so what a strategy adds never enters it.
    pub(crate) credentialed: bool,
}

/// Why a request is not cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]

pub(crate) enum Bypass {
    /// The method is not in `methods`.
    Method,
    /// Principal tenancy, credentials, and no principal bound: fails closed.
    Credentialed,
}

impl Bypass {
    /// The public reason.
    pub(crate) fn reason(self) -> BypassReason {
        match self {
            Bypass::Method => BypassReason::Method,
            Bypass::Credentialed => BypassReason::CredentialsWithoutPrincipal,
        }
    }
}

/// A request's cache identity: 32 hex digits. Never contains input text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) hex: String,
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheKey({})", self.hex)
    }
}

/// The reference's 32-hex hash of a canonical string.
pub(crate) fn hash32(canonical: &str) -> String {
    let mut out = String::with_capacity(32);
    let _ = write!(
        out,
        "{:016x}{:016x}",
        xxh64(canonical.as_bytes(), 0),
        xxh64(canonical.as_bytes(), SEED_2)
    );
    out
}

/// Derives the key, or says why the request bypasses the cache.
pub(crate) fn derive(policy: &CachePolicy, req: &KeyRequest<'_>) -> Result<CacheKey, Bypass> {
    if !policy.methods.contains(req.method) {
        return Err(Bypass::Method);
    }
    let principal = match policy.tenancy {
        Tenancy::App => None,
        Tenancy::Principal => match req.principal {
            Some(p) => Some(p),
            // Headers set directly are keyed (as digests); what an auth strategy adds is not,
            // so only the principal can keep its callers apart.
            None if req.credentialed => return Err(Bypass::Credentialed),
            None => None,
        },
    };
    Ok(CacheKey {
        hex: hash32(&canonical(policy, req, principal)),
    })
}

/// The canonical string (sorted keys: b, c, h, m, p, u, x).
pub(crate) fn canonical(
    policy: &CachePolicy,
    req: &KeyRequest<'_>,
    principal: Option<&str>,
) -> String {
    let mut out = String::with_capacity(96 + req.body.len());
    out.push('{');
    if !req.body.is_empty() {
        out.push_str("\"b\":");
        write_body(&mut out, req.body);
        out.push(',');
    }
    if let Some(digest) = keyed_headers_digest(policy, req) {
        out.push_str("\"c\":\"");
        out.push_str(&digest);
        out.push_str("\",");
    }
    let mut first = true;
    for name in policy.vary.iter().filter(|name| headers::is_safe(name)) {
        let mut values = req.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            continue;
        }
        out.push_str(if first { "\"h\":{" } else { "," });
        first = false;
        write_str(&mut out, name.as_str());
        out.push(':');
        let joined: Vec<String> = values
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        write_str(&mut out, &joined.join(", "));
    }
    if !first {
        out.push_str("},");
    }
    out.push_str("\"m\":");
    write_str(&mut out, req.method.as_str());
    if let Some(p) = principal {
        out.push_str(",\"p\":");
        write_str(&mut out, p);
    }
    out.push_str(",\"u\":");
    write_str(&mut out, &normalise_url(req.url));
    out.push_str(",\"x\":\"k2\"}");
    out
}

/// Whether `name` enters the key as part of the `c` digest.
fn is_keyed(policy: &CachePolicy, req: &KeyRequest<'_>, name: &HeaderName) -> bool {
    !headers::is_safe(name) && !policy.ignored.contains(name) && req.generated != Some(name)
}

/// The 32-hex hash of the keyed headers' canonical object, or `None` when there are none.
fn keyed_headers_digest(policy: &CachePolicy, req: &KeyRequest<'_>) -> Option<String> {
    let mut names: Vec<&HeaderName> = req
        .headers
        .keys()
        .filter(|name| is_keyed(policy, req, name))
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut inner = String::with_capacity(64 * names.len());
    inner.push('{');
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            inner.push(',');
        }
        write_str(&mut inner, name.as_str());
        inner.push_str(":[");
        for (j, value) in req.headers.get_all(name).iter().enumerate() {
            if j > 0 {
                inner.push(',');
            }
            write_header_value(&mut inner, value);
        }
        inner.push(']');
    }
    inner.push('}');
    Some(hash32(&inner))
}

/// A header value as a JSON string: its text, or `"base64:..."` when it is not UTF-8 (so two
/// different byte strings never collapse into one).
fn write_header_value(out: &mut String, value: &HeaderValue) {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) if !text.starts_with("base64:") => write_str(out, text),
        _ => {
            out.push_str("\"base64:");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(value.as_bytes()));
            out.push('"');
        }
    }
}

/// The key of one variant of a response with `Vary`: the list's id and the request's values
/// of the listed headers (an absent header is `null`, distinct from an empty one), hashed like
/// a request key. A header that is not [safe](crate::headers) enters as the hash of its
/// values, never in clear.
pub(crate) fn variant(list: &VariantList, headers: &HeaderMap) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"h\":{");
    for (i, name) in list.names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, name.as_str());
        out.push(':');
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            out.push_str("null");
        } else if crate::headers::is_safe(name) {
            let joined: Vec<String> = values
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            write_str(&mut out, &joined.join(", "));
        } else {
            let mut raw = String::from("[");
            for (j, value) in values.enumerate() {
                if j > 0 {
                    raw.push(',');
                }
                write_header_value(&mut raw, value);
            }
            raw.push(']');
            write_str(&mut out, &hash32(&raw));
        }
    }
    out.push_str("},\"id\":");
    write_str(&mut out, &list.id);
    out.push('}');
    hash32(&out)
}

/// `scheme://host[:port]/path[?query]`: lowercase host, default port and fragment dropped,
/// user-info never included.
pub(crate) fn normalise_url(url: &Url) -> String {
    let mut s = String::with_capacity(url.as_str().len());
    s.push_str(url.scheme());
    s.push_str("://");
    if let Some(host) = url.host_str() {
        s.push_str(&host.to_ascii_lowercase());
    }
    if let Some(port) = url.port() {
        let _ = write!(s, ":{port}");
    }
    s.push_str(url.path());
    if let Some(q) = url.query().filter(|q| !q.is_empty()) {
        s.push('?');
        s.push_str(q);
    }
    s
}

fn write_str(out: &mut String, s: &str) {
    // serde_json escapes like JSON.stringify for well-formed strings.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("null"),
    }
}

fn write_body(out: &mut String, body: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        write_value(out, &value);
    } else if let Ok(text) = std::str::from_utf8(body) {
        write_str(out, text);
    } else {
        out.push_str("\"base64:");
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(body));
        out.push('"');
    }
}

fn write_value(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if !f.is_finite() {
                    out.push_str("null");
                } else if f.fract() == 0.0 && f.abs() < 1e21 {
                    let _ = write!(out, "{f:.0}");
                } else {
                    let _ = write!(out, "{n}");
                }
            } else {
                let _ = write!(out, "{n}");
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, &map[k]);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;

    fn policy(cache: Cache) -> CachePolicy {
        cache.resolve("cache").unwrap()
    }

    struct Req {
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Vec<u8>,
        principal: Option<&'static str>,
        credentialed: bool,
    }

    fn req(url: &str) -> Req {
        Req {
            method: Method::GET,
            url: Url::parse(url).unwrap(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            principal: None,
            credentialed: false,
        }
    }

    fn key(p: &CachePolicy, r: &Req) -> Result<CacheKey, Bypass> {
        derive(
            p,
            &KeyRequest {
                method: &r.method,
                url: &r.url,
                headers: &r.headers,
                body: &r.body,
                principal: r.principal,
                generated: None,
                credentialed: r.credentialed,
            },
        )
    }

    const PINNED: &str = "e9c62d168f05693b884e84d01e6a5a46";

    #[test]
    fn hash_is_two_xxh64_in_hex() {
        // XXH64("", 0) is the published empty-input vector.
        assert!(hash32("").starts_with("ef46db3751d8e999"));
        // XXH64("abc", 0), the xxHash sanity vector.
        assert!(hash32("abc").starts_with("44bc2cf5ad770999"));
        assert_eq!(hash32("abc").len(), 32);
        // Pinned: a change here changes every key already in a store.
        assert_eq!(hash32(r#"{"m":"GET","u":"http://h/","x":"k2"}"#), PINNED);
        assert_ne!(hash32("abc"), hash32("abd"));
    }

    #[test]
    fn canonical_form_matches_the_reference_layout() {
        let p = policy(Cache::ttl("1m").vary(["accept-language"]));
        let mut r = req("HTTPS://API.Example.com:443/v1/users?b=2&a=1#frag");
        r.headers.insert("accept-language", "en".parse().unwrap());
        r.body = br#"{"z":1.0,"a":[1,{"d":2,"c":null}]}"#.to_vec();
        let k = KeyRequest {
            method: &r.method,
            url: &r.url,
            headers: &r.headers,
            body: &r.body,
            principal: None,
            generated: None,
            credentialed: false,
        };
        assert_eq!(
            canonical(&p, &k, Some("alice")),
            r#"{"b":{"a":[1,{"c":null,"d":2}],"z":1},"h":{"accept-language":"en"},"m":"GET","p":"alice","u":"https://api.example.com/v1/users?b=2&a=1","x":"k2"}"#
        );
        let plain = req("http://h/");
        let k = KeyRequest {
            method: &plain.method,
            url: &plain.url,
            headers: &plain.headers,
            body: &[],
            principal: None,
            generated: None,
            credentialed: false,
        };
        let canon = canonical(&p, &k, None);
        assert_eq!(canon, r#"{"m":"GET","u":"http://h/","x":"k2"}"#);
        assert_eq!(key(&p, &plain).unwrap().hex, hash32(&canon));
        // Safe headers leave the reference's key as it is.
        let mut safe = req("http://h/");
        for (name, value) in [("accept", "application/json"), ("user-agent", "app/1")] {
            safe.headers.insert(name, value.parse().unwrap());
        }
        assert_eq!(key(&p, &safe).unwrap().hex, hash32(&canon));
        // Keyed headers enter as `c`, the hash of their own canonical object (pinned layout).
        let mut token = req("http://h/");
        token.headers.insert("x-auth-token", "t".parse().unwrap());
        token.headers.append("x-auth-token", "u".parse().unwrap());
        token
            .headers
            .insert("accept", "application/json".parse().unwrap());
        let k = KeyRequest {
            method: &token.method,
            url: &token.url,
            headers: &token.headers,
            body: &[],
            principal: None,
            generated: None,
            credentialed: false,
        };
        let digest = hash32(r#"{"x-auth-token":["t","u"]}"#);
        assert_eq!(
            canonical(&p, &k, None),
            format!(r#"{{"c":"{digest}","m":"GET","u":"http://h/","x":"k2"}}"#)
        );
    }

    #[test]
    fn key_is_stable_and_normalises_the_url() {
        let p = policy(Cache::ttl("1m"));
        let a = key(&p, &req("https://api.example.com/x?q=1")).unwrap();
        assert_eq!(
            a,
            key(&p, &req("https://API.EXAMPLE.COM:443/x?q=1#top")).unwrap()
        );
        assert_eq!(
            a,
            key(&p, &req("https://user:pw@api.example.com/x?q=1")).unwrap()
        );
        assert_ne!(
            a,
            key(&p, &req("https://api.example.com:8443/x?q=1")).unwrap()
        );
        assert_ne!(a, key(&p, &req("http://api.example.com/x?q=1")).unwrap());
        assert_ne!(a, key(&p, &req("https://api.example.com/x?q=2")).unwrap());
        assert_ne!(a, key(&p, &req("https://api.example.com/X?q=1")).unwrap());
        assert_eq!(a.hex.len(), 32);
        assert!(a.hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!format!("{a:?}").contains("example"));
    }

    #[test]
    fn method_body_and_vary_are_part_of_the_key() {
        let p = policy(
            Cache::ttl("1m")
                .methods(["GET", "POST"])
                .vary(["accept-language"]),
        );
        let base = key(&p, &req("https://h/x")).unwrap();
        let mut post = req("https://h/x");
        post.method = Method::POST;
        assert_ne!(base, key(&p, &post).unwrap());
        let mut b1 = req("https://h/x");
        b1.method = Method::POST;
        b1.body = br#"{"a":1,"b":2}"#.to_vec();
        let mut b2 = req("https://h/x");
        b2.method = Method::POST;
        b2.body = br#"{ "b":2, "a":1.0 }"#.to_vec();
        assert_eq!(key(&p, &b1).unwrap(), key(&p, &b2).unwrap());
        b2.body = br#"{"a":1,"b":3}"#.to_vec();
        assert_ne!(key(&p, &b1).unwrap(), key(&p, &b2).unwrap());
        let mut bin = req("https://h/x");
        bin.body = vec![0xff, 0xfe];
        assert_ne!(base, key(&p, &bin).unwrap());

        let mut en = req("https://h/x");
        en.headers.insert("accept-language", "en".parse().unwrap());
        let mut fr = req("https://h/x");
        fr.headers.insert("accept-language", "fr".parse().unwrap());
        assert_ne!(key(&p, &en).unwrap(), key(&p, &fr).unwrap());
        assert_ne!(base, key(&p, &en).unwrap());
        // A safe header not in `vary` does not matter.
        let mut other = req("https://h/x");
        other.headers.insert("accept", "text/csv".parse().unwrap());
        assert_eq!(base, key(&p, &other).unwrap());
        // HEAD is not in this list.
        let mut head = req("https://h/x");
        head.method = Method::HEAD;
        assert_eq!(key(&p, &head), Err(Bypass::Method));
    }

    #[test]
    fn variants_are_keyed_by_the_listed_headers_only() {
        let list = VariantList::new(vec![http::HeaderName::from_static("accept-language")]);
        let with = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            variant(&list, &h)
        };
        let en = with(&[("accept-language", "en")]);
        assert_eq!(en, with(&[("accept-language", "en"), ("x-other", "1")]));
        assert_ne!(en, with(&[("accept-language", "fr")]));
        assert_ne!(with(&[]), with(&[("accept-language", "")]));
        assert_eq!(en.len(), 32);
        // Another list (another id) keys its variants apart.
        let other = VariantList::new(list.names.clone());
        let mut h = HeaderMap::new();
        h.insert("accept-language", "en".parse().unwrap());
        assert_ne!(variant(&other, &h), en);
    }

    #[test]
    fn every_header_that_is_not_safe_is_keyed_as_a_digest() {
        let p = policy(Cache::ttl("1m"));
        let anon = key(&p, &req("https://h/x")).unwrap();
        let with = |pairs: &[(&str, &str)]| {
            let mut r = req("https://h/x");
            for (name, value) in pairs {
                r.headers.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            r
        };
        for name in [
            "authorization",
            "cookie",
            "x-api-key",
            "proxy-authorization",
            "x-auth-token",
            "private-token",
            "x-amz-security-token",
            "x-request-id",
        ] {
            let alice = with(&[(name, "alice-secret")]);
            let bob = with(&[(name, "bob-secret")]);
            let (ka, kb) = (key(&p, &alice).unwrap(), key(&p, &bob).unwrap());
            assert_ne!(ka, kb, "{name}");
            assert_ne!(ka, anon, "{name}");
            assert_eq!(
                ka,
                key(&p, &with(&[(name, "alice-secret")])).unwrap(),
                "{name}"
            );
            let r = &alice;
            let canon = canonical(
                &p,
                &KeyRequest {
                    method: &r.method,
                    url: &r.url,
                    headers: &r.headers,
                    body: &r.body,
                    principal: None,
                    generated: None,
                    credentialed: false,
                },
                None,
            );
            assert!(!canon.contains("alice-secret"), "{canon}");
            assert!(canon.starts_with("{\"c\":\""), "{canon}");
        }
        // Names and values are both part of it; order of insertion is not.
        assert_ne!(
            key(&p, &with(&[("x-a", "1")])).unwrap(),
            key(&p, &with(&[("x-b", "1")])).unwrap()
        );
        assert_eq!(
            key(&p, &with(&[("x-a", "1"), ("x-b", "2")])).unwrap(),
            key(&p, &with(&[("x-b", "2"), ("x-a", "1")])).unwrap()
        );
        // Repeated values keep their order and never merge into one.
        assert_ne!(
            key(&p, &with(&[("x-a", "1"), ("x-a", "2")])).unwrap(),
            key(&p, &with(&[("x-a", "2"), ("x-a", "1")])).unwrap()
        );
        assert_ne!(
            key(&p, &with(&[("x-a", "1, 2")])).unwrap(),
            key(&p, &with(&[("x-a", "1"), ("x-a", "2")])).unwrap()
        );
        // Ignored headers and the generated idempotency key stay out.
        let ignoring = policy(Cache::ttl("1m").ignore_headers(["X-Request-Id"]));
        assert_eq!(
            key(&ignoring, &with(&[("x-request-id", "r1")])).unwrap(),
            key(&ignoring, &with(&[("x-request-id", "r2")])).unwrap()
        );
        let idem = http::HeaderName::from_static("idempotency-key");
        let generated = |value: &str| {
            let r = with(&[("idempotency-key", value)]);
            derive(
                &p,
                &KeyRequest {
                    method: &r.method,
                    url: &r.url,
                    headers: &r.headers,
                    body: &r.body,
                    principal: None,
                    generated: Some(&idem),
                    credentialed: false,
                },
            )
            .unwrap()
        };
        assert_eq!(generated("u1"), generated("u2"));
        assert_eq!(generated("u1"), anon);
        // A safe header named in `vary` enters in clear; one that is not safe stays a digest.
        let varying = policy(Cache::ttl("1m").vary(["accept-language", "x-tenant"]));
        let r = with(&[("accept-language", "en"), ("x-tenant", "acme")]);
        let canon = canonical(
            &varying,
            &KeyRequest {
                method: &r.method,
                url: &r.url,
                headers: &r.headers,
                body: &r.body,
                principal: None,
                generated: None,
                credentialed: false,
            },
            None,
        );
        assert!(canon.contains(r#""h":{"accept-language":"en"}"#), "{canon}");
        assert!(!canon.contains("acme"), "{canon}");
    }

    #[test]
    fn header_values_that_are_not_utf8_never_collide() {
        let p = policy(Cache::ttl("1m"));
        let with = |value: &[u8]| {
            let mut r = req("https://h/x");
            r.headers
                .insert("x-token", http::HeaderValue::from_bytes(value).unwrap());
            key(&p, &r).unwrap()
        };
        assert_ne!(with(b"\xff\xfe"), with(b"\xfe\xff"));
        assert_ne!(with(b"\xff"), with("\u{fffd}".as_bytes()));
        assert_ne!(with(b"\xff"), with(b"base64:/w=="));
    }

    #[test]
    fn a_variant_key_hashes_values_that_are_not_safe() {
        let list = VariantList::new(vec![http::HeaderName::from_static("x-token")]);
        let of = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-token", value.parse().unwrap());
            variant(&list, &h)
        };
        assert_ne!(of("a"), of("b"));
        assert_eq!(of("a"), of("a"));
    }

    #[test]
    fn principal_tenancy_fails_closed_for_auth_strategies() {
        let p = policy(Cache::ttl("1m"));
        let anon = key(&p, &req("https://h/x")).unwrap();
        // An auth strategy applies and no principal is bound: bypass.
        let mut r = req("https://h/x");
        r.credentialed = true;
        assert_eq!(key(&p, &r), Err(Bypass::Credentialed));
        // Principals are kept apart.
        let mut alice = req("https://h/x");
        alice.principal = Some("alice");
        alice.credentialed = true;
        let mut bob = req("https://h/x");
        bob.principal = Some("bob");
        bob.credentialed = true;
        assert_ne!(key(&p, &alice).unwrap(), key(&p, &bob).unwrap());
        assert_ne!(key(&p, &alice).unwrap(), anon);

        // App tenancy: one entry for every principal; headers set directly still count.
        let app = policy(Cache::ttl("1m").tenancy(Tenancy::App));
        let mut cred = req("https://h/x");
        cred.principal = Some("alice");
        cred.credentialed = true;
        assert_eq!(
            key(&app, &cred).unwrap(),
            key(&app, &req("https://h/x")).unwrap()
        );
        cred.headers
            .insert("authorization", "Bearer t".parse().unwrap());
        assert_ne!(
            key(&app, &cred).unwrap(),
            key(&app, &req("https://h/x")).unwrap()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Header names: a few safe ones, a few that carry secrets, and random custom ones.
        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("accept".to_owned()),
                Just("user-agent".to_owned()),
                Just("authorization".to_owned()),
                Just("x-auth-token".to_owned()),
                Just("private-token".to_owned()),
                "x-[a-z]{1,6}",
            ]
        }

        fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
            prop::collection::vec((name(), "[A-Za-z0-9]{0,8}"), 0..6)
        }

        fn map(pairs: &[(String, String)]) -> HeaderMap {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    // A marker no other part of the canonical string contains.
                    format!("SECRET{value}").parse().unwrap(),
                );
            }
            map
        }

        /// What the key must depend on: every header that is not safe, values in order.
        fn keyed(map: &HeaderMap) -> Vec<(String, Vec<Vec<u8>>)> {
            let mut names: Vec<&http::HeaderName> =
                map.keys().filter(|n| !headers::is_safe(n)).collect();
            names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            names
                .into_iter()
                .map(|n| {
                    let values = map
                        .get_all(n)
                        .iter()
                        .map(|v| v.as_bytes().to_vec())
                        .collect();
                    (n.as_str().to_owned(), values)
                })
                .collect()
        }

        fn canon(p: &CachePolicy, headers: &HeaderMap) -> String {
            let url = Url::parse("https://h/x").unwrap();
            canonical(
                p,
                &KeyRequest {
                    method: &Method::GET,
                    url: &url,
                    headers,
                    body: b"",
                    principal: None,
                    generated: None,
                    credentialed: false,
                },
                None,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Two requests share a key exactly when their headers that are not safe are
            /// equal, and no value of such a header is ever in the canonical string.
            #[test]
            fn keys_follow_the_unsafe_headers_and_never_hold_their_values(
                a in headers(),
                b in headers(),
            ) {
                let p = policy(Cache::ttl("1m"));
                let (ma, mb) = (map(&a), map(&b));
                let (ca, cb) = (canon(&p, &ma), canon(&p, &mb));
                prop_assert_eq!(keyed(&ma) == keyed(&mb), ca == cb);
                prop_assert!(!ca.contains("SECRET"), "{}", ca);
            }
        }
    }
}
