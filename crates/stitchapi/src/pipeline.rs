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

use http::header::{self, HeaderValue};
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use crate::auth::{Auth, AuthContext, AuthEvent, CredentialId};
use crate::cache::{Bypass, CacheKey, CachedResponse, KeyRequest, Outcome, ResponseCache};
use crate::circuit::Transition;
use crate::error::RedactedUrl;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Emitter, Event, Phase};
use crate::input::Input;
use crate::policy::idempotency::{KeyContext, is_idempotent, is_read};
use crate::policy::retry::parse_retry_after;
use crate::query;
use crate::runtime::MaybeSend;
use crate::stitch::{Reply, Spec, StitchInner};
use crate::throttle::{AcquireError, Grant, Limiter};
use crate::time::{Clock, Timestamp};
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
    let (url, uri) = resolve_url(spec, &url)?;
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
            uri,
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
fn resolve_url(spec: &Spec, expanded: &str) -> Result<(Url, http::Uri)> {
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
        let path_and_query = url[url::Position::BeforePath..url::Position::AfterQuery]
            .parse()
            .map_err(|e| invalid(&e))?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(origin.scheme.clone());
        parts.authority = Some(origin.authority.clone());
        parts.path_and_query = Some(path_and_query);
        let uri = http::Uri::from_parts(parts).map_err(|e| invalid(&e))?;
        return Ok((url, uri));
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
    let uri = redirect::uri_of(&url)?;
    Ok((url, uri))
}

/// Runs `future` with a time limit on `clock`; `None` if the limit ran out first (the future
/// is dropped, which cancels the request).
async fn within<F: Future>(
    clock: &dyn Clock,
    limit: Option<Duration>,
    future: F,
) -> Option<F::Output> {
    match limit {
        Some(limit) => crate::time::timeout(clock, limit, future).await,
        None => Some(future.await),
    }
}

/// Why an attempt did not produce the final answer.
enum Setback {
    /// A status listed in `retry.on`; may carry `Retry-After`.
    Status {
        received: Box<Received>,
        retry_after: Option<Duration>,
    },
    /// A transport error or a per-attempt timeout.
    Failed(Error),
}

impl Setback {
    fn detail(&self) -> String {
        match self {
            Setback::Status { received, .. } => {
                format!("status {}", received.response.status().as_u16())
            }
            Setback::Failed(error) => error.to_string(),
        }
    }

    fn into_error(self, attempts: u32) -> Error {
        match self {
            Setback::Status {
                received,
                retry_after,
            } => {
                let (parts, body) = received.response.into_parts();
                Error::http(parts.status, received.url, body)
                    .with_attempts(attempts)
                    .with_retry_after(retry_after)
            }
            Setback::Failed(error) => error.with_attempts(attempts),
        }
    }
}

