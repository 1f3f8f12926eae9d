//! Watching a call live: typed events from [`Stitch::stream`](crate::Stitch::stream).
//!
//! Every call is also a `tracing` span (`stitch.call`) with one child span per attempt
//! (`stitch.attempt`); events are for callers who want the same story as values. A
//! [`Progress`] says what happened as a [`Step`]; its `Display` is a short line
//! (`"status 503"`, `"hit"`, `"waited 200ms"`) that never carries a secret.
//!
//! ```
//! # async fn demo(stitch: stitchapi::Stitch) {
//! use futures_util::StreamExt;
//! use stitchapi::event::{CacheEvent, Step};
//! use stitchapi::{Event, Input, Served};
//!
//! let mut events = stitch.stream(Input::new());
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Progress(p) => match p.step {
//!             Step::Retry { reason, delay } => println!("#{}: {reason}, again in {delay:?}", p.attempt),
//!             Step::Cache(CacheEvent::Hit) => println!("served from the cache"),
//!             _ => println!("{:?} #{}: {p}", p.phase(), p.attempt),
//!         },
//!         Event::Result { data, served: Served::Network, .. } => println!("fetched {data}"),
//!         Event::Result { data, .. } => println!("got {data} without a request of its own"),
//!         Event::Error { error } => println!("failed: {error}"),
//!         _ => {}
//!     }
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::{Stream, StreamExt};
use http::{Method, StatusCode};
use url::Url;

pub use crate::auth::AuthEvent;
use crate::error::Error;
use crate::reply::{Reply, Served};
use crate::runtime::BoxFuture;
use crate::store::StoreErrorKind;
use crate::time::{Clock, Timestamp};
use crate::transport::TransportErrorKind;

/// The part of the engine a [`Step`] comes from, for coarse filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// An attempt is being sent.
    Request,
    /// An attempt failed and the call waits before the next one.
    Retry,
    /// The throttle made the call wait, or fell back to this process.
    Throttled,
    /// Authentication (token fetch, login, refresh).
    Auth,
    /// The response cache (hit, miss, coalesced).
    Cache,
    /// The circuit breaker.
    Circuit,
}

/// One progress report: what happened, in which attempt, and when.
///
/// `Display` prints the step (`"attempt 2"` for a request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// What happened.
    pub step: Step,
    /// The attempt it belongs to (1-based; 0 before the first, and for cache and circuit
    /// steps, which belong to the call).
    pub attempt: u32,
    /// When it happened, on the stitch's clock.
    pub at: Timestamp,
}

impl Progress {
    /// The part of the engine the step comes from.
    pub fn phase(&self) -> Phase {
        self.step.phase()
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Step::Request => write!(f, "attempt {}", self.attempt),
            step => step.fmt(f),
        }
    }
}

/// What happened during a call.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use stitchapi::event::{RetryReason, Step};
///
/// let step = Step::Retry { reason: RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE), delay: Duration::from_millis(200) };
/// assert_eq!(step.to_string(), "status 503");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// An attempt is being sent (the [`Progress::attempt`] says which).
    Request,
    /// An attempt failed and the call waits `delay` before the next one.
    Retry {
        /// Why the attempt failed.
        reason: RetryReason,
        /// How long the call waits (`Retry-After` or the backoff).
        delay: Duration,
    },
    /// The throttle.
    Throttle(ThrottleEvent),
    /// Authentication.
    Auth(AuthEvent),
    /// The response cache.
    Cache(CacheEvent),
    /// The circuit breaker.
    Circuit(CircuitEvent),
}

impl Step {
    /// The part of the engine the step comes from.
    pub fn phase(&self) -> Phase {
        match self {
            Step::Request => Phase::Request,
            Step::Retry { .. } => Phase::Retry,
            Step::Throttle(_) => Phase::Throttled,
            Step::Auth(_) => Phase::Auth,
            Step::Cache(_) => Phase::Cache,
            Step::Circuit(_) => Phase::Circuit,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Request => f.write_str("request sent"),
            Step::Retry { reason, .. } => reason.fmt(f),
            Step::Throttle(event) => event.fmt(f),
            Step::Auth(event) => event.fmt(f),
            Step::Cache(event) => event.fmt(f),
            Step::Circuit(event) => event.fmt(f),
        }
    }
}

/// Why an attempt is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The upstream answered with a status listed in `retry.on` (`"status 503"`).
    Status(StatusCode),
    /// The request could not be sent or its response not read (`"transport error: connect"`).
    Transport(TransportErrorKind),
    /// The per-attempt timeout ran out (`"attempt timed out after 300ms"`).
    AttemptTimeout(Duration),
    /// A redirect was refused (a non-HTTP target) or the chain was too long.
    Redirect,
}

impl RetryReason {
    /// The reason an attempt that failed with `error` is retried: the transport error's kind
    /// when the error carries one, else a refused redirect (the only other send failure).
    pub(crate) fn of_send_error(error: &Error) -> RetryReason {
        match error.transport_kind() {
            Some(TransportErrorKind::Redirect) | None => RetryReason::Redirect,
            Some(kind) => RetryReason::Transport(kind),
        }
    }

