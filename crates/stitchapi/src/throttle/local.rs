//! The in-process limiter: a FIFO concurrency semaphore and a pacing cell, owned by one
//! limiter (a seam's bucket or a stitch's throttle).
//!
//! A waiter cancelled before its turn gives its turn back: the cell returns to where it was
//! before the latest outstanding reservation whenever that one is cancelled, and past every
//! cancelled one before it, so a burst of cancelled callers costs the next caller nothing.
//! A cancelled turn with a live one after it stays spent (the live one keeps its time, and
//! grants stay exactly spaced).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::gcra;
use super::{AcquireError, Grant, Permit, granted};
use crate::store::Reservation;
use crate::time::{Clock, Timestamp, timeout};

#[derive(Debug)]
struct LocalState {
    pacing: Mutex<Pacing>,
    semaphore: Option<Arc<Semaphore>>,
}

/// The pacing cell and the turns handed out that have not come yet.
#[derive(Debug, Default)]
struct Pacing {
    cell: Option<Timestamp>,
    /// Outstanding turns by sequence number (the last is the latest): the cell before each
    /// was handed out, and whether its waiter was cancelled.
    outstanding: BTreeMap<u64, Turn>,
    next_seq: u64,
}

#[derive(Debug)]
struct Turn {
    before: Option<Timestamp>,
    cancelled: bool,
}

impl Pacing {
    /// One reserve: the grant time and the turn's number, or the refusal.
    fn reserve(
        &mut self,
        now: Timestamp,
        spacing: Duration,
        deadline: Option<Timestamp>,
    ) -> (Reservation, u64) {
        let before = self.cell;
        let (reservation, next) = gcra::step(before, now, spacing, deadline);
        self.cell = next;
        let seq = self.next_seq;
        if matches!(reservation, Reservation::Granted(_)) {
            self.next_seq += 1;
            self.outstanding.insert(
                seq,
                Turn {
                    before,
                    cancelled: false,
                },
            );
        }
        (reservation, seq)
    }

    /// The turn's time has come and its waiter goes on. Every turn before it is forgotten
    /// too: the cell can never be given back past a turn that went out (an earlier turn
    /// cancelled later stays spent).
    fn taken(&mut self, seq: u64) {
        self.outstanding = self.outstanding.split_off(&(seq + 1));
    }

    /// The turn's waiter is gone: unwind the cell past every cancelled turn at the end.
    fn cancelled(&mut self, seq: u64) {
        if let Some(turn) = self.outstanding.get_mut(&seq) {
            turn.cancelled = true;
        }
        while let Some(entry) = self.outstanding.last_entry() {
            if !entry.get().cancelled {
                break;
            }
            self.cell = entry.remove().before;
        }
    }
}

/// A turn handed out and not yet taken: dropped before [`take`](Self::take), it is given
/// back.
struct TurnGuard {
    state: Arc<LocalState>,
    seq: u64,
    taken: bool,
}

impl TurnGuard {
    fn take(mut self) {
        self.taken = true;
        self.state.pacing().taken(self.seq);
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if !self.taken {
            self.state.pacing().cancelled(self.seq);
        }
    }
}

impl LocalState {
    fn pacing(&self) -> std::sync::MutexGuard<'_, Pacing> {
        self.pacing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
                pacing: Mutex::new(Pacing::default()),
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
        let (reservation, seq) = self.state.pacing().reserve(now, spacing, deadline);
        let at = granted(reservation, now.saturating_duration_since(start))?;
        let turn = TurnGuard {
            state: self.state.clone(),
            seq,
            taken: false,
        };
        let grant = Grant::paced(&*self.clock, permit, start, Some(at)).await;
        turn.take();
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(pacing: &mut Pacing, now: Timestamp, spacing: Duration, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| match pacing.reserve(now, spacing, None) {
                (Reservation::Granted(_), seq) => seq,
                (refused, _) => panic!("{refused:?}"),
            })
            .collect()
    }

    #[test]
    fn cancelled_turns_at_the_end_are_given_back_in_any_order() {
        let t = Timestamp::from_unix(Duration::from_secs(100));
        let s = Duration::from_millis(100);
        let mut pacing = Pacing::default();
        let seqs = turns(&mut pacing, t, s, 5);
        pacing.taken(seqs[0]);
        // Cancelled front to back: nothing is given back until the latest goes.
        for &seq in &seqs[2..4] {
            pacing.cancelled(seq);
            assert_eq!(pacing.cell, Some(t + s * 5));
        }
        pacing.cancelled(seqs[4]);
        // Back to the turn after the live one at t + 100 ms.
        assert_eq!(pacing.cell, Some(t + s * 2));
        assert_eq!(pacing.outstanding.len(), 1);
        assert_eq!(
            pacing.reserve(t, s, None).0,
            Reservation::Granted(t + s * 2)
        );
    }

    #[test]
    fn a_cancelled_turn_before_a_live_one_stays_spent() {
        let t = Timestamp::from_unix(Duration::from_secs(100));
        let s = Duration::from_millis(100);
        let mut pacing = Pacing::default();
        let seqs = turns(&mut pacing, t, s, 3);
        pacing.cancelled(seqs[1]);
        assert_eq!(
            pacing.reserve(t, s, None).0,
            Reservation::Granted(t + s * 3)
        );
        // A refusal hands out no turn.
        let (refused, _) = pacing.reserve(t, s, Some(t));
        assert_eq!(refused, Reservation::Refused(t + s * 4));
        // Three live turns and the cancelled one between them.
        assert_eq!(pacing.outstanding.len(), 4);
    }

    #[test]
    fn nothing_is_given_back_past_a_turn_that_went_out() {
        let t = Timestamp::from_unix(Duration::from_secs(100));
        let s = Duration::from_millis(100);
        let mut pacing = Pacing::default();
        let [a, b, c] = turns(&mut pacing, t, s, 3)[..] else {
            unreachable!()
        };
        // B is cancelled while C still waits; then A and C go out.
        pacing.cancelled(b);
        pacing.taken(a);
        pacing.taken(c);
        // D is handed out after C and cancelled: the cell returns to just after C, not to B.
        let later = t + Duration::from_millis(250);
        let (_, d) = pacing.reserve(later, s, None);
        pacing.cancelled(d);
        assert_eq!(pacing.cell, Some(t + s * 3));
        assert_eq!(
            pacing.reserve(t + Duration::from_millis(270), s, None).0,
            Reservation::Granted(t + s * 3)
        );
        // A later turn taken before an earlier one is polled: the earlier one's cancel gives
        // nothing back either.
        let mut pacing = Pacing::default();
        let [e, f] = turns(&mut pacing, t, s, 2)[..] else {
            unreachable!()
        };
        pacing.taken(f);
        pacing.cancelled(e);
        assert_eq!(pacing.cell, Some(t + s * 2));
    }

    #[test]
    fn a_cell_given_back_after_idle_time_restarts_from_now() {
        let t = Timestamp::from_unix(Duration::from_secs(100));
        let s = Duration::from_millis(100);
        let mut pacing = Pacing::default();
        let first = turns(&mut pacing, t, s, 1)[0];
        pacing.taken(first);
        // Long after, a turn is handed out and cancelled: the cell is the old one, so the
        // next caller is granted at once.
        let later = t + Duration::from_secs(10);
        let seq = match pacing.reserve(later, s, None) {
            (Reservation::Granted(at), seq) if at == later => seq,
            other => panic!("{other:?}"),
        };
        pacing.cancelled(seq);
        assert_eq!(
            pacing.reserve(later, s, None).0,
            Reservation::Granted(later)
        );
    }
}
