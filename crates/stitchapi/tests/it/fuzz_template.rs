//! Property-based fuzzing of URL templates (parse, expand, redact) with bounded cases, so it
//! runs in seconds in every `cargo test`.
//!
//! Invariants, whatever the variable values (arbitrary Unicode, control characters, `/`, `\`,
//! `?`, `#`, `@`, `..`, `%2f`, `%5c`, `%2e`, ...):
//! * the request keeps the template's scheme, host and port;
//! * the path keeps its shape: the template's literal parts, its number of segments (for
//!   expressions that cannot hold a `/`), and no `.`/`..` segment, neither for a WHATWG URL
//!   parser nor for a server that percent-decodes the path before resolving dot-segments;
//! * a value is either sent so, or refused as an `Input` error before anything is sent;
//! * a value in a path segment (`{x}`, `{/x}`) decodes back to itself, and is refused only
//!   when empty or when a `.`/`..` segment would appear once `%2F`/`%5C` are decoded;
//! * parsing, expanding, redacting and declaring never panic on arbitrary text;
//! * a literal query value never shows in a stitch's name, `Debug` or template `Display`.

use crate::support;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use stitchapi::template::UrlTemplate;
use stitchapi::{ErrorKind, Input, Seam, StatusMatch, Stitch};
use support::Upstream;

const CASES: u32 = 512;

/// Pieces of hostile values: URL delimiters, their encodings, dot-segments, controls.
const PIECES: &[&str] = &[
    ".",
    "..",
    "...",
    "/",
    "\\",
    "?",
    "#",
    "@",
    ":",
    ";",
    "=",
    "&",
    "+",
    ",",
    "%",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%2e",
    "%2E",
    "%3B",
    "%25",
    "%00",
    "%0d%0a",
    "\r\n",
    "\0",
    "\t",
    " ",
    "{",
    "}",
    "[::1]",
    "evil.example",
    "a",
    "Z9",
    "é",
    "😀",
    "\u{FF0F}",
    "\u{2215}",
    "\u{202E}",
];

/// A hostile value: arbitrary Unicode, or a run of hostile pieces.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(proptest::sample::select(PIECES), 0..10)
            .prop_map(|pieces| pieces.concat()),
    ]
}

/// A value no rule refuses: unreserved characters and non-ASCII letters, never empty.
fn benign() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_~é-]{1,8}"
}

/// Template-like text: mostly template syntax, so that many cases parse.
fn template_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(https?://)?[{}+#./;?&=,!@|:*%0-9a-zé _]{0,24}",
        "https://h\\.example(/[a-z]{0,3}|/\\{[+#./;?&]?[a-z]{1,2}(:[0-9]{1,5}|\\*)?(,[a-z])?\\}){0,4}(\\?[a-z]=[a-z]{0,4})?",
    ]
}

const ORIGIN: &str = "https://api.example.com:8443";

/// A template after [`ORIGIN`], the literal start and end of its path, and its number of
/// path segments when no value can change it (`None` for `{+…}`, whose values may hold `/`).
struct Shape {
    template: &'static str,
    starts: &'static str,
    ends: &'static str,
    segments: Option<usize>,
}

const SHAPES: &[Shape] = &[
    Shape {
        template: "/v1/users/{a}/files/{b}{?q,c*}",
        starts: "/v1/users/",
        ends: "",
        segments: Some(5),
    },
    Shape {
        template: "/v1/x{/a}/y{/b}",
        starts: "/v1/x/",
        ends: "",
        segments: Some(5),
    },
    Shape {
        template: "/v1/report{.a}/{b:3}.json",
        starts: "/v1/report",
        ends: ".json",
        segments: Some(3),
    },
    Shape {
        template: "/v1/m{;a,b}/n?fixed=1{&q}",
        starts: "/v1/m;a",
        ends: "/n",
        segments: Some(3),
    },
    Shape {
        template: "/v1/raw/{+a}/end{?q}",
        starts: "/v1/raw/",
        ends: "/end",
        segments: None,
    },
    Shape {
        template: "/v1/raw/{+a}/{b}{#q}",
        starts: "/v1/raw/",
        ends: "",
        segments: None,
    },
];

