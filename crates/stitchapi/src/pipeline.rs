//! The per-call engine: build the request, then attempt, classify and retry within the
//! deadline, then decode.
//!
//! ```text
//! call(input)
//!   -> validate input, expand template, build request (bytes)
//!   -> attempt loop, bounded by timeout.total:
//!        send with min(timeout.each, time left), following redirects
//!        classify: success | accepted | retry on status | retry a retryable failure | fail
//!        wait Retry-After or backoff, unless it would cross the deadline
//!   -> decode + validate
//! ```

use std::future::Future;
use std::time::Duration;

use http::StatusCode;
use http::header::{self, HeaderValue};
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use crate::auth::{Auth, AuthContext, AuthEvent, CredentialId};
use crate::cache::{Bypass, CacheKey, CachedResponse, KeyRequest, Outcome, ResponseCache};
use crate::circuit::Transition;
use crate::error::RedactedUrl;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{
    BypassReason, CacheEvent, CircuitEvent, Emitter, Event, RetryReason, Step, ThrottleEvent,
    store_error_kind,
};
use crate::input::Input;
use crate::output::Output;
use crate::policy::classifier::{AttemptOutcome, AttemptResponse, RetryDecision};
use crate::policy::hooks::AttemptRequest;
use crate::policy::idempotency::{KeyContext, is_idempotent, is_read};
use crate::policy::retry::parse_retry_after;
use crate::query;
use crate::reply::{Reply, Served};
use crate::runtime::MaybeSend;
use crate::spec::Spec;
use crate::throttle::{AcquireError, Grant, Limiter};
use crate::time::{Clock, Timestamp};
use crate::transport::RedirectHop;
use crate::transport::redirect::{self, Outgoing, Received};

/// Builds the request a call sends: template expanded, query merged, headers and body set,
/// idempotency key added. Fails with an `Input` error before anything is sent.
pub(crate) fn prepare(spec: &Spec, input: Input) -> Result<(Outgoing, bool)> {
    if let Some(error) = input.error {
        return Err(error);
    }
    let mut params = input.params;
    let mut query_params = input.query;
    for (name, value) in input.fields {
        if spec.template.variables().any(|variable| variable == name) {
            params.push((name, value));
        } else {
            query_params.push((name, value));
        }
    }
    let mut url = String::with_capacity(spec.template.as_str().len() + 64);
    spec.template
        .expand(&params, &mut url)
        .map_err(|e| Error::input(e.to_string()))?;
    let query_refs: Vec<(&str, &Value)> = query_params
        .iter()
        .map(|(name, value)| (name.as_str(), value))
        .collect();
    query::merge_into(&mut url, &query_refs, spec.array_format)?;
    let url = resolve_url(spec, &url)?;
    let mut headers = spec.headers.clone();
    for (name, value) in &input.headers {
        let mut value = value.clone();
        // Never indexed by HTTP/2 header compression, and `Debug` of the request hides it.
        value.set_sensitive(!crate::headers::is_safe(name));
        headers.insert(name.clone(), value);
    }
    let body = match input.body {
        Some(body) => {
            if !headers.contains_key(header::CONTENT_TYPE) {
                headers.insert(header::CONTENT_TYPE, body.content_type);
            }
            body.bytes
        }
        None => bytes::Bytes::new(),
    };
    let mut keyed = false;
    if let Some(policy) = &spec.idempotency
        && !is_read(&spec.method)
        && !headers.contains_key(&policy.header)
    {
        let key = policy.key_for(&KeyContext {
            method: &spec.method,
            url: &url,
            body: &body,
        });
        let value = HeaderValue::from_str(&key).map_err(|_| {
            Error::input(
                "the idempotency key function returned a value that is not a valid header value",
            )
        })?;
        headers.insert(policy.header.clone(), value);
        keyed = true;
    }
    Ok((
        Outgoing {
            method: spec.method.clone(),
            url,
            headers,
            body,
            credential_headers: Vec::new(),
            body_limit: spec.max_response_bytes,
        },
        keyed,
    ))
}

