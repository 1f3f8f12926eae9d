//! Rates (`Rate::per_second(..)`, `"10/s"`, `"100/15m"`, `"2/500ms"`) and the window
//! arithmetic of the `increment` fallback.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::Error;
use crate::time::Timestamp;

/// A rate: `count` grants per `per`, reduced to its spacing (the minimum gap between two
/// grants). A rate is not a token bucket: `"2/500ms"`, `"4/s"` and `"240/m"` are the same
/// limiter.
///
/// The count is a [`NonZeroU32`] and the period is checked by [`Rate::new`], so an invalid
/// rate cannot be built. `FromStr` reads `"<count>/<period>"`, a bare unit meaning one of it
/// (`"2/s"` is `"2/1s"`), and `Display` writes a string that parses back to the same rate.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use stitchapi::throttle::Rate;
///
/// const TEN: NonZeroU32 = NonZeroU32::new(10).unwrap();
/// let rate = Rate::per_second(TEN);
/// assert_eq!(rate.spacing(), Duration::from_millis(100));
/// assert_eq!(rate, "10/s".parse().unwrap());
/// assert_eq!(rate.to_string(), "10/s");
///
/// let quarter_hour = Rate::new(NonZeroU32::new(100).unwrap(), Duration::from_secs(900)).unwrap();
/// assert_eq!(quarter_hour.to_string(), "100/15m");
/// assert_eq!(quarter_hour.spacing(), Duration::from_secs(9));
/// assert!("0/s".parse::<Rate>().is_err());
/// assert!(Rate::new(TEN, Duration::ZERO).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: NonZeroU32,
    per: Duration,
}

/// Why a rate string did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate {input:?}: {reason}")]
pub struct RateError {
    input: String,
    reason: String,
}

/// The fix printed with a bad rate.
pub(crate) const RATE_FIX: &str =
    "write a positive count and a period: \"10/s\", \"120/m\", \"100/15m\", \"2/500ms\"";

impl Rate {
    /// `count` grants per `per`; `None` when `per` is zero or so short that the spacing
    /// (`per / count`) would round to zero nanoseconds (as governor's `Quota::with_period`).
    pub fn new(count: NonZeroU32, per: Duration) -> Option<Rate> {
        let rate = Rate { count, per };
        (!rate.spacing().is_zero()).then_some(rate)
    }

    /// `count` grants per second.
    pub fn per_second(count: NonZeroU32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(1),
        }
    }

    /// `count` grants per minute.
    pub fn per_minute(count: NonZeroU32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `count` grants per hour.
    pub fn per_hour(count: NonZeroU32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(3600),
        }
    }

    /// The minimum gap between two grants, `per / count`.
    pub fn spacing(&self) -> Duration {
        self.per / self.count.get()
    }

    /// The period of the rate (`15m` in `"100/15m"`).
    pub fn per(&self) -> Duration {
        self.per
    }

    /// The count of the rate (`100` in `"100/15m"`).
    pub fn count(&self) -> NonZeroU32 {
        self.count
    }
}

impl FromStr for Rate {
    type Err = RateError;

    /// Parses `"<positive integer>/<period>"`: `"10/s"`, `"120/m"`, `"100/15m"`, `"2/500ms"`.
    fn from_str(text: &str) -> Result<Rate, RateError> {
        let bad = |reason: String| RateError {
            input: text.to_owned(),
            reason,
        };
        let (count, per) = text
            .split_once('/')
            .ok_or_else(|| bad("no \"/\"".to_owned()))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number".to_owned()))?;
        let count = NonZeroU32::new(count).ok_or_else(|| bad("the count is zero".to_owned()))?;
        let per = per.trim();
        let starts_with_digit = per
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.');
        let per = if starts_with_digit {
            parse_duration(per)
        } else {
            parse_duration(&format!("1{per}"))
        }
        .map_err(|e| bad(e.to_string()))?;
        if per.is_zero() {
            return Err(bad("the period is zero".to_owned()));
        }
        Rate::new(count, per)
            .ok_or_else(|| bad("the period is shorter than the count in nanoseconds".to_owned()))
    }
}

impl fmt::Display for Rate {
    /// `"10/s"`, `"100/15m"`, `"2/500ms"`: parses back to the same rate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.count)?;
        let per = self.per;
        let (secs, nanos) = (per.as_secs(), per.subsec_nanos());
        match (secs, nanos) {
            (1, 0) => f.write_str("s"),
            (60, 0) => f.write_str("m"),
            (3600, 0) => f.write_str("h"),
            (86_400, 0) => f.write_str("d"),
            (s, 0) if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            (s, 0) if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            (s, 0) if s % 60 == 0 => write!(f, "{}m", s / 60),
            (s, 0) => write!(f, "{s}s"),
            // humantime reads at most u64 nanoseconds per number: split a long period.
            (s, n) if s >= 1_000_000 => write!(f, "{s}s {n}ns"),
            _ if nanos % 1_000_000 == 0 => write!(f, "{}ms", per.as_millis()),
            _ => write!(f, "{}ns", per.as_nanos()),
        }
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A rate as authored: a [`Rate`], or a string (`"10/s"`) checked by `build()`.
///
/// [`Throttle::new`](super::Throttle::new) takes `impl Into<RateSpec>`, so a typed [`Rate`]
/// and the string form of config files and the TypeScript library both work.
///
/// ```
/// use std::num::NonZeroU32;
/// use stitchapi::throttle::{Rate, RateSpec};
///
/// let typed = RateSpec::from(Rate::per_minute(NonZeroU32::new(120).unwrap()));
/// assert_eq!(typed, RateSpec::from("120/m"));
/// assert_eq!(RateSpec::from("120/x").get(), None); // reported by `build()`
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RateSpec(Result<Rate, String>);

impl RateSpec {
    /// The rate, if it is valid.
    pub fn get(&self) -> Option<Rate> {
        self.0.as_ref().ok().copied()
    }

