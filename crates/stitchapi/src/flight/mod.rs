//! Single-flight: at most one fetch per key at a time, in this process and, over a store with
//! owned locks, across the fleet. Cache fills, OAuth2 token fetches and cookie logins all run
//! through here.
//!
//! **In the process** ([`Flights`]): the first caller for a key leads; concurrent callers
//! wait for and share its outcome, **its error included**, so a failing upstream or token
//! endpoint sees one request per burst, not one per caller (the TypeScript reference lets every
//! follower retry on its own). A leader whose future is dropped (a cancelled call) hands over:
//! one waiting caller becomes the next leader. Nothing sticks: the entry is gone once the
//! flight settles.
//!
//! **Across the fleet** ([`lead`] with a [`FleetFlight`]): the leader takes an owned
//! [`FleetLock`] before it fetches and holds it, renewing it, until it is done. A caller that
//! finds the lock held polls (every `poll`, jittered ±50%) until the work is done (`done`
//! finds the result in the store), or the lock is free (then it takes it and leads), or its
//! optional `wait` runs out (then it fetches without the lock). A holder that stalls past the
//! lock's TTL loses it to one successor, and its late release cannot free the successor's
//! lock. A store that fails while the lock is taken is skipped: the caller fetches.
//!
//! **A failing leader** leaves its failure beside the lock (`<lock>:failed`, for the lock's
//! TTL: the error's kind, status and `Retry-After`, never its body or URL) before it
//! releases the lock, when the failure is the upstream's answer (an HTTP error, a rate limit,
//! a transport failure, a response that does not validate, a refused credential; not a
//! timeout, which may be the leader's own deadline). The callers that were waiting on that
//! leader (each reads the holder's token when it starts waiting) fail with it instead of
//! fetching one after another: a failing upstream sees one request per wave across the
//! fleet, as in the process. A caller that arrives after the wave fetches anew, and so may a
//! waiter whose holder changed while it waited (a second wave, not one fetch per caller).
//! A waiter reads the failure key once per poll, after `done` found nothing.

mod lock;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

pub(crate) use lock::{FleetLock, HeldLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::store::{DynStore, keys};
use crate::time::{Clock, Timestamp};

/// The default TTL of a fleet lock: how long a crashed holder blocks the key. A live holder
/// renews it every third of the TTL.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(5);
/// The default interval between two polls of a caller waiting on another process.
pub const DEFAULT_POLL: Duration = Duration::from_millis(50);

/// How the leader of a flight got its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flown {
    /// It ran the work; `waited` when it first waited on another process's lock.
    Led {
        /// Whether it waited on the fleet lock first.
        waited: bool,
    },
    /// Another process did the work; `done` found its result in the store.
    FleetFilled,
}

/// The in-process single-flight registry: one flight per key.
pub(crate) struct Flights<T> {
    inflight: Mutex<HashMap<String, Receiver<T>>>,
}

type Receiver<T> = tokio::sync::watch::Receiver<Option<Result<T, Error>>>;

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

enum Role<T> {
    Leader(tokio::sync::watch::Sender<Option<Result<T, Error>>>),
    Follower(Receiver<T>),
}

/// Removes the leader's entry when it settles or is dropped. Only the leader that inserted
/// the key removes it, so the entry it removes is its own.
struct Settle<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
}

impl<T> Drop for Settle<'_, T> {
    fn drop(&mut self) {
        self.flights.map().remove(self.key);
    }
}

impl<T> Flights<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Receiver<T>>> {
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many keys have a flight in progress.
    pub(crate) fn in_flight(&self) -> usize {
        self.map().len()
    }
}

