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
//!
//! # Why the expansion is written here
//!
//! `iri-string` 0.7 (0.7.14 evaluated) has an RFC 6570 level-4 engine and expands every
//! example of the RFC as this module does (its undefined and empty values aside, which the
//! rules above change on purpose). It was not adopted, because:
//! * it panics (a `str` slice off a char boundary) on `{+x}`/`{#x}` values that start with,
//!   or have right after a `%` or `%XX`, a non-ASCII character: `é`, `%é`, `%41é`;
//! * it is slower: for the `request_build` bench's template
//!   (`…/orgs/{org}/users/{id}{?fields}`), 2.7–3.3 µs per expansion against 0.34–0.9 µs
//!   here, measured in the same process, without any of the safety checks: its template
//!   is text re-parsed on every expansion and written through `fmt::Display`;
//! * it hands back the whole expansion, not where each expression wrote, which the checks
//!   above need (an empty value in the path, `{+x}` ending the path early, the spans for the
//!   dot-segment check), so this module's parser would stay anyway.
//!
//! The code: `parse` (template text to literal chunks and expressions), `expand` (values
//! per operator), `encode` (percent-encoding), `dots` (dot-segment and path-shape checks)
//! and `redact` (absolute-URL detection, userinfo, redacted display).

mod dots;
mod encode;
mod expand;
mod parse;
mod redact;
#[cfg(test)]
mod testkit;

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use self::dots::{Marks, check_dot_segments};
use self::parse::{Part, VarName};
pub(crate) use self::redact::{Redacted, scheme_prefix_len, userinfo_end};

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

