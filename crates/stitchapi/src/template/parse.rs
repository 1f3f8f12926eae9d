//! Parsing: template text to its compiled form (literal chunks, already encoded, and
//! expressions with their operator, variables and modifiers).

use super::encode::encode;
use super::{TemplateError, UrlTemplate};

/// Parses and compiles `template` (see [`UrlTemplate::parse`]).
pub(super) fn compile(template: &str) -> Result<UrlTemplate, TemplateError> {
    let mut parser = Parser {
        src: template,
        parts: Vec::new(),
        names: Vec::new(),
        literal_len: 0,
        expressions: 0,
        in_query: false,
    };
    let mut rest_start = 0;
    loop {
        // `rest_start` is 0 or just after an ASCII `}`, so a char boundary.
        let rest = &template[rest_start..];
        let Some(offset) = rest.find(['{', '}']) else {
            parser.literal(rest);
            break;
        };
        // `find` returns a char boundary of `rest`.
        parser.literal(&rest[..offset]);
        let brace = rest_start + offset;
        if rest.as_bytes().get(offset) == Some(&b'}') {
            return Err(parser.error(brace, "`}` without a matching `{`"));
        }
        let close = parser.expression(brace)?;
        rest_start = close + 1;
    }
    let Parser {
        mut parts,
        names,
        literal_len,
        expressions,
        ..
    } = parser;
    for part in &mut parts {
        if let Part::Expr(expr) = part {
            for spec in expr.specs.iter_mut() {
                spec.required = names
                    .iter()
                    .any(|known| known.name == spec.name && known.required);
            }
        }
    }
    Ok(UrlTemplate {
        source: template.to_owned(),
        parts,
        names,
        size_hint: literal_len.saturating_add(expressions.saturating_mul(16)),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VarName {
    pub(super) name: Box<str>,
    pub(super) required: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// Literal text, percent-encoded at parse time where the RFC requires it.
    Literal(Box<str>),
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Expr {
    pub(super) op: Op,
    pub(super) specs: Box<[VarSpec]>,
    /// Whether the expression stands before the query and fragment (in the scheme,
    /// authority or path): no literal `?`/`#` and no `{?…}`/`{&…}`/`{#…}` comes before it.
    pub(super) in_path: bool,
    /// Whether the template goes on after the expression (literal text or expressions).
    pub(super) followed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VarSpec {
    pub(super) name: Box<str>,
    pub(super) modifier: Modifier,
    /// Whether the variable is required anywhere in the template (not just here).
    pub(super) required: bool,
    /// Whether an empty value is allowed where it would change the path
    /// ([`UrlTemplate::allow_empty`]).
    pub(super) allow_empty: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Modifier {
    None,
    /// `:N`, 1..=9999 characters.
    Prefix(u16),
    /// `*`.
    Explode,
}

/// The expression operators of RFC 6570 §3.2 (and the table of its Appendix A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Simple,
    Reserved,
    Fragment,
    Label,
    Path,
    PathParam,
    Query,
    QueryCont,
}

impl Op {
    pub(super) fn from_byte(byte: u8) -> Option<Op> {
        Some(match byte {
            b'+' => Op::Reserved,
            b'#' => Op::Fragment,
            b'.' => Op::Label,
            b'/' => Op::Path,
            b';' => Op::PathParam,
            b'?' => Op::Query,
            b'&' => Op::QueryCont,
            _ => return None,
        })
    }

    /// What the expansion starts with, when any variable is defined.
    pub(super) fn first(self) -> Option<char> {
        match self {
            Op::Simple | Op::Reserved => None,
            Op::Fragment => Some('#'),
            Op::Label => Some('.'),
            Op::Path => Some('/'),
            Op::PathParam => Some(';'),
            Op::Query => Some('?'),
            Op::QueryCont => Some('&'),
        }
    }

    /// What separates defined variables (and exploded members).
    pub(super) fn sep(self) -> char {
        match self {
            Op::Simple | Op::Reserved | Op::Fragment => ',',
            Op::Label => '.',
            Op::Path => '/',
            Op::PathParam => ';',
            Op::Query | Op::QueryCont => '&',
        }
    }

    pub(super) fn named(self) -> bool {
        matches!(self, Op::PathParam | Op::Query | Op::QueryCont)
    }

    pub(super) fn if_empty(self) -> &'static str {
        match self {
            Op::Query | Op::QueryCont => "=",
            _ => "",
        }
    }

    pub(super) fn allow_reserved(self) -> bool {
        matches!(self, Op::Reserved | Op::Fragment)
    }

    /// Whether the expansion can end up in the path. `?` and `&` expansions start with a
    /// query delimiter or sit in the query, so they cannot build a path dot-segment.
    pub(super) fn on_path(self) -> bool {
        !matches!(self, Op::Query | Op::QueryCont)
    }

    pub(super) fn makes_required(self) -> bool {
        !matches!(self, Op::Query | Op::QueryCont)
    }

    /// Whether an empty expansion in the path changes the endpoint: `/users/{id}`,
    /// `/users{/id}`, `/files/{+path}` and `/report{.ext}` lose or empty a segment, while
    /// `{;x}` keeps its name and `{?…}`, `{&…}`, `{#…}` are not in the path.
    pub(super) fn empty_changes_path(self) -> bool {
        matches!(self, Op::Simple | Op::Reserved | Op::Path | Op::Label)
    }

    /// Whether the expansion ends the path: what follows it is in the query or fragment.
    pub(super) fn ends_path(self) -> bool {
        matches!(self, Op::Query | Op::QueryCont | Op::Fragment)
    }
}

struct Parser<'s> {
    src: &'s str,
    parts: Vec<Part>,
    names: Vec<VarName>,
    literal_len: usize,
    expressions: usize,
    /// Whether a literal `?`/`#` or a `{?…}`/`{&…}`/`{#…}` expression came before.
    in_query: bool,
}

impl Parser<'_> {
    fn error(&self, position: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            template: self.src.to_owned(),
            position,
            message: message.into(),
        }
    }

    fn literal(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.in_query |= text.contains(['?', '#']);
        let mut encoded = String::with_capacity(text.len());
        encode(&mut encoded, text, true);
        self.literal_len += encoded.len();
        self.parts.push(Part::Literal(encoded.into_boxed_str()));
    }

    /// Parses the expression whose `{` is at `open`; returns the position of its `}`.
    fn expression(&mut self, open: usize) -> Result<usize, TemplateError> {
        let bytes = self.src.as_bytes();
        let body = open + 1;
        let close = match bytes
            .get(body..)
            .and_then(|rest| rest.iter().position(|&b| b == b'{' || b == b'}'))
        {
            Some(offset) if bytes.get(body + offset) == Some(&b'}') => body + offset,
            Some(_) => {
                return Err(self.error(open, "unclosed `{` (another `{` comes before any `}`)"));
            }
            None => return Err(self.error(open, "unclosed `{`")),
        };
        if close == body {
            return Err(self.error(open, "empty expression `{}`"));
        }
        // Everything below only looks at `bytes[body..close]`, ending at `close`.
        let at = |pos: usize| {
            if pos < close {
                bytes.get(pos).copied()
            } else {
                None
            }
        };
        let mut pos = body;
        let op = match at(pos) {
            Some(reserved @ (b'=' | b',' | b'!' | b'@' | b'|')) => {
                let reserved = char::from(reserved);
                return Err(self.error(
                    pos,
                    format!("`{reserved}` is a reserved operator and cannot be used"),
                ));
            }
            Some(byte) => match Op::from_byte(byte) {
                Some(op) => {
                    pos += 1;
                    op
                }
                None => Op::Simple,
            },
            None => Op::Simple,
        };
        let mut specs = Vec::new();
        loop {
            let name_start = pos;
            pos = self.varname(pos, close)?;
            // `varname` only advances over ASCII bytes, so both ends are char boundaries.
            let name = &self.src[name_start..pos];
            let modifier = match at(pos) {
                Some(b':') => {
                    let digits = pos + 1;
                    let mut end = digits;
                    let mut value: u32 = 0;
                    while let Some(digit @ b'0'..=b'9') = at(end) {
                        value = value
                            .saturating_mul(10)
                            .saturating_add(u32::from(digit - b'0'));
                        end += 1;
                    }
                    if end == digits {
                        return Err(self.error(digits, "missing prefix length after `:`"));
                    }
                    if at(digits) == Some(b'0') || value > 9999 {
                        return Err(
                            self.error(digits, "prefix length must be a number from 1 to 9999")
                        );
                    }
                    if at(end) == Some(b'*') {
                        return Err(
                            self.error(end, "a prefix `:N` and explode `*` cannot be combined")
                        );
                    }
                    pos = end;
                    // 1..=9999 fits in a u16.
                    Modifier::Prefix(u16::try_from(value).unwrap_or(9999))
                }
                Some(b'*') => {
                    pos += 1;
                    if at(pos) == Some(b':') {
                        return Err(
                            self.error(pos, "a prefix `:N` and explode `*` cannot be combined")
                        );
                    }
                    Modifier::Explode
                }
                _ => Modifier::None,
            };
            self.add_name(name, op.makes_required());
            specs.push(VarSpec {
                name: name.into(),
                modifier,
                required: false,
                allow_empty: false,
            });
            match at(pos) {
                None => break,
                Some(b',') => pos += 1,
                Some(_) => return Err(self.invalid_char(pos)),
            }
        }
        self.expressions += 1;
        self.parts.push(Part::Expr(Expr {
            op,
            specs: specs.into_boxed_slice(),
            in_path: !self.in_query,
            followed: close + 1 < self.src.len(),
        }));
        self.in_query |= op.ends_path();
        Ok(close)
    }

    /// Parses an RFC 6570 `varname` starting at `start`; returns where it ends.
    fn varname(&self, start: usize, close: usize) -> Result<usize, TemplateError> {
        let bytes = self.src.as_bytes();
        let at = |pos: usize| {
            if pos < close {
                bytes.get(pos).copied()
            } else {
                None
            }
        };
        let mut pos = start;
        // A name character is needed next: at the start and after a `.`.
        let mut need_char = true;
        loop {
            match at(pos) {
                Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {
                    pos += 1;
                    need_char = false;
                }
                Some(b'%') => {
                    match (at(pos + 1), at(pos + 2)) {
                        (Some(hi), Some(lo))
                            if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {}
                        _ => {
                            return Err(self.error(
                                pos,
                                "`%` in a variable name must start a percent-encoded triplet such as %20",
                            ));
                        }
                    }
                    pos += 3;
                    need_char = false;
                }
                Some(b'.') if !need_char => {
                    pos += 1;
                    need_char = true;
                }
                _ if !need_char => return Ok(pos),
                _ if pos == start => {
                    return Err(match at(pos) {
                        None | Some(b',') => self.error(pos, "expected a variable name"),
                        Some(_) => self.invalid_char(pos),
                    });
                }
                // After a `.`: the name ended with `.` or has `..`.
                _ => {
                    return Err(self.error(
                        pos - 1,
                        "a `.` in a variable name must stand between two name characters",
                    ));
                }
            }
        }
    }

    fn invalid_char(&self, pos: usize) -> TemplateError {
        match self.src.get(pos..).and_then(|rest| rest.chars().next()) {
            Some(c) => self.error(pos, format!("invalid character {c:?} in a variable name")),
            None => self.error(pos, "invalid character in a variable name"),
        }
    }

    fn add_name(&mut self, name: &str, required: bool) {
        match self.names.iter_mut().find(|known| &*known.name == name) {
            Some(known) => known.required |= required,
            None => self.names.push(VarName {
                name: name.into(),
                required,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use crate::template::testkit::{Rng, map};
    use crate::template::{TemplateError, UrlTemplate};

    #[test]
    fn parse_errors_report_their_position() {
        let cases: &[(&str, usize, &str)] = &[
            ("https://h/{id", 10, "unclosed `{`"),
            (
                "{a{b}",
                0,
                "unclosed `{` (another `{` comes before any `}`)",
            ),
            ("a}b", 1, "`}` without a matching `{`"),
            ("{a}}", 3, "`}` without a matching `{`"),
            ("x/{}", 2, "empty expression `{}`"),
            ("{+}", 2, "expected a variable name"),
            ("{a,}", 3, "expected a variable name"),
            ("{a,,b}", 3, "expected a variable name"),
            ("{=a}", 1, "`=` is a reserved operator and cannot be used"),
            ("{,a}", 1, "`,` is a reserved operator and cannot be used"),
            ("{|a}", 1, "`|` is a reserved operator and cannot be used"),
            ("{!a}", 1, "`!` is a reserved operator and cannot be used"),
            ("{@a}", 1, "`@` is a reserved operator and cannot be used"),
            ("{a b}", 2, "invalid character ' ' in a variable name"),
            ("{a-b}", 2, "invalid character '-' in a variable name"),
            ("{é}", 1, "invalid character 'é' in a variable name"),
            ("{xé}", 2, "invalid character 'é' in a variable name"),
            ("{++a}", 2, "invalid character '+' in a variable name"),
            (
                "{a..b}",
                2,
                "a `.` in a variable name must stand between two name characters",
            ),
            (
                "{a.}",
                2,
                "a `.` in a variable name must stand between two name characters",
            ),
            ("{..a}", 2, "invalid character '.' in a variable name"),
            (
                "{a%2}",
                2,
                "`%` in a variable name must start a percent-encoded triplet such as %20",
            ),
            (
                "{a%zz}",
                2,
                "`%` in a variable name must start a percent-encoded triplet such as %20",
            ),
            ("{a:}", 3, "missing prefix length after `:`"),
            ("{a:x}", 3, "missing prefix length after `:`"),
            ("{a:0}", 3, "prefix length must be a number from 1 to 9999"),
            ("{a:05}", 3, "prefix length must be a number from 1 to 9999"),
            (
                "{a:10000}",
                3,
                "prefix length must be a number from 1 to 9999",
            ),
            (
                "{a:99999999999999999999999}",
                3,
                "prefix length must be a number from 1 to 9999",
            ),
            (
                "{a:3*}",
                4,
                "a prefix `:N` and explode `*` cannot be combined",
            ),
            (
                "{a*:3}",
                3,
                "a prefix `:N` and explode `*` cannot be combined",
            ),
            ("{a:3x}", 4, "invalid character 'x' in a variable name"),
            ("{a**}", 3, "invalid character '*' in a variable name"),
        ];
        for &(template, position, message) in cases {
            let err = UrlTemplate::parse(template).unwrap_err();
            assert_eq!(
                err,
                TemplateError {
                    template: template.into(),
                    position,
                    message: message.into()
                },
                "template {template:?}"
            );
            let _: Result<UrlTemplate, _> = template
                .parse()
                .map(|_: UrlTemplate| panic!("{template} parsed"));
        }
        assert_eq!(
            UrlTemplate::parse("{a:0}").unwrap_err().to_string(),
            "invalid URL template \"{a:0}\" at byte 3: prefix length must be a number from 1 to 9999"
        );
        // Valid edge cases.
        for template in [
            "{a:9999}",
            "{a:1}",
            "{a.b.c}",
            "{_1%20x}",
            "{.a}",
            "{a*,b:3,c}",
            "",
            "plain",
        ] {
            UrlTemplate::parse(template).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn property_arbitrary_templates_never_panic() {
        const TEMPLATE_POOL: &[char] = &[
            '{', '}', '{', '}', '+', '#', '.', '/', ';', '?', '&', '=', ',', '!', '@', '|', ':',
            '*', '%', '2', 'e', '0', '9', 'x', 'y', 'a', '_', ' ', 'é', '😀',
        ];
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let vars = map(json!({
            "x": "..", "y": ["a", ".", "%2e"], "a": {"k": "/..", "j": ""}, "e": "", "_": 1.5,
        }));
        let mut parsed = 0;
        for _ in 0..20_000 {
            let template = rng.string(TEMPLATE_POOL, 12);
            match UrlTemplate::parse(&template) {
                Ok(t) => {
                    parsed += 1;
                    assert_eq!(t.as_str(), template);
                    let _ = t.expand_to_string(&vars);
                    let _ = t.expand_to_string(&Map::new());
                }
                Err(e) => assert!(e.position <= template.len(), "{template:?}: {e}"),
            }
        }
        assert!(parsed > 100);
    }
}
