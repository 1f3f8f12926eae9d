//! [RFC 6570](https://www.rfc-editor.org/rfc/rfc6570) URI Templates, levels 1–4: parsed
//! once into literal chunks and expressions, then expanded into the caller's `String`.
//!
//! | expression    | operator | prefix | separator | named (`k=v`) | allowed unencoded          |
//! |---------------|----------|--------|-----------|---------------|----------------------------|
//! | `{x}`         | none     |        | `,`       | no            | unreserved                 |
//! | `{+x}`        | reserved |        | `,`       | no            | unreserved, reserved, `%XX` |
//! | `{#x}`        | fragment | `#`    | `,`       | no            | unreserved, reserved, `%XX` |
//! | `{.x}`        | label    | `.`    | `.`       | no            | unreserved                 |
//! | `{/x}`        | path     | `/`    | `/`       | no            | unreserved                 |
//! | `{;x}`        | params   | `;`    | `;`       | yes           | unreserved                 |
//! | `{?x}`        | query    | `?`    | `&`       | yes (`x=`)    | unreserved                 |
//! | `{&x}`        | query    | `&`    | `&`       | yes (`x=`)    | unreserved                 |
//!
//! Value modifiers: `{x:3}` keeps the first 3 characters (Unicode scalar values) of a string;
//! `{x*}` explodes a list or map into one item per member.
//!
//! # Values
//!
//! Values come from a [`Vars`] as [`serde_json::Value`]s: strings, numbers and booleans are
//! scalars (numbers and booleans as their JSON text: `7`, `1.5`, `true`); an array is a list
//! of scalars; an object is an associative array of scalars (members whose value is `null`
//! are left out, RFC 6570 §2.3); `null`, `[]` and `{}` are *undefined*.
//!
//! # Required and optional variables
//!
//! A variable used in any expression with operator none, `+`, `#`, `.`, `/` or `;` is
//! *required*: expanding without it is an [`ExpandError::Missing`] instead of silently
//! producing a different URL. Variables used only in `{?…}` / `{&…}` are optional and
//! skipped when undefined, as the RFC says.
//!
//! # Empty values
//!
//! An expression with operator none, `+`, `.` or `/` that stands before the query (no literal
//! `?`/`#` and no `{?…}`, `{&…}`, `{#…}` before it) and expands to nothing is an
//! [`ExpandError::Empty`]: `DELETE /users/{id}` with `id = ""` would otherwise be
//! `DELETE /users/`, another endpoint. A list or map that expands to nothing counts as empty;
//! one with a non-empty expansion (`{/x*}` with `["a", ""]` is `/a/`) keeps its RFC meaning.
//! Allow it per variable with [`UrlTemplate::allow_empty`] (on a stitch:
//! [`StitchBuilder::allow_empty`](crate::StitchBuilder::allow_empty)). In the query (`{?q}`, `?q={q}`), in the fragment and with
//! `{;x}` (which keeps the name), empty values expand as the RFC says.
//!
//! # Safety of the expanded URL
//!
//! * Operators none, `.`, `/`, `;`, `?`, `&` percent-encode (UTF-8, `%XX` uppercase) every
//!   byte outside `ALPHA DIGIT - . _ ~`, so a value can never add a `/`, `?`, `#`, `@`, `%`,
//!   space, CR or LF to the URL.
//! * `+` and `#` also let reserved characters and valid `%XX` triplets through, and encode
//!   everything else (controls, space, a `%` not starting a triplet, non-ASCII).
//! * Dot-segments are refused ([`ExpandError::DotSegment`]): a value (or list member) equal
//!   to `.` or `..` with operators none, `/` and `.`; a value (or list member) with a `.` or
//!   `..` segment (also spelled `%2e`, which WHATWG URL parsers treat as `.`) with `+` and
//!   `#`; and any `.`/`..` path segment of the expanded URL that an expansion produced or
//!   delimited (e.g. `/{.ext}` with an empty `ext` would give `/.`, and `{+dir}.` with
//!   `dir = "a/"` would give `a/.`). A segment counts as a dot-segment also when followed by
//!   `;params` (`..;x`), which some servers strip before resolving dot-segments.
//!   Dot-segments written in the template's own literal text are left alone.
//! * Servers that percent-decode the path before resolving dot-segments take `%2F` and `%5C`
//!   (any case) for `/` and `\`, so those count as separators too: a `+`/`#` value such as
//!   `..%2fadmin`, `..%5Cadmin` or `..\admin` is refused, and so is a value `../admin` for
//!   `{x}` (sent as `..%2Fadmin`), while `a/b` is still sent as `a%2Fb`.
//! * A `{+x}` in the path with more of the template after it refuses a value with `?` or `#`
//!   ([`ExpandError::EndsPath`]), which would push the rest of the template's path into the
//!   query or fragment (`/raw/{+path}/end` with `a?` would be `/raw/a?/end`). At the end of
//!   the template, `{+x}` lets them through, as the RFC says.
//!
//! * Literal template text is copied with characters that are not allowed in a URI
//!   percent-encoded.
//!
//! Variable names are looked up exactly as written in the template, `%XX` included.
//!
//! # Display is redacted
//!
//! A template is text a developer wrote, and it may carry a secret (`?api_key=…`).
//! [`UrlTemplate`]'s `Display` and `Debug`, and the errors of this module, show it with
//! userinfo (`https://…@host/`), every literal query value (`?api_key=…&page=…`; an item
//! without `=` as a whole) and the fragment replaced by `…`; expressions, the scheme, host,
//! port, path and query keys are shown. [`UrlTemplate::as_str`] returns the text as written.
//! The crate displays URLs of calls the same way (stitch names, traces, `Error::url`). A
//! secret in the *path* (`/bot<token>/send`) cannot be told apart and is shown: pass it as a
//! variable or through `Auth` instead.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde_json::{Map, Number, Value};

use crate::input::json_type;

