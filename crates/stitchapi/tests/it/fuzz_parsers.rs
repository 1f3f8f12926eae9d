//! Property-based fuzzing of the parsers that take untrusted or user input: durations, rates,
//! `Retry-After` (through whole calls) and config files. Each property runs a bounded number of
//! cases so the file finishes in seconds under `cargo test`; the invariant is always the same:
//! never a panic, either a value within its documented range or a clear error.
//!
//! A failing case proptest finds is pinned below as a named regression test.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::Method;
use proptest::prelude::*;
use stitchapi::config::SeamConfig;
use stitchapi::duration::{DurationSpec, parse_duration};
use stitchapi::testing::{ManualClock, MockResponse, MockTransport};
use stitchapi::throttle::{Rate, Throttle};
use stitchapi::time::Clock;
use stitchapi::{ErrorKind, Input, Retry, Stitch, Timeout};

/// The longest duration a string may spell (`parse_duration` refuses more).
const LONGEST: Duration = Duration::from_secs(1_000_000_000_000);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings shaped like durations: numbers (long, fractional, dotted), units (known, unknown,
/// any case), spaces, several components.
fn duration_like() -> impl Strategy<Value = String> {
    let component = (
        "[0-9]{0,25}(\\.[0-9]{0,12})?(\\.)?",
        " {0,2}",
        prop::sample::select(vec![
            "ms", "s", "m", "h", "d", "MS", "S", "H", "D", "us", "ns", "x", "", "e308s", "sec",
        ]),
        " {0,2}",
    )
        .prop_map(|(number, space, unit, after)| format!("{number}{space}{unit}{after}"));
    prop::collection::vec(component, 0..4).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn durations_parse_or_fail_clearly(text in prop_oneof![duration_like(), any::<String>()]) {
        match parse_duration(&text) {
            Ok(duration) => prop_assert!(duration <= LONGEST, "{text:?} gave {duration:?}"),
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("invalid duration "), "{message}");
            }
        }
        // Through a declaration, a string that does not parse fails `build()` naming the field
        // and the fix; one that parses is either taken or refused for its range, by field too.
        let built = Stitch::get("https://x.example")
            .retry(Retry::attempts(2).base(text.as_str()))
            .transport(Arc::new(MockTransport::new()))
            .build();
        let parsed = DurationSpec::from(text.as_str()).get();
        prop_assert_eq!(parsed, parse_duration(&text).ok());
        if let Err(error) = built {
            prop_assert_eq!(error.field(), "retry.base");
            let message = error.to_string();
            prop_assert!(message.contains("Fix:"), "{message}");
            if parsed.is_none() {
                prop_assert!(message.starts_with("retry.base: invalid duration"), "{message}");
            }
            prop_assert_eq!(stitchapi::Error::from(error).kind(), ErrorKind::Config);
        } else {
            prop_assert!(parsed.is_some(), "{text:?} built without parsing");
        }
    }

    #[test]
    fn formatted_durations_never_panic_and_read_back(
        secs in any::<u64>(),
        nanos in 0..1_000_000_000_u32,
        millis in 0..LONGEST.as_millis() as u64,
    ) {
        // Any duration formats (as a config file writes it), however large.
        let _ = serde_json::to_value(DurationSpec::from(Duration::new(secs, nanos))).unwrap();
        // One that a string can spell reads back to the same millisecond.
        let duration = Duration::from_millis(millis);
        let written = serde_json::to_value(DurationSpec::from(duration)).unwrap();
        let text = written.as_str().expect("a duration is written as a string");
        let back = parse_duration(text).unwrap();
        let drift = back.abs_diff(duration);
        prop_assert!(drift <= Duration::from_millis(1), "{text}: {back:?} vs {duration:?}");
    }

    #[test]
    fn rates_parse_or_fail_clearly(
        text in prop_oneof![
            (
                " ?[0-9]{0,12} ?",
                prop::sample::select(vec!["/", "//", "", " / "]),
                duration_like(),
            )
                .prop_map(|(count, slash, per)| format!("{count}{slash}{per}")),
            any::<String>(),
        ]
    ) {
        match text.parse::<Rate>() {
            Ok(rate) => {
                prop_assert!(!rate.per().is_zero());
                prop_assert!(rate.per() <= LONGEST);
                prop_assert!(rate.spacing() <= rate.per());
                prop_assert!(!rate.spacing().is_zero());
                // Display writes what parses back to the same rate.
                prop_assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("invalid rate"), "{message}");
                // Through a throttle, the same text fails `build()` naming the field and the fix.
                let built = Stitch::get("https://x.example")
                    .throttle(Throttle::new(text.as_str()))
                    .build();
                let error = built.unwrap_err();
                prop_assert_eq!(error.field(), "throttle.rate");
                let message = error.to_string();
                prop_assert!(message.starts_with("throttle.rate: invalid rate"), "{message}");
                prop_assert!(message.contains("Fix:"), "{message}");
            }
        }
    }
}

