//! The stored entry: the raw response as JSON, readable by other tools.
//!
//! `{"s":200,"h":{"content-type":"application/json"},"v":<the JSON body>}`, or `"t":"<text>"`
//! for a UTF-8 body that is not JSON, or `"b":"<base64>"` for other bytes. A response that
//! varies on request headers (`Vary`) is stored as variants: the entry's key then holds the
//! variant list `{"vary":["accept-language"],"id":"<32 hex>"}`, and each variant is a response
//! entry under its own key. Anything else read back is corrupt: the caller treats it as a
//! miss and evicts it.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Response headers kept with an entry (never `set-cookie`).
pub(crate) const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-language",
    "etag",
    "last-modified",
    "link",
    "vary",
];

/// A response as cached: status, the kept headers, the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CachedResponse {
    /// The status.
    pub(crate) status: StatusCode,
    /// The kept headers (see [`KEPT_HEADERS`]).
    pub(crate) headers: HeaderMap,
    /// The body (a JSON body may come back re-spaced, never changed in meaning).
    pub(crate) body: Bytes,
}

impl CachedResponse {
    /// A cached response from a received one, keeping only [`KEPT_HEADERS`].
    pub(crate) fn new(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Self {
        let mut kept = HeaderMap::new();
        for name in KEPT_HEADERS {
            if let Some(v) = headers.get(*name) {
                kept.insert(*name, v.clone());
            }
        }
        CachedResponse {
            status,
            headers: kept,
            body,
        }
    }

    /// The entry's JSON bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.extend_from_slice(b"{\"s\":");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b",\"h\":{");
        let mut first = true;
        for (name, value) in &self.headers {
            let Ok(value) = value.to_str() else { continue };
            if !first {
                out.push(b',');
            }
            first = false;
            push_json_str(&mut out, name.as_str());
            out.push(b':');
            push_json_str(&mut out, value);
        }
        out.push(b'}');
        let body = &self.body[..];
        let is_json = !body.is_empty()
            && body != b"null"
            && serde_json::from_slice::<&RawValue>(body).is_ok_and(|v| v.get() != "null");
        if is_json {
            out.extend_from_slice(b",\"v\":");
            out.extend_from_slice(body);
        } else if let Ok(text) = std::str::from_utf8(body) {
            out.extend_from_slice(b",\"t\":");
            push_json_str(&mut out, text);
        } else {
            out.extend_from_slice(b",\"b\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        out.push(b'}');
        out
    }

    /// Reads an entry back; `None` when it is corrupt.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wire<'a> {
            s: u16,
            #[serde(default, borrow)]
            h: BTreeMap<&'a str, String>,
            #[serde(default, borrow)]
            v: Option<&'a RawValue>,
            #[serde(default)]
            t: Option<String>,
            #[serde(default)]
            b: Option<String>,
        }
        let wire: Wire<'_> = serde_json::from_slice(bytes).ok()?;
        let status = StatusCode::from_u16(wire.s).ok()?;
        let mut headers = HeaderMap::new();
        for (name, value) in wire.h {
            let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            headers.insert(name, HeaderValue::from_str(&value).ok()?);
        }
        let body = match (wire.v, wire.t, wire.b) {
            (Some(v), None, None) => Bytes::copy_from_slice(v.get().as_bytes()),
            (None, Some(t), None) => Bytes::from(t),
            (None, None, Some(b)) => {
                Bytes::from(base64::engine::general_purpose::STANDARD.decode(b).ok()?)
            }
            _ => return None,
        };
        Some(CachedResponse {
            status,
            headers,
            body,
        })
    }
}

/// The request headers a stored response varies on, and the id its variants are keyed by
/// (a new list gets a new id, so variants of an invalidated entry never come back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VariantList {
    /// Lowercase header names, sorted, without duplicates.
    pub(crate) names: Vec<HeaderName>,
    /// 32 hex digits.
    pub(crate) id: String,
}

impl VariantList {
    /// A new list for `names` (sorted and deduplicated), with a fresh id.
    pub(crate) fn new(mut names: Vec<HeaderName>) -> Self {
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        VariantList {
            names,
            id: format!("{:032x}", fastrand::u128(..)),
        }
    }

    /// The list's JSON bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let names: Vec<&str> = self.names.iter().map(HeaderName::as_str).collect();
        serde_json::to_vec(&serde_json::json!({ "vary": names, "id": self.id })).unwrap_or_default()
    }
}

/// What an entry's key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// A response.
    Response(CachedResponse),
    /// The variant list of a response with `Vary`.
    Variants(VariantList),
}

impl Stored {
    /// Reads a stored value back; `None` when it is corrupt.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            vary: Vec<String>,
            id: String,
        }
        if let Some(response) = CachedResponse::decode(bytes) {
            return Some(Stored::Response(response));
        }
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        let names = wire
            .vary
            .iter()
            .map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect::<Option<Vec<_>>>()?;
        let valid_id = wire.id.len() == 32 && wire.id.bytes().all(|b| b.is_ascii_hexdigit());
        (valid_id && !names.is_empty())
            .then_some(Stored::Variants(VariantList { names, id: wire.id }))
    }
}

/// What a response's `Vary` says about storing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Vary {
    /// No `Vary`: one entry for every request.
    None,
    /// It varies on these request headers (lowercase, sorted, deduplicated).
    On(Vec<HeaderName>),
    /// `Vary: *`: it can never be reused, so it is not stored (RFC 9111 §4.1).
    Any,
}

