//! The input of one call: template parameters, query, headers and body.
//!
//! ```
//! use stitchapi::Input;
//!
//! let input = Input::new()
//!     .param("id", 7)
//!     .query("expand", "teams")
//!     .query("tag", vec!["a", "b"])
//!     .header("x-request-id", "r-1")
//!     .json(&serde_json::json!({"name": "Ada"}));
//! ```
//!
//! Or let a `Serialize` struct fill it: with `stitch.call_with(&value)`, fields named like
//! template variables fill the template and the rest go to the query.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// The body of a request, encoded once so every retry resends the same bytes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Body {
    pub bytes: Bytes,
    pub content_type: HeaderValue,
}

/// What one call sends. Build it with chained methods; an unusable value (a header with a
/// newline, a body that does not serialise) is reported by the call as an `Input` error,
/// before anything is sent.
///
/// Its `Debug` prints header values only for [safe headers](crate::headers) and the body's
/// length only.
#[derive(Clone, Default)]
pub struct Input {
    pub(crate) params: Vec<(String, Value)>,
    pub(crate) query: Vec<(String, Value)>,
    pub(crate) fields: Vec<(String, Value)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Body>,
    pub(crate) error: Option<Error>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Input");
        // Query values are redacted as in every displayed URL; the keys show.
        let query: Vec<_> = self
            .query
            .iter()
            .map(|(key, _)| (key, format_args!("…")))
            .collect();
        d.field("params", &self.params)
            .field("query", &query)
            .field("fields", &self.fields)
            .field("headers", &crate::headers::redacted(&self.headers));
        if let Some(body) = &self.body {
            d.field("body", &format_args!("<{} bytes>", body.bytes.len()));
        }
        if let Some(error) = &self.error {
            d.field("error", error);
        }
        d.finish()
    }
}

impl Input {
    /// An empty input.
    pub fn new() -> Self {
        Input::default()
    }

    /// Sets a URL template parameter (`{id}` takes `.param("id", 7)`). Lists and maps expand
    /// per RFC 6570.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Sets a query parameter; it replaces a default of the same name written in the URL
    /// template (`?limit=10`). A list repeats the name (`tag=a&tag=b`, see `query_arrays`).
    pub fn query(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Sets a request header (replacing one of the same name). Like
    /// `reqwest::RequestBuilder::header`, it takes anything that converts into a
    /// [`HeaderName`] and a [`HeaderValue`] (`http::header::ACCEPT`, `"x-app"`, a `String`,
    /// a `HeaderValue`); an invalid one makes the call fail with an `Input` error that never
    /// shows the value.
    ///
    /// ```
    /// use http::header::{ACCEPT, HeaderValue};
    /// use stitchapi::Input;
    ///
    /// let input = Input::new()
    ///     .header(ACCEPT, "application/json")
    ///     .header("x-request-id", HeaderValue::from_static("r-1"));
    /// # let _ = input;
    /// ```
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        match HeaderName::try_from(name) {
            Err(_) => self.fail(Error::input(
                "a header name is not a valid HTTP header name (names are tokens such as x-app)",
            )),
            Ok(name) => match HeaderValue::try_from(value) {
                Ok(value) => {
                    self.headers.insert(name, value);
                }
                Err(_) => self.fail(Error::input(format!(
                    "the value of header `{name}` is not a valid HTTP header value (values may not contain newlines or control characters)"
                ))),
            },
        }
        self
    }

