//! Dot-segment and path-shape checks: per value (a `.`/`..` value, or a dot-segment inside a
//! `+`/`#` value) and on the expanded URL (a `.`/`..` segment that an expansion produced or
//! delimited), with `%2e` as a dot and `%2F`/`%5C`/`\` as separators.

use super::ExpandError;
use super::parse::Op;

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
pub(super) fn check_value(op: Op, name: &str, text: &str) -> Result<(), ExpandError> {
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
pub(super) struct Marks<'t> {
    inline: [(usize, usize, &'t str); INLINE_MARKS],
    len: usize,
    spill: Vec<(usize, usize, &'t str)>,
}

impl<'t> Marks<'t> {
    pub(super) fn new() -> Marks<'t> {
        Marks {
            inline: [(0, 0, ""); INLINE_MARKS],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, start: usize, end: usize, name: &'t str) {
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
#[inline]
pub(super) fn check_dot_segments(out: &str, marks: &Marks<'_>) -> Result<(), ExpandError> {
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use url::Url;

    use super::is_dot_segment;
    use crate::template::testkit::{Rng, dot_segment, expand_one, host_and_segments};
    use crate::template::{ExpandError, UrlTemplate};

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
}