impl Vary {
    /// Reads the response's `Vary` header lines. A named header that is not safe and not
    /// `ignored` is already in the entry's key (as a digest), so it adds no variant; a safe
    /// one, or one the declaration ignores, counts: the server said the response depends on
    /// it (a variant key holds the values of headers that are not safe hashed, never in
    /// clear). `Accept-Encoding` adds none: bodies are stored decoded.
    pub(crate) fn of(headers: &HeaderMap, ignored: &[HeaderName]) -> Vary {
        let mut names = Vec::new();
        for line in headers.get_all(http::header::VARY) {
            let Ok(line) = line.to_str() else {
                return Vary::Any;
            };
            for token in line.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token == "*" {
                    return Vary::Any;
                }
                let Ok(name) = HeaderName::from_bytes(token.to_ascii_lowercase().as_bytes()) else {
                    // A line we cannot read could name anything: never reuse the response.
                    return Vary::Any;
                };
                // Bodies are stored decoded: the encoding negotiated picks no variant.
                if name == http::header::ACCEPT_ENCODING {
                    continue;
                }
                if crate::headers::is_safe(&name) || ignored.contains(&name) {
                    names.push(name);
                }
            }
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        if names.is_empty() {
            Vary::None
        } else {
            Vary::On(names)
        }
    }
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if let Ok(quoted) = serde_json::to_vec(s) {
        out.extend_from_slice(&quoted);
    } else {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(ct: &str, body: &'static [u8]) -> CachedResponse {
        let mut h = HeaderMap::new();
        h.insert("content-type", ct.parse().unwrap());
        h.insert("set-cookie", "sid=1".parse().unwrap());
        CachedResponse::new(StatusCode::OK, &h, Bytes::from_static(body))
    }

    #[test]
    fn json_bodies_are_stored_inline_and_read_back() {
        let r = resp("application/json", br#"{"id":7,"name":"Ada"}"#);
        assert!(!r.headers.contains_key("set-cookie"));
        let enc = r.encode();
        assert_eq!(
            std::str::from_utf8(&enc).unwrap(),
            r#"{"s":200,"h":{"content-type":"application/json"},"v":{"id":7,"name":"Ada"}}"#
        );
        assert_eq!(CachedResponse::decode(&enc).unwrap(), r);
    }

    #[test]
    fn text_binary_empty_and_null_round_trip() {
        for body in [
            &b"hello \"world\""[..],
            b"",
            b"null",
            b"\xff\x00\x01",
            b"  [1, 2] ",
        ] {
            let r = CachedResponse::new(StatusCode::ACCEPTED, &HeaderMap::new(), Bytes::from(body));
            let back = CachedResponse::decode(&r.encode()).unwrap();
            assert_eq!(back.status, StatusCode::ACCEPTED);
            if body == b"  [1, 2] " {
                assert_eq!(&back.body[..], b"[1, 2]");
            } else {
                assert_eq!(&back.body[..], body);
            }
        }
        let enc = resp("application/octet-stream", b"\xff").encode();
        assert!(std::str::from_utf8(&enc).unwrap().contains(r#""b":"/w==""#));
    }

    #[test]
    fn variant_lists_round_trip_and_responses_win() {
        let list = VariantList::new(vec![
            HeaderName::from_static("x-b"),
            HeaderName::from_static("accept-language"),
            HeaderName::from_static("x-b"),
        ]);
        let names: Vec<_> = list.names.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept-language", "x-b"]);
        let enc = list.encode();
        assert_eq!(Stored::decode(&enc), Some(Stored::Variants(list.clone())));
        assert_ne!(VariantList::new(list.names.clone()).id, list.id);
        let r = resp("application/json", b"1");
        assert_eq!(Stored::decode(&r.encode()), Some(Stored::Response(r)));
        for bad in [
            &br#"{"vary":[],"id":"00000000000000000000000000000000"}"#[..],
            br#"{"vary":["a b"],"id":"00000000000000000000000000000000"}"#,
            br#"{"vary":["a"],"id":"short"}"#,
            br#"{"vary":["a"]}"#,
        ] {
            assert_eq!(Stored::decode(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn vary_is_read_from_every_line() {
        let vary = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for line in lines {
                h.append(http::header::VARY, line.parse().unwrap());
            }
            Vary::of(&h, &[HeaderName::from_static("x-trace")])
        };
        assert_eq!(vary(&[]), Vary::None);
        assert_eq!(
            vary(&["Accept-Language, accept-encoding", "X-B,  accept-language"]),
            Vary::On(vec![HeaderName::from_static("accept-language")])
        );
        // Stored bodies are decoded, so the negotiated encoding never makes a variant.
        assert_eq!(vary(&["Accept-Encoding"]), Vary::None);
        assert_eq!(vary(&["accept-language, *"]), Vary::Any);
        assert_eq!(vary(&["bad header"]), Vary::Any);
        // Headers that are not safe are in the key already; one the declaration ignores
        // counts again when the server names it.
        assert_eq!(vary(&["Authorization, Cookie"]), Vary::None);
        assert_eq!(
            vary(&["Authorization, X-Trace"]),
            Vary::On(vec![HeaderName::from_static("x-trace")])
        );
    }

    #[test]
    fn corrupt_entries_decode_to_none() {
        for bad in [
            &b"not json"[..],
            br#"{"h":{},"v":1}"#,
            br#"{"s":200,"v":1,"t":"x"}"#,
            br#"{"s":200}"#,
            br#"{"s":99,"v":1}"#,
            br#"{"s":200,"b":"***"}"#,
            br#"{"s":200,"h":{"bad name":"x"},"v":1}"#,
            br#"{"s":200,"v":1"#,
        ] {
            assert!(
                CachedResponse::decode(bad).is_none(),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
    }
}