impl UrlTemplate {
    /// Parses and compiles `template`.
    ///
    /// Fails on an unclosed `{`, a stray `}`, an empty expression, a reserved operator
    /// (`=`, `,`, `!`, `@`, `|`), an invalid variable name (RFC `varname`: `ALPHA`, `DIGIT`,
    /// `_` and `%XX`, with single `.`s between them), a prefix length outside `1..=9999`,
    /// and a prefix combined with explode. Literal text never fails: characters not allowed
    /// in a URI are percent-encoded.
    pub fn parse(template: &str) -> Result<UrlTemplate, TemplateError> {
        parse::compile(template)
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use crate::template::testkit::map;
    use crate::template::{ExpandError, TemplateError, UrlTemplate, Vars};

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

    /// What an RFC example expands to here.
    #[derive(Clone, Copy, Debug)]
    enum Want {
        /// The RFC's expansion.
        Is(&'static str),
        /// The RFC's expansion, then the same with the `keys` map iterated sorted (comma,
        /// dot, semi), as `Map` does without serde_json's `preserve_order`.
        Keys(&'static str, &'static str),
        /// `ExpandError::Missing` for this variable. The RFC expands an undefined variable to
        /// nothing everywhere; this module makes every variable used outside `{?…}`/`{&…}`
        /// required (the RFC's expansion is in the comment).
        Missing(&'static str),
        /// `ExpandError::Empty` for `empty`, an empty value in the path; the RFC's expansion
        /// once the template allows it with `allow_empty("empty")`.
        EmptyUnlessAllowed(&'static str),
    }

    use Want::{EmptyUnlessAllowed, Is, Keys, Missing};

    /// The examples of RFC 6570: the section (§1.2 uses the variables of §1.2, the others
    /// those of §3.2), the template and what it expands to.
    #[rustfmt::skip]
    const RFC_EXAMPLES: &[(&str, &str, Want)] = &[
        ("1.2 level 1", "{var}", Is("value")),
        ("1.2 level 1", "{hello}", Is("Hello%20World%21")),
        ("1.2 level 2", "{+var}", Is("value")),
        ("1.2 level 2", "{+hello}", Is("Hello%20World!")),
        ("1.2 level 2", "{+path}/here", Is("/foo/bar/here")),
        ("1.2 level 2", "here?ref={+path}", Is("here?ref=/foo/bar")),
        ("1.2 level 2", "X{#var}", Is("X#value")),
        ("1.2 level 2", "X{#hello}", Is("X#Hello%20World!")),
        ("1.2 level 3", "map?{x,y}", Is("map?1024,768")),
        ("1.2 level 3", "{x,hello,y}", Is("1024,Hello%20World%21,768")),
        ("1.2 level 3", "{+x,hello,y}", Is("1024,Hello%20World!,768")),
        ("1.2 level 3", "{+path,x}/here", Is("/foo/bar,1024/here")),
        ("1.2 level 3", "{#x,hello,y}", Is("#1024,Hello%20World!,768")),
        ("1.2 level 3", "{#path,x}/here", Is("#/foo/bar,1024/here")),
        ("1.2 level 3", "X{.var}", Is("X.value")),
        ("1.2 level 3", "X{.x,y}", Is("X.1024.768")),
        ("1.2 level 3", "{/var}", Is("/value")),
        ("1.2 level 3", "{/var,x}/here", Is("/value/1024/here")),
        ("1.2 level 3", "{;x,y}", Is(";x=1024;y=768")),
        ("1.2 level 3", "{;x,y,empty}", Is(";x=1024;y=768;empty")),
        ("1.2 level 3", "{?x,y}", Is("?x=1024&y=768")),
        ("1.2 level 3", "{?x,y,empty}", Is("?x=1024&y=768&empty=")),
        ("1.2 level 3", "?fixed=yes{&x}", Is("?fixed=yes&x=1024")),
        ("1.2 level 3", "{&x,y,empty}", Is("&x=1024&y=768&empty=")),
        ("1.2 level 4", "{var:3}", Is("val")),
        ("1.2 level 4", "{var:30}", Is("value")),
        ("1.2 level 4", "{list}", Is("red,green,blue")),
        ("1.2 level 4", "{list*}", Is("red,green,blue")),
        ("1.2 level 4", "{keys}", Keys("semi,%3B,dot,.,comma,%2C", "comma,%2C,dot,.,semi,%3B")),
        ("1.2 level 4", "{keys*}", Keys("semi=%3B,dot=.,comma=%2C", "comma=%2C,dot=.,semi=%3B")),
        ("1.2 level 4", "{+path:6}/here", Is("/foo/b/here")),
        ("1.2 level 4", "{+list}", Is("red,green,blue")),
        ("1.2 level 4", "{+list*}", Is("red,green,blue")),
        ("1.2 level 4", "{+keys}", Keys("semi,;,dot,.,comma,,", "comma,,,dot,.,semi,;")),
        ("1.2 level 4", "{+keys*}", Keys("semi=;,dot=.,comma=,", "comma=,,dot=.,semi=;")),
        ("1.2 level 4", "{#path:6}/here", Is("#/foo/b/here")),
        ("1.2 level 4", "{#list}", Is("#red,green,blue")),
        ("1.2 level 4", "{#list*}", Is("#red,green,blue")),
        ("1.2 level 4", "{#keys}", Keys("#semi,;,dot,.,comma,,", "#comma,,,dot,.,semi,;")),
        ("1.2 level 4", "{#keys*}", Keys("#semi=;,dot=.,comma=,", "#comma=,,dot=.,semi=;")),
        ("1.2 level 4", "X{.var:3}", Is("X.val")),
        ("1.2 level 4", "X{.list}", Is("X.red,green,blue")),
        ("1.2 level 4", "X{.list*}", Is("X.red.green.blue")),
        ("1.2 level 4", "X{.keys}", Keys("X.semi,%3B,dot,.,comma,%2C", "X.comma,%2C,dot,.,semi,%3B")),
        ("1.2 level 4", "X{.keys*}", Keys("X.semi=%3B.dot=..comma=%2C", "X.comma=%2C.dot=..semi=%3B")),
        ("1.2 level 4", "{/var:1,var}", Is("/v/value")),
        ("1.2 level 4", "{/list}", Is("/red,green,blue")),
        ("1.2 level 4", "{/list*}", Is("/red/green/blue")),
        ("1.2 level 4", "{/list*,path:4}", Is("/red/green/blue/%2Ffoo")),
        ("1.2 level 4", "{/keys}", Keys("/semi,%3B,dot,.,comma,%2C", "/comma,%2C,dot,.,semi,%3B")),
        ("1.2 level 4", "{/keys*}", Keys("/semi=%3B/dot=./comma=%2C", "/comma=%2C/dot=./semi=%3B")),
        ("1.2 level 4", "{;hello:5}", Is(";hello=Hello")),
        ("1.2 level 4", "{;list}", Is(";list=red,green,blue")),
        ("1.2 level 4", "{;list*}", Is(";list=red;list=green;list=blue")),
        ("1.2 level 4", "{;keys}", Keys(";keys=semi,%3B,dot,.,comma,%2C", ";keys=comma,%2C,dot,.,semi,%3B", )),
        ("1.2 level 4", "{;keys*}", Keys(";semi=%3B;dot=.;comma=%2C", ";comma=%2C;dot=.;semi=%3B")),
        ("1.2 level 4", "{?var:3}", Is("?var=val")),
        ("1.2 level 4", "{?list}", Is("?list=red,green,blue")),
        ("1.2 level 4", "{?list*}", Is("?list=red&list=green&list=blue")),
        ("1.2 level 4", "{?keys}", Keys("?keys=semi,%3B,dot,.,comma,%2C", "?keys=comma,%2C,dot,.,semi,%3B", )),
        ("1.2 level 4", "{?keys*}", Keys("?semi=%3B&dot=.&comma=%2C", "?comma=%2C&dot=.&semi=%3B")),
        ("1.2 level 4", "{&var:3}", Is("&var=val")),
        ("1.2 level 4", "{&list}", Is("&list=red,green,blue")),
        ("1.2 level 4", "{&list*}", Is("&list=red&list=green&list=blue")),
        ("1.2 level 4", "{&keys}", Keys("&keys=semi,%3B,dot,.,comma,%2C", "&keys=comma,%2C,dot,.,semi,%3B", )),
        ("1.2 level 4", "{&keys*}", Keys("&semi=%3B&dot=.&comma=%2C", "&comma=%2C&dot=.&semi=%3B")),
        ("3.2.1", "{count}", Is("one,two,three")),
        ("3.2.1", "{count*}", Is("one,two,three")),
        ("3.2.1", "{/count}", Is("/one,two,three")),
        ("3.2.1", "{/count*}", Is("/one/two/three")),
        ("3.2.1", "{;count}", Is(";count=one,two,three")),
        ("3.2.1", "{;count*}", Is(";count=one;count=two;count=three")),
        ("3.2.1", "{?count}", Is("?count=one,two,three")),
        ("3.2.1", "{?count*}", Is("?count=one&count=two&count=three")),
        ("3.2.1", "{&count*}", Is("&count=one&count=two&count=three")),
        ("3.2.2", "{var}", Is("value")),
        ("3.2.2", "{hello}", Is("Hello%20World%21")),
        ("3.2.2", "{half}", Is("50%25")),
        ("3.2.2", "{x,y}", Is("1024,768")),
        ("3.2.2", "{x,hello,y}", Is("1024,Hello%20World%21,768")),
        ("3.2.2", "?{x,empty}", Is("?1024,")),
        ("3.2.2", "{var:3}", Is("val")),
        ("3.2.2", "{var:30}", Is("value")),
        ("3.2.2", "{list}", Is("red,green,blue")),
        ("3.2.2", "{list*}", Is("red,green,blue")),
        ("3.2.2", "{keys}", Keys("semi,%3B,dot,.,comma,%2C", "comma,%2C,dot,.,semi,%3B")),
        ("3.2.2", "{keys*}", Keys("semi=%3B,dot=.,comma=%2C", "comma=%2C,dot=.,semi=%3B")),
        ("3.2.2", "O{undef}X", Missing("undef")), // RFC: OX
        ("3.2.2", "?{x,undef}", Missing("undef")), // RFC: ?1024
        ("3.2.2", "?{undef,y}", Missing("undef")), // RFC: ?768
        ("3.2.3", "{+var}", Is("value")),
        ("3.2.3", "{+hello}", Is("Hello%20World!")),
        ("3.2.3", "{+half}", Is("50%25")),
        ("3.2.3", "{base}index", Is("http%3A%2F%2Fexample.com%2Fhome%2Findex")),
        ("3.2.3", "{+base}index", Is("http://example.com/home/index")),
        ("3.2.3", "{+path}/here", Is("/foo/bar/here")),
        ("3.2.3", "here?ref={+path}", Is("here?ref=/foo/bar")),
        ("3.2.3", "up{+path}{var}/here", Is("up/foo/barvalue/here")),
        ("3.2.3", "{+x,hello,y}", Is("1024,Hello%20World!,768")),
        ("3.2.3", "{+path,x}/here", Is("/foo/bar,1024/here")),
        ("3.2.3", "{+path:6}/here", Is("/foo/b/here")),
        ("3.2.3", "{+list}", Is("red,green,blue")),
        ("3.2.3", "{+list*}", Is("red,green,blue")),
        ("3.2.3", "{+keys}", Keys("semi,;,dot,.,comma,,", "comma,,,dot,.,semi,;")),
        ("3.2.3", "{+keys*}", Keys("semi=;,dot=.,comma=,", "comma=,,dot=.,semi=;")),
        ("3.2.3", "O{+undef}X", Missing("undef")), // RFC: OX
        ("3.2.4", "{#var}", Is("#value")),
        ("3.2.4", "{#hello}", Is("#Hello%20World!")),
        ("3.2.4", "{#half}", Is("#50%25")),
        ("3.2.4", "foo{#empty}", Is("foo#")),
        ("3.2.4", "{#x,hello,y}", Is("#1024,Hello%20World!,768")),
        ("3.2.4", "{#path,x}/here", Is("#/foo/bar,1024/here")),
        ("3.2.4", "{#path:6}/here", Is("#/foo/b/here")),
        ("3.2.4", "{#list}", Is("#red,green,blue")),
        ("3.2.4", "{#list*}", Is("#red,green,blue")),
        ("3.2.4", "{#keys}", Keys("#semi,;,dot,.,comma,,", "#comma,,,dot,.,semi,;")),
        ("3.2.4", "{#keys*}", Keys("#semi=;,dot=.,comma=,", "#comma=,,dot=.,semi=;")),
        ("3.2.4", "foo{#undef}", Missing("undef")), // RFC: foo
        ("3.2.5", "{.who}", Is(".fred")),
        ("3.2.5", "{.who,who}", Is(".fred.fred")),
        ("3.2.5", "{.half,who}", Is(".50%25.fred")),
        ("3.2.5", "www{.dom*}", Is("www.example.com")),
        ("3.2.5", "X{.var}", Is("X.value")),
        ("3.2.5", "X{.var:3}", Is("X.val")),
        ("3.2.5", "X{.list}", Is("X.red,green,blue")),
        ("3.2.5", "X{.list*}", Is("X.red.green.blue")),
        ("3.2.5", "X{.keys}", Keys("X.semi,%3B,dot,.,comma,%2C", "X.comma,%2C,dot,.,semi,%3B")),
        ("3.2.5", "X{.keys*}", Keys("X.semi=%3B.dot=..comma=%2C", "X.comma=%2C.dot=..semi=%3B")),
        ("3.2.5", "X{.undef}", Missing("undef")), // RFC: X
        ("3.2.5", "X{.empty_keys}", Missing("empty_keys")), // RFC: X
        ("3.2.5", "X{.empty_keys*}", Missing("empty_keys")), // RFC: X
        ("3.2.6", "{/who}", Is("/fred")),
        ("3.2.6", "{/who,who}", Is("/fred/fred")),
        ("3.2.6", "{/half,who}", Is("/50%25/fred")),
        ("3.2.6", "{/who,dub}", Is("/fred/me%2Ftoo")),
        ("3.2.6", "{/var}", Is("/value")),
        ("3.2.6", "{/var,x}/here", Is("/value/1024/here")),
        ("3.2.6", "{/var:1,var}", Is("/v/value")),
        ("3.2.6", "{/list}", Is("/red,green,blue")),
        ("3.2.6", "{/list*}", Is("/red/green/blue")),
        ("3.2.6", "{/list*,path:4}", Is("/red/green/blue/%2Ffoo")),
        ("3.2.6", "{/keys}", Keys("/semi,%3B,dot,.,comma,%2C", "/comma,%2C,dot,.,semi,%3B")),
        ("3.2.6", "{/keys*}", Keys("/semi=%3B/dot=./comma=%2C", "/comma=%2C/dot=./semi=%3B")),
        ("3.2.6", "{/var,undef}", Missing("undef")), // RFC: /value
        ("3.2.7", "{;who}", Is(";who=fred")),
        ("3.2.7", "{;half}", Is(";half=50%25")),
        ("3.2.7", "{;empty}", Is(";empty")),
        ("3.2.7", "{;v,empty,who}", Is(";v=6;empty;who=fred")),
        ("3.2.7", "{;x,y}", Is(";x=1024;y=768")),
        ("3.2.7", "{;x,y,empty}", Is(";x=1024;y=768;empty")),
        ("3.2.7", "{;hello:5}", Is(";hello=Hello")),
        ("3.2.7", "{;list}", Is(";list=red,green,blue")),
        ("3.2.7", "{;list*}", Is(";list=red;list=green;list=blue")),
        ("3.2.7", "{;keys}", Keys(";keys=semi,%3B,dot,.,comma,%2C", ";keys=comma,%2C,dot,.,semi,%3B", )),
        ("3.2.7", "{;keys*}", Keys(";semi=%3B;dot=.;comma=%2C", ";comma=%2C;dot=.;semi=%3B")),
        ("3.2.7", "{;v,bar,who}", Missing("bar")), // RFC: ;v=6;who=fred
        ("3.2.7", "{;x,y,undef}", Missing("undef")), // RFC: ;x=1024;y=768
        ("3.2.8", "{?who}", Is("?who=fred")),
        ("3.2.8", "{?half}", Is("?half=50%25")),
        ("3.2.8", "{?x,y}", Is("?x=1024&y=768")),
        ("3.2.8", "{?x,y,empty}", Is("?x=1024&y=768&empty=")),
        ("3.2.8", "{?x,y,undef}", Is("?x=1024&y=768")),
        ("3.2.8", "{?var:3}", Is("?var=val")),
        ("3.2.8", "{?list}", Is("?list=red,green,blue")),
        ("3.2.8", "{?list*}", Is("?list=red&list=green&list=blue")),
        ("3.2.8", "{?keys}", Keys("?keys=semi,%3B,dot,.,comma,%2C", "?keys=comma,%2C,dot,.,semi,%3B", )),
        ("3.2.8", "{?keys*}", Keys("?semi=%3B&dot=.&comma=%2C", "?comma=%2C&dot=.&semi=%3B")),
        ("3.2.9", "{&who}", Is("&who=fred")),
        ("3.2.9", "{&half}", Is("&half=50%25")),
        ("3.2.9", "?fixed=yes{&x}", Is("?fixed=yes&x=1024")),
        ("3.2.9", "{&x,y,empty}", Is("&x=1024&y=768&empty=")),
        ("3.2.9", "{&var:3}", Is("&var=val")),
        ("3.2.9", "{&list}", Is("&list=red,green,blue")),
        ("3.2.9", "{&list*}", Is("&list=red&list=green&list=blue")),
        ("3.2.9", "{&keys}", Keys("&keys=semi,%3B,dot,.,comma,%2C", "&keys=comma,%2C,dot,.,semi,%3B", )),
        ("3.2.9", "{&keys*}", Keys("&semi=%3B&dot=.&comma=%2C", "&comma=%2C&dot=.&semi=%3B")),
        ("3.2.9", "{?undef}{&undef}", Is("")),
        ("3.2.2", "O{empty}X", EmptyUnlessAllowed("OX")),
        ("3.2.3", "O{+empty}X", EmptyUnlessAllowed("OX")),
        ("3.2.5", "X{.empty}", EmptyUnlessAllowed("X.")),
        ("3.2.6", "{/var,empty}", EmptyUnlessAllowed("/value/")),
    ];

    #[test]
    fn rfc_6570_examples() {
        let (vars_1_2, vars_3_2) = (vars_1_2(), vars_3_2());
        for &(section, template, want) in RFC_EXAMPLES {
            let vars: &dyn Vars = if section.starts_with("1.2") {
                &vars_1_2
            } else {
                &vars_3_2
            };
            let context = format!("RFC 6570 §{section}: {template}");
            let parsed = UrlTemplate::parse(template).unwrap_or_else(|e| panic!("{context}: {e}"));
            let got = parsed.expand_to_string(vars);
            match want {
                Is(rfc) => assert_eq!(got.as_deref(), Ok(rfc), "{context}"),
                Keys(rfc, sorted) => {
                    let expected = if keys_in_rfc_order() { rfc } else { sorted };
                    assert_eq!(got.as_deref(), Ok(expected), "{context}");
                }
                Missing(name) => assert_eq!(
                    got,
                    Err(ExpandError::Missing {
                        name: name.into(),
                        template: template.into()
                    }),
                    "{context}"
                ),
                EmptyUnlessAllowed(rfc) => {
                    assert_eq!(
                        got,
                        Err(ExpandError::Empty {
                            name: "empty".into()
                        }),
                        "{context}"
                    );
                    let allowed = parsed.allow_empty("empty").expand_to_string(vars);
                    assert_eq!(allowed.as_deref(), Ok(rfc), "{context}");
                }
            }
        }
    }

    #[test]
    fn templates_are_send_sync_and_cheap_to_share() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<UrlTemplate>();
        assert_send_sync::<TemplateError>();
        assert_send_sync::<ExpandError>();
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
}
