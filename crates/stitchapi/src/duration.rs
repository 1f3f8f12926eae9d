//! Authored durations: a [`Duration`], or a string such as `"10s"`, `"250ms"`, `"1.5m"`,
//! `"1m30s"`, `"1h 30m"`.
//!
//! Every time option (timeouts, backoff bounds, TTLs, cooldowns) takes a [`DurationSpec`]:
//! a [`Duration`] first, or a string as config files and users of the TypeScript library write
//! them. A bare integer is not a duration (its unit would be a guess), so `.circuit(5, 30)`
//! does not compile: write `Duration::from_secs(30)` or `"30s"`. A string that does not parse
//! is reported by `build()` naming the field; nothing falls back to a default silently.
//!
//! Strings are parsed by [`humantime`](https://docs.rs/humantime) (`ms`, `s`, `m`, `h`, `d`
//! and their long forms, fractions such as `"1.5m"`, compounds such as `"1m30s"`), with two
//! rules of ours on top: a bare number (`"1500"`, even `"0"`) is refused, and a duration
//! above 10¹² seconds is refused as too large. humantime covers the whole grammar of the
//! TypeScript reference (`<decimal><optional spaces><unit>`), so no parser of our own is kept.
//! Units are case-sensitive as in humantime (`"1M"` is a month, `"1m"` a minute).
//!
//! In config files a bare number is still whole milliseconds, as the reference documents
//! (`each = 1500`); only the serde path reads it, never a builder.
//!
//! ```
//! use std::time::Duration;
//! use stitchapi::duration::parse_duration;
//!
//! assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
//! assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
//! assert!(parse_duration("1500").is_err()); // a bare number is ambiguous: write "1500ms"
//! ```
//!
//! A bare integer does not compile where a duration is expected:
//!
//! ```compile_fail
//! let breaker = stitchapi::Stitch::get("https://api.example.com").circuit(5, 30);
//! ```
//!
//! ```
//! use std::time::Duration;
//! let breaker = stitchapi::Stitch::get("https://api.example.com").circuit(5, Duration::from_secs(30));
//! # let _ = breaker;
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Why a duration string did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    input: String,
    reason: String,
}

/// The largest authored duration: 10¹² seconds (about 31 700 years).
const MAX_SECS: u64 = 1_000_000_000_000;

/// Parses a duration string: `"250ms"`, `"10s"`, `"1.5m"`, `"1m30s"`, `"1h 30m"`, `"2d"`.
///
/// A bare number (no unit) is refused: write `"1500ms"` or `"1.5s"`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |reason: String| DurationError {
        input: input.to_owned(),
        reason,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(fail(
            "it is empty; write e.g. \"10s\" or \"250ms\"".to_owned(),
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(fail(
            "a unit is missing; write e.g. \"1500ms\" or \"1.5s\" (units: ms, s, m, h, d)"
                .to_owned(),
        ));
    }
    let duration = humantime::parse_duration(text).map_err(|e| fail(e.to_string()))?;
    if duration.as_secs() > MAX_SECS {
        return Err(fail("it is too large".to_owned()));
    }
    Ok(duration)
}

/// Formats a duration the way it would be authored: `"250ms"`, `"10s"`, `"1500ms"`; a duration
/// of a million seconds or more that is not whole seconds is written `"<secs>s <ms>ms"`, which
/// [`parse_duration`] reads back (humantime cannot read that many milliseconds in one number).
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis.fract() == 0.0 && millis >= 1000.0 && millis % 1000.0 == 0.0 {
        format!("{}s", millis / 1000.0)
    } else if duration.as_secs() >= 1_000_000 {
        format!("{}s {}ms", duration.as_secs(), duration.subsec_millis())
    } else if millis.fract() == 0.0 {
        format!("{millis}ms")
    } else {
        format!("{}ms", (millis * 1000.0).round() / 1000.0)
    }
}

