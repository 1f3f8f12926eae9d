//! Retry: how many attempts, on which statuses, and how long to wait between them.
//!
//! Values from the network never panic or park a call: `Retry-After` is parsed with saturating
//! arithmetic (a number beyond `u64` seconds is `u64::MAX` seconds, a date before 1970 is
//! "now"), and an honoured `Retry-After` above `max_retry_after` ([`DEFAULT_MAX_RETRY_AFTER`],
//! 60 s, unless declared) fails the call at once with the upstream's response instead of
//! waiting. Backoff bounds above an hour are refused at build time, and the backoff formula
//! saturates, so no declaration can make a retry panic either.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};

use super::backoff::Backoff;
use super::classifier::{Classifier, RetryClassifier};
use super::status::{StatusRule, StatusSpec, check_all};
use crate::duration::{DurationSpec, format_duration};
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// The statuses retried by default: 429, 502, 503, 504.
pub const DEFAULT_RETRY_ON: [u16; 4] = [429, 502, 503, 504];

/// The longest `Retry-After` honoured unless declared otherwise: 60 s. A server asking for a
/// longer wait gets its answer back as the call's error (with
/// [`Error::retry_after`](crate::Error::retry_after) set), so the caller decides when to come
/// back rather than being parked.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The longest backoff bound (`base`, `max`) a policy may declare: 1 hour.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A retry policy: total attempts (the first call included), the statuses to retry, the
/// backoff curve, and `Retry-After` handling.
///
/// `Retry-After` is honoured up to `max_retry_after` (default 60 s,
/// [`DEFAULT_MAX_RETRY_AFTER`]); a longer one fails the call at once with the upstream's error,
/// and a wait that would cross the total deadline fails it with a timeout.
///
/// Transport errors and per-attempt timeouts are retried only for idempotent methods (GET,
/// HEAD, PUT, DELETE, OPTIONS, TRACE), or when the stitch carries an idempotency key or opts in
/// with `retry_non_idempotent(true)`: a blind POST retry can duplicate a write.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use stitchapi::{Backoff, Retry};
///
/// let retry = Retry::attempts(4)
///     .on([StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE])
///     .backoff(Backoff::Expo)
///     .base(Duration::from_millis(200))
///     .max(Duration::from_secs(5))
///     .max_retry_after(Duration::from_secs(30));
/// // Strings and numeric codes, as config files write them, work too.
/// let same = Retry::attempts(4).on([429, 503]).base("200ms").max("5s");
/// // `3` is shorthand for `Retry::attempts(3)` with the defaults.
/// let same_defaults: Retry = 3.into();
/// ```
#[derive(Clone, Debug)]
pub struct Retry {
    pub(crate) attempts: u32,
    pub(crate) on: Vec<StatusSpec>,
    pub(crate) backoff: Backoff,
    pub(crate) base: DurationSpec,
    pub(crate) max: DurationSpec,
    pub(crate) respect_retry_after: bool,
    pub(crate) max_retry_after: Option<DurationSpec>,
    pub(crate) classifier: Option<Classifier>,
}

impl Retry {
    /// `attempts` in total, with the defaults: on 429/502/503/504, expo-jitter from 100 ms up
    /// to 10 s, `Retry-After` honoured up to 60 s.
    pub fn attempts(attempts: u32) -> Self {
        Retry {
            attempts,
            on: DEFAULT_RETRY_ON.map(StatusSpec::from).to_vec(),
            backoff: Backoff::ExpoJitter,
            base: Duration::from_millis(100).into(),
            max: Duration::from_secs(10).into(),
            respect_retry_after: true,
            max_retry_after: Some(DEFAULT_MAX_RETRY_AFTER.into()),
            classifier: None,
        }
    }

    /// No retries: one attempt.
    pub fn none() -> Self {
        Retry::attempts(1)
    }

    /// The statuses to retry, as [`StatusCode`]s or `u16`s (replaces the default list; an
    /// invalid code fails `build()` naming `retry.on`).
    pub fn on<S: Into<StatusSpec>>(mut self, statuses: impl IntoIterator<Item = S>) -> Self {
        self.on = statuses.into_iter().map(Into::into).collect();
        self
    }

    /// The backoff curve.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The first wait (and the scale of the curve); default 100 ms, at most 1 hour.
    pub fn base(mut self, base: impl Into<DurationSpec>) -> Self {
        self.base = base.into();
        self
    }

    /// The longest computed wait; default 10 s, at most 1 hour ([`MAX_BACKOFF`]).
    pub fn max(mut self, max: impl Into<DurationSpec>) -> Self {
        self.max = max.into();
        self
    }

    /// Whether to wait as long as the server's `Retry-After` says (default true).
    pub fn respect_retry_after(mut self, respect: bool) -> Self {
        self.respect_retry_after = respect;
        self
    }