    /// Resolves the spec, naming `field` in the error.
    pub(crate) fn resolve(&self, field: &str) -> Result<Rate, Error> {
        match &self.0 {
            Ok(rate) => Ok(*rate),
            Err(text) => Err(match text.parse::<Rate>() {
                Ok(rate) => return Ok(rate),
                Err(e) => Error::config(field, e, RATE_FIX),
            }),
        }
    }
}

impl fmt::Debug for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(rate) => write!(f, "{rate}"),
            Err(text) => write!(f, "{text:?}"),
        }
    }
}

impl From<Rate> for RateSpec {
    fn from(rate: Rate) -> Self {
        RateSpec(Ok(rate))
    }
}

impl From<&str> for RateSpec {
    fn from(text: &str) -> Self {
        RateSpec(text.parse().map_err(|_| text.to_owned()))
    }
}

impl From<String> for RateSpec {
    fn from(text: String) -> Self {
        RateSpec::from(text.as_str())
    }
}

/// The window-counter fallback: the `n`-th grant (1-based) of the window starting at
/// `window_start` is due at `window_start + (n - 1) * spacing`.
pub(crate) fn window_slot(window_start: Timestamp, n: i64, spacing: Duration) -> Timestamp {
    let index = u32::try_from(n.saturating_sub(1).max(0)).unwrap_or(u32::MAX);
    window_start + spacing.saturating_mul(index)
}

/// The start of the window of length `per` that contains `now`.
pub(crate) fn window_start(now: Timestamp, per: Duration) -> Timestamp {
    let since = now.since_unix().as_nanos();
    let per_nanos = per.as_nanos().max(1);
    let start = since - since % per_nanos;
    Timestamp::from_unix(Duration::from_nanos(
        u64::try_from(start).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rate, RateError> {
        text.parse()
    }

    fn n(count: u32) -> NonZeroU32 {
        NonZeroU32::new(count).unwrap()
    }

    #[test]
    fn parses_the_issue_examples() {
        let ms = Duration::from_millis;
        assert_eq!(parse("2/s").unwrap().spacing(), ms(500));
        assert_eq!(parse("120/m").unwrap().spacing(), ms(500));
        assert_eq!(parse("100/15m").unwrap().spacing(), ms(9000));
        assert_eq!(parse("2/500ms").unwrap().spacing(), ms(250));
        assert_eq!(parse(" 5 / 2s ").unwrap().spacing(), ms(400));
        assert_eq!(parse("1000/h").unwrap().spacing(), ms(3600));
        assert_eq!(format!("{:?}", parse("10/s").unwrap()), "10/s");
    }

    #[test]
    fn typed_constructors_match_the_strings() {
        assert_eq!(Rate::per_second(n(10)), parse("10/s").unwrap());
        assert_eq!(Rate::per_minute(n(120)), parse("120/m").unwrap());
        assert_eq!(Rate::per_hour(n(1000)), parse("1000/h").unwrap());
        assert_eq!(
            Rate::new(n(2), Duration::from_millis(500)),
            Some(parse("2/500ms").unwrap())
        );
        assert_eq!(Rate::new(n(1), Duration::ZERO), None);
        assert_eq!(Rate::new(n(10), Duration::from_nanos(9)), None);
        assert_eq!(Rate::per_minute(n(3)).count().get(), 3);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "10/s", "120/m", "1000/h", "5/d", "100/15m", "7/2h", "3/2d", "2/500ms", "4/90s",
            "1/1500ms", "3/7ns",
        ] {
            let rate = parse(text).unwrap();
            assert_eq!(rate.to_string(), text);
            assert_eq!(parse(&rate.to_string()), Ok(rate));
        }
        for per in [
            Duration::new(1, 5),
            Duration::new(100_000_000_000, 5_000_000),
        ] {
            let odd = Rate::new(n(3), per).unwrap();
            assert_eq!(parse(&odd.to_string()), Ok(odd), "{odd}");
        }
    }

    #[test]
    fn rejects_bad_rates() {
        for bad in [
            "", "10", "x/s", "0/s", "-1/s", "10/", "10/0s", "10/xyz", "10/s/s", "10/5ns",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid rate"), "{e}");
        }
    }

    #[test]
    fn a_bad_spec_names_the_field_and_the_fix() {
        let e = RateSpec::from("0/s").resolve("throttle.rate").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(
            e.to_string()
                .starts_with("throttle.rate: invalid rate \"0/s\": the count is zero"),
            "{e}"
        );
        assert!(e.to_string().contains("Fix:"), "{e}");
        assert_eq!(
            RateSpec::from("10/s").resolve("throttle.rate").unwrap(),
            Rate::per_second(n(10))
        );
    }

    #[test]
    fn windows() {
        let t = Timestamp::from_unix(Duration::from_secs(100));
        let s = Duration::from_millis(200);
        let per = Duration::from_secs(1);
        assert_eq!(window_start(t + Duration::from_millis(1500), per), t + per);
        assert_eq!(window_slot(t, 3, s), t + s * 2);
    }
}
