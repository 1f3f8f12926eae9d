//! Expansion: values looked up in [`Vars`], classified (scalar, list, map), written into
//! the output per operator, with the value-level checks (missing, empty, `{+x}` ending the
//! path early, dot-segment values) on the way.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde_json::{Map, Number, Value};

use super::dots::{Marks, check_value};
use super::encode::encode;
use super::parse::{Expr, Modifier, Op, VarSpec};
use super::{ExpandError, Vars};
use crate::input::json_type;

/// A defined value, classified.
enum Defined<'v> {
    Scalar(Scalar<'v>),
    List(&'v [Value]),
    Map(&'v Map<String, Value>),
}

#[inline]
fn defined(value: Option<&Value>) -> Option<Defined<'_>> {
    match value? {
        Value::Null => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Defined::List(items)),
        Value::Object(map) if map.values().all(Value::is_null) => None,
        Value::Object(map) => Some(Defined::Map(map)),
        scalar => Scalar::of(scalar).map(Defined::Scalar),
    }
}

#[derive(Clone, Copy)]
enum Scalar<'v> {
    Str(&'v str),
    Num(&'v Number),
    Bool(bool),
}

impl<'v> Scalar<'v> {
    #[inline]
    fn of(value: &'v Value) -> Option<Scalar<'v>> {
        match value {
            Value::String(s) => Some(Scalar::Str(s)),
            Value::Number(n) => Some(Scalar::Num(n)),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// The scalar's text; numbers are formatted into `buf` (no allocation).
    #[inline]
    fn text<'b>(self, buf: &'b mut NumBuf) -> Cow<'b, str>
    where
        'v: 'b,
    {
        match self {
            Scalar::Str(s) => Cow::Borrowed(s),
            Scalar::Bool(true) => Cow::Borrowed("true"),
            Scalar::Bool(false) => Cow::Borrowed("false"),
            Scalar::Num(n) => {
                let integer = match (n.as_u64(), n.as_i64()) {
                    (Some(unsigned), _) => Some((unsigned, false)),
                    (None, Some(signed)) => Some((signed.unsigned_abs(), signed < 0)),
                    (None, None) => None,
                };
                if let Some((magnitude, negative)) = integer {
                    let digits: &'b [u8] = buf.digits(magnitude, negative);
                    return Cow::Borrowed(std::str::from_utf8(digits).unwrap_or_default());
                }
                let written = write!(buf, "{n}").is_ok();
                let buf: &'b NumBuf = buf;
                match std::str::from_utf8(buf.filled()) {
                    Ok(text) if written => Cow::Borrowed(text),
                    _ => Cow::Owned(n.to_string()),
                }
            }
        }
    }
}

/// A stack buffer for a number's JSON text (at most 24 bytes without serde_json's
/// `arbitrary_precision`; longer texts fall back to a `String`).
struct NumBuf {
    bytes: [u8; 40],
    start: usize,
    end: usize,
}

impl NumBuf {
    fn new() -> NumBuf {
        NumBuf {
            bytes: [0; 40],
            start: 0,
            end: 0,
        }
    }

    fn filled(&self) -> &[u8] {
        self.bytes.get(self.start..self.end).unwrap_or_default()
    }

    /// Formats an integer (at most 20 digits and a sign, within the 40 bytes) without
    /// going through `fmt`; returns its ASCII text.
    fn digits(&mut self, mut magnitude: u64, negative: bool) -> &[u8] {
        // At most 20 digits and a sign: `start` stays within 19..=40.
        let mut start = self.bytes.len();
        loop {
            start -= 1;
            if let Some(slot) = self.bytes.get_mut(start) {
                // `magnitude % 10` is a single digit.
                *slot = b'0' + (magnitude % 10) as u8;
            }
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        if negative {
            start -= 1;
            if let Some(slot) = self.bytes.get_mut(start) {
                *slot = b'-';
            }
        }
        self.start = start;
        self.end = self.bytes.len();
        self.filled()
    }
}

impl fmt::Write for NumBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.end.checked_add(s.len()).ok_or(fmt::Error)?;
        self.bytes
            .get_mut(self.end..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.end = end;
        Ok(())
    }
}

/// The first `max_chars` characters of `s`.
#[inline]
fn prefix(s: &str, max_chars: u16) -> &str {
    match s.char_indices().nth(usize::from(max_chars)) {
        Some((end, _)) => s.get(..end).unwrap_or(s),
        None => s,
    }
}

fn missing(name: &str, template: &str) -> ExpandError {
    ExpandError::Missing {
        name: name.to_owned(),
        template: template.to_owned(),
    }
}

fn unsupported(name: &str, reason: String) -> ExpandError {
    ExpandError::Unsupported {
        name: name.to_owned(),
        reason,
    }
}

impl Expr {
    #[inline]
    pub(super) fn expand<'t>(
        &'t self,
        vars: &dyn Vars,
        out: &mut String,
        marks: &mut Marks<'t>,
        template: &str,
    ) -> Result<(), ExpandError> {
        let op = self.op;
        let mut first = true;
        for spec in self.specs.iter() {
            let Some(value) = defined(vars.get(&spec.name)) else {
                if spec.required {
                    return Err(missing(&spec.name, template));
                }
                continue;
            };
            let start = out.len();
            let lead = if first { op.first() } else { Some(op.sep()) };
            if let Some(lead) = lead {
                out.push(lead);
            }
            first = false;
            let value_start = out.len();
            match value {
                Defined::Scalar(scalar) => expand_scalar(op, spec, scalar, out)?,
                Defined::List(items) => expand_list(op, spec, items, out)?,
                Defined::Map(map) => expand_map(op, spec, map, out)?,
            }
            if out.len() == value_start
                && self.in_path
                && op.empty_changes_path()
                && !spec.allow_empty
            {
                return Err(ExpandError::Empty {
                    name: spec.name.to_string(),
                });
            }
            if op == Op::Reserved
                && self.in_path
                && self.followed
                && let Some(delimiter) = out
                    .get(value_start..)
                    .and_then(|value| value.chars().find(|&c| c == '?' || c == '#'))
            {
                return Err(ExpandError::EndsPath {
                    name: spec.name.to_string(),
                    delimiter,
                });
            }
            if op.on_path() {
                marks.push(start, out.len(), &spec.name);
            }
        }
        Ok(())
    }
}

#[inline]
fn expand_scalar(
    op: Op,
    spec: &VarSpec,
    scalar: Scalar<'_>,
    out: &mut String,
) -> Result<(), ExpandError> {
    let mut buf = NumBuf::new();
    if let Scalar::Num(number) = scalar {
        let integer = match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => Some((unsigned, false)),
            (None, Some(signed)) => Some((signed.unsigned_abs(), signed < 0)),
            (None, None) => None,
        };
        if let Some((magnitude, negative)) = integer {
            // Digits and `-` are unreserved: nothing to encode, never empty (a prefix is at
            // least 1), never a dot-segment.
            let mut digits = buf.digits(magnitude, negative);
            if let Modifier::Prefix(max) = spec.modifier {
                digits = digits.get(..usize::from(max)).unwrap_or(digits);
            }
            if op.named() {
                out.push_str(&spec.name);
                out.push('=');
            }
            out.extend(digits.iter().map(|&digit| char::from(digit)));
            return Ok(());
        }
    }
    let text = scalar.text(&mut buf);
    let text = match spec.modifier {
        Modifier::Prefix(max) => prefix(&text, max),
        Modifier::None | Modifier::Explode => &text,
    };
    check_value(op, &spec.name, text)?;
    if op.named() {
        out.push_str(&spec.name);
        if text.is_empty() {
            out.push_str(op.if_empty());
            return Ok(());
        }
        out.push('=');
    }
    encode(out, text, op.allow_reserved());
    Ok(())
}

fn prefix_on_composite(spec: &VarSpec, what: &str) -> ExpandError {
    unsupported(
        &spec.name,
        format!("the prefix modifier `:N` applies to strings, not to {what} (RFC 6570 §2.4.1)"),
    )
}

fn expand_list(
    op: Op,
    spec: &VarSpec,
    items: &[Value],
    out: &mut String,
) -> Result<(), ExpandError> {
    let explode = match spec.modifier {
        Modifier::Prefix(_) => return Err(prefix_on_composite(spec, "a list")),
        Modifier::Explode => true,
        Modifier::None => false,
    };
    if op.named() && !explode {
        out.push_str(&spec.name);
        out.push('=');
    }
    let joiner = if explode { op.sep() } else { ',' };
    for (index, item) in items.iter().enumerate() {
        let Some(scalar) = Scalar::of(item) else {
            return Err(unsupported(
                &spec.name,
                format!(
                    "list member {index} is {}; list members must be strings, numbers or booleans",
                    json_type(item)
                ),
            ));
        };
        let mut buf = NumBuf::new();
        let text = scalar.text(&mut buf);
        check_value(op, &spec.name, &text)?;
        if index > 0 {
            out.push(joiner);
        }
        if explode && op.named() {
            out.push_str(&spec.name);
            if text.is_empty() {
                out.push_str(op.if_empty());
                continue;
            }
            out.push('=');
        }
        encode(out, &text, op.allow_reserved());
    }
    Ok(())
}

fn expand_map(
    op: Op,
    spec: &VarSpec,
    map: &Map<String, Value>,
    out: &mut String,
) -> Result<(), ExpandError> {
    let explode = match spec.modifier {
        Modifier::Prefix(_) => return Err(prefix_on_composite(spec, "a map")),
        Modifier::Explode => true,
        Modifier::None => false,
    };
    if op.named() && !explode {
        out.push_str(&spec.name);
        out.push('=');
    }
    let joiner = if explode { op.sep() } else { ',' };
    let allow_reserved = op.allow_reserved();
    let mut first = true;
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let Some(scalar) = Scalar::of(value) else {
            return Err(unsupported(
                &spec.name,
                format!(
                    "the value of key {key:?} is {}; map values must be strings, numbers or booleans",
                    json_type(value)
                ),
            ));
        };
        let mut buf = NumBuf::new();
        let text = scalar.text(&mut buf);
        if !first {
            out.push(joiner);
        }
        first = false;
        encode(out, key, allow_reserved);
        if explode {
            if op.named() && text.is_empty() {
                out.push_str(op.if_empty());
                continue;
            }
            out.push('=');
        } else {
            out.push(',');
        }
        encode(out, &text, allow_reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::template::testkit::{expand_one, expands_to};
    use crate::template::{ExpandError, UrlTemplate};

    /// Empty values where they do not change the path need no `allow_empty` (the RFC
    /// examples that do are in the RFC table of the module tests).
    #[test]
    fn empty_values_off_the_path_expand_as_the_rfc_says() {
        let vars = vec![
            ("x", json!("1024")),
            ("y", json!("768")),
            ("empty", json!("")),
        ];
        // In the query and the fragment, and with `;`, empty values need nothing.
        expands_to(
            &vars,
            &[
                ("?{x,empty}", "?1024,"),
                ("foo{#empty}", "foo#"),
                ("{;empty}", ";empty"),
                ("{?x,y,empty}", "?x=1024&y=768&empty="),
                ("x?a={empty}", "x?a="),
                ("{?x}/{empty}", "?x=1024/"),
            ],
        );
    }

    #[test]
    fn empty_values_are_refused_where_they_change_the_path() {
        let empty = |template: &str, value: Value| match expand_one(template, value.clone()) {
            Err(ExpandError::Empty { name }) => assert_eq!(name, "x"),
            other => panic!("{template} with {value}: expected Empty, got {other:?}"),
        };
        for template in [
            "https://h.example/users/{x}",
            "https://h.example/users{/x}",
            "https://h.example/files/{+x}",
            "https://h.example/files/{x}.json",
            "https://h.example/report{.x}",
            "https://{x}h.example/",
        ] {
            empty(template, json!(""));
            // A list or map that expands to nothing is empty too.
            empty(template, json!([""]));
        }
        empty("https://h.example/users/{x*}", json!([""]));
        empty("/a/{x:3}/b", json!(""));
        // Lists with a non-empty expansion keep their RFC meaning.
        assert_eq!(
            expand_one("https://h.example/p{/x*}", json!(["a", ""])).unwrap(),
            "https://h.example/p/a/"
        );
        assert_eq!(
            expand_one("https://h.example/p/{x}", json!(["", ""])).unwrap(),
            "https://h.example/p/,"
        );
        // Numbers are never empty.
        assert_eq!(
            expand_one("https://h.example/users/{x}", json!(0)).unwrap(),
            "https://h.example/users/0"
        );
        // Allowed per variable; other variables stay guarded.
        let t = UrlTemplate::parse("https://h.example/{a}/{b}")
            .unwrap()
            .allow_empty("a")
            .allow_empty("unknown");
        assert_eq!(
            t.expand_to_string(&vec![("a", json!("")), ("b", json!("x"))])
                .unwrap(),
            "https://h.example//x"
        );
        assert_eq!(
            t.expand_to_string(&vec![("a", json!("x")), ("b", json!(""))]),
            Err(ExpandError::Empty { name: "b".into() })
        );
        // Once the query or fragment started, an empty value is meaningful.
        for template in [
            "https://h.example/p?q={x}",
            "https://h.example/p{?a}{x}",
            "https://h.example/p{&a}/{x}",
            "https://h.example/p#{x}",
            "https://h.example/p{#x}",
        ] {
            expand_one(template, json!("")).unwrap_or_else(|e| panic!("{template}: {e}"));
        }
        assert_eq!(
            ExpandError::Empty { name: "id".into() }.to_string(),
            "parameter `id` is empty, which would change the URL path; pass a non-empty value, or declare `allow_empty(\"id\")` if an empty value is meant"
        );
    }

    #[test]
    fn reserved_values_cannot_end_the_path_before_the_template_does() {
        for template in [
            "https://h.example/raw/{+x}/end",
            "https://h.example/raw/{+x}{/y}",
            "https://h.example/raw/{+x}?k=v",
            "https://h.example/raw/{+x}{?q}",
            "{+x}/users",
        ] {
            for (value, delimiter) in [("a?b", '?'), ("a#b", '#'), ("?", '?'), ("a/b#", '#')] {
                let vars = vec![("x", json!(value)), ("y", json!("s"))];
                assert_eq!(
                    UrlTemplate::parse(template)
                        .unwrap()
                        .expand_to_string(&vars),
                    Err(ExpandError::EndsPath {
                        name: "x".into(),
                        delimiter
                    }),
                    "{template} {value}"
                );
            }
        }
        // At the end of the template, in the query and in the fragment, the RFC holds.
        assert_eq!(
            expand_one("https://h.example/raw/{+x}", json!("a?b=1#f")).unwrap(),
            "https://h.example/raw/a?b=1#f"
        );
        assert_eq!(
            expand_one("https://h.example/p?next={+x}&k=v", json!("/a?b#c")).unwrap(),
            "https://h.example/p?next=/a?b#c&k=v"
        );
        assert_eq!(
            expand_one("https://h.example/p{#x}/end", json!("a?b#c")).unwrap(),
            "https://h.example/p#a?b#c/end"
        );
        // Other operators encode them.
        assert_eq!(
            expand_one("https://h.example/{x}/end", json!("a?b#c")).unwrap(),
            "https://h.example/a%3Fb%23c/end"
        );
        assert!(
            ExpandError::EndsPath {
                name: "path".into(),
                delimiter: '?'
            }
            .to_string()
            .starts_with("parameter `path` contains `?`, which in `{+path}` would end the path")
        );
    }

    #[test]
    fn prefix_counts_characters_not_bytes() {
        let vars = vec![
            ("s", json!("Ünïcödé")),
            ("e", json!("😀😃x")),
            ("p", json!("é/ü")),
        ];
        expands_to(
            &vars,
            &[
                ("{s:3}", "%C3%9Cn%C3%AF"),
                ("{s:1}", "%C3%9C"),
                ("{s:9999}", "%C3%9Cn%C3%AFc%C3%B6d%C3%A9"),
                ("{e:1}", "%F0%9F%98%80"),
                ("{?e:2}", "?e=%F0%9F%98%80%F0%9F%98%83"),
                ("{+p:2}", "%C3%A9/"),
            ],
        );
    }

    #[test]
    fn scalars_numbers_and_bools() {
        let vars = vec![
            ("i", json!(7)),
            ("n", json!(-42)),
            ("f", json!(1.5)),
            ("t", json!(true)),
            ("b", json!(false)),
            ("big", json!(u64::MAX)),
            ("l", json!([1, 2.5, true, "x y"])),
            ("m", json!({"a": 1, "b": false})),
        ];
        expands_to(
            &vars,
            &[
                ("{i}/{n}/{f}/{t}/{b}", "7/-42/1.5/true/false"),
                ("{big}", "18446744073709551615"),
                ("{i:1}{f:2}", "71."),
                ("{?l*}", "?l=1&l=2.5&l=true&l=x%20y"),
                ("{/l}", "/1,2.5,true,x%20y"),
                ("{?m*}", "?a=1&b=false"),
                ("{;m}", ";m=a,1,b,false"),
            ],
        );
    }

    #[test]
    fn unsupported_values() {
        let expand = |template: &str, value: Value| {
            UrlTemplate::parse(template)
                .unwrap()
                .expand_to_string(&vec![("x", value)])
        };
        let reason_of = |result: Result<String, ExpandError>| match result {
            Err(ExpandError::Unsupported { name, reason }) => {
                assert_eq!(name, "x");
                reason
            }
            other => panic!("expected Unsupported, got {other:?}"),
        };
        assert!(reason_of(expand("{x}", json!([1, [2]]))).contains("list member 1 is an array"));
        assert!(
            reason_of(expand("{?x*}", json!([{"a": 1}]))).contains("list member 0 is an object")
        );
        assert!(reason_of(expand("{x}", json!(["a", null]))).contains("list member 1 is null"));
        assert!(reason_of(expand("{x*}", json!({"a": [1]}))).contains("key \"a\" is an array"));
        assert!(reason_of(expand("{x:2}", json!(["ab"]))).contains("prefix"));
        assert!(reason_of(expand("{?x:2}", json!({"a": "b"}))).contains("prefix"));
        // Null map values are left out (RFC 6570 §2.3); an all-null map is undefined.
        assert_eq!(expand("{?x*}", json!({"a": null, "b": 2})).unwrap(), "?b=2");
        assert_eq!(expand("{?x*}", json!({"a": null})).unwrap(), "");
        assert!(matches!(
            expand("{x}", json!({"a": null})),
            Err(ExpandError::Missing { .. })
        ));
    }
}