/// Parses the expanded URL. When the template spells its origin up to the first `/`, only the
/// path and query are parsed (the origin was parsed at build time and cannot have changed);
/// otherwise the whole URL is parsed and its origin checked against the template's.
fn resolve_url(spec: &Spec, expanded: &str) -> Result<Url> {
    let invalid =
        |e: &dyn std::fmt::Display| Error::input(format!("the expanded URL is not valid ({e})"));
    if let Some(origin) = spec
        .origin
        .as_ref()
        .and_then(|origin| origin.parsed.as_ref())
        && expanded.as_bytes().get(origin.len) == Some(&b'/')
    {
        let rest = &expanded[origin.len..];
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut url = origin.url.clone();
        url.set_path(path);
        url.set_query(query);
        url.set_fragment(fragment);
        // No URI is built: the transport takes the URL as it is.
        return Ok(url);
    }
    let url = Url::parse(expanded).map_err(|e| invalid(&e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::input(format!(
            "the expanded URL has the scheme {:?}; only http and https are sent",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::input(
            "parameter values would put credentials (user:password@) in the URL; refused",
        ));
    }
    if let Some(origin) = &spec.origin
        && !origin.matches(&url)
    {
        return Err(Error::input(
            "parameter values would change the request's scheme, host or port; refused",
        ));
    }
    // Checked here, once, so a transport built on `http` types can always convert it.
    redirect::uri_of(&url)?;
    Ok(url)
}

/// Runs `future` with a time limit on `clock`; `None` if the limit ran out first (the future
/// is dropped, which cancels the request).
async fn within<F: Future>(
    runtime: &crate::settings::Runtime,
    limit: Option<Duration>,
    future: F,
) -> Option<F::Output> {
    match limit {
        // The system clock's timer is tokio's: its timeout, unboxed, needs no `select`.
        #[cfg(not(target_arch = "wasm32"))]
        Some(limit) if runtime.system_clock => tokio::time::timeout(limit, future).await.ok(),
        Some(limit) => crate::time::timeout(&*runtime.clock, limit, future).await,
        None => Some(future.await),
    }
}

/// One call as it goes through the engine: what every step needs, borrowed once.
struct Call<'a, O> {
    spec: &'a Spec,
    output: &'a Output<O>,
    clock: &'a dyn Clock,
    principal: Option<&'a str>,
    /// `prepare` generated the idempotency key.
    keyed: bool,
    started: Timestamp,
    /// `started + timeout.total`, if the call has a total timeout.
    deadline: Option<Timestamp>,
    emitter: &'a Emitter<O>,
}

/// Runs one call to completion, recording its outcome on `span` (the `stitch.call` span).
pub(crate) async fn run<O: MaybeSend + 'static>(
    spec: &Spec,
    output: &Output<O>,
    principal: Option<&str>,
    input: Input,
    emitter: &Emitter<O>,
    span: &tracing::Span,
) -> Result<Reply<O>> {
    let clock = &*spec.runtime.clock;
    let started = clock.now();
    let (outgoing, keyed) = prepare(spec, input).inspect_err(|e| {
        span.record("error", tracing::field::display(e));
    })?;
    // Formatted only if a subscriber records the field.
    span.record("url", tracing::field::display(RedactedUrl(&outgoing.url)));
    emitter.emit(|| Event::Start {
        name: spec.name.clone(),
        method: spec.method.clone(),
        url: crate::error::redact_url(&outgoing.url),
        at: started,
    });
    let call = Call {
        spec,
        output,
        clock,
        principal,
        keyed,
        started,
        deadline: spec.timeout.total.map(|total| started + total),
        emitter,
    };
    // Whatever a stitch does not configure costs nothing: the machinery of a cache, a
    // throttle, auth or a circuit breaker is boxed where it runs, so the future of a call
    // without them stays small (it is moved, and allocated once per call, whole).
    let result = match &spec.cache {
        Some(cache) => Box::pin(cached(&call, cache, outgoing)).await,
        None => fetch(&call, outgoing).await,
    };
    match &result {
        Ok(reply) => {
            span.record("status", reply.status.as_u16());
            span.record("attempts", reply.attempts);
        }
        Err(error) => {
            if let Some(status) = error.status() {
                span.record("status", status.as_u16());
            }
            span.record("attempts", error.attempts());
            span.record("error", tracing::field::display(error));
        }
    }
    result
}

/// Whether the upstream's answer to one request counts as a service failure for the circuit
/// breaker: 5xx, 429, or a status the delegate throttle treats as a rate limit. Other 4xx are
/// the caller's.
fn is_service_failure(spec: &Spec, status: http::StatusCode) -> bool {
    status.is_server_error()
        || status == http::StatusCode::TOO_MANY_REQUESTS
        || spec
            .delegate
            .as_ref()
            .is_some_and(|delegate| delegate.is_rate_limited(status.as_u16()))
}

/// What the upstream made of the last request a call sent, for the circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LastSent {
    /// No request went out (the throttle, the store or auth ended the call first).
    Nothing,
    /// It answered with a status that is not the service's failure.
    Healthy,
    /// It could not be reached, did not answer in time, or answered 5xx/429.
    Failed,
}

/// What one attempt came to. Generic over the response `R` and the error `E` so that
/// [`classify`] can be tested without either.
#[derive(Debug, PartialEq)]
enum Attempted<R, E> {
    /// The upstream answered.
    Answered(R, Answer),
    /// The request failed: a transport error, a refused redirect, the per-attempt timeout;
    /// with the retry classifier's decision on it (never `Succeed`: there is no response).
    Failed(E, RetryReason, Option<RetryDecision>),
    /// The call's total deadline ran out during the attempt.
    OutOfTime,
}

/// What the engine makes of an answer's status, worked out before [`classify`] decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Answer {
    status: StatusCode,
    /// `Retry-After`, as a wait from now.
    retry_after: Option<Duration>,
    /// The auth strategy says the credential is stale (asked only before the call's refresh).
    stale_credential: bool,
    /// The delegate throttle treats the status as the upstream's rate limit.
    rate_limited: bool,
    /// `retry.on` lists the status.
    retry_on: bool,
    /// 2xx, or accepted by the stitch's `accept`.
    accepted: bool,
    /// The retry classifier's decision, which overrides `retry_on` and `accepted`.
    decided: Option<RetryDecision>,
}

impl Answer {
    /// Whether the answer asks for another attempt.
    fn retries(&self) -> bool {
        match self.decided {
            Some(decision) => decision == RetryDecision::Retry,
            None => self.retry_on,
        }
    }

    /// Whether the answer is the call's result when it is not retried. One the classifier
    /// said to retry is not, once no retry is left.
    fn succeeds(&self) -> bool {
        match self.decided {
            Some(decision) => decision == RetryDecision::Succeed,
            None => self.accepted,
        }
    }
}

/// The retry rules of a call, as [`classify`] applies them.
#[derive(Clone, Copy, Debug)]
struct Rules {
    /// `retry.attempts`: the most attempts a call makes.
    max_attempts: u32,
    /// Whether a failed send may be retried (idempotent method, idempotency key, or
    /// `retry_non_idempotent`).
    retry_failures: bool,
    respect_retry_after: bool,
    max_retry_after: Option<Duration>,
}

impl Rules {
    fn of(spec: &Spec, keyed: bool) -> Rules {
        Rules {
            max_attempts: spec.retry.attempts,
            retry_failures: spec.retry_non_idempotent || keyed || is_idempotent(&spec.method),
            respect_retry_after: spec.retry.respect_retry_after,
            max_retry_after: spec.retry.max_retry_after,
        }
    }
}

/// How long to wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// What the upstream asked for with `Retry-After`.
    Asked(Duration),
    /// The retry policy's backoff.
    Backoff,
}

/// What to do after an attempt.
#[derive(Debug, PartialEq)]
enum Verdict<R, E> {
    /// Return this response.
    Succeed(R),
    /// Renew the credential and redo the attempt.
    RefreshCredential,
    /// Fail with a rate-limited error: the stitch leaves the backoff to its caller.
    RateLimited(R, Answer),
    /// Fail with what the attempt got.
    Fail(Attempted<R, E>),
    /// Fail: `Retry-After` asked for more than `max_retry_after`.
    RetryAfterTooLong(Attempted<R, E>),
    /// Wait, then try again.
    Retry(Attempted<R, E>, Wait),
}

