//! The in-process limiter: a FIFO concurrency semaphore and a pacing cell, owned by one
//! limiter (a seam's bucket or a stitch's throttle).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::gcra;
use super::{AcquireError, Grant, Permit, granted};
use crate::time::{Clock, Timestamp, timeout};

#[derive(Debug)]
struct LocalState {
    cell: Mutex<Option<Timestamp>>,
    semaphore: Option<Arc<Semaphore>>,
}

#[derive(Debug, Clone)]
pub(crate) struct LocalLimiter {
    spacing: Option<Duration>,
    state: Arc<LocalState>,
    clock: Arc<dyn Clock>,
}

impl LocalLimiter {
    pub(crate) fn new(
        spacing: Option<Duration>,
        concurrency: Option<u32>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let semaphore = concurrency.map(|n| {
            Arc::new(Semaphore::new(
                usize::try_from(n).unwrap_or(Semaphore::MAX_PERMITS),
            ))
        });
        LocalLimiter {
            spacing,
            state: Arc::new(LocalState {
                cell: Mutex::new(None),
                semaphore,
            }),
            clock,
        }
    }

    pub(crate) async fn acquire(
        &self,
        deadline: Option<Timestamp>,
        rate_only: bool,
    ) -> Result<Grant, AcquireError> {
        let start = self.clock.now();
        let mut permit = Permit::empty();
        if let (false, Some(semaphore)) = (rate_only, &self.state.semaphore) {
            permit = match semaphore.clone().try_acquire_owned() {
                Ok(slot) => Permit::local(slot),
                Err(_) => {
                    let wait = Box::pin(semaphore.clone().acquire_owned());
                    let slot = match deadline {
                        None => wait.await,
                        Some(deadline) => {
                            let left = deadline.saturating_duration_since(start);
                            if left.is_zero() {
                                return Err(AcquireError::deadline(Duration::ZERO));
                            }
                            match timeout(&*self.clock, left, wait).await {
                                Some(slot) => slot,
                                None => {
                                    return Err(AcquireError::deadline(
                                        self.clock.now().saturating_duration_since(start),
                                    ));
                                }
                            }
                        }
                    };
                    // The semaphore is never closed.
                    slot.map(Permit::local).unwrap_or_else(|_| Permit::empty())
                }
            };
        }
        let Some(spacing) = self.spacing else {
            return Ok(Grant::paced(&*self.clock, permit, start, None).await);
        };
        let now = self.clock.now();
        let at = {
            let mut cell = self
                .state
                .cell
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (reservation, next) = gcra::step(*cell, now, spacing, deadline);
            *cell = next;
            granted(reservation, now.saturating_duration_since(start))?
        };
        Ok(Grant::paced(&*self.clock, permit, start, Some((now, at))).await)
    }
}