    /// Caps an honoured `Retry-After` (default 60 s): a longer one fails the call at once with
    /// the response's error rather than waiting.
    pub fn max_retry_after(mut self, cap: impl Into<DurationSpec>) -> Self {
        self.max_retry_after = Some(cap.into());
        self
    }

    /// Honours any `Retry-After`, however long; only the total timeout (if any) bounds it.
    ///
    /// ```
    /// use stitchapi::{Retry, Stitch, Timeout};
    ///
    /// // A batch job that waits out long rate-limit windows, up to an hour per call.
    /// let batch = Stitch::get("https://api.example.com/report")
    ///     .retry(Retry::attempts(5).no_max_retry_after())
    ///     .timeout(Timeout::total("1h"))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn no_max_retry_after(mut self) -> Self {
        self.max_retry_after = None;
        self
    }

    /// Decides retry / fail / succeed from each attempt's response or error before the status
    /// lists do (`None` from it leaves the decision to them); replaces a classifier declared
    /// before. A closure taking `&AttemptOutcome` is a classifier; see [`RetryClassifier`] for
    /// what it can and cannot override.
    ///
    /// ```
    /// use stitchapi::policy::{AttemptOutcome, RetryDecision};
    /// use stitchapi::{Retry, Stitch};
    ///
    /// // A 404 right after a write is replication lag: retry it.
    /// let read_back = Stitch::get("https://api.example.com/orders/{id}")
    ///     .retry(Retry::attempts(3).classify(|outcome: &AttemptOutcome<'_>| {
    ///         (outcome.status() == Some(http::StatusCode::NOT_FOUND)).then_some(RetryDecision::Retry)
    ///     }))
    ///     .build()?;
    /// # Ok::<(), stitchapi::BuildError>(())
    /// ```
    pub fn classify(mut self, classifier: impl RetryClassifier) -> Self {
        self.classifier = Some(Classifier(std::sync::Arc::new(classifier)));
        self
    }

    pub(crate) fn resolve(&self, field: &str) -> Result<RetryPolicy> {
        if self.attempts == 0 {
            return Err(Error::config(
                &format!("{field}.attempts"),
                "0 attempts would never send the request",
                "use 1 for no retries, or more to retry",
            ));
        }
        if self.attempts > 100 {
            return Err(Error::config(
                &format!("{field}.attempts"),
                format!("{} attempts is beyond any sane retry budget", self.attempts),
                "use at most 100 and bound the call with timeout.total",
            ));
        }
        let on = check_all(&self.on, &format!("{field}.on"))?;
        let bound = |spec: &DurationSpec, name: &str| -> Result<Duration> {
            let field = format!("{field}.{name}");
            let duration = spec.resolve(&field)?;
            if duration > MAX_BACKOFF {
                return Err(Error::config(
                    &field,
                    format!("{duration:?} is beyond any sane wait between attempts"),
                    "use at most 1h, and bound the call with timeout.total",
                ));
            }
            Ok(duration)
        };
        let base = bound(&self.base, "base")?;
        let max = bound(&self.max, "max")?;
        if base > max {
            return Err(Error::config(
                &format!("{field}.base"),
                format!("base {base:?} is above max {max:?}"),
                "make base at most max",
            ));
        }
        let max_retry_after = match &self.max_retry_after {
            Some(cap) => Some(cap.resolve(&format!("{field}.max_retry_after"))?),
            None => None,
        };
        Ok(RetryPolicy {
            attempts: self.attempts,
            on: StatusRule::from_set(on),
            backoff: self.backoff,
            base,
            max,
            respect_retry_after: self.respect_retry_after,
            max_retry_after,
            classifier: self.classifier.clone(),
        })
    }
}

impl Default for Retry {
    /// One attempt: no retries.
    fn default() -> Self {
        Retry::none()
    }
}

impl From<u32> for Retry {
    fn from(attempts: u32) -> Self {
        Retry::attempts(attempts)
    }
}

/// A validated retry policy.
#[derive(Clone)]
pub(crate) struct RetryPolicy {
    pub attempts: u32,
    pub on: StatusRule,
    pub backoff: Backoff,
    pub base: Duration,
    pub max: Duration,
    pub respect_retry_after: bool,
    pub max_retry_after: Option<Duration>,
    pub classifier: Option<Classifier>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Retry");
        d.field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .field("base", &format_args!("{}", format_duration(self.base)))
            .field("max", &format_args!("{}", format_duration(self.max)))
            .field("respect_retry_after", &self.respect_retry_after);
        match self.max_retry_after {
            Some(cap) => d.field("max_retry_after", &format_args!("{}", format_duration(cap))),
            None => d.field("max_retry_after", &format_args!("none")),
        };
        if let Some(classifier) = &self.classifier {
            d.field("classifier", classifier);
        }
        d.finish_non_exhaustive()
    }
}

