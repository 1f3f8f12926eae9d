//! Timeouts: a total budget for the whole call and a limit per attempt.
//!
//! Every call is bounded by default: a stitch that declares no timeout gets a total of
//! [`DEFAULT_TOTAL_TIMEOUT`] (30 s), so a server that accepts a request and never answers, or a
//! token endpoint that stalls, cannot hang a call. No limit at all must be asked for with
//! [`Timeout::none`] (or [`Timeout::no_total`]). `Debug` of a stitch shows the limits in force.
//!
//! The total also bounds throttle waits and `Retry-After` sleeps: with the default, a call
//! whose throttle grant or retry would come more than 30 s after it started fails at once with
//! a `Timeout` error, so a slow rate (`"1/m"`) or a long rate-limit window wants a longer total.
//! Deadlines are computed with saturating arithmetic: `Duration::MAX` is a valid total.

use std::fmt;
use std::time::Duration;

use crate::duration::{DurationSpec, format_duration};
use crate::error::{Error, Result};

/// The total timeout of a stitch that declares none: 30 s.
///
/// Long enough for a slow API answered once or retried a few times, short enough that a
/// silent server frees the caller. Override it with [`Timeout::total`], or lift it with
/// [`Timeout::none`].
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// The total budget as declared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Total {
    /// Not declared: [`DEFAULT_TOTAL_TIMEOUT`].
    #[default]
    Default,
    /// Declared.
    After(DurationSpec),
    /// Explicitly none.
    Unlimited,
}

/// How long a call may take.
///
/// `total` bounds the whole call: every attempt, backoff sleep, throttle wait and credential
/// fetch. `each` bounds one attempt; the effective limit is `min(each, what is left of total)`.
/// A timed-out attempt is really cancelled: the request future is dropped and its connection
/// closed.
///
/// A stitch that declares no timeout has a total of [`DEFAULT_TOTAL_TIMEOUT`] (30 s) and no
/// per-attempt limit; `per_attempt` keeps that default total. A call with no limit at all must
/// be asked for with [`Timeout::none`].
///
/// ```
/// use stitchapi::Timeout;
///
/// let both = Timeout::total("10s").each("4s");
/// let per_attempt = Timeout::per_attempt("2s"); // total stays 30 s
/// let shorthand: Timeout = "10s".into(); // total
/// let unbounded = Timeout::none(); // the caller bounds the call itself
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Timeout {
    pub(crate) total: Total,
    pub(crate) each: Option<DurationSpec>,
}

impl Timeout {
    /// A budget for the whole call.
    pub fn total(total: impl Into<DurationSpec>) -> Self {
        Timeout {
            total: Total::After(total.into()),
            each: None,
        }
    }

    /// A limit per attempt; the total stays at its default (30 s) unless set too.
    pub fn per_attempt(each: impl Into<DurationSpec>) -> Self {
        Timeout {
            total: Total::Default,
            each: Some(each.into()),
        }
    }

    /// No limit at all: a call waits as long as the server, the throttle and `Retry-After`
    /// make it. For callers that bound the call themselves (a cancelled future, their own
    /// deadline).
    ///
    /// ```
    /// use stitchapi::{Stitch, Timeout};
    ///
    /// let stream_export = Stitch::get("https://api.example.com/export")
    ///     .timeout(Timeout::none())
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn none() -> Self {
        Timeout {
            total: Total::Unlimited,
            each: None,
        }
    }

    /// Adds a per-attempt limit.
    pub fn each(mut self, each: impl Into<DurationSpec>) -> Self {
        self.each = Some(each.into());
        self
    }

    /// Lifts the total budget (the default one included), keeping any per-attempt limit.
    ///
    /// ```
    /// use stitchapi::Timeout;
    ///
    /// // Each attempt may take 2 minutes, and the call as long as its retries need.
    /// let timeout = Timeout::per_attempt("2m").no_total();
    /// ```
    pub fn no_total(mut self) -> Self {
        self.total = Total::Unlimited;
        self
    }

