//! Helpers shared by the template tests.

use serde_json::{Map, Value};
use url::Url;

use super::{ExpandError, UrlTemplate, Vars};

pub(super) fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

pub(super) fn expand_one(template: &str, value: Value) -> Result<String, ExpandError> {
    UrlTemplate::parse(template)
        .unwrap()
        .expand_to_string(&vec![("x", value)])
}

pub(super) fn dot_segment(template: &str, value: Value) -> String {
    match expand_one(template, value.clone()) {
        Err(ExpandError::DotSegment { name, value }) => {
            assert_eq!(name, "x");
            value
        }
        other => panic!("{template} with {value}: expected DotSegment, got {other:?}"),
    }
}

/// Host and path segments of `url` as parsed by a WHATWG parser.
pub(super) fn host_and_segments(url: &str) -> (String, Vec<String>) {
    let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let segments = parsed.path_segments().unwrap().map(str::to_owned).collect();
    (parsed.host_str().unwrap_or_default().to_owned(), segments)
}

/// A dependency-free xorshift64* generator.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    pub(super) fn string(&mut self, pool: &[char], max_len: usize) -> String {
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

/// Expands each `(template, expected)` pair with `vars` and checks the result.
pub(super) fn expands_to(vars: &dyn Vars, cases: &[(&str, &str)]) {
    for &(template, expected) in cases {
        let parsed = UrlTemplate::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        let got = parsed
            .expand_to_string(vars)
            .unwrap_or_else(|e| panic!("{template}: {e}"));
        assert_eq!(got, expected, "template {template}");
    }
}