/// `Retry-After` values a server might send, kind and hostile: delta-seconds of any length,
/// HTTP-dates from 1970 to 9999, near-misses and junk.
fn retry_after_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,40}",
        " {0,3}[0-9]{1,12} {0,3}",
        (0..253_402_300_799_u64)
            .prop_map(|secs| { httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)) }),
        // Around the manual clock's start, so dates just past and just ahead both occur.
        (1_767_225_000..1_767_226_000_u64)
            .prop_map(|secs| { httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)) }),
        "-[0-9]{1,20}",
        "[0-9]{1,5}\\.[0-9]{1,5}",
        "[ -~]{0,40}",
    ]
}

/// The outcome of one call against a server answering 503 with `Retry-After: value`, then 200.
fn call_with_retry_after(
    runtime: &tokio::runtime::Runtime,
    value: &str,
    lifted: bool,
) -> (
    stitchapi::Result<stitchapi::Reply<serde_json::Value>>,
    Duration,
) {
    let mock = MockTransport::new();
    mock.route(
        Method::GET,
        "/busy",
        [
            MockResponse::status(503).header("retry-after", value),
            MockResponse::status(200),
        ],
    );
    let clock = Arc::new(ManualClock::auto_advance());
    let start = clock.now();
    let mut builder = Stitch::get("https://api.example.com/busy")
        .transport(Arc::new(mock))
        .clock(clock.clone());
    builder = if lifted {
        builder
            .retry(Retry::attempts(2).no_max_retry_after())
            .timeout(Timeout::none())
    } else {
        builder.retry(2)
    };
    let stitch = builder.build().unwrap();
    let result = runtime.block_on(stitch.call_detailed(Input::new()));
    (result, clock.now().saturating_duration_since(start))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config(300))]

    /// With the defaults (total 30 s, `Retry-After` up to 60 s) a call ends within its
    /// deadline whatever the header says: honoured, refused at once with the upstream's 503
    /// (above the cap), or a timeout (a wait that would cross the deadline).
    #[test]
    fn retry_after_never_panics_nor_outlives_the_defaults(value in retry_after_value()) {
        let (result, elapsed) = call_with_retry_after(&runtime(), &value, false);
        prop_assert!(elapsed < Duration::from_secs(30), "{value:?}: {elapsed:?}");
        match result {
            Ok(reply) => prop_assert_eq!(reply.attempts, 2),
            Err(error) => match error.kind() {
                ErrorKind::Http => {
                    prop_assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
                    let asked = error.retry_after();
                    prop_assert!(asked.is_some_and(|asked| asked > Duration::from_secs(60)), "{value:?}: {asked:?}");
                    prop_assert_eq!(elapsed, Duration::ZERO);
                }
                ErrorKind::Timeout => {
                    prop_assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
                    prop_assert_eq!(elapsed, Duration::ZERO);
                }
                kind => prop_assert!(false, "{value:?}: unexpected {kind:?}: {error}"),
            },
        }
    }

    /// With both limits lifted, any `Retry-After` is waited out in full (in virtual time,
    /// saturating at the end of time) and the retry succeeds.
    #[test]
    fn retry_after_lifted_is_waited_out_saturating(value in retry_after_value()) {
        let (result, _) = call_with_retry_after(&runtime(), &value, true);
        let reply = result.unwrap();
        prop_assert_eq!(reply.attempts, 2);
    }
}

// ---- config files ----

use toml::Value as V;