/// A compiled RFC 6570 URI template.
///
/// Parse once (at startup), expand per request: expansion does no parsing and writes
/// straight into the caller's `String`.
///
/// # Display is redacted
///
/// `Display` and `Debug` replace userinfo, literal query values and the fragment by `…`
/// (see the [module docs](self#display-is-redacted)); [`as_str`](Self::as_str) is the text as
/// written.
///
/// ```
/// use serde_json::json;
/// use stitchapi::template::{ExpandError, UrlTemplate};
///
/// let template = UrlTemplate::parse("https://api.example.com/orgs/{org}/users/{id}{?fields}")?;
/// assert_eq!(template.variables().collect::<Vec<_>>(), ["org", "id", "fields"]);
/// assert!(template.is_required("org") && !template.is_required("fields"));
///
/// let vars = vec![("org", json!("acme")), ("id", json!(42)), ("fields", json!(["name", "email"]))];
/// assert_eq!(
///     template.expand_to_string(&vars)?,
///     "https://api.example.com/orgs/acme/users/42?fields=name,email"
/// );
///
/// // Values stay inside their slot: `/`, `?`, `#` and `@` are percent-encoded...
/// let vars = vec![("org", json!("a/b?c#d@e")), ("id", json!(1))];
/// assert_eq!(
///     template.expand_to_string(&vars)?,
///     "https://api.example.com/orgs/a%2Fb%3Fc%23d%40e/users/1"
/// );
/// // ...dot-segments are refused, and so is a missing required variable.
/// let vars = vec![("org", json!("..")), ("id", json!(1))];
/// assert!(matches!(template.expand_to_string(&vars), Err(ExpandError::DotSegment { .. })));
/// let vars = vec![("org", json!("acme"))];
/// assert!(matches!(template.expand_to_string(&vars), Err(ExpandError::Missing { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    /// The template text as given to [`UrlTemplate::parse`].
    source: String,
    /// Literal chunks (already encoded) and expressions, in template order.
    parts: Vec<Part>,
    /// Every variable name in order of first use, without duplicates.
    names: Vec<VarName>,
    /// A guess at the expanded length, reserved up front.
    size_hint: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct VarName {
    name: Box<str>,
    required: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Literal text, percent-encoded at parse time where the RFC requires it.
    Literal(Box<str>),
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Expr {
    op: Op,
    specs: Box<[VarSpec]>,
    /// Whether the expression stands before the query and fragment (in the scheme,
    /// authority or path): no literal `?`/`#` and no `{?…}`/`{&…}`/`{#…}` comes before it.
    in_path: bool,
    /// Whether the template goes on after the expression (literal text or expressions).
    followed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct VarSpec {
    name: Box<str>,
    modifier: Modifier,
    /// Whether the variable is required anywhere in the template (not just here).
    required: bool,
    /// Whether an empty value is allowed where it would change the path
    /// ([`UrlTemplate::allow_empty`]).
    allow_empty: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Modifier {
    None,
    /// `:N`, 1..=9999 characters.
    Prefix(u16),
    /// `*`.
    Explode,
}

/// The expression operators of RFC 6570 §3.2 (and the table of its Appendix A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
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
    fn from_byte(byte: u8) -> Option<Op> {
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
    fn first(self) -> Option<char> {
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
    fn sep(self) -> char {
        match self {
            Op::Simple | Op::Reserved | Op::Fragment => ',',
            Op::Label => '.',
            Op::Path => '/',
            Op::PathParam => ';',
            Op::Query | Op::QueryCont => '&',
        }
    }

    fn named(self) -> bool {
        matches!(self, Op::PathParam | Op::Query | Op::QueryCont)
    }

    fn if_empty(self) -> &'static str {
        match self {
            Op::Query | Op::QueryCont => "=",
            _ => "",
        }
    }

    fn allow_reserved(self) -> bool {
        matches!(self, Op::Reserved | Op::Fragment)
    }

    /// Whether the expansion can end up in the path. `?` and `&` expansions start with a
    /// query delimiter or sit in the query, so they cannot build a path dot-segment.
    fn on_path(self) -> bool {
        !matches!(self, Op::Query | Op::QueryCont)
    }

    fn makes_required(self) -> bool {
        !matches!(self, Op::Query | Op::QueryCont)
    }

    /// Whether an empty expansion in the path changes the endpoint: `/users/{id}`,
    /// `/users{/id}`, `/files/{+path}` and `/report{.ext}` lose or empty a segment, while
    /// `{;x}` keeps its name and `{?…}`, `{&…}`, `{#…}` are not in the path.
    fn empty_changes_path(self) -> bool {
        matches!(self, Op::Simple | Op::Reserved | Op::Path | Op::Label)
    }

    /// Whether the expansion ends the path: what follows it is in the query or fragment.
    fn ends_path(self) -> bool {
        matches!(self, Op::Query | Op::QueryCont | Op::Fragment)
    }
}

/// Where expansion reads variable values.
///
/// Implemented for `serde_json::Map` and for slices and vectors of `(name, value)` pairs;
/// implement it for your own lookup structure to expand without copying values.
pub trait Vars {
    /// The value of variable `name`, or `None` when it is not set. `Some(Value::Null)`,
    /// an empty array and an empty object count as undefined too.
    fn get(&self, name: &str) -> Option<&Value>;
}

impl Vars for Map<String, Value> {
    /// Looks `name` up in the map.
    fn get(&self, name: &str) -> Option<&Value> {
        Map::get(self, name)
    }
}

impl<K: AsRef<str>> Vars for [(K, Value)] {
    /// Scans the pairs; when a name appears more than once, the last pair wins.
    fn get(&self, name: &str) -> Option<&Value> {
        let name = name.as_bytes();
        self.iter()
            .rev()
            // A byte loop: names are short, and a `memcmp` call costs more than it saves.
            .find(|(key, _)| {
                let key = key.as_ref().as_bytes();
                key.len() == name.len() && key.iter().zip(name).all(|(a, b)| a == b)
            })
            .map(|(_, value)| value)
    }
}

impl<K: AsRef<str>, const N: usize> Vars for [(K, Value); N] {
    /// Scans the pairs; when a name appears more than once, the last pair wins.
    fn get(&self, name: &str) -> Option<&Value> {
        <[(K, Value)] as Vars>::get(self.as_slice(), name)
    }
}

impl<V: Vars + ?Sized> Vars for &V {
    /// Looks `name` up in the referenced variables (so `&slice` works as `&dyn Vars`).
    fn get(&self, name: &str) -> Option<&Value> {
        V::get(self, name)
    }
}

impl<K: AsRef<str>> Vars for Vec<(K, Value)> {
    /// Scans the pairs; when a name appears more than once, the last pair wins.
    fn get(&self, name: &str) -> Option<&Value> {
        <[(K, Value)] as Vars>::get(self.as_slice(), name)
    }
}

/// A template that is not valid RFC 6570 syntax.
///
/// `Display` and `Debug` show the template [redacted](UrlTemplate#display-is-redacted); the
/// `template` field holds it as written.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL template {:?} at byte {position}: {message}", Redacted::template(.template).to_string())]
pub struct TemplateError {
    /// The template text, as written.
    pub template: String,
    /// Byte offset in `template` of the offending character (of the `{` for an unclosed or
    /// empty expression).
    pub position: usize,
    /// What is wrong there.
    pub message: String,
}

/// Why a template could not be expanded with the given values.
///
/// `Display` and `Debug` show the template [redacted](UrlTemplate#display-is-redacted).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A required variable (see [`UrlTemplate::is_required`]) is undefined: not set, `null`,
    /// `[]` or `{}`. Reported for the first such variable in template order.
    #[error("missing parameter `{name}`: the URL template {:?} needs it", Redacted::template(.template).to_string())]
    Missing {
        /// The variable name.
        name: String,
        /// The template text, as written.
        template: String,
    },
    /// The value is empty where an empty value changes the endpoint: an expression with
    /// operator none, `+`, `.` or `/` before the query (`DELETE /users/{id}` with `id = ""`
    /// would be `DELETE /users/`). Allowed per variable with [`UrlTemplate::allow_empty`].
    #[error(
        "parameter `{name}` is empty, which would change the URL path; pass a non-empty value, or declare `allow_empty(\"{name}\")` if an empty value is meant"
    )]
    Empty {
        /// The variable name.
        name: String,
    },
    /// The value would put a `.` or `..` path segment in the URL, which URL parsers
    /// resolve away (climbing out of the intended path).
    #[error("parameter `{name}` is a dot-segment ({value:?}), which would change the path shape")]
    DotSegment {
        /// The variable name.
        name: String,
        /// The offending segment (`.`, `..`, `%2e%2e`, ...).
        value: String,
    },
    /// A `{+…}` expression in the path, with more of the template after it, expanded to a `?`
    /// or `#`: the rest of the template's path would move into the query or fragment
    /// (`/raw/{+path}/end` with `path = "a?"` would be `/raw/a?/end`).
    #[error(
        "parameter `{name}` contains `{delimiter}`, which in `{{+{name}}}` would end the path before the rest of the template; send it percent-encoded (`%3F`, `%23`), or put the expression at the end of the template"
    )]
    EndsPath {
        /// The variable name.
        name: String,
        /// The delimiter found: `?` or `#`.
        delimiter: char,
    },
    /// The value has a shape a URL cannot carry: a nested array or object inside a list or
    /// map, a `null` list member, or a prefix modifier (`:N`) on a list or map.
    #[error("parameter `{name}` cannot be used in a URL: {reason}")]
    Unsupported {
        /// The variable name.
        name: String,
        /// What is wrong with the value.
        reason: String,
    },
}

impl fmt::Debug for TemplateError {
    /// Like the derived `Debug`, with the template redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateError")
            .field("template", &Redacted::template(&self.template).to_string())
            .field("position", &self.position)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Debug for ExpandError {
    /// Like the derived `Debug`, with the template redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Missing { name, template } => f
                .debug_struct("Missing")
                .field("name", name)
                .field("template", &Redacted::template(template).to_string())
                .finish(),
            ExpandError::Empty { name } => f.debug_struct("Empty").field("name", name).finish(),
            ExpandError::EndsPath { name, delimiter } => f
                .debug_struct("EndsPath")
                .field("name", name)
                .field("delimiter", delimiter)
                .finish(),
            ExpandError::DotSegment { name, value } => f
                .debug_struct("DotSegment")
                .field("name", name)
                .field("value", value)
                .finish(),
            ExpandError::Unsupported { name, reason } => f
                .debug_struct("Unsupported")
                .field("name", name)
                .field("reason", reason)
                .finish(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

impl UrlTemplate {
    /// Parses and compiles `template`.
    ///
    /// Fails on an unclosed `{`, a stray `}`, an empty expression, a reserved operator
    /// (`=`, `,`, `!`, `@`, `|`), an invalid variable name (RFC `varname`: `ALPHA`, `DIGIT`,
    /// `_` and `%XX`, with single `.`s between them), a prefix length outside `1..=9999`,
    /// and a prefix combined with explode. Literal text never fails: characters not allowed
    /// in a URI are percent-encoded.
    pub fn parse(template: &str) -> Result<UrlTemplate, TemplateError> {
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

    /// The template text, exactly as parsed.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Every variable name, in order of first use, without duplicates.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|var| &*var.name)
    }

    /// Allows an empty value for variable `name` where it would otherwise be refused
    /// ([`ExpandError::Empty`]): in an expression with operator none, `+`, `.` or `/` before
    /// the query. Use it when an empty value is part of the endpoint's meaning. Names that are
    /// not variables of the template change nothing (see [`variables`](Self::variables)).
    ///
    /// ```
    /// use serde_json::json;
    /// use stitchapi::template::{ExpandError, UrlTemplate};
    ///
    /// let template = UrlTemplate::parse("https://api.example.com/files/{+prefix}")?;
    /// let vars = vec![("prefix", json!(""))];
    /// assert!(matches!(template.expand_to_string(&vars), Err(ExpandError::Empty { .. })));
    /// let template = template.allow_empty("prefix");
    /// assert_eq!(template.expand_to_string(&vars)?, "https://api.example.com/files/");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn allow_empty(mut self, name: &str) -> UrlTemplate {
        for part in &mut self.parts {
            if let Part::Expr(expr) = part {
                for spec in expr.specs.iter_mut().filter(|spec| &*spec.name == name) {
                    spec.allow_empty = true;
                }
            }
        }
        self
    }

    /// Whether `name` is a required variable: used in at least one expression whose operator
    /// is none, `+`, `#`, `.`, `/` or `;`. Variables used only in `{?…}`/`{&…}` are optional,
    /// and names not in the template are not required.
    pub fn is_required(&self, name: &str) -> bool {
        self.names
            .iter()
            .any(|var| &*var.name == name && var.required)
    }

    /// Expands the template with `vars`, appending to `out`.
    ///
    /// On error `out` is left as it was. See the [module docs](self) for the encoding and the
    /// dot-segment rules.
    pub fn expand(&self, vars: &dyn Vars, out: &mut String) -> Result<(), ExpandError> {
        let base = out.len();
        out.reserve(self.size_hint);
        let mut marks = Marks::new();
        let result = self
            .expand_parts(vars, out, &mut marks)
            .and_then(|()| check_dot_segments(out, &marks));
        if result.is_err() {
            out.truncate(base);
        }
        result
    }

    /// Expands the template with `vars` into a new `String`.
    pub fn expand_to_string(&self, vars: &dyn Vars) -> Result<String, ExpandError> {
        let mut out = String::with_capacity(self.size_hint);
        self.expand(vars, &mut out)?;
        Ok(out)
    }

    fn expand_parts<'t>(
        &'t self,
        vars: &dyn Vars,
        out: &mut String,
        marks: &mut Marks<'t>,
    ) -> Result<(), ExpandError> {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Expr(expr) => expr.expand(vars, out, marks, &self.source)?,
            }
        }
        Ok(())
    }
}

impl FromStr for UrlTemplate {
    type Err = TemplateError;

    /// Same as [`UrlTemplate::parse`].
    fn from_str(template: &str) -> Result<UrlTemplate, TemplateError> {
        UrlTemplate::parse(template)
    }
}

impl fmt::Display for UrlTemplate {
    /// Writes the template text [redacted](UrlTemplate#display-is-redacted); the text as
    /// written is [`as_str`](UrlTemplate::as_str).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted::template(&self.source).fmt(f)
    }
}

