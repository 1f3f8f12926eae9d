//! The cache key: a canonical JSON string of the resolved request, hashed to 32 hex digits.
//!
//! The canonical object has sorted keys: `b` (body), `h` (vary headers), `m` (method), `p`
//! (principal), `u` (normalised URL), `x` (`"k2"`, the key-schema version). Absent parts are
//! left out. A JSON body enters as its canonical JSON (keys sorted recursively, integral
//! floats written as integers); a UTF-8 body as a string; other bytes as
//! `"base64:<standard base64>"`. The hash is XXH64(seed 0) ++ XXH64(seed 0x9E3779B185EBCA87)
//! of the UTF-8 string, each as 16 lowercase hex digits, as in the TypeScript reference.

use std::fmt::Write as _;

use base64::Engine as _;
use http::{HeaderMap, Method};
use url::Url;
use xxhash_rust::xxh64::xxh64;

use super::CachePolicy;
use super::entry::VariantList;
use crate::tenancy::Tenancy;

/// Headers that never enter a key: credentials and per-request tracing.
pub(crate) const NEVER_KEY_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "traceparent",
    "tracestate",
    "x-request-id",
    "x-correlation-id",
    "date",
];

/// Request headers that carry credentials: their presence makes a request credentialed.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

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
    /// The event detail, e.g. `"bypass: method"`.
    pub(crate) fn detail(self) -> &'static str {
        match self {
            Bypass::Method => "bypass: method not cached",
            Bypass::Credentialed => "bypass: credentials without a principal",
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
            None if is_credentialed(req) => return Err(Bypass::Credentialed),
            None => None,
        },
    };
    Ok(CacheKey {
        hex: hash32(&canonical(policy, req, principal)),
    })
}

fn is_credentialed(req: &KeyRequest<'_>) -> bool {
    req.credentialed
        || CREDENTIAL_HEADERS
            .iter()
            .any(|h| req.headers.contains_key(*h))
}

/// The canonical string (sorted keys: b, h, m, p, u, x).
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
    let mut first = true;
    for name in &policy.vary {
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

/// The key of one variant of a response with `Vary`: the list's id and the request's values
/// of the listed headers (an absent header is `null`, distinct from an empty one), hashed like
/// a request key.
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
        } else {
            let joined: Vec<String> = values
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            write_str(&mut out, &joined.join(", "));
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
            credentialed: false,
        };
        let canon = canonical(&p, &k, None);
        assert_eq!(canon, r#"{"m":"GET","u":"http://h/","x":"k2"}"#);
        assert_eq!(key(&p, &plain).unwrap().hex, hash32(&canon));
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
        // A header not in `vary` does not matter.
        let mut other = req("https://h/x");
        other.headers.insert("x-other", "1".parse().unwrap());
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
    fn credentials_never_enter_the_key_and_principal_tenancy_fails_closed() {
        let p = policy(Cache::ttl("1m").vary(["x-token"]));
        let anon = key(&p, &req("https://h/x")).unwrap();
        // Credential headers without a principal: bypass.
        for h in [
            "authorization",
            "cookie",
            "x-api-key",
            "proxy-authorization",
        ] {
            let mut r = req("https://h/x");
            r.headers.insert(h, "secret".parse().unwrap());
            assert_eq!(key(&p, &r), Err(Bypass::Credentialed), "{h}");
        }
        let mut r = req("https://h/x");
        r.credentialed = true;
        assert_eq!(key(&p, &r), Err(Bypass::Credentialed));
        // Principals are kept apart; credentials do not change the key.
        let mut alice = req("https://h/x");
        alice.principal = Some("alice");
        let mut alice_auth = req("https://h/x");
        alice_auth.principal = Some("alice");
        alice_auth
            .headers
            .insert("authorization", "Bearer t1".parse().unwrap());
        let mut bob = req("https://h/x");
        bob.principal = Some("bob");
        assert_eq!(key(&p, &alice).unwrap(), key(&p, &alice_auth).unwrap());
        assert_ne!(key(&p, &alice).unwrap(), key(&p, &bob).unwrap());
        assert_ne!(key(&p, &alice).unwrap(), anon);

        // App tenancy: one entry for everyone, credentials or not.
        let app = policy(Cache::ttl("1m").tenancy(Tenancy::App));
        let mut cred = req("https://h/x");
        cred.headers
            .insert("authorization", "Bearer t".parse().unwrap());
        cred.principal = Some("alice");
        assert_eq!(
            key(&app, &cred).unwrap(),
            key(&app, &req("https://h/x")).unwrap()
        );
    }
}