/// Integers at and around every boundary a field has (u16 statuses, u32 counts, i64/u64).
fn hostile_int() -> impl Strategy<Value = V> {
    prop_oneof![
        prop::sample::select(vec![
            i64::MIN,
            -1,
            0,
            1,
            3,
            99,
            100,
            101,
            599,
            600,
            65_535,
            65_536,
            i64::from(u32::MAX),
            i64::from(u32::MAX) + 1,
            i64::MAX,
        ]),
        any::<i64>(),
    ]
    .prop_map(V::Integer)
}

/// Unsigned integers up to `max`, boundaries first: for fields whose type bounds them, so the
/// value reaches the build's own checks.
fn uint(max: i64) -> impl Strategy<Value = V> {
    prop_oneof![
        prop::sample::select(vec![0, 1, 2, 3, 99, 100, 101, 599, 600, max - 1, max]),
        0..=max,
    ]
    .prop_map(V::Integer)
}

fn text(options: Vec<&'static str>) -> impl Strategy<Value = V> {
    prop_oneof![
        3 => prop::sample::select(options).prop_map(|text| V::String(text.to_owned())),
        1 => "[ -~]{0,12}".prop_map(V::String),
    ]
}

/// A duration field: a string (`"10s"`, malformed, huge), whole milliseconds, or `"none"`.
fn duration_value() -> impl Strategy<Value = V> {
    prop_oneof![
        4 => duration_like().prop_map(V::String),
        2 => uint(i64::MAX),
        1 => text(vec!["none", "NONE", "0s", "1e400s", "99999999999999999999d", "999999999999h"]),
    ]
}

fn rate_value() -> impl Strategy<Value = V> {
    prop_oneof![
        text(vec![
            "10/s",
            "0/s",
            "4294967295/1ms",
            "4294967296/s",
            "1/0.000000001ms",
            "1/999999999999d",
            "5/",
            "/s"
        ]),
        (hostile_int(), duration_like())
            .prop_map(|(count, per)| V::String(format!("{count}/{per}"))),
    ]
}

/// Anything at all, for the fields that get the wrong type.
fn any_value() -> impl Strategy<Value = V> {
    let scalar = prop_oneof![
        hostile_int(),
        prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            1e308,
            0.5
        ])
        .prop_map(V::Float),
        any::<bool>().prop_map(V::Boolean),
        "[ -~]{0,12}".prop_map(V::String),
    ];
    prop_oneof![
        3 => scalar.clone(),
        1 => prop::collection::vec(scalar, 0..3).prop_map(V::Array),
    ]
}