impl<T: Clone> Flights<T> {
    /// Runs `work` for `key` unless a flight for `key` is in progress, in which case it waits
    /// for that flight's outcome, until `deadline` (on its clock) at most: past it, this caller
    /// runs its own `work` (which fails at once with the caller's own timeout). `work` returns
    /// the shared value and the leader's own extra `X`; the result carries `Some(X)` when this
    /// caller ran `work`, `None` when it followed.
    pub(crate) async fn run<X, F, Fut>(
        &self,
        key: &str,
        deadline: Option<(&dyn Clock, Timestamp)>,
        work: F,
    ) -> Result<(T, Option<X>), Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, X), Error>>,
    {
        loop {
            let role = {
                let mut map = self.map();
                match map.get(key) {
                    Some(rx) => Role::Follower(rx.clone()),
                    None => {
                        let (tx, rx) = tokio::sync::watch::channel(None);
                        map.insert(key.to_owned(), rx);
                        Role::Leader(tx)
                    }
                }
            };
            match role {
                Role::Follower(mut rx) => {
                    // Ends with the leader's outcome, or with `None` if it was dropped first.
                    let leader = async {
                        let waited = rx.wait_for(Option::is_some).await.map(|o| o.clone());
                        match waited {
                            Ok(outcome) => outcome,
                            Err(_) => rx.borrow().clone(),
                        }
                    };
                    let outcome = match deadline {
                        None => leader.await,
                        Some((clock, at)) => {
                            let left = at.saturating_duration_since(clock.now());
                            match crate::time::timeout(clock, left, leader).await {
                                Some(outcome) => outcome,
                                None => {
                                    return work().await.map(|(value, extra)| (value, Some(extra)));
                                }
                            }
                        }
                    };
                    match outcome {
                        Some(result) => return result.map(|value| (value, None)),
                        // The leader was dropped before it finished: lead (or follow) anew.
                        None => continue,
                    }
                }
                Role::Leader(tx) => {
                    let settle = Settle { flights: self, key };
                    let result = work().await;
                    drop(settle);
                    let (shared, extra) = match result {
                        Ok((value, extra)) => (Ok(value), Some(extra)),
                        Err(error) => (Err(error), None),
                    };
                    tx.send_replace(Some(shared.clone()));
                    return shared.map(|value| (value, extra));
                }
            }
        }
    }
}

/// Where and how a flight coordinates across processes: the owned lock and its timing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FleetTiming {
    /// The lock's TTL (renewed every third of it while the holder works).
    pub(crate) lock_ttl: Duration,
    /// The interval between two polls of a waiting caller, jittered ±50%.
    pub(crate) poll: Duration,
    /// The longest a caller waits on another process before it fetches itself; `None`:
    /// until the caller's deadline ([`FleetFlight::deadline`]).
    pub(crate) wait: Option<Duration>,
}

impl Default for FleetTiming {
    fn default() -> Self {
        FleetTiming {
            lock_ttl: DEFAULT_LOCK_TTL,
            poll: DEFAULT_POLL,
            wait: None,
        }
    }
}

/// A flight's fleet coordination: the store (which has owned locks), the lock key, timing,
/// and the caller's deadline, past which it stops waiting on another process and runs its own
/// fetch (which fails at once with the caller's own timeout).
#[derive(Debug)]
pub(crate) struct FleetFlight<'a> {
    pub(crate) store: DynStore,
    pub(crate) lock_key: String,
    pub(crate) timing: FleetTiming,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) deadline: Option<Timestamp>,
}

/// Leads a flight: with `fleet`, under its owned lock (or waiting for another process's
/// result); without, by running `fetch` at once. `done` looks for the work's result in the
/// store (another process's, or one written since the caller last looked).
pub(crate) async fn lead<T, D, DF, F, FF>(
    fleet: Option<FleetFlight<'_>>,
    done: D,
    fetch: F,
) -> Result<(T, Flown), Error>
where
    D: Fn() -> DF,
    DF: Future<Output = Result<Option<T>, Error>>,
    F: FnOnce() -> FF,
    FF: Future<Output = Result<T, Error>>,
{
    let Some(fleet) = fleet else {
        return fetch()
            .await
            .map(|value| (value, Flown::Led { waited: false }));
    };
    let lock = FleetLock::new(
        fleet.store.clone(),
        fleet.lock_key.clone(),
        fleet.timing.lock_ttl,
    );
    let clock = fleet.clock;
    let failure_key = keys::flight_failure(&fleet.lock_key);
    let mut waited = false;
    // The token of the holder this caller waits on: its failure is this caller's too.
    let mut awaited: Option<Bytes> = None;
    let started = clock.now();
    loop {
        match lock.try_acquire().await {
            Ok(Some(held)) => {
                if let Some(failure) = shared_failure(&fleet.store, &failure_key, &awaited).await {
                    held.release().await;
                    return Err(failure);
                }
                return fetch_holding(held, clock, waited, &done, fetch, &failure_key).await;
            }
            Ok(None) => {
                if awaited.is_none() {
                    awaited = fleet.store.get(&fleet.lock_key).await.ok().flatten();
                }
            }
            Err(error) => {
                // Without a store there is nothing to coordinate through: fetch here.
                tracing::debug!(%error, "fleet lock unavailable; fetching without it");
                return fetch().await.map(|value| (value, Flown::Led { waited }));
            }
        }
        waited = true;
        let now = clock.now();
        let until_wait = fleet
            .timing
            .wait
            .map(|wait| wait.saturating_sub(now.saturating_duration_since(started)));
        let until_deadline = fleet
            .deadline
            .map(|deadline| deadline.saturating_duration_since(now));
        let left = until_wait.into_iter().chain(until_deadline).min();
        if left.is_some_and(|left| left.is_zero()) {
            tracing::debug!("waited as long as allowed for another process; fetching here");
            return fetch().await.map(|value| (value, Flown::Led { waited }));
        }
        let mut pause = fleet.timing.poll.mul_f64(0.5 + fastrand::f64());
        if let Some(left) = left {
            pause = pause.min(left);
        }
        clock.sleep(pause).await;
        if let Ok(Some(value)) = done().await {
            return Ok((value, Flown::FleetFilled));
        }
        if let Some(failure) = shared_failure(&fleet.store, &failure_key, &awaited).await {
            return Err(failure);
        }
    }
}