    /// Sends `body` as JSON (`content-type: application/json`).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some(Body {
                    bytes: Bytes::from(bytes),
                    content_type: HeaderValue::from_static("application/json"),
                })
            }
            Err(e) => self.fail(Error::input(format!(
                "the JSON body does not serialise: {e}"
            ))),
        }
        self
    }

    /// Sends `body` (a struct or map of scalars and lists of scalars) as
    /// `application/x-www-form-urlencoded`.
    pub fn form<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_value(body)
            .map_err(|e| e.to_string())
            .and_then(|value| encode_form(&value))
        {
            Ok(encoded) => {
                self.body = Some(Body {
                    bytes: Bytes::from(encoded),
                    content_type: HeaderValue::from_static("application/x-www-form-urlencoded"),
                })
            }
            Err(e) => self.fail(Error::input(format!(
                "the form body cannot be encoded: {e}"
            ))),
        }
        self
    }

    /// Sends raw bytes with the given content type.
    pub fn body(mut self, bytes: impl Into<Bytes>, content_type: &str) -> Self {
        match HeaderValue::from_str(content_type) {
            Ok(content_type) => {
                self.body = Some(Body {
                    bytes: bytes.into(),
                    content_type,
                })
            }
            Err(_) => self.fail(Error::input(format!(
                "content type {content_type:?} is not a valid header value"
            ))),
        }
        self
    }

    /// An input from the fields of a `Serialize` struct or map: fields named like a template
    /// variable fill it, the others go to the query; `None` fields are left out.
    pub fn from_fields<T: Serialize + ?Sized>(value: &T) -> Self {
        let mut input = Input::new();
        match serde_json::to_value(value) {
            Ok(Value::Object(map)) => {
                input.fields = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
            }
            Ok(other) => input.fail(Error::input(format!(
                "call_with needs a struct or map, got {}",
                json_type(&other)
            ))),
            Err(e) => input.fail(Error::input(format!("the input does not serialise: {e}"))),
        }
        input
    }

    fn fail(&mut self, error: Error) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A scalar as query/form text; `None` for null, arrays and objects.
pub(crate) fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b {
            "true"
        } else {
            "false"
        })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn encode_form(value: &Value) -> Result<String, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "expected a struct or map, got {}",
            json_type(value)
        ));
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in map {
        match value {
            Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    let text = scalar_text(item)
                        .ok_or_else(|| format!("field `{name}` holds a nested value"))?;
                    out.append_pair(name, &text);
                }
            }
            other => {
                let text = scalar_text(other)
                    .ok_or_else(|| format!("field `{name}` holds a nested value"))?;
                out.append_pair(name, &text);
            }
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_injection_is_an_input_error() {
        let input = Input::new().header("x-a", "ok\r\nx-injected: 1");
        let error = input.error.unwrap();
        assert_eq!(error.kind(), crate::ErrorKind::Input);
        assert!(error.to_string().contains("header `x-a`"), "{error}");
        assert!(!error.to_string().contains("injected"), "{error}");
        let bad_name = Input::new().header("bad name", "v").error.unwrap();
        assert_eq!(bad_name.kind(), crate::ErrorKind::Input);
    }

    #[test]
    fn typed_headers_are_accepted() {
        let input = Input::new()
            .header(http::header::ACCEPT, "text/csv")
            .header(
                HeaderName::from_static("x-id"),
                HeaderValue::from_static("7"),
            )
            .header(String::from("x-app"), String::from("demo"));
        assert!(input.error.is_none());
        assert_eq!(input.headers[http::header::ACCEPT], "text/csv");
        assert_eq!(input.headers["x-id"], "7");
        assert_eq!(input.headers["x-app"], "demo");
    }

    #[test]
    fn debug_redacts_headers_that_are_not_safe_and_the_body() {
        let input = Input::new()
            .header("accept", "application/json")
            .header("x-amz-security-token", "FwoGZXIvYXdzE-secret")
            .json(&serde_json::json!({"password": "hunter2"}));
        let shown = format!("{input:?}");
        assert!(shown.contains(r#""accept": "application/json""#), "{shown}");
        assert!(
            shown.contains(r#""x-amz-security-token": "<redacted>""#),
            "{shown}"
        );
        assert!(!shown.contains("FwoGZXIvYXdzE"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn form_encodes_lists_and_skips_nulls() {
        let input = Input::new().form(&serde_json::json!({"a": "x y", "b": [1, 2], "c": null}));
        assert_eq!(&input.body.unwrap().bytes[..], b"a=x+y&b=1&b=2");
    }

    #[test]
    fn from_fields_drops_none() {
        #[derive(Serialize)]
        struct Q {
            id: u32,
            expand: Option<String>,
        }
        let input = Input::from_fields(&Q {
            id: 7,
            expand: None,
        });
        assert_eq!(input.fields, vec![("id".to_owned(), Value::from(7))]);
    }
}