fn table(fields: Vec<(&'static str, BoxedStrategy<V>)>) -> impl Strategy<Value = V> {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| prop::option::weighted(0.5, value).prop_map(move |value| (key, value)))
        .collect();
    (
        fields,
        prop::option::weighted(0.1, ("[a-z]{1,6}", any_value())),
    )
        .prop_map(|(fields, unknown)| {
            let mut table: toml::Table = fields
                .into_iter()
                .filter_map(|(key, value)| Some((key.to_owned(), value?)))
                .collect();
            if let Some((key, value)) = unknown {
                table.insert(key, value);
            }
            V::Table(table)
        })
}

fn list(item: BoxedStrategy<V>) -> impl Strategy<Value = V> {
    prop::collection::vec(item, 0..4).prop_map(V::Array)
}

/// A value for `key`, mostly of the right shape with hostile content, sometimes of any type.
fn field(key: &'static str, typed: bool) -> BoxedStrategy<V> {
    let (u16_, u32_, u64_) = if typed {
        (
            uint(65_535).boxed(),
            uint(i64::from(u32::MAX)).boxed(),
            uint(i64::MAX).boxed(),
        )
    } else {
        (
            hostile_int().boxed(),
            hostile_int().boxed(),
            hostile_int().boxed(),
        )
    };
    let statuses = || list(u16_.clone()).boxed();
    let right: BoxedStrategy<V> = match key {
        "headers" => prop::collection::btree_map(
            prop_oneof!["x-[a-z]{1,6}", "[ -~]{0,8}"],
            prop_oneof!["[ -~]{0,12}", "[\\x00-\\x1f]{1,3}"].prop_map(V::String),
            0..3,
        )
        .prop_map(|map| V::Table(map.into_iter().collect()))
        .boxed(),
        "retry" => prop_oneof![
            u32_.clone(),
            table(vec![
                ("attempts", u32_.clone()),
                ("on", statuses()),
                (
                    "backoff",
                    text(vec![
                        "fixed",
                        "expo",
                        "expo-jitter",
                        "decorrelated-jitter",
                        "exponential"
                    ])
                    .boxed()
                ),
                ("base", duration_value().boxed()),
                ("max", duration_value().boxed()),
                (
                    "respect_retry_after",
                    any::<bool>().prop_map(V::Boolean).boxed()
                ),
                ("max_retry_after", duration_value().boxed()),
            ]),
        ]
        .boxed(),
        "timeout" => prop_oneof![
            duration_value(),
            table(vec![
                ("total", duration_value().boxed()),
                ("each", duration_value().boxed())
            ]),
        ]
        .boxed(),
        "accept" => statuses(),
        "idempotency" => prop_oneof![
            any::<bool>().prop_map(V::Boolean),
            table(vec![(
                "header",
                text(vec!["x-key", "bad header", "", "\u{0}"]).boxed()
            )]),
        ]
        .boxed(),
        "retry_non_idempotent" => any::<bool>().prop_map(V::Boolean).boxed(),
        "max_response_bytes" => u64_.clone(),
        "query_arrays" => text(vec!["repeat", "brackets", "indices", "comma", "csv"]).boxed(),
        "throttle" => prop_oneof![
            rate_value(),
            table(vec![
                ("rate", rate_value().boxed()),
                ("concurrency", u32_.clone()),
                ("lease", duration_value().boxed()),
                ("pool", text(vec!["host", "stitch", "fleet"]).boxed()),
                ("delegate", any::<bool>().prop_map(V::Boolean).boxed()),
                ("on", prop_oneof![u16_.clone(), statuses()].boxed()),
                (
                    "on_store_error",
                    text(vec!["fail-open", "fail-closed", "ignore"]).boxed()
                ),
            ]),
        ]
        .boxed(),
        "circuit" => prop_oneof![
            (u32_.clone(), duration_value()).prop_map(|(n, cooldown)| V::Array(vec![n, cooldown])),
            table(vec![
                ("failures", u32_.clone()),
                ("cooldown", duration_value().boxed())
            ]),
        ]
        .boxed(),
        "cache" => prop_oneof![
            duration_value(),
            table(vec![
                ("ttl", duration_value().boxed()),
                (
                    "vary",
                    prop_oneof![
                        text(vec!["accept", "x-user", "bad header", ""]),
                        list(text(vec!["accept", "x-user", ""]).boxed())
                    ]
                    .boxed()
                ),
                ("entries", u64_.clone()),
                ("tenancy", text(vec!["principal", "app", "user"]).boxed()),
                (
                    "methods",
                    list(text(vec!["GET", "POST", "FETCH", ""]).boxed()).boxed()
                ),
                (
                    "coalesce",
                    text(vec!["off", "process", "fleet", "global"]).boxed()
                ),
                ("lock", duration_value().boxed()),
                ("wait", duration_value().boxed()),
                ("poll", duration_value().boxed()),
            ]),
        ]
        .boxed(),
        "name" => text(vec!["get_user", "", "\u{0}", "a b"]).boxed(),
        "method" => text(vec!["GET", "post", "DELETE", "QUERY", "GTE", "", "CONNECT"]).boxed(),
        "url" => text(vec![
            "https://api.example.com/users/{id}",
            "https://other.example/{+path}",
            "ftp://x/",
            "/relative",
            "",
            "https://u:p@x.example/?k=v",
        ])
        .boxed(),
        "path" => text(vec![
            "/users/{id}",
            "/a",
            "{+path}",
            "?q=1",
            "https://api.example.com/x",
            "/users/{id",
            "/{a}{b}",
            "",
        ])
        .boxed(),
        "pick" => text(vec!["data", "data.items", "data..items", "", ".", "0"]).boxed(),
        "output" => text(vec!["json", "text", "xml"]).boxed(),
        _ => any_value().boxed(),
    };
    if typed {
        right
    } else {
        prop_oneof![3 => right, 1 => any_value()].boxed()
    }
}

const SHARED_KEYS: [&str; 11] = [
    "headers",
    "retry",
    "timeout",
    "accept",
    "idempotency",
    "retry_non_idempotent",
    "max_response_bytes",
    "query_arrays",
    "throttle",
    "circuit",
    "cache",
];

const STITCH_KEYS: [&str; 6] = ["name", "method", "url", "path", "pick", "output"];

fn options(
    keys: &[&'static str],
    chance: f64,
    typed: bool,
) -> impl Strategy<Value = toml::Table> + use<> {
    let fields: Vec<_> = keys
        .iter()
        .map(|&key| {
            prop::option::weighted(chance, field(key, typed)).prop_map(move |value| (key, value))
        })
        .collect();
    fields.prop_map(|fields| {
        fields
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value?)))
            .collect()
    })
}

