//! The retry classifier: a function of one attempt's outcome that overrides the status list.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use url::Url;

use crate::error::Error;
use crate::runtime::{MaybeSend, MaybeSync};

/// What a [`RetryClassifier`] decides about one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryDecision {
    /// The attempt's answer is not the result: try again, as for a status in `retry.on`.
    /// When no retry is left (attempts, total deadline, `Retry-After` over its cap) the call
    /// fails with the response as an [`ErrorKind::Http`](crate::ErrorKind::Http) error (even a
    /// 2xx), or with the attempt's error.
    Retry,
    /// Stop now: the call fails with the response as an `Http` error (even a 2xx), or with the
    /// attempt's error, without retrying.
    Fail,
    /// The response is the result, whatever its status, as if listed in `accept`. For an error
    /// there is no response to return: `Succeed` is then ignored and the default rules decide.
    Succeed,
}

/// A response one attempt received (after redirects), as hooks and classifiers see it.
#[derive(Clone, Copy, Debug)]
pub struct AttemptResponse<'a> {
    pub(crate) response: &'a http::Response<Bytes>,
    pub(crate) url: &'a Url,
    pub(crate) attempt: u32,
}

impl<'a> AttemptResponse<'a> {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The response headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.response.headers()
    }

    /// The body, decompressed and read in full (within `max_response_bytes`).
    pub fn body(&self) -> &'a Bytes {
        self.response.body()
    }

    /// The URL that answered (the last one after redirects). A credential the auth strategy
    /// put in the query is not in it.
    pub fn url(&self) -> &'a Url {
        self.url
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// What one attempt came to, as a [`RetryClassifier`] sees it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum AttemptOutcome<'a> {
    /// The upstream answered.
    Response(AttemptResponse<'a>),
    /// The request failed: a transport error (connection, TLS, a body over the size limit, a
    /// refused redirect) or the per-attempt timeout.
    Error(&'a Error),
}

impl AttemptOutcome<'_> {
    /// The response's status, if the upstream answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            AttemptOutcome::Response(response) => Some(response.status()),
            AttemptOutcome::Error(_) => None,
        }
    }
}

/// Decides retry / fail / succeed from one attempt's outcome, ahead of the status lists
/// (`retry.on`, `accept`); `None` leaves the decision to them. Declared with
/// [`Retry::classify`](crate::Retry::classify); a closure taking `&AttemptOutcome` is one.
///
/// It runs once per attempt that got a response or failed to send (not for a call that ran
/// out of time, nor for throttle, auth or store failures), after the attempt's response hooks.
///
/// What it can override: whether a status is retried (a `200` whose body says "pending", a
/// `404` right after a write), whether a response is the result (`Succeed` returns a non-2xx
/// as the reply, as `accept` does; `Fail` fails a 2xx), and whether a send error is retried
/// (`Retry` retries one the engine deems final, such as a refused redirect; `Fail` stops a
/// connection error).
///
/// What it cannot: a retry never goes past `retry.attempts`, the total deadline, or a
/// `Retry-After` above `max_retry_after` (honoured as for any retried status), and a failed
/// send of a non-idempotent request without an idempotency key is never retried unless
/// `retry_non_idempotent(true)`. The auth strategy's credential refresh (once per call) and a
/// delegate throttle's rate limit come before it.
///
/// ```
/// use stitchapi::policy::{AttemptOutcome, RetryDecision};
/// use stitchapi::{Retry, Stitch};
///
/// let job = Stitch::get("https://api.example.com/jobs/{id}")
///     .retry(Retry::attempts(10).classify(|outcome: &AttemptOutcome<'_>| match outcome {
///         // The job is not done yet: ask again.
///         AttemptOutcome::Response(r) if r.body().starts_with(br#"{"status":"pending""#) => {
///             Some(RetryDecision::Retry)
///         }
///         // The upstream says the outage is for good: stop now.
///         AttemptOutcome::Response(r) if r.headers().contains_key("x-no-retry") => {
///             Some(RetryDecision::Fail)
///         }
///         _ => None,
///     }))
///     .build()?;
/// # Ok::<(), stitchapi::BuildError>(())
/// ```
pub trait RetryClassifier: MaybeSend + MaybeSync + 'static {
    /// The decision for `outcome`, or `None` for the default rules.
    fn classify(&self, outcome: &AttemptOutcome<'_>) -> Option<RetryDecision>;
}

impl<F> RetryClassifier for F
where
    F: Fn(&AttemptOutcome<'_>) -> Option<RetryDecision> + MaybeSend + MaybeSync + 'static,
{
    fn classify(&self, outcome: &AttemptOutcome<'_>) -> Option<RetryDecision> {
        self(outcome)
    }
}

/// A declared classifier, shared by every clone of the policy.
#[derive(Clone)]
pub(crate) struct Classifier(pub(crate) Arc<dyn RetryClassifier>);

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryClassifier")
    }
}
