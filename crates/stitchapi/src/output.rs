//! Decoding a response into the stitch's output: JSON into any `DeserializeOwned` type (with an
//! optional `pick` dot-path and validators), text, or bytes.
//!
//! A decode failure is a `Validation` error naming the JSON path from the document root, so
//! `$.data[3].email: invalid type: null, expected a string` says exactly what broke.
//!
//! Security: the error's `Display` and `Debug` never quote the response. They keep the JSON
//! path (which names object keys, including the keys of maps) and the expected and found types
//! (`$.expires: invalid type: string, expected u64`); an unknown variant or field is named by
//! what was expected, not by what came; a message a custom deserializer wrote (which may quote
//! what it refused) is withheld. The full serde message is behind
//! [`Error::decode_detail`](crate::Error::decode_detail). Validator messages are shown as
//! written, so a validator should not quote values either.
//!
//! A body is one JSON document: anything but whitespace after it (a second document, say) is a
//! `Validation` error (`$: trailing characters`).

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::runtime::{MaybeSend, MaybeSync};

/// How a response body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputKind {
    Json,
    Text,
    Bytes,
}

/// A dot-path into the response JSON (`"data.items"`, `"results.0.id"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pick {
    segments: Vec<String>,
}

impl Pick {
    pub(crate) fn parse(path: &str) -> Result<Pick, Error> {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if path.is_empty() || segments.iter().any(String::is_empty) {
            return Err(Error::config(
                "pick",
                format!("{path:?} is not a dot-path"),
                "name the fields to descend into, e.g. \"data\" or \"data.items\"",
            ));
        }
        Ok(Pick { segments })
    }

    /// `$.data.items`
    fn display(&self, upto: usize) -> String {
        let mut out = String::from("$");
        for segment in &self.segments[..upto.min(self.segments.len())] {
            if segment.bytes().all(|b| b.is_ascii_digit()) {
                let _ = write!(out, "[{segment}]");
            } else {
                let _ = write!(out, ".{segment}");
            }
        }
        out
    }

    fn apply(&self, mut value: Value) -> Result<Value, Error> {
        for (depth, segment) in self.segments.iter().enumerate() {
            let next = match &mut value {
                Value::Object(map) => map.remove(segment),
                Value::Array(items) => segment
                    .parse::<usize>()
                    .ok()
                    .filter(|index| *index < items.len())
                    .map(|index| items.swap_remove(index)),
                _ => None,
            };
            value = next.ok_or_else(|| {
                Error::validation(
                    Some(self.display(depth + 1)),
                    format!("missing (pick {:?})", self.segments.join(".")),
                )
            })?;
        }
        Ok(value)
    }
}

/// Checks a decoded output for rules serde cannot express.
///
/// Closures `Fn(&O) -> Result<(), String>` implement it:
///
/// ```
/// # use stitchapi::Stitch;
/// #[derive(serde::Deserialize)]
/// struct User { email: String }
///
/// let get_user = Stitch::get("https://api.example.com/users/{id}")
///     .output::<User>()
///     .validate(|user: &User| {
///         // The message is shown by the error's `Display`: name the rule, not the value.
///         if user.email.contains('@') { Ok(()) } else { Err("the email has no @".to_owned()) }
///     })
///     .build()
///     .unwrap();
/// ```
pub trait OutputValidator<O>: MaybeSend + MaybeSync + 'static {
    /// `Ok(())` when `output` is acceptable, else a message saying what is wrong.
    fn validate(&self, output: &O) -> Result<(), String>;
}

impl<O, F> OutputValidator<O> for F
where
    F: Fn(&O) -> Result<(), String> + MaybeSend + MaybeSync + 'static,
{
    fn validate(&self, output: &O) -> Result<(), String> {
        self(output)
    }
}

type DecodeFn<O> = fn(&Bytes, Option<&Pick>) -> Result<O, Error>;