/// The retry decision for attempt number `attempt`, given what it came to. Pure: no clock, no
/// randomness (the backoff is drawn by the caller), no I/O.
fn classify<R, E>(
    attempted: Attempted<R, E>,
    attempt: u32,
    refreshed: bool,
    rules: &Rules,
) -> Verdict<R, E> {
    match attempted {
        Attempted::Answered(response, answer) => {
            if answer.stale_credential && !refreshed {
                // A stale credential is renewed once per call, and the attempt redone.
                return Verdict::RefreshCredential;
            }
            if answer.rate_limited {
                return Verdict::RateLimited(response, answer);
            }
            let attempted = Attempted::Answered(response, answer);
            if !answer.retries() || attempt >= rules.max_attempts {
                return match attempted {
                    Attempted::Answered(response, answer) if answer.succeeds() => {
                        Verdict::Succeed(response)
                    }
                    attempted => Verdict::Fail(attempted),
                };
            }
            match answer.retry_after {
                Some(asked) if rules.respect_retry_after => {
                    if rules.max_retry_after.is_some_and(|cap| asked > cap) {
                        Verdict::RetryAfterTooLong(attempted)
                    } else {
                        Verdict::Retry(attempted, Wait::Asked(asked))
                    }
                }
                _ => Verdict::Retry(attempted, Wait::Backoff),
            }
        }
        Attempted::Failed(_, reason, decided)
            if rules.retry_failures
                && attempt < rules.max_attempts
                && match decided {
                    Some(decision) => decision == RetryDecision::Retry,
                    None => reason.is_retryable(),
                } =>
        {
            Verdict::Retry(attempted, Wait::Backoff)
        }
        attempted => Verdict::Fail(attempted),
    }
}

impl<R, E> Attempted<R, E> {
    /// Why this attempt is retried (`None` when the deadline ran out).
    fn reason(&self) -> Option<RetryReason> {
        match self {
            Attempted::Answered(_, answer) => Some(RetryReason::Status(answer.status)),
            Attempted::Failed(_, reason, _) => Some(*reason),
            Attempted::OutOfTime => None,
        }
    }
}

impl<O: MaybeSend + 'static> Call<'_, O> {
    fn total_timeout(&self) -> Error {
        Error::timeout(self.spec.timeout.total.unwrap_or_default())
    }

