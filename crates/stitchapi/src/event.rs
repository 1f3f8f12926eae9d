//! Watching a call live: typed events from [`Stitch::stream`](crate::Stitch::stream).
//!
//! Every call is also a `tracing` span (`stitch.call`) with one child span per attempt
//! (`stitch.attempt`); events are for callers who want the same story as values.
//!
//! ```
//! # async fn demo(stitch: stitchapi::Stitch) {
//! use futures_util::StreamExt;
//! use stitchapi::{Event, Input};
//!
//! let mut events = stitch.stream(Input::new());
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Progress(p) => println!("{:?} #{}: {}", p.phase, p.attempt, p.detail),
//!         Event::Result { data, .. } => println!("got {data}"),
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

use crate::error::Error;
use crate::runtime::BoxFuture;
use crate::stitch::Reply;
use crate::time::Timestamp;

/// What a call is doing when it reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// An attempt is being sent.
    Request,
    /// An attempt failed and the call waits before the next one.
    Retry,
    /// The throttle made the call wait.
    Throttled,
    /// Authentication (token fetch, login, refresh).
    Auth,
    /// The response cache (hit, miss, coalesced).
    Cache,
    /// The circuit breaker.
    Circuit,
}

/// One progress report.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// What is happening.
    pub phase: Phase,
    /// The attempt it belongs to (1-based; 0 before the first).
    pub attempt: u32,
    /// A short human-readable detail (`"status 503"`, `"hit"`); never a secret.
    pub detail: String,
    /// How long the call waits (retry) or waited (throttle), if it does.
    pub waited: Option<Duration>,
    /// When it happened, on the stitch's clock.
    pub at: Timestamp,
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
        /// Attempts made.
        attempts: u32,
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

    pub(crate) fn progress(
        &self,
        phase: Phase,
        attempt: u32,
        at: Timestamp,
        detail: impl FnOnce() -> String,
        waited: Option<Duration>,
    ) {
        self.emit(|| {
            Event::Progress(Progress {
                phase,
                attempt,
                detail: detail(),
                waited,
                at,
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