/// Everything that turns a response body into `O`.
pub(crate) struct Output<O> {
    pub kind: OutputKind,
    decode: DecodeFn<O>,
    pub pick: Option<Pick>,
    validators: Vec<Arc<dyn OutputValidator<O>>>,
}

impl<O> Clone for Output<O> {
    fn clone(&self) -> Self {
        Output {
            kind: self.kind,
            decode: self.decode,
            pick: self.pick.clone(),
            validators: self.validators.clone(),
        }
    }
}

impl<O: 'static> Output<O> {
    pub(crate) fn json() -> Self
    where
        O: DeserializeOwned,
    {
        Output {
            kind: OutputKind::Json,
            decode: decode_json::<O>,
            pick: None,
            validators: Vec::new(),
        }
    }

    pub(crate) fn add_validator(&mut self, validator: Arc<dyn OutputValidator<O>>) {
        self.validators.push(validator);
    }

    pub(crate) fn decode(&self, body: &Bytes) -> Result<O, Error> {
        let output = (self.decode)(body, self.pick.as_ref())?;
        for validator in &self.validators {
            validator
                .validate(&output)
                .map_err(|message| Error::validation(Some(self.root()), message))?;
        }
        Ok(output)
    }

    fn root(&self) -> String {
        match &self.pick {
            Some(pick) => pick.display(usize::MAX),
            None => "$".to_owned(),
        }
    }
}

impl Output<String> {
    pub(crate) fn text() -> Self {
        Output {
            kind: OutputKind::Text,
            decode: |body, _| {
                String::from_utf8(body.to_vec()).map_err(|e| {
                    Error::validation(None, format!("the response is not UTF-8 text: {e}"))
                })
            },
            pick: None,
            validators: Vec::new(),
        }
    }
}

impl Output<Value> {
    /// Text returned as a JSON string (for declarations built from config).
    pub(crate) fn text_value() -> Self {
        Output {
            kind: OutputKind::Text,
            decode: |body, _| {
                std::str::from_utf8(body)
                    .map(|text| Value::String(text.to_owned()))
                    .map_err(|e| {
                        Error::validation(None, format!("the response is not UTF-8 text: {e}"))
                    })
            },
            pick: None,
            validators: Vec::new(),
        }
    }
}

impl Output<Bytes> {
    pub(crate) fn bytes() -> Self {
        Output {
            kind: OutputKind::Bytes,
            decode: |body, _| Ok(body.clone()),
            pick: None,
            validators: Vec::new(),
        }
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn bare_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) if text[cut..].contains(" column ") => text[..cut].to_owned(),
        _ => text,
    }
}

/// What `Display` says of a deserializer message it cannot prove free of response data.
const WITHHELD: &str = "the value was refused by its deserializer (its message may quote the \
                        response: see Error::decode_detail)";

/// The kinds serde names in `invalid type: <kind> ..., expected ...` (serde's `Unexpected`
/// and serde_json's), longest first so `floating point` wins over shorter prefixes.
const KINDS: [&str; 18] = [
    "newtype variant",
    "newtype struct",
    "floating point",
    "struct variant",
    "tuple variant",
    "unit variant",
    "Option value",
    "byte array",
    "unit value",
    "character",
    "sequence",
    "boolean",
    "integer",
    "string",
    "number",
    "null",
    "enum",
    "map",
];

/// The kind of an `Unexpected` as serde formats it (`string "abc"` is `string`), without the
/// value.
fn unexpected_kind(unexpected: &str) -> &'static str {
    let kind = KINDS.iter().find(|kind| {
        unexpected
            .strip_prefix(**kind)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    });
    if let Some(kind) = kind {
        return kind;
    }
    // `Unexpected::Other` with a primitive's name (serde's integer range checks).
    const PRIMITIVES: [&str; 14] = [
        "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
        "f32", "f64",
    ];
    PRIMITIVES
        .iter()
        .find(|name| **name == unexpected)
        .copied()
        .unwrap_or("a value")
}