/// A structurally valid seam file with hostile values; `typed`: every value has its field's
/// type, so the file parses and the build's own checks are reached.
fn hostile_seam_file(typed: bool) -> impl Strategy<Value = String> {
    let base_url = prop_oneof![
        4 => Just(V::String("https://api.example.com/v1".to_owned())),
        1 => text(vec!["http://127.0.0.1:1", "ftp://x.example", "https://x.example/?q=1", "not a url", ""]),
        1 => if typed {
            Just(V::String("https://api.example.com".to_owned())).boxed()
        } else {
            any_value().boxed()
        },
    ];
    let stitch_keys: Vec<&'static str> = SHARED_KEYS.iter().chain(&STITCH_KEYS).copied().collect();
    let stitch = options(&stitch_keys, 0.15, typed).prop_map(|mut table| {
        if !table.contains_key("url") {
            table
                .entry("path".to_owned())
                .or_insert_with(|| V::String("/users/{id}".to_owned()));
        }
        V::Table(table)
    });
    (
        base_url,
        options(&SHARED_KEYS, 0.2, typed),
        prop::collection::btree_map("[a-z_]{1,8}", stitch, 0..3),
    )
        .prop_map(|(base_url, mut root, stitches)| {
            root.insert("base_url".to_owned(), base_url);
            root.insert(
                "stitches".to_owned(),
                V::Table(stitches.into_iter().collect()),
            );
            toml::to_string(&root).unwrap_or_default()
        })
}

/// Parses and builds a config file: either a catalog or an error, never a panic.
fn parse_and_build(text: &str) -> Result<(), String> {
    let config: SeamConfig = match toml::from_str(text) {
        Ok(config) => config,
        // A parse error is a clear message from the TOML reader or a field's deserializer.
        Err(error) => {
            let message = error.to_string();
            return if message.is_empty() {
                Err("an empty parse error".to_owned())
            } else {
                Ok(())
            };
        }
    };
    match config.build() {
        Ok(catalog) => {
            for stitch in catalog.stitches.values() {
                let _ = format!("{stitch:?}");
            }
            Ok(())
        }
        // A check that failed with another kind of error would say so in its fix.
        Err(error) if !error.field().is_empty() && !error.fix().contains("stitchapi bug") => Ok(()),
        Err(error) => Err(format!(
            "a build error that is not a declaration error: {error:?}"
        )),
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn config_files_with_hostile_values_build_or_fail_clearly(text in prop_oneof![hostile_seam_file(true), hostile_seam_file(false)]) {
        if let Err(problem) = parse_and_build(&text) {
            prop_assert!(false, "{problem}\n{text}");
        }
    }

    #[test]
    fn arbitrary_text_as_a_config_file_never_panics(
        text in prop_oneof![
            any::<String>(),
            // TOML-ish: keys, brackets, quotes and the option names.
            prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        "base_url = ", "[stitches.", "]", "\n", "=", "\"", "'", "{", "}", "[", ",",
                        "retry", "timeout", "throttle", "cache", "circuit", "\"none\"", "\"10s\"",
                        "\"https://x.example\"", "9223372036854775807", "-1", "nan", "inf",
                        "1e999", "true",
                    ]).prop_map(str::to_owned),
                    "[ -~]{0,6}",
                ],
                0..24,
            )
            .prop_map(|parts| parts.concat()),
        ]
    ) {
        if let Err(problem) = parse_and_build(&text) {
            prop_assert!(false, "{problem}\n{text}");
        }
    }
}
