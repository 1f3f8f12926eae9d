//! URL text: absolute-URL detection, the userinfo, and the redacted display of templates and
//! URLs ([`Redacted`]).

use std::fmt::{self, Write as _};

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
    use serde_json::Map;

    use super::*;
    use crate::template::UrlTemplate;

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
}