/// A serde data-error message with every value of the response taken out: the forms serde
/// itself builds keep their shape and types (`invalid type: string, expected u64`,
/// `unknown variant, expected one of ...`); any other message (a custom deserializer's, which
/// may quote what it refused) is withheld.
fn without_values(message: &str) -> String {
    // What follows the last ", expected " is the visitor's expectation: written by code.
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return match rest.rfind(", expected ") {
                Some(at) => format!("{prefix}{}{}", unexpected_kind(&rest[..at]), &rest[at..]),
                None => WITHHELD.to_owned(),
            };
        }
    }
    // The name is the response's; the list of names after it is the type's.
    for (prefix, what) in [
        ("unknown variant `", "unknown variant"),
        ("unknown field `", "unknown field"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let tail = rest
                .rfind("`, expected ")
                .or_else(|| rest.rfind("`, there are no "));
            return match tail {
                Some(at) => format!("{what}{}", &rest[at + 1..]),
                None => WITHHELD.to_owned(),
            };
        }
    }
    // Names and counts that come from the type, never from the response.
    let from_the_type = [
        "missing field `",
        "duplicate field `",
        "invalid length ",
        "data did not match any variant of untagged enum ",
    ];
    if from_the_type
        .iter()
        .any(|prefix| message.starts_with(prefix))
        && !message.contains('"')
    {
        return message.to_owned();
    }
    WITHHELD.to_owned()
}

/// A decode failure at `path`: `Display` says what broke without quoting the response (a
/// syntax error's message never does; a data error's is stripped of values), and the full
/// serde message is kept for [`Error::decode_detail`].
fn decode_error(path: String, error: &serde_json::Error) -> Error {
    let message = match error.classify() {
        serde_json::error::Category::Data => without_values(&bare_message(error)),
        _ => bare_message(error),
    };
    Error::validation(Some(path), message).with_decode_detail(error.to_string())
}

fn render_path(root: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = root.to_owned();
    // Untyped values (maps of `Value`) do not report their keys: stop at the known prefix.
    for segment in path.iter() {
        let _ = match segment {
            Segment::Seq { index } => write!(out, "[{index}]"),
            Segment::Map { key } => write!(out, ".{key}"),
            Segment::Enum { variant } => write!(out, ".{variant}"),
            Segment::Unknown => break,
        };
    }
    out
}

/// Decodes one JSON document: anything but whitespace after it is an error, on the fast path
/// and on the path-tracking one alike (a second document must never be ignored).
fn decode_json<O: DeserializeOwned>(body: &Bytes, pick: Option<&Pick>) -> Result<O, Error> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        body
    };
    match pick {
        None => serde_json::from_slice(body).or_else(|_| {
            // Decode again, tracking the path, only on failure: the fast path stays fast.
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let value = serde_path_to_error::deserialize::<_, O>(&mut deserializer)
                .map_err(|e| path_error("$", e))?;
            deserializer
                .end()
                .map_err(|e| decode_error("$".to_owned(), &e))?;
            Ok(value)
        }),
        Some(pick) => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| decode_error("$".to_owned(), &e))?;
            let picked = pick.apply(value)?;
            serde_path_to_error::deserialize::<_, O>(picked)
                .map_err(|e| path_error(&pick.display(usize::MAX), e))
        }
    }
}

