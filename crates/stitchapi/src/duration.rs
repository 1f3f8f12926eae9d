//! Authored durations: `"10s"`, `"250ms"`, `"1.5m"`, `"1h 30m"`, or a [`Duration`].
//!
//! Every time option (timeouts, backoff bounds, TTLs, cooldowns) accepts a
//! [`DurationSpec`], so builders take strings as conveniently as config files do. A string
//! that does not parse is reported by `build()` naming the field; nothing falls back to a
//! default silently.
//!
//! ```
//! use std::time::Duration;
//! use stitchapi::duration::parse_duration;
//!
//! assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
//! assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
//! assert!(parse_duration("1500").is_err()); // a bare number is ambiguous: write "1500ms"
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
    reason: &'static str,
}

const UNITS: &[(&str, f64)] = &[
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3_600.0),
    ("d", 86_400.0),
];

/// Parses `<number><unit>` components (`ms`, `s`, `m`, `h`, `d`; fractions allowed), optionally
/// separated by spaces: `"250ms"`, `"1.5m"`, `"1h 30m"`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(fail("it is empty; write e.g. \"10s\" or \"250ms\""));
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(fail("expected a number, e.g. \"10s\" or \"250ms\""));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| fail("expected a number, e.g. \"10s\" or \"250ms\""))?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(fail(
                "a unit is missing; write e.g. \"1500ms\" or \"1.5s\" (units: ms, s, m, h, d)",
            ));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, scale)| *scale)
            .ok_or_else(|| fail("unknown unit; use ms, s, m, h or d"))?;
        total += value * scale;
        rest = after.trim_start();
    }
    if !total.is_finite() || total > 1e12 {
        return Err(fail("it is too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way it would be authored: `"250ms"`, `"10s"`, `"1.5s"`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis.fract() == 0.0 && millis >= 1000.0 && millis % 1000.0 == 0.0 {
        format!("{}s", millis / 1000.0)
    } else if millis.fract() == 0.0 {
        format!("{millis}ms")
    } else {
        format!("{}ms", (millis * 1000.0).round() / 1000.0)
    }
}

/// A duration as authored: a parsed [`Duration`], or a string checked at `build()`.
///
/// Every builder method that takes a time accepts `impl Into<DurationSpec>`: a `&str`/`String`
/// (`"10s"`), a [`Duration`], or whole milliseconds as `u64`. In config files it is a string or
/// a number of milliseconds.
#[derive(Clone, PartialEq, Eq)]
pub struct DurationSpec(Result<Duration, String>);

impl DurationSpec {
    /// Resolves the spec, naming `field` in the error if it does not parse.
    pub fn resolve(&self, field: &str) -> Result<Duration, Error> {
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

impl From<u64> for DurationSpec {
    /// Whole milliseconds.
    fn from(millis: u64) -> Self {
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
            Raw::Millis(millis) => DurationSpec::from(millis),
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
    }

    #[test]
    fn rejects_what_the_reference_silently_defaults() {
        for bad in ["", "abc", "1500", "10x", "-5s", "s", "1..5s", "1e400s"] {
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
            DurationSpec::from(1500_u64).resolve("x").unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn formats_as_authored() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(333)), "333ms");
    }
}
