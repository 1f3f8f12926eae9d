//! The in-process limiter: a FIFO concurrency semaphore and a pacing cursor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::rate::gcra_step;
use super::{AcquireError, Grant, Permit};
use crate::time::{Clock, Timestamp, timeout};

/// State that several limiters may share (the `pool: host` registry).
#[derive(Debug)]
pub(crate) struct LocalState {
    cursor: Mutex<Option<Timestamp>>,
    semaphore: Option<Arc<Semaphore>>,
}

impl LocalState {
    fn new(concurrency: Option<u32>) -> Self {
        LocalState {
            cursor: Mutex::new(None),
            semaphore: concurrency.map(|n| {
                Arc::new(Semaphore::new(
                    usize::try_from(n).unwrap_or(Semaphore::MAX_PERMITS),
                ))
            }),
        }
    }
}

/// The process-wide registry for `pool: host`: one state per host. The first limiter built
/// for a host fixes its concurrency cap; pacing is shared (each limiter spaces by its own rate
/// from the shared cursor).
fn host_registry() -> &'static Mutex<HashMap<String, Arc<LocalState>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<LocalState>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
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
        host_pool: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let state = match host_pool {
            Some(host) => {
                let mut registry = host_registry()
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                registry
                    .entry(host.to_owned())
                    .or_insert_with(|| Arc::new(LocalState::new(concurrency)))
                    .clone()
            }
            None => Arc::new(LocalState::new(concurrency)),
        };
        LocalLimiter {
            spacing,
            state,
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
        if let Some(spacing) = self.spacing {
            let now = self.clock.now();
            let at = {
                let mut cursor = self
                    .state
                    .cursor
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let (at, cell) = gcra_step(*cursor, now, spacing);
                if deadline.is_some_and(|deadline| at > deadline) {
                    return Err(AcquireError::deadline(now.saturating_duration_since(start)));
                }
                *cursor = Some(cell);
                at
            };
            let wait = at.saturating_duration_since(now);
            if !wait.is_zero() {
                self.clock.sleep(wait).await;
            }
        }
        Ok(Grant {
            permit,
            waited: self.clock.now().saturating_duration_since(start),
            fell_back: None,
        })
    }
}