fn path_error(root: &str, error: serde_path_to_error::Error<serde_json::Error>) -> Error {
    decode_error(render_path(root, error.path()), error.inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct User {
        id: u64,
        email: String,
    }

    #[test]
    fn decode_error_names_the_json_path() {
        let mut output = Output::<Vec<User>>::json();
        output.pick = Some(Pick::parse("data").unwrap());
        let body = Bytes::from_static(
            br#"{"data":[{"id":1,"email":"a@x"},{"id":2,"email":"b@x"},{"id":3,"email":"c@x"},{"id":4,"email":null}]}"#,
        );
        let error = output.decode(&body).unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Validation);
        assert_eq!(error.json_path(), Some("$.data[3].email"));
        assert_eq!(
            error.to_string(),
            "$.data[3].email: invalid type: null, expected a string"
        );
    }

    #[test]
    fn unpicked_errors_strip_line_and_column() {
        let output = Output::<User>::json();
        let error = output
            .decode(&Bytes::from_static(br#"{"id":"7","email":"a"}"#))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "$.id: invalid type: string, expected u64"
        );
        assert_eq!(
            error.decode_detail(),
            Some("invalid type: string \"7\", expected u64 at line 1 column 9")
        );
        let error = output.decode(&Bytes::from_static(b"{\"id\":")).unwrap_err();
        assert_eq!(error.json_path(), Some("$.id"));
    }

    #[test]
    fn missing_pick_path_is_named() {
        let mut output = Output::<Value>::json();
        output.pick = Some(Pick::parse("data.items").unwrap());
        let error = output
            .decode(&Bytes::from_static(br#"{"data":{}}"#))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "$.data.items: missing (pick \"data.items\")"
        );
        assert!(Pick::parse("data..items").is_err());
    }

    #[test]
    fn validators_run_after_decoding() {
        let mut output = Output::<User>::json();
        output.add_validator(Arc::new(|u: &User| {
            if u.email.contains('@') {
                Ok(())
            } else {
                Err("email has no @".to_owned())
            }
        }));
        let error = output
            .decode(&Bytes::from_static(br#"{"id":1,"email":"nope"}"#))
            .unwrap_err();
        assert_eq!(error.to_string(), "$: email has no @");
    }

    #[test]
    fn data_messages_keep_their_shape_and_lose_their_values() {
        let cases = [
            (
                r#"invalid type: string "a\", expected u64", expected u64"#,
                "invalid type: string, expected u64",
            ),
            (
                "invalid type: floating point `1.5`, expected u8",
                "invalid type: floating point, expected u8",
            ),
            (
                "invalid type: integer `170141183460469231731687303715884105727` as i128, \
                 expected u8",
                "invalid type: integer, expected u8",
            ),
            (
                "invalid value: i128, expected u8",
                "invalid value: i128, expected u8",
            ),
            (
                "invalid type: character ```, expected a string",
                "invalid type: character, expected a string",
            ),
            (
                "invalid type: null, expected a string",
                "invalid type: null, expected a string",
            ),
            (
                "invalid type: SECRET, expected a string",
                "invalid type: a value, expected a string",
            ),
            (
                "unknown variant `x`, expected `a`, expected one of `a`, `b`",
                "unknown variant, expected one of `a`, `b`",
            ),
            (
                "unknown field `SECRET`, there are no fields",
                "unknown field, there are no fields",
            ),
            ("missing field `id`", "missing field `id`"),
            (
                "invalid length 3, expected a tuple of size 2",
                "invalid length 3, expected a tuple of size 2",
            ),
            ("SECRET is not a code", WITHHELD),
            ("invalid type: SECRET", WITHHELD),
            ("unknown variant `SECRET", WITHHELD),
        ];
        for (message, shown) in cases {
            assert_eq!(without_values(message), shown, "{message}");
        }
    }

    #[test]
    fn trailing_documents_are_refused_whitespace_is_not() {
        let output = Output::<Value>::json();
        let error = output
            .decode(&Bytes::from_static(b"{\"a\":1}{\"a\":2}"))
            .unwrap_err();
        assert_eq!(error.to_string(), "$: trailing characters");
        let error = output
            .decode(&Bytes::from_static(b"{\"a\":1} 2"))
            .unwrap_err();
        assert_eq!(error.to_string(), "$: trailing characters");
        assert_eq!(
            output
                .decode(&Bytes::from_static(b" {\"a\":1} \n"))
                .unwrap(),
            serde_json::json!({"a": 1})
        );
    }

    #[test]
    fn empty_body_is_null() {
        let output = Output::<Value>::json();
        assert_eq!(output.decode(&Bytes::new()).unwrap(), Value::Null);
        assert!(Output::text().decode(&Bytes::from_static(b"\xff")).is_err());
    }
}