/// What a failed leader leaves for its waiters: who failed, and how.
#[derive(Serialize, Deserialize)]
struct LeftFailure {
    by: String,
    kind: ErrorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// The failure the awaited holder left, as this caller's error; `None` if it left none (or
/// the store cannot say).
async fn shared_failure(
    store: &DynStore,
    failure_key: &str,
    awaited: &Option<Bytes>,
) -> Option<Error> {
    let awaited = awaited.as_ref()?;
    let bytes = store.get(failure_key).await.ok().flatten()?;
    let left: LeftFailure = serde_json::from_slice(&bytes).ok()?;
    if left.by.as_bytes() != &awaited[..] {
        return None;
    }
    let status = left
        .status
        .and_then(|status| http::StatusCode::from_u16(status).ok());
    let mut error = Error::new(
        left.kind,
        match status {
            Some(status) => format!(
                "the shared fetch failed in another process ({:?}, HTTP {})",
                left.kind,
                status.as_u16()
            ),
            None => format!(
                "the shared fetch failed in another process ({:?})",
                left.kind
            ),
        },
    )
    .with_retry_after(left.retry_after_ms.map(Duration::from_millis));
    if let Some(status) = status {
        error = error.with_status(status);
    }
    Some(error)
}

/// Whether a leader's failure is the upstream's answer, the same for every caller of the
/// flight: an HTTP status, a rate limit, a transport failure, a response that does not
/// validate, a credential refused. A timeout is not (it may be the leader's own deadline, and
/// each waiter stops at its own), nor is a store, circuit, input or declaration error.
fn is_upstream_failure(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Http
            | ErrorKind::RateLimited
            | ErrorKind::Transport
            | ErrorKind::Validation
            | ErrorKind::Auth
    )
}

/// Leaves `error` beside the lock for the callers waiting on `held`. Best effort: a caller
/// that misses it fetches itself.
async fn leave_failure(store: &DynStore, failure_key: &str, held: &HeldLock, error: &Error) {
    let left = LeftFailure {
        by: String::from_utf8_lossy(held.token()).into_owned(),
        kind: error.kind(),
        status: error.status().map(|status| status.as_u16()),
        retry_after_ms: error
            .retry_after()
            .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
    };
    let Ok(bytes) = serde_json::to_vec(&left) else {
        return;
    };
    if let Err(error) = store
        .set(failure_key, Some(Bytes::from(bytes)), Some(held.ttl()))
        .await
    {
        tracing::debug!(%error, "could not leave the flight's failure for its waiters");
    }
}

async fn fetch_holding<T, D, DF, F, FF>(
    held: HeldLock,
    clock: &dyn Clock,
    waited: bool,
    done: &D,
    fetch: F,
    failure_key: &str,
) -> Result<(T, Flown), Error>
where
    D: Fn() -> DF,
    DF: Future<Output = Result<Option<T>, Error>>,
    F: FnOnce() -> FF,
    FF: Future<Output = Result<T, Error>>,
{
    // The previous holder may have finished just before this one took the lock (a store
    // that fails this look is looked past: the fetch goes on).
    let result = match done().await {
        Ok(Some(value)) => Ok((value, Flown::FleetFilled)),
        _ => held
            .hold(clock, fetch())
            .await
            .map(|value| (value, Flown::Led { waited })),
    };
    if let Err(error) = &result
        && is_upstream_failure(error)
    {
        leave_failure(held.store(), failure_key, &held, error).await;
    }
    held.release().await;
    result
}

#[cfg(test)]
mod tests;