    /// Runs the attempts of one call. `last_sent` is updated with the outcome of every
    /// request that goes to the transport, so the circuit breaker counts only outcomes of
    /// requests the upstream received (or could not be reached for), and the last of them.
    async fn attempts(
        &self,
        outgoing: &Outgoing,
        last_sent: &mut LastSent,
    ) -> Result<(Received, u32)> {
        let rules = Rules::of(self.spec, self.keyed);
        let mut previous_wait = self.spec.retry.base;
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            // Every attempt pays the throttle (the seam's bucket, then the stitch's own).
            let grant = self.throttle(outgoing, attempt).await?;
            let attempt_span = tracing::debug_span!(
                "stitch.attempt",
                attempt,
                status = tracing::field::Empty,
                wait_ms = tracing::field::Empty,
                reason = tracing::field::Empty,
            );
            self.emitter.progress(self.clock, attempt, Step::Request);
            let auth_events = |event: &AuthEvent| {
                self.emitter
                    .progress(self.clock, attempt, Step::Auth(*event))
            };
            let auth_cx = AuthContext::new(
                &self.spec.vault,
                &self.spec.runtime.store,
                self.clock,
                &*self.spec.runtime.transport,
            )
            .with_principal(self.principal)
            .with_deadline(self.deadline)
            .with_attempt_timeout(self.spec.timeout.each)
            .with_events(Some(&auth_events));
            // Request hooks see the attempt's request before the credential is added.
            let hooked = self.hooked(outgoing, attempt)?;
            let declared = hooked.as_deref().unwrap_or(outgoing);
            let (authed, credential) = self.authenticate(declared, &auth_cx, attempt).await?;
            let attempted = self
                .send(
                    outgoing,
                    authed.as_deref().or(hooked.as_deref()),
                    attempt,
                    refreshed,
                    &attempt_span,
                )
                .await?;
            *last_sent = match &attempted {
                Attempted::Answered(_, answer) if !is_service_failure(self.spec, answer.status) => {
                    LastSent::Healthy
                }
                _ => LastSent::Failed,
            };
            // The slot is given back before any backoff sleep, and before the call returns.
            if let Some(grant) = grant {
                grant.permit.release().await;
            }
            let (attempted, wait) = match classify(attempted, attempt, refreshed, &rules) {
                Verdict::Succeed(received) => return Ok((received, attempt)),
                Verdict::RefreshCredential => {
                    refreshed = true;
                    self.emitter.progress(
                        self.clock,
                        attempt,
                        Step::Auth(AuthEvent::CredentialRefresh),
                    );
                    if let Some(auth) = &self.spec.auth {
                        auth.refresh(credential, &auth_cx)
                            .await
                            .map_err(|error| error.in_call(&outgoing.url, attempt))?;
                    }
                    attempt -= 1;
                    continue;
                }
                Verdict::RateLimited(received, answer) => {
                    let (_, body) = received.response.into_parts();
                    return Err(Error::rate_limited(
                        answer.status,
                        Received::into_url(received.redirected_to, &outgoing.url),
                        body,
                        answer.retry_after,
                    )
                    .with_attempts(attempt));
                }
                Verdict::Fail(attempted) => return Err(self.failure(attempted, outgoing, attempt)),
                Verdict::RetryAfterTooLong(attempted) => {
                    attempt_span.record("reason", "retry-after over max_retry_after");
                    return Err(self.failure(attempted, outgoing, attempt));
                }
                Verdict::Retry(attempted, wait) => (attempted, wait),
            };
            let wait = match wait {
                Wait::Asked(asked) => asked,
                Wait::Backoff => self.spec.retry.backoff_delay(attempt, previous_wait),
            };
            previous_wait = wait;
            self.before_retry(attempted, outgoing, attempt, wait, &attempt_span)?;
            if !wait.is_zero() {
                self.clock.sleep(wait).await;
            }
        }
    }

    /// Acquires the throttle for `attempt`; fails when the deadline runs out first.
    async fn throttle(&self, outgoing: &Outgoing, attempt: u32) -> Result<Option<Grant>> {
        let grant = throttle(self.spec, self.deadline, attempt, self.emitter)
            .await
            .map_err(|error| match error {
                AcquireError::DeadlineExceeded { .. } => self.total_timeout(),
                AcquireError::Store(error) => Error::from(error),
            })
            .map_err(|error| error.in_call(&outgoing.url, attempt - 1))?;
        if self
            .deadline
            .is_some_and(|deadline| deadline <= self.clock.now())
        {
            return Err(self.total_timeout().in_call(&outgoing.url, attempt - 1));
        }
        Ok(grant)
    }

    /// A copy of `outgoing` with the credential applied, and which credential it carries;
    /// `None` without auth. The request kept for retries and errors never carries it.
    async fn authenticate(
        &self,
        outgoing: &Outgoing,
        cx: &AuthContext<'_>,
        attempt: u32,
    ) -> Result<(Option<Box<Outgoing>>, Option<CredentialId>)> {
        let Some(auth) = &self.spec.auth else {
            return Ok((None, None));
        };
        let (authed, credential) = Box::pin(authenticate(auth, outgoing, cx))
            .await
            .map_err(|error| error.in_call(&outgoing.url, attempt - 1))?;
        Ok((Some(Box::new(authed)), credential))
    }

    /// Sends `request` (the authenticated copy of `outgoing`, if any) within the attempt's
    /// time limit, following redirects, and says what it came to.
    async fn send(
        &self,
        outgoing: &Outgoing,
        authed: Option<&Outgoing>,
        attempt: u32,
        refreshed: bool,
        attempt_span: &tracing::Span,
    ) -> Result<Attempted<Received, Error>> {
        let request = authed.unwrap_or(outgoing);
        // The request's limit counts from now: the time the credential took is spent.
        let left = self
            .deadline
            .map(|deadline| deadline.saturating_duration_since(self.clock.now()));
        if left == Some(Duration::ZERO) {
            return Err(self.total_timeout().in_call(&outgoing.url, attempt - 1));
        }
        let (limit, limit_is_total) = match (self.spec.timeout.each, left) {
            (Some(each), Some(left)) if each < left => (Some(each), false),
            (Some(each), None) => (Some(each), false),
            (_, left) => (left, true),
        };
        let sending = within(
            &self.spec.runtime,
            limit,
            redirect::send(&self.spec.runtime.transport, request, self.spec.redirects),
        );
        // A span no subscriber wants is not entered (nor cloned).
        let sent = if attempt_span.is_disabled() {
            sending.await
        } else {
            sending.instrument(attempt_span.clone()).await
        };
        Ok(match sent {
            Some(Ok(mut received)) => {
                // A credential in the query never leaves the engine in a URL.
                if let Some(authed) = authed
                    && authed.url != outgoing.url
                {
                    let urls = received
                        .redirected_to
                        .iter_mut()
                        .chain(received.redirects.iter_mut().map(|hop| &mut hop.url));
                    for url in urls.filter(|url| **url == authed.url) {
                        *url = outgoing.url.clone();
                    }
                }
                let seen = AttemptResponse {
                    response: &received.response,
                    url: received.url(&outgoing.url),
                    attempt,
                };
                for (n, hook) in self.spec.hooks.response.iter().enumerate() {
                    hook.on_response(&seen).map_err(|error| {
                        Error::hook("response", n + 1, attempt, error)
                            .in_call(&outgoing.url, attempt)
                    })?;
                }
                let answer = self.answer(seen, refreshed);
                attempt_span.record("status", answer.status.as_u16());
                Attempted::Answered(received, answer)
            }
            Some(Err(mut error)) => {
                if let Some(authed) = authed
                    && authed.url != outgoing.url
                {
                    error = error.scrub_url(&authed.url, &outgoing.url);
                }
                let reason = RetryReason::of_send_error(&error);
                self.failed(error.in_call(&outgoing.url, attempt), reason)
            }
            None if limit_is_total => Attempted::OutOfTime,
            None => {
                let after = limit.unwrap_or_default();
                self.failed(
                    Error::timeout(after).in_call(&outgoing.url, attempt),
                    RetryReason::AttemptTimeout(after),
                )
            }
        })
    }

    /// A failed send, with the retry classifier's decision on it (`Succeed` has no response to
    /// return, so it leaves the decision to the rules).
    fn failed(&self, error: Error, reason: RetryReason) -> Attempted<Received, Error> {
        let decided = self
            .spec
            .retry
            .classifier
            .as_ref()
            .and_then(|classifier| classifier.0.classify(&AttemptOutcome::Error(&error)))
            .filter(|decision| *decision != RetryDecision::Succeed);
        Attempted::Failed(error, reason, decided)
    }

    /// The attempt's request after the stitch's request hooks, before auth; `None` (no copy)
    /// when the stitch has none. Each attempt starts again from the declared request.
    fn hooked(&self, outgoing: &Outgoing, attempt: u32) -> Result<Option<Box<Outgoing>>> {
        let hooks = &self.spec.hooks.request;
        if hooks.is_empty() {
            return Ok(None);
        }
        let mut request = Box::new(outgoing.clone());
        let mut seen = AttemptRequest {
            method: &request.method,
            url: &request.url,
            headers: &mut request.headers,
            body: &request.body,
            attempt,
        };
        for (n, hook) in hooks.iter().enumerate() {
            hook.on_request(&mut seen).map_err(|error| {
                Error::hook("request", n + 1, attempt, error).in_call(&outgoing.url, attempt - 1)
            })?;
        }
        // What a hook added (a signature, a token of its own) is hidden in `Debug`.
        crate::headers::mark_sensitive(&mut request.headers);
        Ok(Some(request))
    }

    /// What the stitch's rules make of a response, for [`classify`].
    fn answer(&self, seen: AttemptResponse<'_>, refreshed: bool) -> Answer {
        let spec = self.spec;
        let response = seen.response;
        let status = response.status();
        let retry_on = spec.retry.retries_status(status);
        Answer {
            status,
            retry_after: parse_retry_after(response.headers(), self.clock.now()),
            stale_credential: !refreshed
                && spec.auth.as_ref().is_some_and(|auth| {
                    auth.should_refresh(status, response.headers(), response.body())
                }),
            rate_limited: spec
                .delegate
                .as_ref()
                .is_some_and(|delegate| delegate.is_rate_limited(status.as_u16())),
            retry_on,
            // A stitch that follows no redirect answers with the 3xx itself.
            accepted: status.is_success()
                || spec.accept.matches(status)
                || status.is_redirection() && !spec.redirects.follows(),
            decided: spec
                .retry
                .classifier
                .as_ref()
                .and_then(|classifier| classifier.0.classify(&AttemptOutcome::Response(seen))),
        }
    }

    /// The error a call ends with after `attempts` attempts, the last of which came to
    /// `attempted`.
    fn failure(
        &self,
        attempted: Attempted<Received, Error>,
        outgoing: &Outgoing,
        attempts: u32,
    ) -> Error {
        match attempted {
            Attempted::Answered(received, answer) => {
                let (parts, body) = received.response.into_parts();
                let url = Received::into_url(received.redirected_to, &outgoing.url);
                Error::http(parts.status, url, body)
                    .with_attempts(attempts)
                    .with_retry_after(answer.retry_after)
            }
            Attempted::Failed(error, ..) => error.with_attempts(attempts),
            Attempted::OutOfTime => self.total_timeout().in_call(&outgoing.url, attempts),
        }
    }

    /// Records and reports a retry after `wait`; fails when the wait would cross the deadline.
    fn before_retry(
        &self,
        attempted: Attempted<Received, Error>,
        outgoing: &Outgoing,
        attempt: u32,
        wait: Duration,
        attempt_span: &tracing::Span,
    ) -> Result<()> {
        let Some(reason) = attempted.reason() else {
            return Err(self.failure(attempted, outgoing, attempt));
        };
        attempt_span.record("wait_ms", wait.as_millis() as u64);
        attempt_span.record("reason", tracing::field::display(reason));
        let now = self.clock.now();
        if self.deadline.is_some_and(|deadline| now + wait >= deadline) {
            let error = self.failure(attempted, outgoing, attempt);
            let mut timeout = Error::new(
                ErrorKind::Timeout,
                format!(
                    "{}: the {}ms wait before retry {} would cross the deadline ({})",
                    self.total_timeout(),
                    wait.as_millis(),
                    attempt + 1,
                    error
                ),
            )
            .with_attempts(attempt)
            .with_source(error.clone());
            if let Some(url) = error.url() {
                timeout = timeout.with_url(url.clone());
            }
            if let Some(status) = error.status() {
                timeout = timeout.with_status(status);
            }
            return Err(timeout);
        }
        self.emitter.progress(
            self.clock,
            attempt,
            Step::Retry {
                reason,
                delay: wait,
            },
        );
        tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, %reason, "retrying");
        Ok(())
    }

    /// Runs the attempts behind the circuit breaker, if the stitch has one.
    async fn guarded(&self, outgoing: &Outgoing) -> Result<(Received, u32)> {
        match &self.spec.breaker {
            None => self.attempts(outgoing, &mut LastSent::Nothing).await,
            Some(breaker) => Box::pin(self.breaker_guarded(breaker, outgoing)).await,
        }
    }

    /// Runs the attempts behind the circuit breaker.
    async fn breaker_guarded(
        &self,
        breaker: &crate::circuit::Breaker,
        outgoing: &Outgoing,
    ) -> Result<(Received, u32)> {
        let mut last_sent = LastSent::Nothing;
        let circuit = |event| self.emitter.progress(self.clock, 0, Step::Circuit(event));
        let admission = match breaker.admit().await {
            Ok(admission) => admission,
            Err(error) => {
                if error.kind() == ErrorKind::CircuitOpen {
                    circuit(CircuitEvent::Rejected);
                }
                return Err(error.in_call(&outgoing.url, 0));
            }
        };
        if admission.is_trial() {
            circuit(CircuitEvent::HalfOpenTrial);
        }
        let fetched = admission
            .hold(self.clock, self.attempts(outgoing, &mut last_sent))
            .await;
        // Only the upstream's answer to the last request sent counts: a call whose request
        // never went out (its deadline ran out in the throttle, the store or auth failed
        // first) counts for nothing, and a call that ends on its own deadline or an auth
        // failure after a 5xx counts that 5xx.
        let success = match (&fetched, last_sent) {
            (Ok(_), _) => true,
            (Err(_), LastSent::Nothing) => {
                breaker.abstain(admission).await;
                return fetched;
            }
            (Err(_), last) => last == LastSent::Healthy,
        };
        match breaker.record(admission, success).await {
            Ok(Transition::Opened) => circuit(CircuitEvent::Opened),
            Ok(Transition::Closed) => circuit(CircuitEvent::Closed),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "the circuit breaker could not record the outcome")
            }
        }
        fetched
    }

    /// Reports a cache step.
    fn cache_event(&self, event: CacheEvent) {
        tracing::debug!(cache = %event, "cache");
        self.emitter.progress(self.clock, 0, Step::Cache(event));
    }

    /// A reply served by this call's own requests or from the cache.
    fn reply(
        &self,
        data: O,
        status: StatusCode,
        headers: http::HeaderMap,
        url: Url,
        attempts: u32,
        served: Served,
    ) -> Reply<O> {
        Reply {
            data,
            status,
            headers,
            url,
            redirects: Vec::new(),
            attempts,
            elapsed: self.clock.now().saturating_duration_since(self.started),
            served,
        }
    }
}