/// Runs one call to completion.
pub(crate) async fn run<O: MaybeSend + 'static>(
    inner: &StitchInner<O>,
    principal: Option<&str>,
    input: Input,
    emitter: &Emitter<O>,
) -> Result<Reply<O>> {
    let spec = &inner.spec;
    let clock = &*spec.runtime.clock;
    let started = clock.now();
    let span = tracing::Span::current();
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
    // The branches are boxed so this future stays small: large futures cost a copy at every
    // level they are moved through.
    let result = match &spec.cache {
        Some(cache) => cached(inner, cache, principal, outgoing, keyed, started, emitter).await,
        None => fetch(inner, principal, outgoing, keyed, started, emitter).await,
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

/// Runs the attempts of one call. `last_sent` is updated with the outcome of every request
/// that goes to the transport, so the circuit breaker counts only outcomes of requests the
/// upstream received (or could not be reached for), and the last of them.
async fn attempts<O: MaybeSend + 'static>(
    inner: &StitchInner<O>,
    principal: Option<&str>,
    outgoing: Outgoing,
    keyed: bool,
    started: Timestamp,
    emitter: &Emitter<O>,
    last_sent: &mut LastSent,
) -> Result<(Received, u32)> {
    let spec = &inner.spec;
    let clock = &*spec.runtime.clock;
    let policy = &spec.retry;
    let deadline = spec.timeout.total.map(|total| started + total);
    let total_timeout = || Error::timeout(spec.timeout.total.unwrap_or_default());
    let retry_failures = spec.retry_non_idempotent || keyed || is_idempotent(&spec.method);
    let mut previous_wait = policy.base;
    let mut attempt = 0;
    let mut refreshed = false;
    loop {
        attempt += 1;
        // Every attempt pays the throttle (the seam's bucket, then the stitch's own).
        let grant = throttle(spec, deadline, attempt, emitter)
            .await
            .map_err(|error| match error {
                AcquireError::DeadlineExceeded { .. } => total_timeout(),
                AcquireError::Store(error) => Error::from(error),
            })
            .map_err(|error| error.in_call(&outgoing.url, attempt - 1))?;
        let now = clock.now();
        if deadline.is_some_and(|deadline| deadline <= now) {
            return Err(total_timeout().in_call(&outgoing.url, attempt - 1));
        }
        let attempt_span = tracing::debug_span!(
            "stitch.attempt",
            attempt,
            status = tracing::field::Empty,
            wait_ms = tracing::field::Empty,
            reason = tracing::field::Empty,
        );
        emitter.progress(
            Phase::Request,
            attempt,
            now,
            || format!("attempt {attempt}"),
            None,
        );
        // Boxed: the attempt's future is large, and moving it through every await level
        // costs more than one allocation.
        // The credential goes on a copy, so the request kept for retries and errors never
        // carries it.
        let auth_events = |event: &AuthEvent| {
            emitter.progress(
                Phase::Auth,
                attempt,
                clock.now(),
                || event.message.clone(),
                None,
            );
        };
        let auth_cx = AuthContext::new(
            &spec.vault,
            &spec.runtime.store,
            clock,
            &*spec.runtime.transport,
        )
        .with_principal(principal)
        .with_deadline(deadline)
        .with_attempt_timeout(spec.timeout.each)
        .with_events(Some(&auth_events));
        let authed = match &spec.auth {
            Some(auth) => Some(
                authenticate(auth, &outgoing, &auth_cx)
                    .await
                    .map_err(|error| error.in_call(&outgoing.url, attempt - 1))?,
            ),
            None => None,
        };
        let (authed, credential) = match authed {
            Some((authed, credential)) => (Some(authed), credential),
            None => (None, None),
        };
        let request = authed.as_ref().unwrap_or(&outgoing);
        // The request's limit counts from now: the time the credential took is spent.
        let left = deadline.map(|deadline| deadline.saturating_duration_since(clock.now()));
        if left == Some(Duration::ZERO) {
            return Err(total_timeout().in_call(&outgoing.url, attempt - 1));
        }
        let (limit, limit_is_total) = match (spec.timeout.each, left) {
            (Some(each), Some(left)) if each < left => (Some(each), false),
            (Some(each), None) => (Some(each), false),
            (_, left) => (left, true),
        };
        let sent = Box::pin(
            within(
                clock,
                limit,
                redirect::send(&spec.runtime.transport, request),
            )
            .instrument(attempt_span.clone()),
        )
        .await;
        // A credential in the query never leaves the engine in a URL.
        let sent = match &authed {
            Some(authed) if authed.url != outgoing.url => sent.map(|result| {
                result
                    .map(|mut received| {
                        if received.url == authed.url {
                            received.url = outgoing.url.clone();
                        }
                        received
                    })
                    .map_err(|error| error.scrub_url(&authed.url, &outgoing.url))
            }),
            _ => sent,
        };
        *last_sent = match &sent {
            Some(Ok(received)) if !is_service_failure(spec, received.response.status()) => {
                LastSent::Healthy
            }
            _ => LastSent::Failed,
        };
        // The slot is given back before any backoff sleep, and before the call returns.
        if let Some(grant) = grant {
            grant.permit.release().await;
        }
        let setback = match sent {
            Some(Ok(received)) => {
                let status = received.response.status();
                attempt_span.record("status", status.as_u16());
                if let Some(auth) = &spec.auth
                    && !refreshed
                    && auth.should_refresh(
                        status,
                        received.response.headers(),
                        received.response.body(),
                    )
                {
                    // A stale credential: renew it once per call and redo this attempt.
                    refreshed = true;
                    emitter.progress(
                        Phase::Auth,
                        attempt,
                        clock.now(),
                        || "refresh".to_owned(),
                        None,
                    );
                    auth.refresh(credential, &auth_cx)
                        .await
                        .map_err(|error| error.in_call(&outgoing.url, attempt))?;
                    attempt -= 1;
                    continue;
                }
                if let Some(delegate) = &spec.delegate
                    && delegate.is_rate_limited(status.as_u16())
                {
                    let retry_after = parse_retry_after(received.response.headers(), clock.now());
                    let (_, body) = received.response.into_parts();
                    return Err(Error::rate_limited(status, received.url, body, retry_after)
                        .with_attempts(attempt));
                }
                let retry_status = policy.retries_status(status) && attempt < policy.attempts;
                if !retry_status && (status.is_success() || spec.accept.matches(status)) {
                    return Ok((received, attempt));
                }
                let setback = Setback::Status {
                    retry_after: parse_retry_after(received.response.headers(), clock.now()),
                    received: Box::new(received),
                };
                if !retry_status {
                    return Err(setback.into_error(attempt));
                }
                setback
            }
            Some(Err(error)) => Setback::Failed(error.in_call(&outgoing.url, attempt)),
            None if limit_is_total => {
                return Err(total_timeout().in_call(&outgoing.url, attempt));
            }
            None => Setback::Failed(
                Error::timeout(limit.unwrap_or_default()).in_call(&outgoing.url, attempt),
            ),
        };
        let setback = match setback {
            Setback::Failed(error)
                if !retry_failures || attempt >= policy.attempts || !error.is_retryable() =>
            {
                return Err(error);
            }
            setback => setback,
        };
        let wait = match &setback {
            Setback::Status {
                retry_after: Some(asked),
                ..
            } if policy.respect_retry_after => {
                if policy.max_retry_after.is_some_and(|cap| *asked > cap) {
                    attempt_span.record("reason", "retry-after over max_retry_after");
                    return Err(setback.into_error(attempt));
                }
                *asked
            }
            _ => policy.backoff_delay(attempt, previous_wait),
        };
        previous_wait = wait;
        attempt_span.record("wait_ms", wait.as_millis() as u64);
        attempt_span.record("reason", tracing::field::display(setback.detail()));
        let now = clock.now();
        if deadline.is_some_and(|deadline| now + wait >= deadline) {
            let error = setback.into_error(attempt);
            let mut timeout = Error::new(
                ErrorKind::Timeout,
                format!(
                    "{}: the {}ms wait before retry {} would cross the deadline ({})",
                    total_timeout(),
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
        emitter.progress(Phase::Retry, attempt, now, || setback.detail(), Some(wait));
        tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, reason = %setback.detail(), "retrying");
        if !wait.is_zero() {
            clock.sleep(wait).await;
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

/// Fetches and decodes a call without the cache. Boxed: the fetching path's future is large,
/// and a call that does not take it must not pay for moving it.
async fn fetch<O: MaybeSend + 'static>(
    inner: &StitchInner<O>,
    principal: Option<&str>,
    outgoing: Outgoing,
    keyed: bool,
    started: Timestamp,
    emitter: &Emitter<O>,
) -> Result<Reply<O>> {
    Box::pin(guarded(inner, principal, outgoing, keyed, started, emitter))
        .await
        .and_then(|(received, attempts)| finish(inner, received, attempts, started))
}

/// What a cache-filling leader learned beyond the cached response, including its decoded
/// output, so the leader decodes once.
struct Fetched<O> {
    data: O,
    url: Url,
    headers: http::HeaderMap,
    attempts: u32,
}

/// Serves a call through the response cache: a hit is decoded and returned without touching
/// the network (an entry that no longer decodes is evicted and refetched); a miss is fetched
/// once for every identical concurrent call (in this process, or the fleet with
/// `coalesce(Fleet)`) and stored only when it decodes and validates.
async fn cached<O: MaybeSend + 'static>(
    inner: &StitchInner<O>,
    cache: &ResponseCache,
    principal: Option<&str>,
    outgoing: Outgoing,
    keyed: bool,
    started: Timestamp,
    emitter: &Emitter<O>,
) -> Result<Reply<O>> {
    let spec = &inner.spec;
    let clock = &*spec.runtime.clock;
    let report = |detail: String| {
        tracing::debug!(cache = %detail, "cache");
        emitter.progress(Phase::Cache, 0, clock.now(), || detail, None);
    };
    let uncached = |outgoing: Outgoing| fetch(inner, principal, outgoing, keyed, started, emitter);
    let key = match cache_key(spec, cache, &outgoing, keyed, principal) {
        Ok(key) => key,
        Err(bypass) => {
            report(bypass.detail().to_owned());
            return uncached(outgoing).await;
        }
    };
    let lookup = match cache.get(&key, &outgoing.headers).await {
        Ok(lookup) => lookup,
        Err(error) => {
            // The cache is an optimisation: a failing store serves the call uncached.
            report(format!("bypass: store failed: {error}"));
            return uncached(outgoing).await;
        }
    };
    if let Some(hit) = lookup.hit {
        match inner.output.decode(&hit.body) {
            Ok(data) => {
                report("hit".to_owned());
                return Ok(Reply {
                    data,
                    status: hit.status,
                    headers: hit.headers,
                    url: outgoing.url,
                    attempts: 0,
                    elapsed: clock.now().saturating_duration_since(started),
                });
            }
            Err(_) => {
                cache.evict(&lookup.slot).await;
                report("evicted: the entry no longer decodes".to_owned());
            }
        }
    } else {
        report("miss".to_owned());
    }
    let request_url = outgoing.url.clone();
    // The response's `Vary` is matched against the request's headers after the fetch.
    let request_headers = outgoing.headers.clone();
    let leader: std::sync::Mutex<Option<Fetched<O>>> = std::sync::Mutex::new(None);
    let deadline = spec.timeout.total.map(|total| started + total);
    let served = Box::pin(
        cache.fill(&lookup.slot, &request_headers, deadline, || async {
            let (received, attempts) =
                guarded(inner, principal, outgoing, keyed, started, emitter).await?;
            let (parts, body) = received.response.into_parts();
            // Only a response that decodes and validates is stored.
            let data = decode_received(inner, &parts, &body, &received.url, attempts)?;
            let response = CachedResponse::new(parts.status, &parts.headers, body);
            *leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(Fetched {
                data,
                url: received.url,
                headers: parts.headers,
                attempts,
            });
            Ok(response)
        }),
    )
    .await?;
    if !matches!(served.outcome, Outcome::Fetched { waited: false }) {
        report(served.outcome.detail().to_owned());
    }
    if let Some(why) = &served.not_stored {
        report(format!("not stored: {why}"));
    }
    let fetched = leader.into_inner().unwrap_or_else(|e| e.into_inner());
    let (data, url, headers, attempts) = match fetched {
        Some(fetched) => (fetched.data, fetched.url, fetched.headers, fetched.attempts),
        // Served by another caller's fetch (in this process or the fleet).
        None => (
            inner.output.decode(&served.response.body)?,
            request_url,
            served.response.headers,
            0,
        ),
    };
    Ok(Reply {
        data,
        status: served.response.status,
        headers,
        url,
        attempts,
        elapsed: clock.now().saturating_duration_since(started),
    })
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
    if request.url != outgoing.url {
        request.uri = redirect::uri_of(&request.url)?;
    }
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
    let grant = Limiter::acquire_chain(&spec.limiters, deadline, false).await?;
    let now = spec.runtime.clock.now();
    if !grant.waited.is_zero() {
        tracing::debug!(
            attempt,
            throttle_wait_ms = grant.waited.as_millis() as u64,
            "throttled"
        );
        emitter.progress(
            Phase::Throttled,
            attempt,
            now,
            || format!("waited {}ms", grant.waited.as_millis()),
            Some(grant.waited),
        );
    }
    if let Some(error) = &grant.fell_back {
        tracing::warn!(%error, "throttle store failed; throttled in this process instead (fail-open)");
        emitter.progress(
            Phase::Throttled,
            attempt,
            now,
            || format!("store failed, throttled in this process: {error}"),
            None,
        );
    }
    Ok(Some(grant))
}

/// Runs the attempts behind the circuit breaker, if the stitch has one.
async fn guarded<O: MaybeSend + 'static>(
    inner: &StitchInner<O>,
    principal: Option<&str>,
    outgoing: Outgoing,
    keyed: bool,
    started: Timestamp,
    emitter: &Emitter<O>,
) -> Result<(Received, u32)> {
    let spec = &inner.spec;
    let mut last_sent = LastSent::Nothing;
    let Some(breaker) = &spec.breaker else {
        return attempts(
            inner,
            principal,
            outgoing,
            keyed,
            started,
            emitter,
            &mut last_sent,
        )
        .await;
    };
    let clock = &*spec.runtime.clock;
    let admission = match breaker.admit().await {
        Ok(admission) => admission,
        Err(error) => {
            if error.kind() == ErrorKind::CircuitOpen {
                emitter.progress(Phase::Circuit, 0, clock.now(), || "open".to_owned(), None);
            }
            return Err(error.in_call(&outgoing.url, 0));
        }
    };
    if admission.is_trial() {
        emitter.progress(
            Phase::Circuit,
            0,
            clock.now(),
            || "half-open trial".to_owned(),
            None,
        );
    }
    let fetched = admission
        .hold(
            clock,
            attempts(
                inner,
                principal,
                outgoing,
                keyed,
                started,
                emitter,
                &mut last_sent,
            ),
        )
        .await;
    // Only the upstream's answer to the last request sent counts: a call whose request never
    // went out (its deadline ran out in the throttle, the store or auth failed first) counts
    // for nothing, and a call that ends on its own deadline or an auth failure after a 5xx
    // counts that 5xx.
    let success = match (&fetched, last_sent) {
        (Ok(_), _) => true,
        (Err(_), LastSent::Nothing) => {
            breaker.abstain(admission).await;
            return fetched;
        }
        (Err(_), last) => last == LastSent::Healthy,
    };
    match breaker.record(admission, success).await {
        Ok(Transition::Opened) => {
            emitter.progress(Phase::Circuit, 0, clock.now(), || "opened".to_owned(), None);
        }
        Ok(Transition::Closed) => {
            emitter.progress(Phase::Circuit, 0, clock.now(), || "closed".to_owned(), None);
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "the circuit breaker could not record the outcome"),
    }
    fetched
}

/// Decodes and validates a received body; a failure carries the status, URL, body and
/// attempts.
fn decode_received<O: 'static>(
    inner: &StitchInner<O>,
    parts: &http::response::Parts,
    body: &bytes::Bytes,
    url: &Url,
    attempts: u32,
) -> Result<O> {
    inner.output.decode(body).map_err(|error| {
        error
            .with_status(parts.status)
            .with_url(url.clone())
            .with_body(body.clone())
            .with_attempts(attempts)
    })
}

fn finish<O: 'static>(
    inner: &StitchInner<O>,
    received: Received,
    attempts: u32,
    started: Timestamp,
) -> Result<Reply<O>> {
    let (parts, body) = received.response.into_parts();
    let data = decode_received(inner, &parts, &body, &received.url, attempts)?;
    Ok(Reply {
        data,
        status: parts.status,
        headers: parts.headers,
        url: received.url,
        attempts,
        elapsed: inner
            .spec
            .runtime
            .clock
            .now()
            .saturating_duration_since(started),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stitch;

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
            let (fast, uri) = resolve_url(spec, &expanded).unwrap();
            let full = Url::parse(&expanded).unwrap();
            assert_eq!(fast, full, "{template}");
            assert_eq!(
                uri.to_string(),
                full[..url::Position::AfterQuery],
                "{template}"
            );
        }
    }
}