/// A duration as authored: a parsed [`Duration`], or a string checked at `build()`.
///
/// Every builder method that takes a time accepts `impl Into<DurationSpec>`: a [`Duration`],
/// or a `&str`/`String` (`"10s"`) checked by `build()`. There is no integer form: a unit is
/// never implied. In config files it is a string, or a number of whole milliseconds.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::duration::DurationSpec;
///
/// assert_eq!(DurationSpec::from(Duration::from_secs(30)).get(), Some(Duration::from_secs(30)));
/// assert_eq!(DurationSpec::from("30s"), DurationSpec::from(Duration::from_secs(30)));
/// assert_eq!(DurationSpec::from("30").get(), None); // reported by `build()`
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DurationSpec(Result<Duration, String>);

impl DurationSpec {
    /// Resolves the spec, naming `field` in the error if it does not parse.
    pub(crate) fn resolve(&self, field: &str) -> Result<Duration, Error> {
        match &self.0 {
            Ok(duration) => Ok(*duration),
            Err(text) => Err(match parse_duration(text) {
                Ok(duration) => return Ok(duration),
                Err(e) => Error::config(
                    field,
                    e,
                    "write a number with a unit: \"10s\", \"250ms\", \"1.5m\"",
                ),
            }),
        }
    }

    /// The duration, if it is already known to be valid.
    pub fn get(&self) -> Option<Duration> {
        match &self.0 {
            Ok(duration) => Some(*duration),
            Err(text) => parse_duration(text).ok(),
        }
    }
}

impl fmt::Debug for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(duration) => write!(f, "{}", format_duration(*duration)),
            Err(text) => write!(f, "{text:?}"),
        }
    }
}

impl From<Duration> for DurationSpec {
    fn from(duration: Duration) -> Self {
        DurationSpec(Ok(duration))
    }
}

impl From<&str> for DurationSpec {
    fn from(text: &str) -> Self {
        DurationSpec(parse_duration(text).map_err(|_| text.to_owned()))
    }
}

impl From<String> for DurationSpec {
    fn from(text: String) -> Self {
        DurationSpec::from(text.as_str())
    }
}

impl DurationSpec {
    /// Whole milliseconds: only config files write a bare number, as the reference documents.
    pub(crate) fn from_millis(millis: u64) -> Self {
        DurationSpec(Ok(Duration::from_millis(millis)))
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Ok(duration) => serializer.serialize_str(&format_duration(*duration)),
            Err(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Millis(millis) => DurationSpec::from_millis(millis),
            Raw::Text(text) => DurationSpec::from(text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_fractions_and_compounds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2 h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1 h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn config_numbers_are_milliseconds_and_strings_parse() {
        #[derive(Deserialize)]
        struct T {
            d: DurationSpec,
        }
        let t: T = serde_json::from_str(r#"{"d": 1500}"#).unwrap();
        assert_eq!(t.d.get(), Some(Duration::from_millis(1500)));
        let t: T = serde_json::from_str(r#"{"d": "1m30s"}"#).unwrap();
        assert_eq!(t.d.get(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn rejects_what_the_reference_silently_defaults() {
        for bad in [
            "",
            "abc",
            "1500",
            "0",
            "1.5",
            "10x",
            "-5s",
            "s",
            "1..5s",
            "1e400s",
            "99999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn spec_reports_the_field() {
        let spec = DurationSpec::from("ten seconds");
        let error = spec.resolve("timeout.total").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("timeout.total: invalid duration \"ten seconds\"")
        );
        assert_eq!(
            DurationSpec::from(Duration::from_millis(1500))
                .resolve("x")
                .unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn formats_as_authored() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(333)), "333ms");
        let long = Duration::from_millis(520_457_256_940_493);
        assert_eq!(format_duration(long), "520457256940s 493ms");
        assert_eq!(parse_duration(&format_duration(long)), Ok(long));
    }
}