/// The cache key of a prepared request, or why it is not cached. `keyed`: `prepare` generated
/// the idempotency key (which then stays out of the cache key).
pub(crate) fn cache_key(
    spec: &Spec,
    cache: &ResponseCache,
    outgoing: &Outgoing,
    keyed: bool,
    principal: Option<&str>,
) -> std::result::Result<CacheKey, Bypass> {
    cache.key(&KeyRequest {
        method: &outgoing.method,
        url: &outgoing.url,
        headers: &outgoing.headers,
        body: &outgoing.body,
        principal,
        generated: spec
            .idempotency
            .as_ref()
            .filter(|_| keyed)
            .map(|policy| &policy.header),
        credentialed: spec.auth.is_some(),
    })
}

/// Fetches and decodes a call without the cache.
async fn fetch<O: MaybeSend + 'static>(call: &Call<'_, O>, outgoing: Outgoing) -> Result<Reply<O>> {
    let (received, attempts) = call.guarded(&outgoing).await?;
    let (parts, body) = received.response.into_parts();
    let url = received.redirected_to.unwrap_or(outgoing.url);
    let data = decode_received(call.output, &parts, &body, &url, attempts)?;
    let reply = call.reply(
        data,
        parts.status,
        parts.headers,
        url,
        attempts,
        Served::Network,
    );
    Ok(Reply {
        redirects: received.redirects,
        ..reply
    })
}

