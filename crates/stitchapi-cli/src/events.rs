//! A call's events as JSON lines: one object per line, each with the time (`ts_ms`, Unix
//! milliseconds), the call's id (`call`), the stitch's name (`stitch`) and a `kind`:
//!
//! ```text
//! {"ts_ms":1767000000000,"call":"4f1c-1","stitch":"get_user","kind":"start","method":"GET","template":"/users/{id}"}
//! {"ts_ms":1767000000001,"call":"4f1c-1","stitch":"get_user","kind":"attempt","attempt":1}
//! {"ts_ms":1767000000012,"call":"4f1c-1","stitch":"get_user","kind":"retry","attempt":1,"reason":"status 503","delay_ms":100}
//! {"ts_ms":1767000000115,"call":"4f1c-1","stitch":"get_user","kind":"result","status":200,"attempts":2,"served":"network"}
//! {"ts_ms":1767000000115,"call":"4f1c-1","stitch":"get_user","kind":"done","ok":true,"elapsed_ms":114.6,"attempts":2}
//! ```
//!
//! Kinds: `start`, `attempt`, `retry`, `throttle`, `cache`, `auth`, `circuit`, `result`,
//! `error`, `done`. Lines carry no URL (a query credential would show) and no secret.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stitchapi::event::{CacheEvent, CircuitEvent, ThrottleEvent};
use stitchapi::{Event, Served, Step};

/// One line of an event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    /// When, in Unix milliseconds.
    pub ts_ms: u64,
    /// The call's id, unique in the log.
    pub call: String,
    /// The stitch's name.
    pub stitch: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The call started.
    Start {
        /// The HTTP method.
        method: String,
        /// The URL template (never the expanded URL).
        template: String,
    },
    /// A request was sent.
    Attempt {
        /// Its number, from 1.
        attempt: u32,
    },
    /// An attempt failed and another follows after `delay_ms`.
    Retry {
        /// The failed attempt.
        attempt: u32,
        /// Why (`status 503`, `transport error: connect`, `attempt timed out after 200ms`).
        reason: String,
        /// The wait before the next attempt.
        delay_ms: u64,
    },
    /// The throttle held the call (`waited_ms`) or fell back to this process.
    Throttle {
        /// The attempt it held.
        attempt: u32,
        /// How long it waited, when it did.
        waited_ms: Option<u64>,
        /// What happened, as a short line.
        detail: String,
    },
    /// The cache's outcome.
    Cache {
        /// `hit`, `miss`, `fleet_filled`, `coalesced`, `bypass`, `not_stored`, `evicted`.
        outcome: String,
        /// The outcome as a short line.
        detail: String,
    },
    /// Authentication work (token fetch or refresh, login).
    Auth {
        /// What happened, as a short line.
        detail: String,
    },
    /// The circuit breaker's state changed or refused the call.
    Circuit {
        /// `open`, `half-open trial`, `opened`, `closed`.
        state: String,
    },
    /// The call succeeded.
    Result {
        /// The final status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// `network`, `cache`, `fleet` or `coalesced`.
        served: String,
    },
    /// The call failed.
    Error {
        /// `http`, `timeout`, `validation`, `input`, `config`, `auth`, `transport`, ...
        error_kind: String,
        /// The final status, when the server answered.
        status: Option<u16>,
        /// The error's message (never a secret).
        message: String,
    },
    /// The call ended.
    Done {
        /// Whether it succeeded.
        ok: bool,
        /// How long it took, in milliseconds.
        elapsed_ms: f64,
        /// Attempts made.
        attempts: u32,
    },
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl EventKind {
    /// The line form of a core event (`None` for none).
    pub fn of(event: &Event<Value>) -> Option<EventKind> {
        Some(match event {
            Event::Start { method, .. } => EventKind::Start {
                method: method.to_string(),
                template: String::new(),
            },
            Event::Progress(progress) => match progress.step {
                Step::Request => EventKind::Attempt {
                    attempt: progress.attempt,
                },
                Step::Retry { reason, delay } => EventKind::Retry {
                    attempt: progress.attempt,
                    reason: reason.to_string(),
                    delay_ms: delay.as_millis() as u64,
                },
                Step::Throttle(event) => EventKind::Throttle {
                    attempt: progress.attempt,
                    waited_ms: match event {
                        ThrottleEvent::Waited(waited) => Some(waited.as_millis() as u64),
                        _ => None,
                    },
                    detail: event.to_string(),
                },
                Step::Cache(event) => EventKind::Cache {
                    outcome: cache_outcome(event).to_owned(),
                    detail: event.to_string(),
                },
                Step::Auth(event) => EventKind::Auth {
                    detail: event.to_string(),
                },
                Step::Circuit(event) => EventKind::Circuit {
                    state: match event {
                        CircuitEvent::Rejected => "open".to_owned(),
                        other => other.to_string(),
                    },
                },
                _ => return None,
            },
            Event::Result {
                status,
                attempts,
                served,
                ..
            } => EventKind::Result {
                status: status.as_u16(),
                attempts: *attempts,
                served: match served {
                    Served::Network => "network",
                    Served::CacheHit => "cache",
                    Served::FleetFilled => "fleet",
                    Served::Coalesced => "coalesced",
                    _ => "other",
                }
                .to_owned(),
            },
            Event::Error { error } => EventKind::Error {
                error_kind: kind_name(error.kind()),
                status: error.status().map(|s| s.as_u16()),
                message: error.to_string(),
            },
            Event::Done {
                ok,
                elapsed,
                attempts,
            } => EventKind::Done {
                ok: *ok,
                elapsed_ms: elapsed.as_secs_f64() * 1000.0,
                attempts: *attempts,
            },
            _ => return None,
        })
    }
}

/// The kebab-case name of an error kind (`http`, `circuit-open`).
pub fn kind_name(kind: stitchapi::ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "other".to_owned())
}

fn cache_outcome(event: CacheEvent) -> &'static str {
    match event {
        CacheEvent::Hit => "hit",
        CacheEvent::Miss | CacheEvent::MissAfterFleetWait => "miss",
        CacheEvent::FleetFilled => "fleet_filled",
        CacheEvent::Coalesced => "coalesced",
        CacheEvent::Bypass(_) => "bypass",
        CacheEvent::NotStored(_) => "not_stored",
        CacheEvent::Evicted => "evicted",
        _ => "other",
    }
}
