//! The stored entry: the raw response as JSON, readable by other tools.
//!
//! `{"s":200,"h":{"content-type":"application/json"},"v":<the JSON body>}`, or `"t":"<text>"`
//! for a UTF-8 body that is not JSON, or `"b":"<base64>"` for other bytes. Anything else read
//! back is corrupt: the caller treats it as a miss and evicts it.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Response headers kept with an entry (never `set-cookie`).
pub(crate) const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-language",
    "etag",
    "last-modified",
    "link",
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