/// What a cache-filling leader learned beyond the cached response, including its decoded
/// output, so the leader decodes once.
struct Fetched<O> {
    data: O,
    url: Url,
    redirects: Vec<RedirectHop>,
    headers: http::HeaderMap,
    attempts: u32,
}

/// Serves a call through the response cache: a hit is decoded and returned without touching
/// the network (an entry that no longer decodes is evicted and refetched); a miss is fetched
/// once for every identical concurrent call (in this process, or the fleet with
/// `coalesce(Fleet)`) and stored only when it decodes and validates.
async fn cached<O: MaybeSend + 'static>(
    call: &Call<'_, O>,
    cache: &ResponseCache,
    outgoing: Outgoing,
) -> Result<Reply<O>> {
    let output = call.output;
    let key = match cache_key(call.spec, cache, &outgoing, call.keyed, call.principal) {
        Ok(key) => key,
        Err(bypass) => {
            call.cache_event(CacheEvent::Bypass(bypass.reason()));
            return fetch(call, outgoing).await;
        }
    };
    let lookup = match cache.get(&key, &outgoing.headers).await {
        Ok(lookup) => lookup,
        Err(error) => {
            // The cache is an optimisation: a failing store serves the call uncached.
            call.cache_event(CacheEvent::Bypass(BypassReason::StoreFailed(
                store_error_kind(&error),
            )));
            return fetch(call, outgoing).await;
        }
    };
    if let Some(hit) = lookup.hit {
        match output.decode(&hit.body) {
            Ok(data) => {
                call.cache_event(CacheEvent::Hit);
                return Ok(call.reply(
                    data,
                    hit.status,
                    hit.headers,
                    outgoing.url,
                    0,
                    Served::CacheHit,
                ));
            }
            Err(_) => {
                cache.evict(&lookup.slot).await;
                call.cache_event(CacheEvent::Evicted);
            }
        }
    } else {
        call.cache_event(CacheEvent::Miss);
    }
    let request_url = outgoing.url.clone();
    // The response's `Vary` is matched against the request's headers after the fetch.
    let request_headers = outgoing.headers.clone();
    let leader: std::sync::Mutex<Option<Fetched<O>>> = std::sync::Mutex::new(None);
    let served = Box::pin(
        cache.fill(&lookup.slot, &request_headers, call.deadline, || async {
            let (received, attempts) = call.guarded(&outgoing).await?;
            let (parts, body) = received.response.into_parts();
            let url = received.redirected_to.unwrap_or(outgoing.url);
            // Only a response that decodes and validates is stored.
            let data = decode_received(output, &parts, &body, &url, attempts)?;
            let response = CachedResponse::new(parts.status, &parts.headers, body);
            *leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(Fetched {
                data,
                url,
                redirects: received.redirects,
                headers: parts.headers,
                attempts,
            });
            Ok(response)
        }),
    )
    .await?;
    if !matches!(served.outcome, Outcome::Fetched { waited: false }) {
        call.cache_event(served.outcome.event());
    }
    if let Some(why) = served.not_stored {
        call.cache_event(CacheEvent::NotStored(why));
    }
    let fetched = leader.into_inner().unwrap_or_else(|e| e.into_inner());
    let reply = match fetched {
        Some(fetched) => Reply {
            redirects: fetched.redirects,
            ..call.reply(
                fetched.data,
                served.response.status,
                fetched.headers,
                fetched.url,
                fetched.attempts,
                Served::Network,
            )
        },
        // Served by another caller's fetch (in this process or the fleet).
        None => call.reply(
            output.decode(&served.response.body)?,
            served.response.status,
            served.response.headers,
            request_url,
            0,
            match served.outcome {
                Outcome::FleetFilled => Served::FleetFilled,
                _ => Served::Coalesced,
            },
        ),
    };
    Ok(reply)
}

/// A copy of `outgoing` with the credential applied, and which credential it carries; the
/// headers the strategy added are recorded so a cross-origin redirect drops them.
async fn authenticate(
    auth: &Auth,
    outgoing: &Outgoing,
    cx: &AuthContext<'_>,
) -> Result<(Outgoing, Option<CredentialId>)> {
    let mut request = outgoing.clone();
    let applied = auth
        .apply(&request.method, &mut request.url, &mut request.headers, cx)
        .await?;
    request.credential_headers = applied.credential_headers;
    Ok((request, applied.credential))
}

/// Acquires the stitch's throttle gates, reporting waits and fail-open fallbacks as events.
async fn throttle<O>(
    spec: &Spec,
    deadline: Option<Timestamp>,
    attempt: u32,
    emitter: &Emitter<O>,
) -> std::result::Result<Option<Grant>, AcquireError> {
    if spec.limiters.is_empty() {
        return Ok(None);
    }
    let grant = Box::pin(Limiter::acquire_chain(&spec.limiters, deadline, false)).await?;
    let clock = &*spec.runtime.clock;
    if !grant.waited.is_zero() {
        tracing::debug!(
            attempt,
            throttle_wait_ms = grant.waited.as_millis() as u64,
            "throttled"
        );
        emitter.progress(
            clock,
            attempt,
            Step::Throttle(ThrottleEvent::Waited(grant.waited)),
        );
    }
    if let Some(error) = &grant.fell_back {
        tracing::warn!(%error, "throttle store failed; throttled in this process instead (fail-open)");
        emitter.progress(
            clock,
            attempt,
            Step::Throttle(ThrottleEvent::StoreFellBack(error.kind())),
        );
    }
    Ok(Some(grant))
}

