//! Rates (`"10/s"`, `"100/15m"`, `"2/500ms"`) and the window arithmetic of the `increment` fallback.

use std::fmt;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::Error;
use crate::time::Timestamp;

/// A rate, reduced to its spacing: the minimum gap between two grants.
///
/// `"2/500ms"`, `"4/s"` and `"240/m"` are the same limiter. A bare unit means one of it
/// (`"2/s"` is `"2/1s"`).
///
/// ```
/// use std::time::Duration;
/// use stitchapi::throttle::Rate;
///
/// assert_eq!(Rate::parse("10/s").unwrap().spacing(), Duration::from_millis(100));
/// assert_eq!(Rate::parse("100/15m").unwrap().spacing(), Duration::from_millis(9_000));
/// assert!(Rate::parse("0/s").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    per: Duration,
}

impl Rate {
    /// Parses `"<positive integer>/<duration>"`; the error names the field `throttle.rate`
    /// and the fix.
    pub fn parse(text: &str) -> Result<Rate, Error> {
        const FIX: &str =
            "write a positive count and a period: \"10/s\", \"120/m\", \"100/15m\", \"2/500ms\"";
        let bad = |problem: String| Error::config("throttle.rate", problem, FIX);
        let (count, per) = text
            .split_once('/')
            .ok_or_else(|| bad(format!("invalid rate {text:?}: no \"/\"")))?;
        let count: u32 = count.trim().parse().map_err(|_| {
            bad(format!(
                "invalid rate {text:?}: the count is not a whole number"
            ))
        })?;
        if count == 0 {
            return Err(bad(format!("invalid rate {text:?}: the count is zero")));
        }
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
        .map_err(|e| bad(format!("invalid rate {text:?}: {e}")))?;
        if per.is_zero() {
            return Err(bad(format!("invalid rate {text:?}: the period is zero")));
        }
        Ok(Rate { count, per })
    }

    /// The minimum gap between two grants, `per / count`.
    pub fn spacing(&self) -> Duration {
        self.per / self.count
    }

    /// The period of the rate (`15m` in `"100/15m"`).
    pub fn per(&self) -> Duration {
        self.per
    }

    /// The count of the rate (`100` in `"100/15m"`).
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            crate::duration::format_duration(self.per)
        )
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

    #[test]
    fn parses_the_issue_examples() {
        let ms = Duration::from_millis;
        assert_eq!(Rate::parse("2/s").unwrap().spacing(), ms(500));
        assert_eq!(Rate::parse("120/m").unwrap().spacing(), ms(500));
        assert_eq!(Rate::parse("100/15m").unwrap().spacing(), ms(9000));
        assert_eq!(Rate::parse("2/500ms").unwrap().spacing(), ms(250));
        assert_eq!(Rate::parse(" 5 / 2s ").unwrap().spacing(), ms(400));
        assert_eq!(Rate::parse("1000/h").unwrap().spacing(), ms(3600));
        assert_eq!(format!("{:?}", Rate::parse("10/s").unwrap()), "10/1s");
    }

    #[test]
    fn rejects_bad_rates_naming_the_field() {
        for bad in [
            "", "10", "x/s", "0/s", "-1/s", "10/", "10/0s", "10/xyz", "10/s/s",
        ] {
            let e = Rate::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Config, "{bad:?}");
            assert!(
                e.to_string().starts_with("throttle.rate: invalid rate"),
                "{e}"
            );
            assert!(e.to_string().contains("Fix:"), "{e}");
        }
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