/// The path's segments as a server that percent-decodes before resolving dot-segments sees
/// them: `;params` stripped from each raw segment, then decoded, then split at `/` and `\`.
fn decoded_segments(path: &str) -> Vec<String> {
    path.split('/')
        .skip(1)
        .flat_map(|raw| {
            let raw = raw.split(';').next().unwrap_or_default();
            let decoded = percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned();
            decoded
                .split(['/', '\\'])
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Checks the invariants on the request `stitch` builds for `input`.
fn check_shape(
    stitch: &Stitch,
    shape: &Shape,
    input: Input,
    must_pass: bool,
) -> Result<(), TestCaseError> {
    let request = match stitch.to_request(input) {
        Ok(request) => request,
        Err(error) => {
            prop_assert_eq!(error.kind(), ErrorKind::Input, "{}", error);
            prop_assert!(!must_pass, "a benign value was refused: {}", error);
            return Ok(());
        }
    };
    let uri = request.uri();
    prop_assert_eq!(uri.scheme_str(), Some("https"));
    prop_assert_eq!(
        uri.authority().map(|a| a.as_str()),
        Some("api.example.com:8443")
    );
    let path = uri.path();
    prop_assert!(path.starts_with(shape.starts), "{}", uri);
    prop_assert!(path.ends_with(shape.ends), "{}", uri);
    let raw_segments = path.split('/').count() - 1;
    if let Some(segments) = shape.segments {
        prop_assert_eq!(raw_segments, segments, "{}", uri);
    }
    // A WHATWG parser resolves no dot-segment away and keeps the origin.
    let url = url::Url::parse(&uri.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(url.host_str(), Some("api.example.com"));
    prop_assert_eq!(url.port(), Some(8443));
    prop_assert_eq!(url.path_segments().map(|s| s.count()), Some(raw_segments));
    // Nor would a server that decodes `%2F`, `%5C` and `%2E` first.
    for segment in decoded_segments(path) {
        prop_assert!(segment != "." && segment != "..", "{}", uri);
    }
    prop_assert!(
        !uri.to_string().contains(['\r', '\n', ' ', '\0', '#']),
        "{}",
        uri
    );
    Ok(())
}

/// One stitch per shape, declared once for every case.
static STITCHES: LazyLock<Vec<Stitch>> = LazyLock::new(|| {
    SHAPES
        .iter()
        .map(|shape| {
            Stitch::get(format!("{ORIGIN}{}", shape.template))
                .build()
                .unwrap()
        })
        .collect()
});

static SEAM: LazyLock<Seam> = LazyLock::new(|| Seam::builder(ORIGIN).build().unwrap());

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn hostile_values_never_change_the_origin_or_the_path_shape(
        shape in 0..SHAPES.len(),
        a in hostile(),
        b in hostile(),
        q in hostile(),
        list in proptest::collection::vec(hostile(), 0..3),
    ) {
        let stitch = &STITCHES[shape];
        let input = Input::new()
            .param("a", a)
            .param("b", b)
            .param("q", q)
            .param("c", json!(list));
        check_shape(stitch, &SHAPES[shape], input, false)?;
    }

    #[test]
    fn benign_values_are_always_sent(
        shape in 0..SHAPES.len(),
        a in benign(),
        b in benign(),
        q in benign(),
    ) {
        let stitch = &STITCHES[shape];
        let input = Input::new().param("a", a).param("b", b).param("q", q);
        check_shape(stitch, &SHAPES[shape], input, true)?;
    }

    #[test]
    fn parse_expand_and_redact_never_panic(text in template_like(), value in hostile()) {
        match UrlTemplate::parse(&text) {
            Ok(template) => {
                prop_assert_eq!(template.as_str(), text.as_str());
                let _ = template.to_string();
                let _ = format!("{template:?}");
                let mut vars = Map::new();
                for name in template.variables() {
                    vars.insert(name.to_owned(), Value::String(value.clone()));
                }
                if let Err(error) = template.expand_to_string(&vars) {
                    let _ = format!("{error} {error:?}");
                }
                let lists: Map<String, Value> = template
                    .variables()
                    .map(|name| (name.to_owned(), json!([value.clone(), ""])))
                    .collect();
                let _ = template.expand_to_string(&lists);
            }
            Err(error) => {
                prop_assert!(error.position <= text.len());
                let _ = format!("{error} {error:?}");
            }
        }
        // Declaring never panics either, alone or on a seam.
        match Stitch::get(text.clone()).build() {
            Ok(stitch) => {
                let _ = format!("{stitch:?} {}", stitch.name());
                let _ = stitch.to_request(Input::new());
            }
            Err(error) => {
                let named = format!("{}: ", error.field());
                prop_assert!(!error.field().is_empty());
                prop_assert!(error.to_string().starts_with(&named), "{}", error);
            }
        }
        if let Err(error) = SEAM.get(text).build() {
            let named = format!("{}: ", error.field());
            prop_assert!(error.to_string().starts_with(&named), "{}", error);
        }
    }

    #[test]
    fn literal_query_values_and_userinfo_never_show(
        key in "[a-z_]{1,8}",
        secret in "[A-Za-z0-9]{16,24}",
        user in "[a-z]{1,8}",
    ) {
        let template = format!("{ORIGIN}/p/{{id}}?{key}={secret}&x=1{{&page}}");
        let stitch = Stitch::get(template.clone()).build().unwrap();
        let member = SEAM.get(format!("/p/{{id}}?{key}={secret}")).build().unwrap();
        for text in [
            stitch.name().to_owned(),
            format!("{stitch:?}"),
            stitch.template().to_string(),
            format!("{:?}", stitch.template()),
            format!("{:?}", Stitch::get(template.clone())),
            member.name().to_owned(),
            format!("{member:?}"),
        ] {
            prop_assert!(!text.contains(&secret), "{}", text);
        }
        let shown = format!("?{key}=…&x=…{{&page}}");
        prop_assert!(stitch.name().contains(&shown), "{}", stitch.name());
        // The request carries the value as written.
        let request = stitch.to_request(Input::new().param("id", 1)).unwrap();
        let query = format!("{key}={secret}&x=1");
        prop_assert_eq!(request.uri().query(), Some(query.as_str()));
        // Userinfo is refused, and the error does not repeat it.
        let error = Stitch::get(format!("https://{user}:{secret}@api.example.com/p"))
            .build()
            .unwrap_err();
        prop_assert_eq!(error.field(), "url");
        let text = format!("{error} {error:?}");
        prop_assert!(!text.contains(&secret), "{}", text);
    }
}

/// Templates with one path segment `x` between literal ones, and where that segment is.
const SEGMENT_TEMPLATES: &[(&str, usize)] = &[
    ("/v1/users/{x}/files", 2),
    ("/v1/users{/x}/files", 2),
    ("/v1/users/{x}", 2),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn a_path_segment_decodes_back_to_the_value(
        which in 0..SEGMENT_TEMPLATES.len(),
        value in hostile(),
    ) {
        let (template, index) = SEGMENT_TEMPLATES[which];
        let template = UrlTemplate::parse(&format!("{ORIGIN}{template}")).unwrap();
        let expected_segments = template.as_str().matches('/').count() - 2;
        let vars = vec![("x", Value::String(value.clone()))];
        // Refused exactly when empty, or when a `.`/`..` segment would appear to a server
        // that decodes `%2F` and `%5C` before resolving dot-segments.
        let dot_segment = value.split(['/', '\\']).any(|s| s == "." || s == "..");
        let expanded = match template.expand_to_string(&vars) {
            Ok(expanded) => expanded,
            Err(error) => {
                prop_assert!(value.is_empty() || dot_segment, "{:?}: {}", value, error);
                return Ok(());
            }
        };
        prop_assert!(!value.is_empty() && !dot_segment, "{:?} -> {}", value, expanded);
        let url = url::Url::parse(&expanded).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(url.scheme(), "https");
        prop_assert_eq!(url.host_str(), Some("api.example.com"));
        prop_assert_eq!(url.port(), Some(8443));
        prop_assert_eq!(url.query(), None);
        prop_assert_eq!(url.fragment(), None);
        let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
        prop_assert_eq!(segments.len(), expected_segments, "{}", expanded);
        let decoded = percent_encoding::percent_decode_str(segments[index])
            .decode_utf8()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.as_ref(), value.as_str(), "{}", expanded);
    }
}

/// The shape invariant on the wire: what a real server receives for hostile values of a
/// path variable and of a reserved expansion.
#[test]
fn hostile_values_reach_the_server_on_the_declared_path_only() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(Upstream::start());
    let stitch = Stitch::get(format!(
        "{}/v1/users/{{id}}/raw/{{+rest}}/end",
        upstream.url()
    ))
    .accept(StatusMatch::when(|_| true))
    .text()
    .build()
    .unwrap();
    let mut runner = TestRunner::new(Config::with_cases(64));
    let sent = AtomicUsize::new(0);
    runner
        .run(&(hostile(), hostile()), |(id, rest)| {
            let input = Input::new().param("id", id).param("rest", rest);
            let Ok(()) = runtime.block_on(stitch.call(input)).map(|_| ()) else {
                return Ok(());
            };
            let before = sent.fetch_add(1, Ordering::SeqCst);
            let hits = upstream.hits();
            prop_assert_eq!(hits.len(), before + 1);
            let hit = hits.last().unwrap();
            let host = upstream.addr.to_string();
            prop_assert_eq!(
                hit.headers.get("host").and_then(|h| h.to_str().ok()),
                Some(host.as_str())
            );
            let path = hit.target.split('?').next().unwrap_or_default();
            prop_assert!(path.starts_with("/v1/users/"), "{}", hit.target);
            prop_assert!(path.ends_with("/end"), "{}", hit.target);
            let segments: Vec<_> = path.split('/').collect();
            prop_assert_eq!(segments.get(4).copied(), Some("raw"), "{}", hit.target);
            for segment in decoded_segments(path) {
                prop_assert!(segment != "." && segment != "..", "{}", hit.target);
            }
            Ok(())
        })
        .unwrap();
    assert!(sent.load(Ordering::SeqCst) > 0, "some values were sent");
}