    pub(crate) fn resolve(&self, field: &str) -> Result<TimeoutPolicy> {
        let positive = |spec: &DurationSpec, name: &str| -> Result<Duration> {
            let field = format!("{field}.{name}");
            let duration = spec.resolve(&field)?;
            if duration.is_zero() {
                return Err(Error::config(
                    &field,
                    "a zero timeout would fail every call",
                    "use a positive duration such as \"10s\", or Timeout::none() for no limit",
                ));
            }
            Ok(duration)
        };
        let total = match &self.total {
            Total::Default => Some(DEFAULT_TOTAL_TIMEOUT),
            Total::After(spec) => Some(positive(spec, "total")?),
            Total::Unlimited => None,
        };
        let each = match &self.each {
            Some(spec) => Some(positive(spec, "each")?),
            None => None,
        };
        if let (Some(total), Some(each)) = (total, each)
            && each > total
        {
            let whose = match self.total {
                Total::Default => ", the default",
                _ => "",
            };
            return Err(Error::config(
                &format!("{field}.each"),
                format!(
                    "{} is longer than the total ({}{whose}), so it would never apply",
                    format_duration(each),
                    format_duration(total),
                ),
                "set a total at least as long (Timeout::total(\"2m\").each(\"45s\")), lift it \
                 with .no_total(), or shorten each",
            ));
        }
        Ok(TimeoutPolicy { total, each })
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Timeout");
        match &self.total {
            Total::Default => d.field(
                "total",
                &format_args!("{} (default)", format_duration(DEFAULT_TOTAL_TIMEOUT)),
            ),
            Total::After(spec) => d.field("total", spec),
            Total::Unlimited => d.field("total", &format_args!("none")),
        };
        match &self.each {
            Some(spec) => d.field("each", spec),
            None => d.field("each", &format_args!("none")),
        };
        d.finish()
    }
}

impl From<&str> for Timeout {
    fn from(total: &str) -> Self {
        Timeout::total(total)
    }
}

impl From<Duration> for Timeout {
    fn from(total: Duration) -> Self {
        Timeout::total(total)
    }
}

/// A validated timeout: `None` is no limit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeoutPolicy {
    pub total: Option<Duration>,
    pub each: Option<Duration>,
}

impl fmt::Debug for TimeoutPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |limit: Option<Duration>| match limit {
            Some(limit) => format_duration(limit),
            None => "none".to_owned(),
        };
        f.debug_struct("Timeout")
            .field("total", &format_args!("{}", show(self.total)))
            .field("each", &format_args!("{}", show(self.each)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_invalid_timeouts_are_build_errors() {
        let e = Timeout::total("0s").resolve("timeout").unwrap_err();
        assert!(
            e.to_string().starts_with("timeout.total: a zero timeout"),
            "{e}"
        );
        let e = Timeout::total("10s")
            .each("4")
            .resolve("timeout")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("timeout.each: invalid duration \"4\""),
            "{e}"
        );
        let ok = Timeout::total("10s").each("4s").resolve("timeout").unwrap();
        assert_eq!(ok.each, Some(Duration::from_secs(4)));
        let e = Timeout::total("10s")
            .each("11s")
            .resolve("timeout")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("timeout.each: 11s is longer than the total (10s), so"),
            "{e}"
        );
    }

    #[test]
    fn the_default_total_is_thirty_seconds_and_can_be_lifted() {
        let default = Timeout::default().resolve("timeout").unwrap();
        assert_eq!(default.total, Some(DEFAULT_TOTAL_TIMEOUT));
        assert_eq!(default.each, None);
        let per_attempt = Timeout::per_attempt("2s").resolve("timeout").unwrap();
        assert_eq!(per_attempt.total, Some(DEFAULT_TOTAL_TIMEOUT));
        let lifted = Timeout::per_attempt("2m").no_total();
        assert_eq!(
            lifted.resolve("timeout").unwrap(),
            TimeoutPolicy {
                total: None,
                each: Some(Duration::from_secs(120))
            }
        );
        assert_eq!(format!("{lifted:?}"), "Timeout { total: none, each: 120s }");
        assert_eq!(
            format!("{:?}", Timeout::default()),
            "Timeout { total: 30s (default), each: none }"
        );
        assert_eq!(
            Timeout::none().resolve("timeout").unwrap(),
            TimeoutPolicy {
                total: None,
                each: None
            }
        );
    }

    #[test]
    fn huge_limits_do_not_overflow() {
        let policy = Timeout::total(Duration::MAX)
            .each(Duration::MAX)
            .resolve("timeout")
            .unwrap();
        let start = crate::time::Timestamp::from_unix(Duration::from_secs(1));
        // The deadline saturates.
        assert!(start + policy.total.unwrap() > start);
    }
}
