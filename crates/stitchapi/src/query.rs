//! Query strings: call-time parameters merged over the template's literal defaults.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::input::{json_type, scalar_text};

/// Everything but the RFC 3986 unreserved characters is percent-encoded in query names and
/// values, so a value can never add a parameter or end the query.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a list value is written into the query.
///
/// ```
/// use stitchapi::{ArrayFormat, Stitch};
///
/// let search = Stitch::get("https://api.example.com/search")
///     .query_arrays(ArrayFormat::Brackets) // tag[]=a&tag[]=b
///     .build()
///     .unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ArrayFormat {
    /// `tag=a&tag=b` (the default; what most servers parse).
    #[default]
    Repeat,
    /// `tag[]=a&tag[]=b`.
    Brackets,
    /// `tag[0]=a&tag[1]=b`.
    Indices,
    /// `tag=a,b`.
    Comma,
}

fn push_pair(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    let _ = write!(
        out,
        "{}={}",
        utf8_percent_encode(name, QUERY_VALUE),
        utf8_percent_encode(value, QUERY_VALUE)
    );
}

/// Appends `name=value` pairs for one parameter (lists per `format`, maps as `name[key]`).
pub(crate) fn encode_param(
    out: &mut String,
    name: &str,
    value: &Value,
    format: ArrayFormat,
) -> Result<(), Error> {
    let nested = |what: &Value| {
        Error::input(format!(
            "query parameter `{name}` holds {} inside a list or map; only scalars can be nested once",
            json_type(what)
        ))
    };
    match value {
        Value::Null => {}
        Value::Array(items) => match format {
            ArrayFormat::Comma => {
                let mut joined = String::new();
                for (i, item) in items.iter().enumerate() {
                    let text = scalar_text(item).ok_or_else(|| nested(item))?;
                    if i > 0 {
                        joined.push(',');
                    }
                    joined.push_str(&text);
                }
                push_pair(out, name, &joined);
            }
            _ => {
                for (i, item) in items.iter().enumerate() {
                    let text = scalar_text(item).ok_or_else(|| nested(item))?;
                    match format {
                        ArrayFormat::Brackets => push_pair(out, &format!("{name}[]"), &text),
                        ArrayFormat::Indices => push_pair(out, &format!("{name}[{i}]"), &text),
                        _ => push_pair(out, name, &text),
                    }
                }
            }
        },
        Value::Object(map) => {
            for (key, item) in map {
                let text = scalar_text(item).ok_or_else(|| nested(item))?;
                push_pair(out, &format!("{name}[{key}]"), &text);
            }
        }
        scalar => {
            if let Some(text) = scalar_text(scalar) {
                push_pair(out, name, &text);
            }
        }
    }
    Ok(())
}

/// The name of a raw `name=value` pair, decoded, without any `[...]` suffix.
fn pair_name(pair: &str) -> String {
    let raw = pair.split('=').next().unwrap_or_default();
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    match decoded.find('[') {
        Some(cut) => decoded[..cut].to_owned(),
        None => decoded.into_owned(),
    }
}

/// Appends the call's query parameters to `url`, replacing any pair of the same name that the
/// template wrote (its literal `?a=1` defaults and `{?x}` expansions).
pub(crate) fn merge_into(
    url: &mut String,
    params: &[(&str, &Value)],
    format: ArrayFormat,
) -> Result<(), Error> {
    if params.is_empty() {
        return Ok(());
    }
    let fragment = url.find('#').map(|cut| url.split_off(cut));
    let existing = url.find('?').map(|cut| {
        let query = url[cut + 1..].to_owned();
        url.truncate(cut);
        query
    });
    let mut query = String::new();
    if let Some(existing) = existing {
        for pair in existing.split('&').filter(|pair| !pair.is_empty()) {
            let name = pair_name(pair);
            if !params.iter().any(|(overridden, _)| *overridden == name) {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(pair);
            }
        }
    }
    for (name, value) in params {
        encode_param(&mut query, name, value, format)?;
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    if let Some(fragment) = fragment {
        url.push_str(&fragment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(url: &str, params: &[(&str, Value)], format: ArrayFormat) -> String {
        let mut url = url.to_owned();
        let refs: Vec<(&str, &Value)> = params.iter().map(|(n, v)| (*n, v)).collect();
        merge_into(&mut url, &refs, format).unwrap();
        url
    }

    #[test]
    fn call_time_query_overrides_literal_defaults() {
        let url = merged(
            "https://h.example/s?limit=10&sort=asc",
            &[("limit", json!(50)), ("q", json!("a b&c=d"))],
            ArrayFormat::Repeat,
        );
        assert_eq!(url, "https://h.example/s?sort=asc&limit=50&q=a%20b%26c%3Dd");
    }

    #[test]
    fn array_formats() {
        let tags = [("tag", json!(["a", "b"]))];
        assert_eq!(merged("/s", &tags, ArrayFormat::Repeat), "/s?tag=a&tag=b");
        assert_eq!(
            merged("/s", &tags, ArrayFormat::Brackets),
            "/s?tag%5B%5D=a&tag%5B%5D=b"
        );
        assert_eq!(
            merged("/s", &tags, ArrayFormat::Indices),
            "/s?tag%5B0%5D=a&tag%5B1%5D=b"
        );
        assert_eq!(merged("/s", &tags, ArrayFormat::Comma), "/s?tag=a%2Cb");
        assert_eq!(
            merged("/s?tag[]=x&keep=1", &tags, ArrayFormat::Brackets),
            "/s?keep=1&tag%5B%5D=a&tag%5B%5D=b"
        );
    }

    #[test]
    fn nested_values_are_input_errors() {
        let mut url = String::from("/s");
        let value = json!([[1]]);
        let error = merge_into(&mut url, &[("x", &value)], ArrayFormat::Repeat).unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Input);
    }

    #[test]
    fn fragment_stays_last() {
        assert_eq!(
            merged("/s?a=1#top", &[("b", json!(true))], ArrayFormat::Repeat),
            "/s?a=1&b=true#top"
        );
    }
}