impl fmt::Debug for UrlTemplate {
    /// `UrlTemplate("…")` with the template [redacted](UrlTemplate#display-is-redacted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UrlTemplate")
            .field(&Redacted::template(&self.source).to_string())
            .finish()
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

// ---------------------------------------------------------------------------------------
// Expansion
// ---------------------------------------------------------------------------------------

/// A defined value, classified.
enum Defined<'v> {
    Scalar(Scalar<'v>),
    List(&'v [Value]),
    Map(&'v Map<String, Value>),
}

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
    fn of(value: &'v Value) -> Option<Scalar<'v>> {
        match value {
            Value::String(s) => Some(Scalar::Str(s)),
            Value::Number(n) => Some(Scalar::Num(n)),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// The scalar's text; numbers are formatted into `buf` (no allocation).
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
    fn expand<'t>(
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

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

const UNRESERVED: u8 = 1;
const RESERVED: u8 = 2;

/// The RFC 3986 class of each byte: `UNRESERVED`, `RESERVED` or 0.
static CLASS: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    // Evaluated at compile time; `i < 256` indexes the 256-entry table and fits a `u8`.
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            UNRESERVED
        } else if matches!(
            b,
            b':' | b'/'
                | b'?'
                | b'#'
                | b'['
                | b']'
                | b'@'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        ) {
            RESERVED
        } else {
            0
        };
        i += 1;
    }
    table
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_pct(out: &mut String, byte: u8) {
    out.push('%');
    // Both indices are at most 15, within the 16-byte table.
    out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(byte & 0x0F)]));
}

/// Appends `s` to `out`, percent-encoding every byte outside the unreserved set, or, with
/// `allow_reserved`, outside the unreserved and reserved sets and not part of a `%XX` triplet.
fn encode(out: &mut String, s: &str, allow_reserved: bool) {
    let mask = if allow_reserved {
        UNRESERVED | RESERVED
    } else {
        UNRESERVED
    };
    let bytes = s.as_bytes();
    // Fast path: nothing to encode (a `u8` index is always within the 256-entry table).
    let Some(mut i) = bytes
        .iter()
        .position(|&byte| CLASS[usize::from(byte)] & mask == 0)
    else {
        out.push_str(s);
        return;
    };
    // `bytes[run..i]` are copied bytes not yet pushed. Copied bytes are all ASCII.
    let mut run = 0;
    while let Some(&byte) = bytes.get(i) {
        // A `u8` index is always within the 256-entry table.
        if CLASS[usize::from(byte)] & mask != 0 {
            i += 1;
            continue;
        }
        if allow_reserved
            && byte == b'%'
            && matches!(bytes.get(i + 1..i + 3), Some([hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit())
        {
            i += 3;
            continue;
        }
        if run < i {
            // `bytes[run..i]` is non-empty and all ASCII, so `run` (an ASCII byte) and `i`
            // (right after an ASCII byte) are char boundaries, and `i < len`.
            out.push_str(&s[run..i]);
        }
        push_pct(out, byte);
        i += 1;
        run = i;
    }
    if run < bytes.len() {
        // Every byte from `run` on was copied, so `bytes[run]` is ASCII: a char boundary.
        out.push_str(&s[run..]);
    }
}

// ---------------------------------------------------------------------------------------
// Dot-segments
// ---------------------------------------------------------------------------------------

/// Whether `segment` is `.` or `..`, each dot spelled `.` or `%2e`/`%2E`, optionally
/// followed by `;parameters` (some servers strip those before resolving dot-segments).
fn is_dot_segment(segment: &[u8]) -> bool {
    let mut rest = segment;
    let mut dots = 0;
    loop {
        rest = match rest {
            [] | [b';', ..] => return dots > 0,
            [b'.', tail @ ..] | [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
}

/// Whether `triplet` (the two bytes after a `%`) encodes a path separator: `%2F` (`/`) or
/// `%5C` (`\`, a separator for some servers), in either case. Servers that decode before
/// resolving dot-segments see these as separators.
fn is_encoded_separator(triplet: Option<&[u8]>) -> bool {
    matches!(triplet, Some([b'2', b'f' | b'F'] | [b'5', b'c' | b'C']))
}

/// The first dot-segment of a `+`/`#` value, splitting at `/`, `?`, `#`, `\` and at the
/// encoded separators `%2F` and `%5C` (either case).
fn dot_segment_in(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    loop {
        let separator = match bytes.get(i) {
            None => 0,
            Some(b'/' | b'?' | b'#' | b'\\') => 1,
            Some(b'%') if is_encoded_separator(bytes.get(i + 1..i + 3)) => 3,
            Some(_) => {
                i += 1;
                continue;
            }
        };
        if is_dot_segment(bytes.get(start..i).unwrap_or_default()) {
            // `start` is 0 or follows an ASCII separator, `i` is one or the end.
            return text.get(start..i);
        }
        if separator == 0 {
            return None;
        }
        i += separator;
        start = i;
    }
}

/// The value-level rules: `.`/`..` values for operators none, `/` and `.`; any dot-segment
/// inside the value (see [`dot_segment_in`]) for `+` and `#`.
#[inline]
fn check_value(op: Op, name: &str, text: &str) -> Result<(), ExpandError> {
    let bad = match op {
        Op::Simple | Op::Path | Op::Label => {
            Some(text).filter(|t| matches!(t.len(), 1 | 2) && t.bytes().all(|b| b == b'.'))
        }
        Op::Reserved | Op::Fragment => dot_segment_in(text),
        Op::PathParam | Op::Query | Op::QueryCont => None,
    };
    match bad {
        Some(segment) => Err(ExpandError::DotSegment {
            name: name.to_owned(),
            value: segment.to_owned(),
        }),
        None => Ok(()),
    }
}

const INLINE_MARKS: usize = 8;

/// Where expansions wrote into the output: `(start, end, variable)` spans in output order,
/// for the final dot-segment check. The first `INLINE_MARKS` live on the stack; only a
/// template with more path expansions than that allocates.
struct Marks<'t> {
    inline: [(usize, usize, &'t str); INLINE_MARKS],
    len: usize,
    spill: Vec<(usize, usize, &'t str)>,
}

impl<'t> Marks<'t> {
    fn new() -> Marks<'t> {
        Marks {
            inline: [(0, 0, ""); INLINE_MARKS],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, start: usize, end: usize, name: &'t str) {
        if end <= start {
            return;
        }
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = (start, end, name);
                self.len += 1;
            }
            None => self.spill.push((start, end, name)),
        }
    }

    fn spans(&self) -> impl Iterator<Item = &(usize, usize, &'t str)> {
        self.inline
            .get(..self.len)
            .unwrap_or_default()
            .iter()
            .chain(&self.spill)
    }

    fn first_start(&self) -> Option<usize> {
        self.spans().next().map(|&(start, _, _)| start)
    }

    /// The variable whose expansion overlaps `lo..hi`, if any.
    fn overlapping(&self, lo: usize, hi: usize) -> Option<&'t str> {
        self.spans()
            .find(|&&(start, end, _)| start < hi && end > lo)
            .map(|&(_, _, name)| name)
    }
}

/// The output-level rule: no `.`/`..` path segment of `out` may contain, or be delimited
/// by, expanded bytes. Segments are split at `/` and at `%2F`/`%5C` (either case), which
/// servers that decode before resolving dot-segments take for separators: a value `../x`
/// in `{x}` (sent as `..%2Fx`) is refused like `{+x}` with `../x`. Checks the path from the
/// segment holding the first expansion up to the first `?` or `#`.
fn check_dot_segments(out: &str, marks: &Marks<'_>) -> Result<(), ExpandError> {
    let Some(first) = marks.first_start() else {
        return Ok(());
    };
    let bytes = out.as_bytes();
    let mut segment_start = 0;
    for (i, &byte) in bytes
        .get(..first)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .rev()
    {
        match byte {
            b'/' => {
                segment_start = i + 1;
                break;
            }
            // The first expansion is already in the query or fragment.
            b'?' | b'#' => return Ok(()),
            _ => {}
        }
    }
    // Where the separator before the segment starts.
    let mut delimiter_start = segment_start.saturating_sub(1);
    let mut i = segment_start;
    loop {
        let separator = match bytes.get(i) {
            None | Some(b'?' | b'#') => 0,
            Some(b'/') => 1,
            Some(b'%') if is_encoded_separator(bytes.get(i + 1..i + 3)) => 3,
            Some(_) => {
                i += 1;
                continue;
            }
        };
        let segment = bytes.get(segment_start..i).unwrap_or_default();
        if matches!(segment.first(), Some(b'.' | b'%')) && is_dot_segment(segment) {
            // The segment with the separators around it.
            let delimited_end = i + separator.max(1);
            if let Some(name) = marks.overlapping(delimiter_start, delimited_end) {
                return Err(ExpandError::DotSegment {
                    name: name.to_owned(),
                    value: String::from_utf8_lossy(segment).into_owned(),
                });
            }
        }
        if separator == 0 {
            return Ok(());
        }
        delimiter_start = i;
        i += separator;
        segment_start = i;
    }
}

// ---------------------------------------------------------------------------------------
// URL text: absolute detection, userinfo, redaction
// ---------------------------------------------------------------------------------------

/// The length of a leading `scheme://` in `text`: an RFC 3986 scheme (`ALPHA *( ALPHA /
/// DIGIT / "+" / "-" / "." )`, where a template may also use expressions) followed by `://`.
/// `None` for a relative reference, including one with `://` later on
/// (`/redirect?next=https://x`) or a `:` in its first segment (`users:search`).
pub(crate) fn scheme_prefix_len(text: &str, template: bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        match bytes.get(i) {
            Some(b'{') if template => i = expression_end(bytes, i)?,
            Some(b) if b.is_ascii_alphabetic() => i += 1,
            Some(b) if i > 0 && (b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')) => i += 1,
            _ => break,
        }
    }
    (i > 0 && bytes.get(i..i + 3) == Some(b"://")).then_some(i + 3)
}

/// Where the expression whose `{` is at `open` ends (just after its `}`), if it is closed.
fn expression_end(bytes: &[u8], open: usize) -> Option<usize> {
    let close = bytes.get(open..)?.iter().position(|&b| b == b'}')?;
    Some(open + close + 1)
}

/// The authority of `text` after its `scheme://` prefix (of length `from`): up to the first
/// `/`, `?` or `#`, or in a template the first expression that starts a path, query or
/// fragment (`{/…}`, `{?…}`, `{&…}`, `{#…}`, `{+…}`, `{;…}`).
fn authority_end(text: &str, from: usize, template: bool) -> usize {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'/' | b'?' | b'#' => return i,
            b'{' if template => {
                if matches!(
                    bytes.get(i + 1),
                    Some(b'/' | b'?' | b'&' | b'#' | b'+' | b';')
                ) {
                    return i;
                }
                match expression_end(bytes, i) {
                    Some(end) => i = end,
                    None => return bytes.len(),
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Where the userinfo of `text` ends (the offset of its `@`), when its authority has one
/// (`https://user:password@host/`). In a template, an `@` inside an expression does not count.
pub(crate) fn userinfo_end(text: &str, template: bool) -> Option<usize> {
    let start = scheme_prefix_len(text, template)?;
    let end = authority_end(text, start, template);
    let bytes = text.as_bytes();
    let mut i = start;
    let mut at = None;
    while i < end {
        match bytes.get(i) {
            Some(b'@') => {
                at = Some(i);
                i += 1;
            }
            Some(b'{') if template => i = expression_end(bytes, i).unwrap_or(end),
            _ => i += 1,
        }
    }
    at
}

/// A URL or template text for display, with what may carry a secret replaced by `…`:
/// userinfo (`https://…@host/`), literal query values (`?api_key=…&page=…`, and a query
/// item without `=` as a whole) and the fragment (`#…`). The scheme, host, port, path and
/// query keys stay, and so do template expressions (`{id}`, `{?q}`), which hold no value.
///
/// The one redaction of URLs in this crate: template `Display`/`Debug`, stitch names,
/// `Debug` of stitches and seams, the `url` of a call's span, [`Error::url`](crate::Error::url)
/// and events all go through it.
#[derive(Clone, Copy)]
pub(crate) struct Redacted<'a> {
    text: &'a str,
    /// Whether `{…}` are template expressions (in a URL they are literal characters).
    template: bool,
}

impl<'a> Redacted<'a> {
    /// A template's text: expressions are kept.
    pub(crate) fn template(text: &'a str) -> Self {
        Redacted {
            text,
            template: true,
        }
    }

    /// A URL's text: `{` and `}` are ordinary characters.
    pub(crate) fn url(text: &'a str) -> Self {
        Redacted {
            text,
            template: false,
        }
    }

    /// Whether a query item starting at `from` has a `=` (is `key=value`) before the next
    /// `&` or `#`; in a template, `=` inside expressions does not count.
    fn has_key(&self, from: usize) -> bool {
        let bytes = self.text.as_bytes();
        let mut i = from;
        while let Some(&byte) = bytes.get(i) {
            match byte {
                b'=' => return true,
                b'&' | b'#' => return false,
                b'{' if self.template => match expression_end(bytes, i) {
                    Some(end) => i = end,
                    None => i += 1,
                },
                _ => i += 1,
            }
        }
        false
    }
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Where the scan is: copied (`Path`, `Key`) or hidden (`Value`, `Fragment`).
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum At {
            Path,
            Key,
            Value,
            Fragment,
        }
        let text = self.text;
        let bytes = text.as_bytes();
        let mut i = 0;
        if let Some(prefix) = scheme_prefix_len(text, self.template) {
            i = authority_end(text, prefix, self.template);
            // Cut at ASCII bytes (`://`, `@`, and `/`, `?`, `#`, `{`), so at char boundaries.
            match userinfo_end(text, self.template) {
                Some(at) => {
                    f.write_str(text.get(..prefix).unwrap_or_default())?;
                    f.write_str("…")?;
                    f.write_str(text.get(at..i).unwrap_or_default())?;
                }
                None => f.write_str(text.get(..i).unwrap_or_default())?,
            }
        }
        let mut at = At::Path;
        // Whether `…` stands for the hidden run being scanned.
        let mut hidden = false;
        // Copied text not written yet starts at `copy`. Text is only cut at ASCII bytes
        // (`{`, `}`, `?`, `&`, `=`, `#`) or after a whole skipped char: at char boundaries.
        let mut copy = i;
        while let Some(&byte) = bytes.get(i) {
            let visible = matches!(at, At::Path | At::Key);
            if byte == b'{'
                && self.template
                && let Some(end) = expression_end(bytes, i)
            {
                if !visible {
                    copy = i;
                }
                f.write_str(text.get(copy..end).unwrap_or_default())?;
                if at == At::Path && matches!(bytes.get(i + 1), Some(b'?' | b'&')) {
                    at = At::Value;
                } else if at != At::Fragment && bytes.get(i + 1) == Some(&b'#') {
                    at = At::Fragment;
                }
                hidden = false;
                i = end;
                copy = i;
                continue;
            }
            let next = match (at, byte) {
                (At::Fragment, _) => None,
                (_, b'#') => Some(At::Fragment),
                (At::Path, b'?') | (At::Key | At::Value, b'&') => Some(if self.has_key(i + 1) {
                    At::Key
                } else {
                    At::Value
                }),
                (At::Key, b'=') => Some(At::Value),
                _ => None,
            };
            match next {
                Some(next) => {
                    if visible {
                        f.write_str(text.get(copy..=i).unwrap_or_default())?;
                    } else {
                        f.write_char(char::from(byte))?;
                    }
                    at = next;
                    hidden = false;
                    i += 1;
                    copy = i;
                }
                None if visible => i += 1,
                None => {
                    if !hidden {
                        f.write_str("…")?;
                        hidden = true;
                    }
                    // Skip the whole char.
                    i += text
                        .get(i..)
                        .and_then(|rest| rest.chars().next())
                        .map_or(1, char::len_utf8);
                    copy = i;
                }
            }
        }
        if matches!(at, At::Path | At::Key) {
            f.write_str(text.get(copy..).unwrap_or_default())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use url::Url;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn keys() -> Value {
        json!({"semi": ";", "dot": ".", "comma": ","})
    }

    /// Whether `Map` iterates `keys()` in RFC order (serde_json `preserve_order`) or sorted.
    fn keys_in_rfc_order() -> bool {
        match keys() {
            Value::Object(map) => map.keys().next().map(String::as_str) == Some("semi"),
            _ => false,
        }
    }

    /// The variables of RFC 6570 §1.2.
    fn vars_1_2() -> Map<String, Value> {
        map(json!({
            "var": "value",
            "hello": "Hello World!",
            "path": "/foo/bar",
            "empty": "",
            "x": "1024",
            "y": "768",
            "list": ["red", "green", "blue"],
            "keys": keys(),
        }))
    }

    /// The variables of RFC 6570 §3.2.
    fn vars_3_2() -> Map<String, Value> {
        map(json!({
            "count": ["one", "two", "three"],
            "dom": ["example", "com"],
            "dub": "me/too",
            "hello": "Hello World!",
            "half": "50%",
            "var": "value",
            "who": "fred",
            "base": "http://example.com/home/",
            "path": "/foo/bar",
            "list": ["red", "green", "blue"],
            "keys": keys(),
            "v": "6",
            "x": "1024",
            "y": "768",
            "empty": "",
            "empty_keys": {},
            "undef": null,
        }))
    }

    /// Expands `template`; the expected text is given in RFC order, and `sorted` is the same
    /// expansion with the `keys` map iterated in sorted order (comma, dot, semi).
    fn check(vars: &dyn Vars, template: &str, rfc: &str, sorted: Option<&str>) {
        let parsed = UrlTemplate::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        let got = parsed
            .expand_to_string(vars)
            .unwrap_or_else(|e| panic!("{template}: {e}"));
        let expected = match sorted {
            Some(sorted) if !keys_in_rfc_order() => sorted,
            _ => rfc,
        };
        assert_eq!(got, expected, "template {template}");
    }

    macro_rules! cases {
        ($vars:expr; $($template:literal => $rfc:literal $(| $sorted:literal)?),* $(,)?) => {{
            let vars: &dyn Vars = $vars;
            $( check(vars, $template, $rfc, None $(.or(Some($sorted)))?); )*
        }};
    }

    fn missing_in(vars: &dyn Vars, template: &str, name: &str) {
        let err = UrlTemplate::parse(template)
            .unwrap()
            .expand_to_string(vars)
            .unwrap_err();
        assert_eq!(
            err,
            ExpandError::Missing {
                name: name.into(),
                template: template.into()
            },
            "template {template}"
        );
    }

    #[test]
    fn rfc_1_2_level_1() {
        cases!(&vars_1_2();
            "{var}" => "value",
            "{hello}" => "Hello%20World%21",
        );
    }

    #[test]
    fn rfc_1_2_level_2() {
        cases!(&vars_1_2();
            "{+var}" => "value",
            "{+hello}" => "Hello%20World!",
            "{+path}/here" => "/foo/bar/here",
            "here?ref={+path}" => "here?ref=/foo/bar",
            "X{#var}" => "X#value",
            "X{#hello}" => "X#Hello%20World!",
        );
    }

    #[test]
    fn rfc_1_2_level_3() {
        cases!(&vars_1_2();
            "map?{x,y}" => "map?1024,768",
            "{x,hello,y}" => "1024,Hello%20World%21,768",
            "{+x,hello,y}" => "1024,Hello%20World!,768",
            "{+path,x}/here" => "/foo/bar,1024/here",
            "{#x,hello,y}" => "#1024,Hello%20World!,768",
            "{#path,x}/here" => "#/foo/bar,1024/here",
            "X{.var}" => "X.value",
            "X{.x,y}" => "X.1024.768",
            "{/var}" => "/value",
            "{/var,x}/here" => "/value/1024/here",
            "{;x,y}" => ";x=1024;y=768",
            "{;x,y,empty}" => ";x=1024;y=768;empty",
            "{?x,y}" => "?x=1024&y=768",
            "{?x,y,empty}" => "?x=1024&y=768&empty=",
            "?fixed=yes{&x}" => "?fixed=yes&x=1024",
            "{&x,y,empty}" => "&x=1024&y=768&empty=",
        );
    }

    #[test]
    fn rfc_1_2_level_4() {
        cases!(&vars_1_2();
            "{var:3}" => "val",
            "{var:30}" => "value",
            "{list}" => "red,green,blue",
            "{list*}" => "red,green,blue",
            "{keys}" => "semi,%3B,dot,.,comma,%2C" | "comma,%2C,dot,.,semi,%3B",
            "{keys*}" => "semi=%3B,dot=.,comma=%2C" | "comma=%2C,dot=.,semi=%3B",
            "{+path:6}/here" => "/foo/b/here",
            "{+list}" => "red,green,blue",
            "{+list*}" => "red,green,blue",
            "{+keys}" => "semi,;,dot,.,comma,," | "comma,,,dot,.,semi,;",
            "{+keys*}" => "semi=;,dot=.,comma=," | "comma=,,dot=.,semi=;",
            "{#path:6}/here" => "#/foo/b/here",
            "{#list}" => "#red,green,blue",
            "{#list*}" => "#red,green,blue",
            "{#keys}" => "#semi,;,dot,.,comma,," | "#comma,,,dot,.,semi,;",
            "{#keys*}" => "#semi=;,dot=.,comma=," | "#comma=,,dot=.,semi=;",
            "X{.var:3}" => "X.val",
            "X{.list}" => "X.red,green,blue",
            "X{.list*}" => "X.red.green.blue",
            "X{.keys}" => "X.semi,%3B,dot,.,comma,%2C" | "X.comma,%2C,dot,.,semi,%3B",
            "X{.keys*}" => "X.semi=%3B.dot=..comma=%2C" | "X.comma=%2C.dot=..semi=%3B",
            "{/var:1,var}" => "/v/value",
            "{/list}" => "/red,green,blue",
            "{/list*}" => "/red/green/blue",
            "{/list*,path:4}" => "/red/green/blue/%2Ffoo",
            "{/keys}" => "/semi,%3B,dot,.,comma,%2C" | "/comma,%2C,dot,.,semi,%3B",
            "{/keys*}" => "/semi=%3B/dot=./comma=%2C" | "/comma=%2C/dot=./semi=%3B",
            "{;hello:5}" => ";hello=Hello",
            "{;list}" => ";list=red,green,blue",
            "{;list*}" => ";list=red;list=green;list=blue",
            "{;keys}" => ";keys=semi,%3B,dot,.,comma,%2C" | ";keys=comma,%2C,dot,.,semi,%3B",
            "{;keys*}" => ";semi=%3B;dot=.;comma=%2C" | ";comma=%2C;dot=.;semi=%3B",
            "{?var:3}" => "?var=val",
            "{?list}" => "?list=red,green,blue",
            "{?list*}" => "?list=red&list=green&list=blue",
            "{?keys}" => "?keys=semi,%3B,dot,.,comma,%2C" | "?keys=comma,%2C,dot,.,semi,%3B",
            "{?keys*}" => "?semi=%3B&dot=.&comma=%2C" | "?comma=%2C&dot=.&semi=%3B",
            "{&var:3}" => "&var=val",
            "{&list}" => "&list=red,green,blue",
            "{&list*}" => "&list=red&list=green&list=blue",
            "{&keys}" => "&keys=semi,%3B,dot,.,comma,%2C" | "&keys=comma,%2C,dot,.,semi,%3B",
            "{&keys*}" => "&semi=%3B&dot=.&comma=%2C" | "&comma=%2C&dot=.&semi=%3B",
        );
    }

    #[test]
    fn rfc_3_2_1_variable_expansion() {
        cases!(&vars_3_2();
            "{count}" => "one,two,three",
            "{count*}" => "one,two,three",
            "{/count}" => "/one,two,three",
            "{/count*}" => "/one/two/three",
            "{;count}" => ";count=one,two,three",
            "{;count*}" => ";count=one;count=two;count=three",
            "{?count}" => "?count=one,two,three",
            "{?count*}" => "?count=one&count=two&count=three",
            "{&count*}" => "&count=one&count=two&count=three",
        );
    }

    // The RFC expands an undefined variable to nothing everywhere. This module makes every
    // variable used outside `{?…}`/`{&…}` required, so those RFC examples are `Missing` here.

    /// The RFC examples with an empty value in the path: refused unless the variable allows
    /// empty values, and then as the RFC says.
    #[test]
    fn rfc_empty_values_in_the_path_need_allow_empty() {
        let vars = vars_3_2();
        for (template, rfc) in [
            ("O{empty}X", "OX"),
            ("O{+empty}X", "OX"),
            ("X{.empty}", "X."),
            ("{/var,empty}", "/value/"),
        ] {
            let parsed = UrlTemplate::parse(template).unwrap();
            assert_eq!(
                parsed.expand_to_string(&vars),
                Err(ExpandError::Empty {
                    name: "empty".into()
                }),
                "{template}"
            );
            let allowed = parsed.allow_empty("empty");
            assert_eq!(allowed.expand_to_string(&vars).unwrap(), rfc, "{template}");
        }
        // In the query and the fragment, and with `;`, empty values need nothing.
        cases!(&vars;
            "?{x,empty}" => "?1024,",
            "foo{#empty}" => "foo#",
            "{;empty}" => ";empty",
            "{?x,y,empty}" => "?x=1024&y=768&empty=",
            "x?a={empty}" => "x?a=",
            "{?x}/{empty}" => "?x=1024/",
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
    fn rfc_3_2_2_simple_string_expansion() {
        let vars = vars_3_2();
        cases!(&vars;
            "{var}" => "value",
            "{hello}" => "Hello%20World%21",
            "{half}" => "50%25",
            "{x,y}" => "1024,768",
            "{x,hello,y}" => "1024,Hello%20World%21,768",
            "?{x,empty}" => "?1024,",
            "{var:3}" => "val",
            "{var:30}" => "value",
            "{list}" => "red,green,blue",
            "{list*}" => "red,green,blue",
            "{keys}" => "semi,%3B,dot,.,comma,%2C" | "comma,%2C,dot,.,semi,%3B",
            "{keys*}" => "semi=%3B,dot=.,comma=%2C" | "comma=%2C,dot=.,semi=%3B",
        );
        missing_in(&vars, "O{undef}X", "undef"); // RFC: OX
        missing_in(&vars, "?{x,undef}", "undef"); // RFC: ?1024
        missing_in(&vars, "?{undef,y}", "undef"); // RFC: ?768
    }

    #[test]
    fn rfc_3_2_3_reserved_expansion() {
        let vars = vars_3_2();
        cases!(&vars;
            "{+var}" => "value",
            "{+hello}" => "Hello%20World!",
            "{+half}" => "50%25",
            "{base}index" => "http%3A%2F%2Fexample.com%2Fhome%2Findex",
            "{+base}index" => "http://example.com/home/index",
            "{+path}/here" => "/foo/bar/here",
            "here?ref={+path}" => "here?ref=/foo/bar",
            "up{+path}{var}/here" => "up/foo/barvalue/here",
            "{+x,hello,y}" => "1024,Hello%20World!,768",
            "{+path,x}/here" => "/foo/bar,1024/here",
            "{+path:6}/here" => "/foo/b/here",
            "{+list}" => "red,green,blue",
            "{+list*}" => "red,green,blue",
            "{+keys}" => "semi,;,dot,.,comma,," | "comma,,,dot,.,semi,;",
            "{+keys*}" => "semi=;,dot=.,comma=," | "comma=,,dot=.,semi=;",
        );
        missing_in(&vars, "O{+undef}X", "undef"); // RFC: OX
    }

    #[test]
    fn rfc_3_2_4_fragment_expansion() {
        let vars = vars_3_2();
        cases!(&vars;
            "{#var}" => "#value",
            "{#hello}" => "#Hello%20World!",
            "{#half}" => "#50%25",
            "foo{#empty}" => "foo#",
            "{#x,hello,y}" => "#1024,Hello%20World!,768",
            "{#path,x}/here" => "#/foo/bar,1024/here",
            "{#path:6}/here" => "#/foo/b/here",
            "{#list}" => "#red,green,blue",
            "{#list*}" => "#red,green,blue",
            "{#keys}" => "#semi,;,dot,.,comma,," | "#comma,,,dot,.,semi,;",
            "{#keys*}" => "#semi=;,dot=.,comma=," | "#comma=,,dot=.,semi=;",
        );
        missing_in(&vars, "foo{#undef}", "undef"); // RFC: foo
    }

    #[test]
    fn rfc_3_2_5_label_expansion() {
        let vars = vars_3_2();
        cases!(&vars;
            "{.who}" => ".fred",
            "{.who,who}" => ".fred.fred",
            "{.half,who}" => ".50%25.fred",
            "www{.dom*}" => "www.example.com",
            "X{.var}" => "X.value",
            "X{.var:3}" => "X.val",
            "X{.list}" => "X.red,green,blue",
            "X{.list*}" => "X.red.green.blue",
            "X{.keys}" => "X.semi,%3B,dot,.,comma,%2C" | "X.comma,%2C,dot,.,semi,%3B",
            "X{.keys*}" => "X.semi=%3B.dot=..comma=%2C" | "X.comma=%2C.dot=..semi=%3B",
        );
        missing_in(&vars, "X{.undef}", "undef"); // RFC: X
        missing_in(&vars, "X{.empty_keys}", "empty_keys"); // RFC: X
        missing_in(&vars, "X{.empty_keys*}", "empty_keys"); // RFC: X
    }

    #[test]
    fn rfc_3_2_6_path_segment_expansion() {
        let vars = vars_3_2();
        cases!(&vars;
            "{/who}" => "/fred",
            "{/who,who}" => "/fred/fred",
            "{/half,who}" => "/50%25/fred",
            "{/who,dub}" => "/fred/me%2Ftoo",
            "{/var}" => "/value",
            "{/var,x}/here" => "/value/1024/here",
            "{/var:1,var}" => "/v/value",
            "{/list}" => "/red,green,blue",
            "{/list*}" => "/red/green/blue",
            "{/list*,path:4}" => "/red/green/blue/%2Ffoo",
            "{/keys}" => "/semi,%3B,dot,.,comma,%2C" | "/comma,%2C,dot,.,semi,%3B",
            "{/keys*}" => "/semi=%3B/dot=./comma=%2C" | "/comma=%2C/dot=./semi=%3B",
        );
        missing_in(&vars, "{/var,undef}", "undef"); // RFC: /value
    }

    #[test]
    fn rfc_3_2_7_path_style_parameter_expansion() {
        let vars = vars_3_2();
        cases!(&vars;
            "{;who}" => ";who=fred",
            "{;half}" => ";half=50%25",
            "{;empty}" => ";empty",
            "{;v,empty,who}" => ";v=6;empty;who=fred",
            "{;x,y}" => ";x=1024;y=768",
            "{;x,y,empty}" => ";x=1024;y=768;empty",
            "{;hello:5}" => ";hello=Hello",
            "{;list}" => ";list=red,green,blue",
            "{;list*}" => ";list=red;list=green;list=blue",
            "{;keys}" => ";keys=semi,%3B,dot,.,comma,%2C" | ";keys=comma,%2C,dot,.,semi,%3B",
            "{;keys*}" => ";semi=%3B;dot=.;comma=%2C" | ";comma=%2C;dot=.;semi=%3B",
        );
        missing_in(&vars, "{;v,bar,who}", "bar"); // RFC: ;v=6;who=fred
        missing_in(&vars, "{;x,y,undef}", "undef"); // RFC: ;x=1024;y=768
    }

    #[test]
    fn rfc_3_2_8_form_style_query_expansion() {
        cases!(&vars_3_2();
            "{?who}" => "?who=fred",
            "{?half}" => "?half=50%25",
            "{?x,y}" => "?x=1024&y=768",
            "{?x,y,empty}" => "?x=1024&y=768&empty=",
            "{?x,y,undef}" => "?x=1024&y=768",
            "{?var:3}" => "?var=val",
            "{?list}" => "?list=red,green,blue",
            "{?list*}" => "?list=red&list=green&list=blue",
            "{?keys}" => "?keys=semi,%3B,dot,.,comma,%2C" | "?keys=comma,%2C,dot,.,semi,%3B",
            "{?keys*}" => "?semi=%3B&dot=.&comma=%2C" | "?comma=%2C&dot=.&semi=%3B",
        );
    }

    #[test]
    fn rfc_3_2_9_form_style_query_continuation() {
        cases!(&vars_3_2();
            "{&who}" => "&who=fred",
            "{&half}" => "&half=50%25",
            "?fixed=yes{&x}" => "?fixed=yes&x=1024",
            "{&x,y,empty}" => "&x=1024&y=768&empty=",
            "{&var:3}" => "&var=val",
            "{&list}" => "&list=red,green,blue",
            "{&list*}" => "&list=red&list=green&list=blue",
            "{&keys}" => "&keys=semi,%3B,dot,.,comma,%2C" | "&keys=comma,%2C,dot,.,semi,%3B",
            "{&keys*}" => "&semi=%3B&dot=.&comma=%2C" | "&comma=%2C&dot=.&semi=%3B",
            "{?undef}{&undef}" => "",
        );
    }

    #[test]
    fn prefix_counts_characters_not_bytes() {
        let vars = vec![
            ("s", json!("Ünïcödé")),
            ("e", json!("😀😃x")),
            ("p", json!("é/ü")),
        ];
        cases!(&vars;
            "{s:3}" => "%C3%9Cn%C3%AF",
            "{s:1}" => "%C3%9C",
            "{s:9999}" => "%C3%9Cn%C3%AFc%C3%B6d%C3%A9",
            "{e:1}" => "%F0%9F%98%80",
            "{?e:2}" => "?e=%F0%9F%98%80%F0%9F%98%83",
            "{+p:2}" => "%C3%A9/",
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
        cases!(&vars;
            "{i}/{n}/{f}/{t}/{b}" => "7/-42/1.5/true/false",
            "{big}" => "18446744073709551615",
            "{i:1}{f:2}" => "71.",
            "{?l*}" => "?l=1&l=2.5&l=true&l=x%20y",
            "{/l}" => "/1,2.5,true,x%20y",
            "{?m*}" => "?a=1&b=false",
            "{;m}" => ";m=a,1,b,false",
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

    fn expand_one(template: &str, value: Value) -> Result<String, ExpandError> {
        UrlTemplate::parse(template)
            .unwrap()
            .expand_to_string(&vec![("x", value)])
    }

    fn dot_segment(template: &str, value: Value) -> String {
        match expand_one(template, value.clone()) {
            Err(ExpandError::DotSegment { name, value }) => {
                assert_eq!(name, "x");
                value
            }
            other => panic!("{template} with {value}: expected DotSegment, got {other:?}"),
        }
    }

    /// Host and path segments of `url` as parsed by a WHATWG parser.
    fn host_and_segments(url: &str) -> (String, Vec<String>) {
        let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let segments = parsed.path_segments().unwrap().map(str::to_owned).collect();
        (parsed.host_str().unwrap_or_default().to_owned(), segments)
    }

    #[test]
    fn security_simple_values_cannot_escape_their_segment() {
        let t = "https://h.example/users/{x}/profile";
        let cases = [
            ("a/b", "https://h.example/users/a%2Fb/profile"),
            ("x?y#z", "https://h.example/users/x%3Fy%23z/profile"),
            ("@evil.com", "https://h.example/users/%40evil.com/profile"),
            (
                "a\r\nX-Injected: 1",
                "https://h.example/users/a%0D%0AX-Injected%3A%201/profile",
            ),
            ("%2e%2e", "https://h.example/users/%252e%252e/profile"),
            ("..a\\b..", "https://h.example/users/..a%5Cb../profile"),
            ("%2F..", "https://h.example/users/%252F../profile"),
            (
                "é 😀",
                "https://h.example/users/%C3%A9%20%F0%9F%98%80/profile",
            ),
            ("...", "https://h.example/users/.../profile"),
        ];
        for (value, expected) in cases {
            let got = expand_one(t, json!(value)).unwrap();
            assert_eq!(got, expected, "value {value:?}");
            let (host, segments) = host_and_segments(&got);
            assert_eq!(host, "h.example");
            assert_eq!(segments.len(), 3, "{got}");
        }
        // `/` and `\` are encoded, but a server that decodes `%2F`/`%5C` before resolving
        // dot-segments would see them: dot-segments around them are refused.
        for (value, segment) in [
            ("../admin", ".."),
            ("..\\..\\x", ".."),
            ("a/./b", "."),
            ("a/..", ".."),
        ] {
            assert_eq!(dot_segment(t, json!(value)), segment, "{value}");
        }
        // Before the path, too: the authority cannot be changed by a value.
        let got = expand_one("https://h.example:443{x}/p", json!("@evil.com")).unwrap();
        assert_eq!(got, "https://h.example:443%40evil.com/p");
        assert!(Url::parse(&got).map_or(true, |u| u.host_str() != Some("evil.com")));
        let got = expand_one("https://{x}.h.example/", json!("evil.com/")).unwrap();
        assert_eq!(got, "https://evil.com%2F.h.example/");
    }

    #[test]
    fn security_every_unreserved_operator_encodes_delimiters() {
        let value = json!("/?#@% \r\n:[]!$&'()*+,;=é");
        let encoded = "%2F%3F%23%40%25%20%0D%0A%3A%5B%5D%21%24%26%27%28%29%2A%2B%2C%3B%3D%C3%A9";
        for (template, prefix) in [
            ("{x}", String::new()),
            ("X{.x}", "X.".into()),
            ("{/x}", "/".into()),
            ("{;x}", ";x=".into()),
            ("{?x}", "?x=".into()),
            ("{&x}", "&x=".into()),
        ] {
            assert_eq!(
                expand_one(template, value.clone()).unwrap(),
                format!("{prefix}{encoded}")
            );
        }
        // List members and map keys and values are encoded too.
        assert_eq!(
            expand_one("{?x*}", json!(["a&b=c"])).unwrap(),
            "?x=a%26b%3Dc"
        );
        assert_eq!(
            expand_one("{?x*}", json!({"a&b": "c#"})).unwrap(),
            "?a%26b=c%23"
        );
        assert_eq!(
            expand_one("{/x*}", json!(["a/b", "c"])).unwrap(),
            "/a%2Fb/c"
        );
    }

    #[test]
    fn security_reserved_operators_still_encode_the_rest() {
        for (template, prefix) in [("{+x}", ""), ("{#x}", "#")] {
            let got = expand_one(template, json!("a b\r\n\t%zz%41%4é\u{7f}<>\"\\^`{|}")).unwrap();
            assert_eq!(
                got,
                format!("{prefix}a%20b%0D%0A%09%25zz%41%254%C3%A9%7F%3C%3E%22%5C%5E%60%7B%7C%7D")
            );
            // Reserved characters pass.
            assert_eq!(
                expand_one(template, json!(":/?#[]@!$&'()*+,;=")).unwrap(),
                format!("{prefix}:/?#[]@!$&'()*+,;=")
            );
        }
        let got = expand_one("https://h.example/{+x}", json!("a\r\nX-Injected: 1")).unwrap();
        assert_eq!(got, "https://h.example/a%0D%0AX-Injected:%201");
    }

    #[test]
    fn security_dot_segments_are_refused() {
        for template in [
            "https://h.example/{x}",
            "https://h.example/a{/x}",
            "https://h.example/a/b{.x}",
            "{x}",
            "X{.x}",
        ] {
            assert_eq!(dot_segment(template, json!("..")), "..");
            assert_eq!(dot_segment(template, json!(".")), ".");
            // As list members too.
            assert_eq!(dot_segment(template, json!(["a", ".."])), "..");
        }
        assert_eq!(
            dot_segment("https://h.example/{/x*}", json!(["a", ".", "b"])),
            "."
        );
        assert_eq!(dot_segment("https://h.example/a{x:2}", json!("..x")), "..");
        // `+` and `#`: any segment of the value, `%2e` counting as a dot.
        for template in ["https://h.example/{+x}", "https://h.example/{#x}", "{+x}"] {
            for (value, segment) in [
                ("..", ".."),
                (".", "."),
                ("%2e%2e", "%2e%2e"),
                ("%2E.", "%2E."),
                (".%2e", ".%2e"),
                ("%2e", "%2e"),
                ("../admin", ".."),
                ("a/../b", ".."),
                ("a/./b", "."),
                ("a/%2e%2e/b", "%2e%2e"),
                ("a/..", ".."),
                ("a/..?q=1", ".."),
                ("a/..#f", ".."),
                ("a/..;jsessionid=1/b", "..;jsessionid=1"),
                // Behind encoded separators (`%2F`, `%5C`, any case) and `\`, which servers
                // that decode before resolving dot-segments take for `/`.
                ("..%2fadmin", ".."),
                ("..%2Fadmin", ".."),
                ("..%5cadmin", ".."),
                ("..%5Cadmin", ".."),
                ("..\\admin", ".."),
                ("%2e%2e%2fadmin", "%2e%2e"),
                ("a%2F.%5cb", "."),
                ("%2f..", ".."),
                ("..%2f", ".."),
                ("a%5C..;x%5Cb", "..;x"),
            ] {
                assert_eq!(
                    dot_segment(template, json!(value)),
                    segment,
                    "{template} {value}"
                );
                assert_eq!(
                    dot_segment(template, json!(["ok", value])),
                    segment,
                    "{template} {value}"
                );
            }
        }
        assert_eq!(
            dot_segment("https://h.example/{+x:9}", json!("a/../bcdefgh")),
            ".."
        );
        // Harmless look-alikes pass.
        for value in [
            "...",
            "..a",
            "a..",
            ".a",
            "%2e%2e%2e",
            "a%2fb",
            "...%2f",
            "%2f..a",
            "%252f..",
            "..%2",
            "..%2g",
            "a/.../b",
            "%252e%252e",
        ] {
            let got = expand_one("https://h.example/{+x}", json!(value)).unwrap();
            let (host, segments) = host_and_segments(&got);
            assert_eq!(host, "h.example");
            assert_eq!(segments.len(), got.matches('/').count() - 2, "{got}");
        }
    }

    #[test]
    fn security_dot_segments_built_by_expansion_are_refused() {
        // `{.x}` with an empty value is `.`, a whole segment after `/`: refused as empty, and
        // as a dot-segment when empty values are allowed.
        let allowing = |template: &str, value: Value| {
            UrlTemplate::parse(template)
                .unwrap()
                .allow_empty("x")
                .expand_to_string(&vec![("x", value)])
        };
        for (template, value) in [
            ("https://h.example/{.x}", json!("")),
            ("https://h.example/{.x}/b", json!([""])),
        ] {
            assert_eq!(
                expand_one(template, value.clone()),
                Err(ExpandError::Empty { name: "x".into() })
            );
            assert_eq!(
                allowing(template, value),
                Err(ExpandError::DotSegment {
                    name: "x".into(),
                    value: ".".into()
                })
            );
        }
        assert_eq!(
            expand_one("https://h.example/{.x}/b", json!(["", ""])).unwrap(),
            "https://h.example/.,/b"
        );
        assert_eq!(
            dot_segment("https://h.example/a/{.x*}", json!(["", ""])),
            ".."
        );
        assert_eq!(
            allowing("https://h.example/.{.x}/", json!("")).unwrap_err(),
            ExpandError::DotSegment {
                name: "x".into(),
                value: "..".into()
            }
        );
        // A map under `+`: keys and values are joined by `,`/`=`, so only real segments count.
        assert_eq!(
            dot_segment("https://h.example/{+x}", json!({"k": "a/../b"})),
            ".."
        );
        assert_eq!(
            dot_segment("https://h.example/{+x*}", json!({"a/../c": "b"})),
            ".."
        );
        assert_eq!(
            expand_one("https://h.example/{+x*}", json!({"a/..": "b"})).unwrap(),
            "https://h.example/a/..=b"
        );
        // An expanded `/` turning template literal text into a dot-segment.
        assert_eq!(dot_segment("https://h.example/{+x}.", json!("a/")), ".");
        assert_eq!(dot_segment("https://h.example/..{+x}", json!("/a")), "..");
        assert_eq!(dot_segment("https://h.example/..{/x}", json!("a")), "..");
        // Literal dot-segments of the template itself, and dots off the path, are allowed.
        let vars = vec![("x", json!("a")), ("q", json!(".."))];
        let t = UrlTemplate::parse("https://h.example/../{x}/./b{?q}").unwrap();
        assert_eq!(
            t.expand_to_string(&vars).unwrap(),
            "https://h.example/../a/./b?q=.."
        );
        assert_eq!(
            allowing("https://h.example/X{.x}/", json!("")).unwrap(),
            "https://h.example/X./"
        );
        assert_eq!(
            expand_one("https://h.example/p?a={+x}", json!("/../")).unwrap_err(),
            {
                ExpandError::DotSegment {
                    name: "x".into(),
                    value: "..".into(),
                }
            }
        );
        assert_eq!(
            expand_one("https://h.example/p{?x*}", json!({"..": "."})).unwrap(),
            "https://h.example/p?..=."
        );
    }

    #[test]
    fn dot_segment_check_holds_past_many_expressions() {
        let template = "https://h.example/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{.x}/end";
        let t = UrlTemplate::parse(template).unwrap();
        let vars = vec![("a", json!("v")), ("x", json!(""))];
        assert_eq!(
            t.clone()
                .allow_empty("x")
                .expand_to_string(&vars)
                .unwrap_err(),
            ExpandError::DotSegment {
                name: "x".into(),
                value: ".".into()
            }
        );
        let vars = vec![("a", json!("v")), ("x", json!("json"))];
        assert_eq!(
            t.expand_to_string(&vars).unwrap(),
            "https://h.example/v/v/v/v/v/v/v/v/v/v/.json/end"
        );
        // Literal dot-segments stay allowed however many expansions come before.
        let t = UrlTemplate::parse("/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/../x").unwrap();
        assert_eq!(
            t.expand_to_string(&vec![("a", json!("v"))]).unwrap(),
            "/v/v/v/v/v/v/v/v/v/v/../x"
        );
        let t = UrlTemplate::parse("/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{a}/{b}/x").unwrap();
        let vars = vec![("a", json!("v")), ("b", json!(".."))];
        assert!(
            matches!(t.expand_to_string(&vars), Err(ExpandError::DotSegment { name, .. }) if name == "b")
        );
    }

    #[test]
    fn templates_are_send_sync_and_cheap_to_share() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<UrlTemplate>();
        assert_send_sync::<TemplateError>();
        assert_send_sync::<ExpandError>();
    }

    #[test]
    fn literals_are_encoded_where_the_uri_grammar_requires() {
        let t =
            UrlTemplate::parse("https://h.example/a b/<x>/\"q\"/%zz/%41/é/\\/^`|{x}?k='v'&j=[1]")
                .unwrap();
        assert_eq!(
            t.expand_to_string(&vec![("x", json!("1"))]).unwrap(),
            "https://h.example/a%20b/%3Cx%3E/%22q%22/%25zz/%41/%C3%A9/%5C/%5E%60%7C1?k='v'&j=[1]"
        );
        assert_eq!(
            UrlTemplate::parse("a\r\nb")
                .unwrap()
                .expand_to_string(&Map::new())
                .unwrap(),
            "a%0D%0Ab"
        );
    }

    #[test]
    fn missing_required_and_optional_variables() {
        let t = UrlTemplate::parse("https://h.example/{a}/{b}{?c,d}{&e}").unwrap();
        assert!(t.is_required("a") && t.is_required("b"));
        assert!(!t.is_required("c") && !t.is_required("d") && !t.is_required("e"));
        assert!(!t.is_required("zzz"));
        let template = t.as_str().to_owned();
        let err = t.expand_to_string(&Map::new()).unwrap_err();
        assert_eq!(
            err,
            ExpandError::Missing {
                name: "a".into(),
                template: template.clone()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("missing parameter `a`: the URL template {template:?} needs it")
        );
        let vars = vec![("a", json!("1"))];
        assert_eq!(
            t.expand_to_string(&vars).unwrap_err(),
            ExpandError::Missing {
                name: "b".into(),
                template
            }
        );
        let vars = vec![("a", json!("1")), ("b", json!(2))];
        assert_eq!(t.expand_to_string(&vars).unwrap(), "https://h.example/1/2");
        let vars = vec![
            ("a", json!("1")),
            ("b", json!(2)),
            ("d", json!("x")),
            ("e", json!("")),
        ];
        assert_eq!(
            t.expand_to_string(&vars).unwrap(),
            "https://h.example/1/2?d=x&e="
        );
        // Undefined: null, [] and {} as well as absent.
        for undefined in [json!(null), json!([]), json!({})] {
            let vars = vec![
                ("a", json!("1")),
                ("b", undefined.clone()),
                ("c", undefined),
            ];
            assert!(
                matches!(t.expand_to_string(&vars), Err(ExpandError::Missing { name, .. }) if name == "b")
            );
        }
        // Required anywhere means required everywhere: `{?x}` comes first but `{x}` needs it.
        let t = UrlTemplate::parse("{?x}/{x}").unwrap();
        assert!(t.is_required("x"));
        assert!(
            matches!(t.expand_to_string(&Map::new()), Err(ExpandError::Missing { name, .. }) if name == "x")
        );
        for (template, required) in [
            ("{x}", true),
            ("{+x}", true),
            ("{#x}", true),
            ("{.x}", true),
            ("{/x}", true),
            ("{;x}", true),
            ("{?x}", false),
            ("{&x}", false),
        ] {
            assert_eq!(
                UrlTemplate::parse(template).unwrap().is_required("x"),
                required,
                "{template}"
            );
        }
    }

    #[test]
    fn failed_expansion_leaves_the_buffer_alone() {
        let t = UrlTemplate::parse("/{a}/{b}").unwrap();
        let mut out = String::from("prefix:");
        let err = t.expand(&vec![("a", json!("x"))], &mut out).unwrap_err();
        assert!(matches!(err, ExpandError::Missing { .. }));
        assert_eq!(out, "prefix:");
        assert!(
            t.expand(&vec![("a", json!("x")), ("b", json!(".."))], &mut out)
                .is_err()
        );
        assert_eq!(out, "prefix:");
        t.expand(&vec![("a", json!("x")), ("b", json!("y"))], &mut out)
            .unwrap();
        assert_eq!(out, "prefix:/x/y");
    }

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
    fn accessors_display_and_from_str() {
        let source = "https://h.example/{a}/{+b}{?c,a}{&b,d*}";
        let t: UrlTemplate = source.parse().unwrap();
        assert_eq!(t.as_str(), source);
        assert_eq!(t.to_string(), source);
        assert_eq!(t.variables().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(t, UrlTemplate::parse(source).unwrap());
        assert_ne!(t, UrlTemplate::parse("https://h.example/{a}").unwrap());
        let pct = UrlTemplate::parse("{a%20b}{?a%20b}").unwrap();
        assert_eq!(pct.variables().collect::<Vec<_>>(), ["a%20b"]);
        assert_eq!(
            pct.expand_to_string(&vec![("a%20b", json!("v"))]).unwrap(),
            "v?a%20b=v"
        );
    }

    #[test]
    fn vars_implementations() {
        let t = UrlTemplate::parse("{a}-{b}").unwrap();
        let pairs = [("a", json!(1)), ("b", json!(2)), ("a", json!(3))];
        assert_eq!(t.expand_to_string(&pairs).unwrap(), "3-2");
        let slice: &[(&str, Value)] = &pairs;
        assert_eq!(t.expand_to_string(&slice).unwrap(), "3-2");
        assert_eq!(<[(&str, Value)] as Vars>::get(slice, "a"), Some(&json!(3)));
        let owned: Vec<(String, Value)> = vec![("a".into(), json!("x")), ("b".into(), json!("y"))];
        assert_eq!(t.expand_to_string(&owned).unwrap(), "x-y");
        let object = map(json!({"a": true, "b": 1.5}));
        assert_eq!(t.expand_to_string(&object).unwrap(), "true-1.5");
        let mut out = String::new();
        t.expand(&object, &mut out).unwrap();
        t.expand(&owned, &mut out).unwrap();
        assert_eq!(out, "true-1.5x-y");
    }

    #[test]
    fn absolute_urls_start_with_a_scheme_and_slashes() {
        for (text, len) in [
            ("https://api.example.com/x", Some(8)),
            ("HTTP://h/", Some(7)),
            ("svn+ssh://h/", Some(10)),
            ("{scheme}://h/", Some(11)),
            ("http{s}://h/", Some(10)),
            ("/redirect?next=https://x", None),
            ("redirect?next=https://x", None),
            ("users:search", None),
            ("projects/p:batchGet?cb=http://x", None),
            ("1http://h/", None),
            ("://h/", None),
            ("{+base}/users", None),
            ("{unclosed://h/", None),
            ("", None),
        ] {
            assert_eq!(scheme_prefix_len(text, true), len, "{text}");
        }
        // In a URL, braces are plain characters.
        assert_eq!(scheme_prefix_len("http{s}://h/", false), None);
    }

    #[test]
    fn userinfo_is_found_in_the_authority_only() {
        for (text, found) in [
            ("https://user:pw@h.example/", Some(15)),
            ("https://token@h.example:8443/x", Some(13)),
            ("https://{user}@h.example/", Some(14)),
            ("https://a@b@h.example/", Some(11)),
            ("https://h.example/@me", None),
            ("https://h.example?q=a@b", None),
            ("https://h.example{/who}@x", None),
            ("https://{a@b}.example/", None),
            ("/users/@me", None),
        ] {
            assert_eq!(userinfo_end(text, true), found, "{text}");
        }
    }

    #[test]
    fn redaction_hides_userinfo_query_values_and_the_fragment() {
        let template = |text: &str| Redacted::template(text).to_string();
        let url = |text: &str| Redacted::url(text).to_string();
        for (text, shown) in [
            (
                "https://h.example/users/{id}",
                "https://h.example/users/{id}",
            ),
            (
                "https://h.example/a?api_key=SECRET&page=2",
                "https://h.example/a?api_key=…&page=…",
            ),
            (
                "https://u:SECRET@h.example:8443/a",
                "https://…@h.example:8443/a",
            ),
            ("https://h.example/a?SECRET", "https://h.example/a?…"),
            (
                "https://h.example/a?SECRET&k=v",
                "https://h.example/a?…&k=…",
            ),
            ("https://h.example/a?k=&j", "https://h.example/a?k=&…"),
            ("https://h.example/a?k=SECRET=x", "https://h.example/a?k=…"),
            ("https://h.example/a#SECRET", "https://h.example/a#…"),
            (
                "https://h.example/a?k=v#SECRET",
                "https://h.example/a?k=…#…",
            ),
            ("https://h.example/a?k=é😀", "https://h.example/a?k=…"),
            ("/relative?token=SECRET", "/relative?token=…"),
            ("", ""),
            ("?", "?"),
            ("https://", "https://"),
        ] {
            assert_eq!(template(text), shown, "{text}");
            assert_eq!(url(text), shown, "{text}");
        }
        for (text, shown) in [
            (
                "https://h.example/a{?q,page}",
                "https://h.example/a{?q,page}",
            ),
            (
                "https://h.example/a?key=SECRET{&page}&sig=SECRET",
                "https://h.example/a?key=…{&page}&sig=…",
            ),
            (
                "https://h.example/a{?q}&t=SECRET",
                "https://h.example/a{?q}&t=…",
            ),
            ("https://h.example/a{?q}SECRET", "https://h.example/a{?q}…"),
            ("https://h.example/a?k={v}", "https://h.example/a?k={v}"),
            ("https://h.example/a?k=S{v}S", "https://h.example/a?k=…{v}…"),
            (
                "https://h.example/a?{k}=SECRET",
                "https://h.example/a?{k}=…",
            ),
            ("https://h.example/a{#f}SECRET", "https://h.example/a{#f}…"),
            (
                "https://h.example/a?k=SECRET&{oops",
                "https://h.example/a?k=…&…",
            ),
            ("https://{user}:SECRET@h/", "https://…@h/"),
            ("{+base}/a?k=SECRET", "{+base}/a?k=…"),
            ("https://h{/p}?k=SECRET", "https://h{/p}?k=…"),
        ] {
            assert_eq!(template(text), shown, "{text}");
        }
        // In a URL, braces are data, never an expression that would be copied.
        assert_eq!(
            url("https://h.example/a?k={SECRET}"),
            "https://h.example/a?k=…"
        );
        // Display, Debug and the errors of a template go through it.
        let t = UrlTemplate::parse("https://h.example/{id}?api_key=SECRET").unwrap();
        assert_eq!(t.to_string(), "https://h.example/{id}?api_key=…");
        assert_eq!(
            format!("{t:?}"),
            "UrlTemplate(\"https://h.example/{id}?api_key=…\")"
        );
        assert_eq!(t.as_str(), "https://h.example/{id}?api_key=SECRET");
        let missing = t.expand_to_string(&Map::new()).unwrap_err();
        let parse = UrlTemplate::parse("https://h.example/{id?api_key=SECRET").unwrap_err();
        for text in [
            missing.to_string(),
            format!("{missing:?}"),
            parse.to_string(),
            format!("{parse:?}"),
        ] {
            assert!(!text.contains("SECRET"), "{text}");
        }
        assert!(
            parse.template.contains("SECRET"),
            "the field keeps the text"
        );
    }

    /// A dependency-free xorshift64* generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap()
        }

        fn string(&mut self, pool: &[char], max_len: usize) -> String {
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| {
                    if self.below(4) == 0 {
                        char::from(u8::try_from(self.below(128)).unwrap())
                    } else {
                        pool[self.below(pool.len())]
                    }
                })
                .collect()
        }
    }

    const VALUE_POOL: &[char] = &[
        '.', '.', '.', '/', '%', '2', 'e', 'E', 'f', '?', '#', '@', ':', '\\', ' ', '\r', '\n',
        '\t', 'a', 'Z', '0', '~', '-', '_', ';', '=', '&', '+', ',', '[', ']', '{', '}', '\0',
        '\u{7f}', 'é', '😀', '\u{FF0E}', '\u{FF0F}', '\u{2215}', '\u{2025}',
    ];

    #[test]
    fn property_simple_values_never_change_host_or_path_shape() {
        let t = UrlTemplate::parse("https://h.example/{x}").unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut out = String::new();
        for _ in 0..5000 {
            let value = rng.string(VALUE_POOL, 8);
            out.clear();
            match t.expand(&vec![("x", json!(value))], &mut out) {
                Ok(()) => {}
                Err(ExpandError::Empty { .. }) if value.is_empty() => continue,
                // A dot-segment of the value split at `/` and `\` (sent as `%2F`/`%5C`).
                Err(ExpandError::DotSegment { .. })
                    if value
                        .split(['/', '\\'])
                        .any(|s| is_dot_segment(s.as_bytes())) =>
                {
                    continue;
                }
                Err(e) => panic!("{value:?}: {e}"),
            }
            assert!(
                !out.contains(['\r', '\n', ' ', '#', '?', '\\']),
                "{value:?} -> {out}"
            );
            let rest = out.strip_prefix("https://h.example/").unwrap();
            assert!(!rest.contains('/'), "{value:?} -> {out}");
            let (host, segments) = host_and_segments(&out);
            assert_eq!(host, "h.example", "{value:?} -> {out}");
            assert_eq!(segments.len(), 1, "{value:?} -> {out}");
        }
    }

    #[test]
    fn property_reserved_values_never_change_host_or_hide_dot_segments() {
        let t = UrlTemplate::parse("https://h.example/base/{+x}/end").unwrap();
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut refused = 0;
        for _ in 0..5000 {
            let value = rng.string(VALUE_POOL, 10);
            let out = match t.expand_to_string(&vec![("x", json!(value))]) {
                Ok(out) => out,
                Err(ExpandError::DotSegment { .. }) => {
                    refused += 1;
                    continue;
                }
                Err(ExpandError::Empty { .. }) if value.is_empty() => continue,
                Err(ExpandError::EndsPath { .. }) if value.contains(['?', '#']) => continue,
                Err(e) => panic!("{value:?}: {e}"),
            };
            assert!(
                !out.contains(['\r', '\n', ' ', '\t', '\\', '\0']),
                "{value:?} -> {out}"
            );
            let Ok(url) = Url::parse(&out) else { continue };
            assert_eq!(url.host_str(), Some("h.example"), "{value:?} -> {out}");
            // No dot-segment was resolved away: the parser sees as many segments as were written.
            let path_end = out.find(['?', '#']).unwrap_or(out.len());
            let written = out
                .get("https://h.example/".len()..path_end)
                .unwrap()
                .split('/')
                .count();
            assert_eq!(
                url.path_segments().unwrap().count(),
                written,
                "{value:?} -> {out}"
            );
        }
        assert!(refused > 0);
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
