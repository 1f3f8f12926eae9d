//! The GCRA cell: the one pacing step behind the in-process limiter, the memory store's
//! `reserve`, and every backend that computes `reserve` itself (the Redis script mirrors it).
//!
//! A cell holds the earliest time the next grant may be given. A reserve at `now` is granted
//! at `at = max(now, cell)` and moves the cell to `at + spacing`, so grants are spaced by
//! exactly `spacing` whoever asks. A caller may set `latest`, the last grant it accepts (its
//! deadline): past it the reserve is refused, the cell does not move, and the caller learns
//! `at`, the earliest grant it could have had. A refused caller therefore costs the callers
//! after it nothing.
//!
//! ```
//! use std::time::Duration;
//! use stitchapi::store::Reservation;
//! use stitchapi::throttle::gcra;
//! use stitchapi::time::Timestamp;
//!
//! let t = Timestamp::from_unix(Duration::from_secs(100));
//! let spacing = Duration::from_millis(100);
//! let (first, cell) = gcra::step(None, t, spacing, None);
//! assert_eq!((first, cell), (Reservation::Granted(t), Some(t + spacing)));
//! // A caller that accepts nothing later than t + 50 ms is refused; the cell stays.
//! let (refused, unchanged) = gcra::step(cell, t, spacing, Some(t + Duration::from_millis(50)));
//! assert_eq!((refused, unchanged), (Reservation::Refused(t + spacing), cell));
//! let (second, _) = gcra::step(cell, t, spacing, None);
//! assert_eq!(second, Reservation::Granted(t + spacing));
//! ```

use std::time::Duration;

use crate::store::Reservation;
use crate::time::Timestamp;

/// One reserve against `cell` (`None`: a fresh or lost cell): returns the answer and the
/// cell to store, which is `cell` itself when the reserve was refused.
pub fn step(
    cell: Option<Timestamp>,
    now: Timestamp,
    spacing: Duration,
    latest: Option<Timestamp>,
) -> (Reservation, Option<Timestamp>) {
    let at = cell.map_or(now, |cell| cell.max(now));
    if latest.is_some_and(|latest| at > latest) {
        return (Reservation::Refused(at), cell);
    }
    (Reservation::Granted(at), Some(at + spacing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_space_refusals_change_nothing() {
        let t = Timestamp::from_unix(Duration::from_secs(100));
        let s = Duration::from_millis(200);
        assert_eq!(
            step(None, t, s, None),
            (Reservation::Granted(t), Some(t + s))
        );
        assert_eq!(
            step(Some(t + s), t, s, None),
            (Reservation::Granted(t + s), Some(t + s * 2))
        );
        // A stale cell restarts from now.
        assert_eq!(
            step(Some(t - s), t, s, None),
            (Reservation::Granted(t), Some(t + s))
        );
        // Exactly at the limit is granted; past it is refused and the cell stays.
        assert_eq!(
            step(Some(t + s), t, s, Some(t + s)),
            (Reservation::Granted(t + s), Some(t + s * 2))
        );
        assert_eq!(
            step(Some(t + s), t, s, Some(t + s / 2)),
            (Reservation::Refused(t + s), Some(t + s))
        );
        assert_eq!(
            step(None, t, s, Some(t - s)),
            (Reservation::Refused(t), None)
        );
    }
}
