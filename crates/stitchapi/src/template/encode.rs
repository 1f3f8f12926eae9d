//! Percent-encoding of values and literal text (RFC 3986 unreserved and reserved sets,
//! UTF-8, `%XX` uppercase).

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

#[inline]
fn push_pct(out: &mut String, byte: u8) {
    out.push('%');
    // Both indices are at most 15, within the 16-byte table.
    out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(byte & 0x0F)]));
}

/// Appends `s` to `out`, percent-encoding every byte outside the unreserved set, or, with
/// `allow_reserved`, outside the unreserved and reserved sets and not part of a `%XX` triplet.
// Inlined into the expansion loop in another module (codegen unit): one call per value.
#[inline]
pub(super) fn encode(out: &mut String, s: &str, allow_reserved: bool) {
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};
    use url::Url;

    use crate::template::UrlTemplate;
    use crate::template::testkit::{dot_segment, expand_one, host_and_segments};

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
}