impl RetryPolicy {
    /// The computed backoff before retry `n` (1-based).
    pub fn backoff_delay(&self, n: u32, previous: Duration) -> Duration {
        self.backoff
            .delay(n, self.base, self.max, previous, fastrand::f64())
    }

    pub fn retries_status(&self, status: StatusCode) -> bool {
        self.on.matches(status)
    }
}

/// Parses `Retry-After`: delta-seconds, or an HTTP-date relative to `now`. Anything
/// unparseable counts as absent. Saturating: more seconds than `u64` holds is `u64::MAX`
/// seconds (a very long wait, not an absent header), and a date in the past (before 1970
/// included) is zero.
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    parse_retry_after_value(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

/// [`parse_retry_after`] on one header value.
pub(crate) fn parse_retry_after_value(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only an overflow can make the parse fail.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let since_epoch = date
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Some(Timestamp::from_unix(since_epoch).saturating_duration_since(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::strategy::Strategy;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Timestamp::from_unix(Duration::from_secs(1_767_225_600));
        assert_eq!(
            parse_retry_after(&headers(" 7 "), now),
            Some(Duration::from_secs(7))
        );
        // 2026-01-01T00:00:30Z is 30 s after `now`.
        assert_eq!(
            parse_retry_after(&headers("Thu, 01 Jan 2026 00:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after(&headers("Wed, 31 Dec 2025 23:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&headers("soon"), now), None);
        assert_eq!(
            parse_retry_after(&headers("184467440737095516160"), now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after(&headers("Thu, 01 Jan 1970 00:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&headers("-3"), now), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2_000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any header value at any time: a wait or absent, never a panic.
        #[test]
        fn any_retry_after_value_parses_or_is_absent(
            value in proptest::prop_oneof![
                "[0-9]{1,45}",
                "[ -~]{0,40}",
                (0..253_402_300_799_u64).prop_map(|secs| {
                    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                }),
            ],
            now_secs: u64,
        ) {
            // What this checks is that no value panics; a number of seconds reads as itself,
            // saturating at u64::MAX.
            let now = Timestamp::from_unix(Duration::from_secs(now_secs));
            let parsed = parse_retry_after_value(&value, now);
            if let Ok(secs) = value.parse::<u128>() {
                let expected = u64::try_from(secs).unwrap_or(u64::MAX);
                proptest::prop_assert_eq!(parsed, Some(Duration::from_secs(expected)));
            }
        }
    }

    #[test]
    fn invalid_policies_fail_naming_the_field() {
        let e = Retry::attempts(0).resolve("retry").unwrap_err();
        assert!(e.to_string().starts_with("retry.attempts:"), "{e}");
        let e = Retry::attempts(3).on([600]).resolve("retry").unwrap_err();
        assert!(e.to_string().starts_with("retry.on: 600"), "{e}");
        let typed = Retry::attempts(3)
            .on([StatusCode::IM_A_TEAPOT])
            .resolve("retry")
            .unwrap();
        assert!(typed.retries_status(StatusCode::IM_A_TEAPOT));
        assert!(!typed.retries_status(StatusCode::SERVICE_UNAVAILABLE));
        let e = Retry::attempts(3).base("1x").resolve("retry").unwrap_err();
        assert!(
            e.to_string().starts_with("retry.base: invalid duration"),
            "{e}"
        );
        let e = Retry::attempts(3).base("20s").resolve("retry").unwrap_err();
        assert!(e.to_string().starts_with("retry.base:"), "{e}");
        let e = Retry::attempts(3)
            .max(Duration::MAX)
            .resolve("retry")
            .unwrap_err();
        assert!(e.to_string().starts_with("retry.max: "), "{e}");
        assert!(
            e.to_string()
                .ends_with("Fix: use at most 1h, and bound the call with timeout.total"),
            "{e}"
        );
        Retry::attempts(3)
            .base("1h")
            .max("1h")
            .resolve("retry")
            .unwrap();
    }

    #[test]
    fn the_retry_after_cap_defaults_to_a_minute_and_can_be_lifted() {
        let policy = Retry::attempts(2).resolve("retry").unwrap();
        assert_eq!(policy.max_retry_after, Some(DEFAULT_MAX_RETRY_AFTER));
        assert_eq!(
            Retry::none().resolve("retry").unwrap().max_retry_after,
            Some(DEFAULT_MAX_RETRY_AFTER)
        );
        let lifted = Retry::attempts(2)
            .no_max_retry_after()
            .resolve("retry")
            .unwrap();
        assert_eq!(lifted.max_retry_after, None);
        assert_eq!(
            format!("{lifted:?}"),
            "Retry { attempts: 2, backoff: ExpoJitter, base: 100ms, max: 10s, \
             respect_retry_after: true, max_retry_after: none, .. }"
        );
    }
}
