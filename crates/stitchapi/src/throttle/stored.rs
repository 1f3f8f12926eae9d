//! The store-backed limiter: pacing and concurrency kept in the store, so every limiter over
//! the same store and key shares them (a fleet, or a host pool in one process).
//!
//! - **Pacing through `reserve`** (the GCRA cell at `rl:<key>`): exact fleet-wide spacing,
//!   wherever in a window a process starts. The call's deadline is the reserve's `latest`, so a
//!   caller that would be served too late is refused without advancing the cell.
//! - **Pacing through `increment`** (the fallback when the store has no `reserve`): a counter
//!   per window at `rl:<key>:<window start ms>`; the `n`-th grant of a window is due at
//!   `window start + (n - 1) × spacing`, and each process also keeps its own exact spacing.
//!   **Over-admission:** a fleet whose processes start in the middle of a window runs at up to
//!   N× the rate until the window's slots catch up with the clock (the first grants of a window
//!   are due in the past, so they are granted at once); at each window boundary the fleet
//!   shares one budget again. A caller refused for its deadline has still used its count.
//! - **Concurrency through `lease`/`release`** at `cc:<key>`: a random 16-hex token per
//!   acquire, polled with full jitter in [0, 50 ms) while refused (no FIFO order across the
//!   fleet). A crashed holder frees its slot when its lease expires. A call cancelled while
//!   its lease is in flight, or whose store answered with an error, releases the token in the
//!   background: the store may have granted it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::local::LocalLimiter;
use super::rate::{window_slot, window_start};
use super::{AcquireError, Grant, Permit, StoreFailure, granted};
use crate::store::{DynStore, StoreError, keys};
use crate::time::{Clock, Timestamp};

/// How the store-backed limiter paces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pacing {
    Reserve,
    Window,
}

#[derive(Debug, Default)]
struct WindowState {
    last_window: Option<Timestamp>,
    next_local: Option<Timestamp>,
}

#[derive(Debug)]
pub(crate) struct StoreLimiter {
    pub(crate) store: DynStore,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) key: String,
    /// `(spacing, per, how)`.
    pub(crate) rate: Option<(Duration, Duration, Pacing)>,
    pub(crate) concurrency: Option<u32>,
    pub(crate) lease: Duration,
    pub(crate) on_store_error: StoreFailure,
    pub(crate) fallback: LocalLimiter,
    window: Mutex<WindowState>,
}

/// The shortest life of a pacing cell.
const CELL_MIN_TTL: Duration = Duration::from_secs(60);

/// Extra TTL past the period on pacing keys.
const TTL_SLACK: Duration = Duration::from_millis(100);
/// The upper bound of the full-jitter poll while a lease is refused.
const POLL_JITTER_MICROS: u64 = 50_000;

impl StoreLimiter {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: DynStore,
        clock: Arc<dyn Clock>,
        key: String,
        rate: Option<(Duration, Duration, Pacing)>,
        concurrency: Option<u32>,
        lease: Duration,
        on_store_error: StoreFailure,
        fallback: LocalLimiter,
    ) -> Self {
        StoreLimiter {
            store,
            clock,
            key,
            rate,
            concurrency,
            lease,
            on_store_error,
            fallback,
            window: Mutex::new(WindowState::default()),
        }
    }

    pub(crate) async fn acquire(
        &self,
        deadline: Option<Timestamp>,
        rate_only: bool,
    ) -> Result<Grant, AcquireError> {
        match self.acquire_shared(deadline, rate_only).await {
            Err(AcquireError::Store(error)) if self.on_store_error == StoreFailure::FailOpen => {
                let mut grant = self.fallback.acquire(deadline, rate_only).await?;
                grant.fell_back = Some(error);
                Ok(grant)
            }
            other => other,
        }
    }

    async fn acquire_shared(
        &self,
        deadline: Option<Timestamp>,
        rate_only: bool,
    ) -> Result<Grant, AcquireError> {
        let start = self.clock.now();
        let mut permit = Permit::empty();
        if let (false, Some(limit)) = (rate_only, self.concurrency) {
            permit = self.lease_slot(limit, start, deadline).await?;
        }
        let Some((spacing, per, pacing)) = self.rate else {
            return Ok(Grant::paced(&*self.clock, permit, start, None).await);
        };
        let now = self.clock.now();
        let at = match pacing {
            Pacing::Reserve => {
                // The cell must outlive every grant already handed out: a burst can queue
                // grants far beyond one period, and a cell that expired under them would let
                // newcomers in early. A minute (or the period, if longer) covers any queue a
                // call deadline allows in practice.
                let reservation = self
                    .store
                    .reserve(
                        &keys::rate_cell(&self.key),
                        spacing,
                        now,
                        deadline,
                        Some(per.max(CELL_MIN_TTL) + TTL_SLACK),
                    )
                    .await?;
                granted(reservation, now.saturating_duration_since(start))?
            }
            Pacing::Window => {
                let at = self.window_grant(now, spacing, per).await?;
                if deadline.is_some_and(|deadline| at > deadline) {
                    return Err(AcquireError::deadline(now.saturating_duration_since(start)));
                }
                at
            }
        };
        Ok(Grant::paced(&*self.clock, permit, start, Some(at)).await)
    }

    async fn lease_slot(
        &self,
        limit: u32,
        start: Timestamp,
        deadline: Option<Timestamp>,
    ) -> Result<Permit, AcquireError> {
        let key = keys::concurrency(&self.key);
        let token = format!("{:016x}", fastrand::u64(..));
        loop {
            let now = self.clock.now();
            // The permit exists before the store is asked: if this future is dropped while the
            // lease is in flight, or the store's answer is lost, the store may have granted the
            // slot, and dropping the permit releases it (a release of a token the store does
            // not hold changes nothing). Only a definite refusal disarms it.
            let permit = Permit::lease(self.store.clone(), key.clone(), token.clone());
            if self
                .store
                .lease(&key, &token, limit, self.lease, now)
                .await?
            {
                return Ok(permit);
            }
            permit.disarm();
            let mut pause = Duration::from_micros(fastrand::u64(0..POLL_JITTER_MICROS));
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(AcquireError::deadline(now.saturating_duration_since(start)));
                }
                pause = pause.min(left);
            }
            self.clock.sleep(pause).await;
        }
    }

    async fn window_grant(
        &self,
        now: Timestamp,
        spacing: Duration,
        per: Duration,
    ) -> Result<Timestamp, StoreError> {
        let start = window_start(now, per);
        let stale = {
            let mut state = self
                .window
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let stale = state.last_window.filter(|last| *last < start);
            state.last_window = Some(start);
            stale
        };
        if let Some(stale) = stale {
            // Best effort: the key expires on its own.
            let _ = self.store.set(&self.window_key(stale), None, None).await;
        }
        let n = self
            .store
            .increment(&self.window_key(start), Some(per + TTL_SLACK))
            .await?;
        let slot = window_slot(start, n, spacing);
        let mut state = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let at = now.max(slot).max(state.next_local.unwrap_or(now));
        state.next_local = Some(at + spacing);
        Ok(at)
    }

    fn window_key(&self, start: Timestamp) -> String {
        keys::rate_window(&self.key, start)
    }
}
