//! The circuit breaker: fail fast after repeated failures, then let one trial call through.
//!
//! State lives in the store (keys in the [store docs](crate::store)), so a shared store
//! means a shared breaker:
//!
//! - `circuit:<key>:failures` counts consecutive failures with the store's atomic
//!   `increment`, so concurrent failures across a fleet are all counted; the breaker opens at
//!   the declared threshold, give or take the calls already in flight;
//! - `circuit:<key>:opened` holds when it opened (milliseconds since the epoch).
//!
//! Phases:
//!
//! - **closed** (fewer failures than the threshold): calls pass; the healthy path costs one
//!   store read and no write;
//! - **open** (less than `cooldown` since it opened): calls fail with
//!   [`ErrorKind::CircuitOpen`] (status 503, "circuit open") without touching the network;
//! - **half-open** (`cooldown` elapsed): exactly one trial call at a time. The trial holds an
//!   owned lock at `circuit:<key>:trial` for as long as it runs (renewed every third of its
//!   5 s TTL, so a trial longer than the cooldown is still alone; a crashed one frees it within
//!   the TTL). A successful trial closes the breaker; a failed one re-opens it with a fresh
//!   cooldown. On a fleet store without owned locks, the trial is exclusive within each
//!   process only, which a stitch or seam reports as a `warn` trace when it is built.
//!
//! Only outcomes of requests that were sent count. A call that ends before its request goes
//! out (its own deadline ran out in the throttle, the store or the credential fetch failed)
//! is abstained: nothing is counted, and a trial it held is given back.
//!
//! A stitch declares it with `.circuit(failures, cooldown)`; the [crate docs](crate#circuit-breaker)
//! show a whole call.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::duration::DurationSpec;
use crate::error::{BuildError, Error, ErrorKind};
use crate::flight::{DEFAULT_LOCK_TTL, FleetLock, HeldLock};
use crate::store::keys::{self, CircuitKeys};
use crate::store::{DynStore, Scope, StoreError, StoreErrorKind};
use crate::time::Clock;

#[cfg(test)]
mod tests;

/// A circuit breaker declaration: open after `failures` failed calls in a row, for `cooldown`.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::circuit::Circuit;
///
/// let circuit = Circuit::new(5, Duration::from_secs(30));
/// assert_eq!(circuit, Circuit::new(5, "30s")); // the string form of config files
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Circuit {
    failures: u32,
    cooldown: DurationSpec,
}

impl Circuit {
    /// Opens after `failures` consecutive failures; half-opens after `cooldown` (a
    /// [`Duration`], or a string such as `"30s"`; there is no integer form).
    pub fn new(failures: u32, cooldown: impl Into<DurationSpec>) -> Self {
        Circuit {
            failures,
            cooldown: cooldown.into(),
        }
    }