    /// Whether a send that failed for this reason is worth sending again (the engine's half of
    /// [`Error::is_retryable`]): an oversized body or a refused redirect fails the same way
    /// every time.
    pub(crate) fn is_retryable(self) -> bool {
        !matches!(
            self,
            RetryReason::Redirect | RetryReason::Transport(TransportErrorKind::BodyTooLarge)
        )
    }
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Status(status) => write!(f, "status {}", status.as_u16()),
            RetryReason::Transport(kind) => {
                let what = match kind {
                    TransportErrorKind::Connect => "connect",
                    TransportErrorKind::Timeout => "timeout",
                    TransportErrorKind::Request => "request",
                    TransportErrorKind::Body => "body",
                    TransportErrorKind::BodyTooLarge => "body too large",
                    _ => "other",
                };
                write!(f, "transport error: {what}")
            }
            RetryReason::AttemptTimeout(after) => {
                write!(f, "attempt timed out after {}ms", after.as_millis())
            }
            RetryReason::Redirect => f.write_str("redirect refused"),
        }
    }
}

/// What the throttle did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleEvent {
    /// The call waited this long for its turn (`"waited 200ms"`).
    Waited(Duration),
    /// The throttle's store failed and the call was throttled in this process instead
    /// (fail-open): `"store failed, throttled in this process (unavailable)"`.
    StoreFellBack(StoreErrorKind),
}

impl fmt::Display for ThrottleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrottleEvent::Waited(waited) => write!(f, "waited {}ms", waited.as_millis()),
            ThrottleEvent::StoreFellBack(kind) => write!(
                f,
                "store failed, throttled in this process ({})",
                store_kind(*kind)
            ),
        }
    }
}

/// What the response cache did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A stored response answered the call (`"hit"`).
    Hit,
    /// Nothing stored: this call fetches (`"miss"`).
    Miss,
    /// This call waited on another process's fill, which did not store an answer for it, then
    /// fetched itself (`"miss (after a fleet wait)"`).
    MissAfterFleetWait,
    /// Another process fetched; this call read the entry it stored (`"hit (fleet filled)"`).
    FleetFilled,
    /// This call shared the result of an identical call in flight in this process
    /// (`"coalesced"`).
    Coalesced,
    /// The call is not cached (`"bypass: method not cached"`).
    Bypass(BypassReason),
    /// A stored entry no longer decodes into the output type; it was removed and the call
    /// fetches (`"evicted: the entry no longer decodes"`).
    Evicted,
    /// The fetched response was not stored (`"not stored: ..."`).
    NotStored(NotStoredReason),
}

impl fmt::Display for CacheEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheEvent::Hit => f.write_str("hit"),
            CacheEvent::Miss => f.write_str("miss"),
            CacheEvent::MissAfterFleetWait => f.write_str("miss (after a fleet wait)"),
            CacheEvent::FleetFilled => f.write_str("hit (fleet filled)"),
            CacheEvent::Coalesced => f.write_str("coalesced"),
            CacheEvent::Bypass(reason) => write!(f, "bypass: {reason}"),
            CacheEvent::Evicted => f.write_str("evicted: the entry no longer decodes"),
            CacheEvent::NotStored(reason) => write!(f, "not stored: {reason}"),
        }
    }
}

/// Why a call does not go through the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BypassReason {
    /// The method is not among the cached ones.
    Method,
    /// Principal tenancy, a credential, and no principal bound: the cache fails closed.
    CredentialsWithoutPrincipal,
    /// The store failed on the lookup; the call is served uncached (fail-open).
    StoreFailed(StoreErrorKind),
}

impl fmt::Display for BypassReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BypassReason::Method => f.write_str("method not cached"),
            BypassReason::CredentialsWithoutPrincipal => {
                f.write_str("credentials without a principal")
            }
            BypassReason::StoreFailed(kind) => write!(f, "store failed ({})", store_kind(*kind)),
        }
    }
}

/// Why a fetched response was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStoredReason {
    /// `Vary: *`: the response answers its own request only.
    VariesOnEverything,
    /// The store failed on the write.
    StoreFailed(StoreErrorKind),
}

impl NotStoredReason {
    /// The reason for a failed write.
    pub(crate) fn store_failed(error: &Error) -> Self {
        NotStoredReason::StoreFailed(store_error_kind(error))
    }
}

impl fmt::Display for NotStoredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotStoredReason::VariesOnEverything => {
                f.write_str("the response varies on every request (Vary: *)")
            }
            NotStoredReason::StoreFailed(kind) => write!(f, "store failed ({})", store_kind(*kind)),
        }
    }
}

/// What the circuit breaker did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitEvent {
    /// The circuit is open: the call was rejected without sending (`"open"`).
    Rejected,
    /// This call is the half-open trial (`"half-open trial"`).
    HalfOpenTrial,
    /// This call's failure opened the circuit (`"opened"`).
    Opened,
    /// This call's success closed the circuit (`"closed"`).
    Closed,
}

impl fmt::Display for CircuitEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CircuitEvent::Rejected => "open",
            CircuitEvent::HalfOpenTrial => "half-open trial",
            CircuitEvent::Opened => "opened",
            CircuitEvent::Closed => "closed",
        })
    }
}

