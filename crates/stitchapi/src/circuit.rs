//! The circuit breaker: fail fast after repeated failures, then let one trial call through.
//!
//! State lives in the store under `circuit:<key>` as `{"failures": n, "opened_at_ms": t}`
//! (no TTL), so a shared store means a shared breaker. Phases:
//!
//! - **closed** (`opened_at_ms == 0`): calls pass; the healthy path costs one store read and
//!   no write;
//! - **open** (less than `cooldown` since it opened): calls fail with
//!   [`ErrorKind::CircuitOpen`] (status 503, "circuit open") without touching the network;
//! - **half-open** (`cooldown` elapsed): exactly one trial call at a time, fleet-wide. The
//!   trial holds an `increment` lock at `circuit:<key>:trial:<opened_at_ms>` whose TTL is the
//!   cooldown, so a crashed or cancelled trial frees it after one cooldown. A successful trial
//!   closes the breaker; a failed one re-opens it with a fresh cooldown (a new epoch, so a new
//!   lock).
//!
//! Failure counting is a read-modify-write, so across a fleet it is best-effort: concurrent
//! failures may be counted once; the breaker then opens a failure or two later.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
//! use std::sync::Arc;
//! use stitchapi::MemoryStore;
//! use stitchapi::circuit::Circuit;
//! use stitchapi::time::ManualClock;
//!
//! let breaker = Circuit::new(2, "30s").build("api", Arc::new(MemoryStore::new()), Arc::new(ManualClock::new()))?;
//! for _ in 0..2 {
//!     let admission = breaker.admit().await?;
//!     breaker.record(admission, false).await?;
//! }
//! assert_eq!(breaker.admit().await.unwrap_err().message(), "circuit open");
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::duration::DurationSpec;
use crate::error::{Error, ErrorKind};
use crate::store::{DynStore, Scope, StitchStoreExt, StoreError};
use crate::time::Clock;

/// A circuit breaker declaration: open after `failures` failed calls in a row, for `cooldown`.
///
/// ```
/// use stitchapi::circuit::Circuit;
/// let circuit = Circuit::new(5, "30s");
/// # let _ = circuit;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Circuit {
    failures: u32,
    cooldown: DurationSpec,
}

impl Circuit {
    /// Opens after `failures` consecutive failures; half-opens after `cooldown`.
    pub fn new(failures: u32, cooldown: impl Into<DurationSpec>) -> Self {
        Circuit {
            failures,
            cooldown: cooldown.into(),
        }
    }

    /// Checks the declaration and binds it to `circuit:<key>` in `store`.
    pub fn build(
        &self,
        key: &str,
        store: DynStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Breaker, Error> {
        if self.failures == 0 {
            return Err(Error::config(
                "circuit.failures",
                "0 failures would keep the circuit open",
                "set 1 or more, e.g. circuit = [5, \"30s\"]",
            ));
        }
        let cooldown = self.cooldown.resolve("circuit.cooldown")?;
        if cooldown.is_zero() {
            return Err(Error::config(
                "circuit.cooldown",
                "a zero cooldown never fails fast",
                "set a cooldown, e.g. \"30s\"",
            ));
        }
        let caps = store.capabilities();
        if caps.scope == Scope::Fleet && !caps.atomic_increment {
            return Err(Error::config(
                "circuit",
                format!(
                    "the {} store is shared by a fleet but its `increment` is not atomic, so the half-open trial cannot be limited to one call",
                    store.name()
                ),
                "use a store with an atomic increment, or a process-scoped store",
            ));
        }
        Ok(Breaker {
            threshold: self.failures,
            cooldown,
            key: format!("circuit:{key}"),
            store,
            clock,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CircuitTable {
    failures: u32,
    cooldown: DurationSpec,
}

impl<'de> Deserialize<'de> for Circuit {
    /// `[5, "30s"]` or `{ failures, cooldown }`; unknown fields are rejected.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Circuit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[failures, cooldown] or { failures, cooldown }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Circuit, A::Error> {
                let failures: u32 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let cooldown: DurationSpec = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Circuit { failures, cooldown })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Circuit, A::Error> {
                let t = CircuitTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Circuit::new(t.failures, t.cooldown))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    failures: u32,
    opened_at_ms: u64,
}

/// A circuit breaker bound to its store key. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    key: String,
    store: DynStore,
    clock: Arc<dyn Clock>,
}

/// Leave to make one call; hand it back to [`Breaker::record`].
#[derive(Debug)]
#[must_use = "record the call's outcome with Breaker::record"]
pub struct Admission {
    seen: State,
    trial: bool,
}

impl Admission {
    /// Whether this call is the half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transition {
    /// Nothing changed phase.
    None,
    /// This failure opened (or re-opened) the breaker: emit the `circuit open` event.
    Opened,
    /// This success closed a breaker that was open or counting failures.
    Closed,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.clock.now().as_millis()
    }

    async fn read(&self) -> Result<State, StoreError> {
        Ok(self.store.get_json(&self.key).await?.unwrap_or_default())
    }

    /// Before a call: one store read when closed. Open fails with `CircuitOpen` (status
    /// 503, "circuit open"); half-open admits exactly one trial at a time. A store failure is
    /// an error of kind `Store`.
    pub async fn admit(&self) -> Result<Admission, Error> {
        let seen = self.read().await?;
        if seen.opened_at_ms == 0 {
            return Ok(Admission { seen, trial: false });
        }
        let since = Duration::from_millis(self.now_ms().saturating_sub(seen.opened_at_ms));
        if since >= self.cooldown {
            let lock = format!("{}:trial:{}", self.key, seen.opened_at_ms);
            if self.store.increment(&lock, Some(self.cooldown)).await? == 1 {
                return Ok(Admission { seen, trial: true });
            }
        }
        Err(circuit_open())
    }

    /// After a call: a success closes the breaker (no write when it was already clean); a
    /// failure counts, and opens the breaker at the threshold or when the trial failed.
    pub async fn record(&self, admission: Admission, success: bool) -> Result<Transition, Error> {
        if success {
            // A clean breaker stays clean without a write (a trial always saw it open).
            if admission.seen == State::default() {
                return Ok(Transition::None);
            }
            self.store
                .set_json(&self.key, &State::default(), None)
                .await?;
            return Ok(Transition::Closed);
        }
        let mut state = self.read().await?;
        state.failures = state.failures.saturating_add(1);
        let opened =
            admission.trial || (state.opened_at_ms == 0 && state.failures >= self.threshold);
        if opened {
            state.opened_at_ms = self.now_ms().max(1);
        }
        self.store.set_json(&self.key, &state, None).await?;
        Ok(if opened {
            Transition::Opened
        } else {
            Transition::None
        })
    }

    /// The store key of the breaker (`circuit:<key>`).
    pub fn key(&self) -> &str {
        &self.key
    }
}

fn circuit_open() -> Error {
    Error::new(ErrorKind::CircuitOpen, "circuit open").with_status(StatusCode::SERVICE_UNAVAILABLE)
}