    /// Checks the declaration and binds it to the `circuit:<key>:*` keys in `store`.
    pub(crate) fn build(
        &self,
        key: &str,
        store: DynStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Breaker, BuildError> {
        self.checked(key, store, clock)
            .map_err(Error::into_build_error)
    }

    fn checked(&self, key: &str, store: DynStore, clock: Arc<dyn Clock>) -> Result<Breaker, Error> {
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
                    "the {} store is shared by a fleet but its `increment` is not atomic, so concurrent failures would be lost",
                    store.name()
                ),
                "use a store with an atomic increment, or a process-scoped store",
            ));
        }
        let keys = keys::circuit(key);
        // Without owned locks the trial is exclusive in this process only (a stitch or seam
        // reports it when it is built).
        let trial = if caps.owned_locks() {
            Trial::Store(FleetLock::new(
                store.clone(),
                keys.trial.clone(),
                DEFAULT_LOCK_TTL,
            ))
        } else {
            Trial::Local(Arc::new(AtomicBool::new(false)))
        };
        Ok(Breaker {
            threshold: i64::from(self.failures),
            cooldown,
            keys,
            store,
            clock,
            trial,
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

/// A circuit breaker bound to its store keys. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Breaker {
    threshold: i64,
    cooldown: Duration,
    keys: CircuitKeys,
    store: DynStore,
    clock: Arc<dyn Clock>,
    trial: Trial,
}

/// Where the half-open trial's exclusivity lives.
#[derive(Clone, Debug)]
enum Trial {
    /// An owned lock in the store: one trial across everything sharing it.
    Store(FleetLock),
    /// A flag in this process (a fleet store without owned locks).
    Local(Arc<AtomicBool>),
}

/// Leave to make one call; run the call through [`hold`](Admission::hold) and hand the
/// admission back to [`Breaker::record`].
#[derive(Debug)]
#[must_use = "record the call's outcome with Breaker::record"]
pub(crate) struct Admission {
    /// The failures counted when the call was admitted.
    seen: i64,
    trial: Option<TrialHold>,
}

/// A held half-open trial; dropped (a cancelled call), it frees the trial.
#[derive(Debug)]
enum TrialHold {
    Store(HeldLock),
    Local {
        /// Frees the trial when dropped.
        _frees: LocalTrial,
    },
}

#[derive(Debug)]
struct LocalTrial(Arc<AtomicBool>);

impl Drop for LocalTrial {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Admission {
    /// Whether this call is the half-open trial.
    pub(crate) fn is_trial(&self) -> bool {
        self.trial.is_some()
    }

    /// Runs the admitted call. A trial keeps its lock alive while `call` runs, so no second
    /// trial starts however long it takes.
    pub(crate) async fn hold<F: Future>(&self, clock: &dyn Clock, call: F) -> F::Output {
        match &self.trial {
            Some(TrialHold::Store(held)) => held.hold(clock, call).await,
            _ => call.await,
        }
    }
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Transition {
    /// Nothing changed phase.
    None,
    /// This failure opened (or re-opened) the breaker: emit the `circuit open` event.
    Opened,
    /// This success closed a breaker that was open or counting failures.
    Closed,
}

impl Breaker {
    async fn read_number(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(None);
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                StoreError::new(
                    self.store.name(),
                    "get",
                    StoreErrorKind::InvalidData,
                    format!("the circuit state at {key:?} is not a number"),
                )
            })
    }

    /// Before a call: one store read when closed. Open fails with `CircuitOpen` (status
    /// 503, "circuit open"); half-open admits exactly one trial at a time. A store failure is
    /// an error of kind `Store`.
    pub(crate) async fn admit(&self) -> Result<Admission, Error> {
        let seen = self.read_number(&self.keys.failures).await?.unwrap_or(0);
        if seen < self.threshold {
            return Ok(Admission { seen, trial: None });
        }
        // Open since `opened`; a breaker whose opener died before writing it is half-open.
        let opened = self.read_number(&self.keys.opened).await?;
        let now = self.clock.now().as_millis();
        let cooled = opened.is_none_or(|opened| {
            Duration::from_millis(now.saturating_sub(u64::try_from(opened).unwrap_or(0)))
                >= self.cooldown
        });
        if cooled && let Some(trial) = self.take_trial().await? {
            return Ok(Admission {
                seen,
                trial: Some(trial),
            });
        }
        Err(circuit_open())
    }

    async fn take_trial(&self) -> Result<Option<TrialHold>, StoreError> {
        Ok(match &self.trial {
            Trial::Store(lock) => lock.try_acquire().await?.map(TrialHold::Store),
            Trial::Local(flag) => flag
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                .then(|| TrialHold::Local {
                    _frees: LocalTrial(flag.clone()),
                }),
        })
    }

    /// After a call: a success closes the breaker (no write when it was already clean); a
    /// failure is counted, and opens the breaker when it reaches the threshold or when the
    /// trial failed.
    pub(crate) async fn record(
        &self,
        admission: Admission,
        success: bool,
    ) -> Result<Transition, Error> {
        let Admission { seen, trial } = admission;
        let result = self.record_outcome(seen, trial.is_some(), success).await;
        if let Some(TrialHold::Store(held)) = trial {
            held.release().await;
        }
        result
    }

    /// Records nothing for an admitted call whose request never reached the upstream (the
    /// caller's own deadline ran out in the throttle, the store or auth failed first): only
    /// outcomes of requests sent count. A trial is given back for the next caller.
    pub(crate) async fn abstain(&self, admission: Admission) {
        if let Some(TrialHold::Store(held)) = admission.trial {
            held.release().await;
        }
    }

    async fn record_outcome(
        &self,
        seen: i64,
        trial: bool,
        success: bool,
    ) -> Result<Transition, Error> {
        if success {
            // A clean breaker stays clean without a write.
            if seen == 0 && !trial {
                return Ok(Transition::None);
            }
            self.store.set(&self.keys.failures, None, None).await?;
            if trial {
                self.store.set(&self.keys.opened, None, None).await?;
            }
            return Ok(Transition::Closed);
        }
        let opened = if trial {
            true
        } else {
            self.store.increment(&self.keys.failures, None).await? == self.threshold
        };
        if !opened {
            return Ok(Transition::None);
        }
        let now = self.clock.now().as_millis().max(1);
        self.store
            .set(&self.keys.opened, Some(Bytes::from(now.to_string())), None)
            .await?;
        Ok(Transition::Opened)
    }

    #[cfg(test)]
    /// The store key that counts the breaker's consecutive failures
    /// (`circuit:<key>:failures`).
    pub(crate) fn key(&self) -> &str {
        &self.keys.failures
    }
}

fn circuit_open() -> Error {
    Error::new(ErrorKind::CircuitOpen, "circuit open").with_status(StatusCode::SERVICE_UNAVAILABLE)
}