/// Decodes and validates a received body; a failure carries the status, URL, body and
/// attempts.
fn decode_received<O: 'static>(
    output: &Output<O>,
    parts: &http::response::Parts,
    body: &bytes::Bytes,
    url: &Url,
    attempts: u32,
) -> Result<O> {
    output.decode(body).map_err(|error| {
        error
            .with_status(parts.status)
            .with_url(url.clone())
            .with_body(body.clone())
            .with_attempts(attempts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stitch;

    /// An answer with `status`, nothing else special about it.
    fn answer(status: u16) -> Answer {
        let status = StatusCode::from_u16(status).unwrap();
        Answer {
            status,
            retry_after: None,
            stale_credential: false,
            rate_limited: false,
            retry_on: matches!(status.as_u16(), 429 | 500..=599),
            accepted: status.is_success(),
            decided: None,
        }
    }

    const RULES: Rules = Rules {
        max_attempts: 3,
        retry_failures: true,
        respect_retry_after: true,
        max_retry_after: Some(Duration::from_secs(60)),
    };

    type Case = (
        &'static str,
        Attempted<(), ()>,
        u32,
        bool,
        Rules,
        Verdict<(), ()>,
    );

    #[test]
    fn classify_decides_from_the_outcome_alone() {
        use Attempted::{Answered, Failed, OutOfTime};
        use Verdict::*;
        let secs = Duration::from_secs;
        let with = |status, edit: fn(&mut Answer)| {
            let mut answer = answer(status);
            edit(&mut answer);
            answer
        };
        let no_failure_retries = Rules {
            retry_failures: false,
            ..RULES
        };
        let ignore_retry_after = Rules {
            respect_retry_after: false,
            ..RULES
        };
        let connect = RetryReason::Transport(crate::transport::TransportErrorKind::Connect);
        let redirect = RetryReason::Redirect;
        use RetryDecision::{Fail as Fail_, Retry as Retry_, Succeed as Succeed_};
        let decided = |status, decision| Answer {
            decided: Some(decision),
            ..answer(status)
        };
        let asking = |status, wait| Answer {
            retry_after: Some(secs(wait)),
            ..answer(status)
        };
        let cases: Vec<Case> = vec![
            (
                "200 succeeds",
                Answered((), answer(200)),
                1,
                false,
                RULES,
                Succeed(()),
            ),
            (
                "404 fails at once",
                Answered((), answer(404)),
                1,
                false,
                RULES,
                Fail(Answered((), answer(404))),
            ),
            (
                "an accepted 404 succeeds",
                Answered((), with(404, |a| a.accepted = true)),
                1,
                false,
                RULES,
                Succeed(()),
            ),
            (
                "503 retries with backoff",
                Answered((), answer(503)),
                1,
                false,
                RULES,
                Retry(Answered((), answer(503)), Wait::Backoff),
            ),
            (
                "503 on the last attempt fails",
                Answered((), answer(503)),
                3,
                false,
                RULES,
                Fail(Answered((), answer(503))),
            ),
            (
                "an accepted retryable 503 on the last attempt succeeds",
                Answered((), with(503, |a| a.accepted = true)),
                3,
                false,
                RULES,
                Succeed(()),
            ),
            (
                "and is retried before it",
                Answered((), with(503, |a| a.accepted = true)),
                2,
                false,
                RULES,
                Retry(
                    Answered((), with(503, |a| a.accepted = true)),
                    Wait::Backoff,
                ),
            ),
            (
                "a retryable 200 on the last attempt succeeds",
                Answered((), with(200, |a| a.retry_on = true)),
                3,
                false,
                RULES,
                Succeed(()),
            ),
            (
                "Retry-After is the wait",
                Answered((), asking(503, 20)),
                1,
                false,
                RULES,
                Retry(Answered((), asking(503, 20)), Wait::Asked(secs(20))),
            ),
            (
                "Retry-After over the cap fails",
                Answered((), asking(503, 61)),
                1,
                false,
                RULES,
                RetryAfterTooLong(Answered((), asking(503, 61))),
            ),
            (
                "Retry-After ignored: backoff",
                Answered((), asking(503, 61)),
                1,
                false,
                ignore_retry_after,
                Retry(Answered((), asking(503, 61)), Wait::Backoff),
            ),
            (
                "a stale credential is refreshed",
                Answered((), with(401, |a| a.stale_credential = true)),
                1,
                false,
                RULES,
                RefreshCredential,
            ),
            (
                "only once per call",
                Answered((), with(401, |a| a.stale_credential = true)),
                1,
                true,
                RULES,
                Fail(Answered((), with(401, |a| a.stale_credential = true))),
            ),
            (
                "a delegated rate limit goes to the caller, even when retryable",
                Answered((), with(429, |a| a.rate_limited = true)),
                1,
                false,
                RULES,
                RateLimited((), with(429, |a| a.rate_limited = true)),
            ),
            (
                "a transport error retries",
                Failed((), connect, None),
                1,
                false,
                RULES,
                Retry(Failed((), connect, None), Wait::Backoff),
            ),
            (
                "not on the last attempt",
                Failed((), connect, None),
                3,
                false,
                RULES,
                Fail(Failed((), connect, None)),
            ),
            (
                "nor for a non-idempotent call",
                Failed((), connect, None),
                1,
                false,
                no_failure_retries,
                Fail(Failed((), connect, None)),
            ),
            (
                "a status retries for a non-idempotent call",
                Answered((), answer(503)),
                1,
                false,
                no_failure_retries,
                Retry(Answered((), answer(503)), Wait::Backoff),
            ),
            // The retry classifier's decision overrides the status lists, within the rules.
            (
                "classified retry: a pending 200 is retried",
                Answered((), decided(200, Retry_)),
                1,
                false,
                RULES,
                Retry(Answered((), decided(200, Retry_)), Wait::Backoff),
            ),
            (
                "classified retry honours Retry-After",
                Answered(
                    (),
                    with(200, |a| {
                        a.decided = Some(Retry_);
                        a.retry_after = Some(Duration::from_secs(5));
                    }),
                ),
                1,
                false,
                RULES,
                Retry(
                    Answered(
                        (),
                        with(200, |a| {
                            a.decided = Some(Retry_);
                            a.retry_after = Some(Duration::from_secs(5));
                        }),
                    ),
                    Wait::Asked(secs(5)),
                ),
            ),
            (
                "and its cap",
                Answered(
                    (),
                    with(200, |a| {
                        a.decided = Some(Retry_);
                        a.retry_after = Some(Duration::from_secs(61));
                    }),
                ),
                1,
                false,
                RULES,
                RetryAfterTooLong(Answered(
                    (),
                    with(200, |a| {
                        a.decided = Some(Retry_);
                        a.retry_after = Some(Duration::from_secs(61));
                    }),
                )),
            ),
            (
                "a classified retry with none left fails, even a 200",
                Answered((), decided(200, Retry_)),
                3,
                false,
                RULES,
                Fail(Answered((), decided(200, Retry_))),
            ),
            (
                "classified fail: a retryable 503 fails at once",
                Answered((), decided(503, Fail_)),
                1,
                false,
                RULES,
                Fail(Answered((), decided(503, Fail_))),
            ),
            (
                "classified fail: a 200 fails",
                Answered((), decided(200, Fail_)),
                1,
                false,
                RULES,
                Fail(Answered((), decided(200, Fail_))),
            ),
            (
                "classified succeed: a 404 is the result",
                Answered((), decided(404, Succeed_)),
                1,
                false,
                RULES,
                Succeed(()),
            ),
            (
                "classified succeed: a retryable 503 is not retried",
                Answered((), decided(503, Succeed_)),
                1,
                false,
                RULES,
                Succeed(()),
            ),
            (
                "the credential refresh comes first",
                Answered(
                    (),
                    with(401, |a| {
                        a.stale_credential = true;
                        a.decided = Some(Succeed_);
                    }),
                ),
                1,
                false,
                RULES,
                RefreshCredential,
            ),
            (
                "and the delegated rate limit",
                Answered(
                    (),
                    with(429, |a| {
                        a.rate_limited = true;
                        a.decided = Some(Succeed_);
                    }),
                ),
                1,
                false,
                RULES,
                RateLimited(
                    (),
                    with(429, |a| {
                        a.rate_limited = true;
                        a.decided = Some(Succeed_);
                    }),
                ),
            ),
            (
                "classified retry of a final send error",
                Failed((), redirect, Some(Retry_)),
                1,
                false,
                RULES,
                Retry(Failed((), redirect, Some(Retry_)), Wait::Backoff),
            ),
            (
                "which is final otherwise",
                Failed((), redirect, None),
                1,
                false,
                RULES,
                Fail(Failed((), redirect, None)),
            ),
            (
                "classified fail of a connection error",
                Failed((), connect, Some(Fail_)),
                1,
                false,
                RULES,
                Fail(Failed((), connect, Some(Fail_))),
            ),
            (
                "a classified retry of a send error stops at the last attempt",
                Failed((), connect, Some(Retry_)),
                3,
                false,
                RULES,
                Fail(Failed((), connect, Some(Retry_))),
            ),
            (
                "nor retries a non-idempotent send",
                Failed((), connect, Some(Retry_)),
                1,
                false,
                no_failure_retries,
                Fail(Failed((), connect, Some(Retry_))),
            ),
            (
                "the deadline ends the call",
                OutOfTime,
                1,
                false,
                RULES,
                Fail(OutOfTime),
            ),
        ];
        for (name, attempted, attempt, refreshed, rules, expected) in cases {
            assert_eq!(
                classify(attempted, attempt, refreshed, &rules),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn a_retry_names_its_reason() {
        let timeout = RetryReason::AttemptTimeout(Duration::from_millis(300));
        assert_eq!(
            Attempted::<(), ()>::Answered((), answer(503)).reason(),
            Some(RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE))
        );
        assert_eq!(
            Attempted::<(), ()>::Failed((), timeout, None).reason(),
            Some(timeout)
        );
        assert_eq!(Attempted::<(), ()>::OutOfTime.reason(), None);
        assert_eq!(timeout.to_string(), "attempt timed out after 300ms");
    }

    /// The fast path (origin parsed at build time, only path and query at call time) must
    /// produce exactly what a full parse of the expanded URL produces.
    #[test]
    fn fast_url_resolution_matches_a_full_parse() {
        let cases = [
            (
                "https://api.example.com/users/{id}",
                vec![("id", "a b/c?d#e%2e")],
            ),
            (
                "http://127.0.0.1:8080/v1/{+path}",
                vec![("path", "x/y/z.json")],
            ),
            (
                "https://API.Example.com:443/a/./b/../c/{id}",
                vec![("id", "7")],
            ),
            ("https://api.example.com/s?limit=10{&q}", vec![("q", "ü ñ")]),
            ("https://api.example.com/s{?q}#frag", vec![("q", "x")]),
            ("https://api.example.com/{id}/%7Euser/", vec![("id", "~")]),
        ];
        for (template, params) in cases {
            let stitch = Stitch::get(template).build().unwrap();
            let spec = &stitch.inner.spec;
            assert!(
                spec.origin
                    .as_ref()
                    .and_then(|o| o.parsed.as_ref())
                    .is_some(),
                "{template}"
            );
            let vars: Vec<(String, Value)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            let expanded = spec.template.expand_to_string(&vars).unwrap();
            let fast = resolve_url(spec, &expanded).unwrap();
            let full = Url::parse(&expanded).unwrap();
            assert_eq!(fast, full, "{template}");
            assert_eq!(
                redirect::uri_of(&fast).unwrap().to_string(),
                full[..url::Position::AfterQuery],
                "{template}"
            );
        }
    }
}
