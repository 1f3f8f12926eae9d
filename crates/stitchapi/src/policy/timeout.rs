//! Timeouts: a total budget for the whole call and a limit per attempt.

use std::time::Duration;

use crate::duration::DurationSpec;
use crate::error::{Error, Result};

/// How long a call may take.
///
/// `total` bounds the whole call: every attempt, backoff sleep and throttle wait. `each`
/// bounds one attempt; the effective limit is `min(each, what is left of total)`. A timed-out
/// attempt is really cancelled: the request future is dropped and its connection closed.
///
/// ```
/// use stitchapi::Timeout;
///
/// let both = Timeout::total("10s").each("4s");
/// let per_attempt_only = Timeout::per_attempt("2s");
/// let shorthand: Timeout = "10s".into(); // total
/// ```
#[derive(Clone, Debug, Default)]
pub struct Timeout {
    pub(crate) total: Option<DurationSpec>,
    pub(crate) each: Option<DurationSpec>,
}

impl Timeout {
    /// A budget for the whole call.
    pub fn total(total: impl Into<DurationSpec>) -> Self {
        Timeout {
            total: Some(total.into()),
            each: None,
        }
    }

    /// A limit per attempt, with no total budget.
    pub fn per_attempt(each: impl Into<DurationSpec>) -> Self {
        Timeout {
            total: None,
            each: Some(each.into()),
        }
    }

    /// Adds a per-attempt limit.
    pub fn each(mut self, each: impl Into<DurationSpec>) -> Self {
        self.each = Some(each.into());
        self
    }

    pub(crate) fn resolve(&self, field: &str) -> Result<TimeoutPolicy> {
        let positive = |spec: &Option<DurationSpec>, name: &str| -> Result<Option<Duration>> {
            let Some(spec) = spec else { return Ok(None) };
            let field = format!("{field}.{name}");
            let duration = spec.resolve(&field)?;
            if duration.is_zero() {
                return Err(Error::config(
                    &field,
                    "a zero timeout would fail every call",
                    "use a positive duration such as \"10s\", or leave it unset for no limit",
                ));
            }
            Ok(Some(duration))
        };
        Ok(TimeoutPolicy {
            total: positive(&self.total, "total")?,
            each: positive(&self.each, "each")?,
        })
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

/// A validated timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimeoutPolicy {
    pub total: Option<Duration>,
    pub each: Option<Duration>,
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
    }
}