/// The store error kind of a failed store operation surfaced as an [`Error`]
/// ([`StoreErrorKind::Backend`] when it carries none).
pub(crate) fn store_error_kind(error: &Error) -> StoreErrorKind {
    error.store_kind().unwrap_or(StoreErrorKind::Backend)
}

fn store_kind(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::Unsupported => "unsupported",
        StoreErrorKind::Unavailable => "unavailable",
        StoreErrorKind::Timeout => "timeout",
        StoreErrorKind::Conflict => "conflict",
        StoreErrorKind::InvalidData => "invalid data",
        _ => "backend",
    }
}

/// An event of one call, in order: `Start`, any `Progress`, then `Result` or `Error`, then
/// `Done`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event<O> {
    /// The request was built and the call starts.
    Start {
        /// The stitch's name.
        name: Arc<str>,
        /// The method.
        method: Method,
        /// The expanded URL, redacted like [`Error::url`](crate::Error::url).
        url: Url,
        /// When the call started.
        at: Timestamp,
    },
    /// Something happened along the way.
    Progress(Progress),
    /// The call succeeded.
    Result {
        /// The decoded output.
        data: O,
        /// The final status.
        status: StatusCode,
        /// Attempts made (0 when the call sent no request of its own).
        attempts: u32,
        /// Where the response came from: the network, the cache, or another call's fetch.
        served: Served,
    },
    /// The call failed.
    Error {
        /// The error the awaited call would return.
        error: Error,
    },
    /// The call finished.
    Done {
        /// Whether it succeeded.
        ok: bool,
        /// Time from start to finish, on the stitch's clock.
        elapsed: Duration,
        /// Attempts made.
        attempts: u32,
    },
}

/// Where the engine reports events: nowhere for a plain call, a channel for a stream.
pub(crate) struct Emitter<O> {
    sender: Option<mpsc::UnboundedSender<Event<O>>>,
}

impl<O> Emitter<O> {
    pub(crate) fn silent() -> Self {
        Emitter { sender: None }
    }

    pub(crate) fn is_listening(&self) -> bool {
        self.sender.is_some()
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> Event<O>) {
        if let Some(sender) = &self.sender {
            let _ = sender.unbounded_send(event());
        }
    }

    /// Reports `step` of `attempt`, timed on `clock` (read only when someone listens).
    pub(crate) fn progress(&self, clock: &dyn Clock, attempt: u32, step: Step) {
        self.emit(|| {
            Event::Progress(Progress {
                step,
                attempt,
                at: clock.now(),
            })
        });
    }
}

impl<O> fmt::Debug for Emitter<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_listening() {
            "Emitter(stream)"
        } else {
            "Emitter(silent)"
        })
    }
}

/// A running call and the time it took.
pub(crate) type CallRun<O> = BoxFuture<'static, (Result<Reply<O>, Error>, Duration)>;

/// The events of one call, as a [`Stream`]. Dropping it cancels the call.
pub struct EventStream<O> {
    run: Option<CallRun<O>>,
    receiver: mpsc::UnboundedReceiver<Event<O>>,
    tail: VecDeque<Event<O>>,
}

impl<O> EventStream<O> {
    pub(crate) fn new(start: impl FnOnce(Emitter<O>) -> CallRun<O>) -> Self {
        let (sender, receiver) = mpsc::unbounded();
        let run = start(Emitter {
            sender: Some(sender),
        });
        EventStream {
            run: Some(run),
            receiver,
            tail: VecDeque::new(),
        }
    }
}

// Nothing is structurally pinned: the run future is boxed.
impl<O> Unpin for EventStream<O> {}

impl<O> Stream for EventStream<O> {
    type Item = Event<O>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<O>>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.tail.pop_front() {
                return Poll::Ready(Some(event));
            }
            let Some(run) = this.run.as_mut() else {
                return Poll::Ready(None);
            };
            if let Poll::Ready(Some(event)) = this.receiver.poll_next_unpin(cx) {
                return Poll::Ready(Some(event));
            }
            let (outcome, elapsed) = match run.as_mut().poll(cx) {
                Poll::Ready(done) => done,
                Poll::Pending => return Poll::Pending,
            };
            this.run = None;
            while let Ok(event) = this.receiver.try_recv() {
                this.tail.push_back(event);
            }
            match outcome {
                Ok(reply) => {
                    let attempts = reply.attempts;
                    this.tail.push_back(Event::Result {
                        data: reply.data,
                        status: reply.status,
                        attempts,
                        served: reply.served,
                    });
                    this.tail.push_back(Event::Done {
                        ok: true,
                        elapsed,
                        attempts,
                    });
                }
                Err(error) => {
                    let attempts = error.attempts();
                    this.tail.push_back(Event::Error { error });
                    this.tail.push_back(Event::Done {
                        ok: false,
                        elapsed,
                        attempts,
                    });
                }
            }
        }
    }
}

impl<O> fmt::Debug for EventStream<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("running", &self.run.is_some())
            .finish()
    }
}
