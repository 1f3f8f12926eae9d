//! Time, injected: a [`Clock`] tells the time and sleeps.
//!
//! Everything in stitchapi that waits or measures (retry backoff, deadlines, per-attempt
//! timeouts, throttle pacing, TTLs, token expiry) asks the stitch's clock, never the OS
//! directly. That is what lets tests run in virtual time with [`ManualClock`], and lets the same
//! engine run in a Cloudflare Worker where timers come from JavaScript.
//!
//! ```
//! use std::time::Duration;
//! use stitchapi::time::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let start = clock.now();
//! clock.advance(Duration::from_millis(250));
//! assert_eq!(clock.now().saturating_duration_since(start), Duration::from_millis(250));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::{Add, Sub};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::runtime::{BoxFuture, MaybeSend, MaybeSync};

/// A point in wall-clock time, held as the duration since the UNIX epoch.
///
/// Stores exchange timestamps as (fractional) milliseconds, so a fleet of processes can agree on
/// pacing cells; [`Timestamp::as_millis_f64`] and [`Timestamp::from_millis_f64`] convert.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::time::Timestamp;
///
/// let t = Timestamp::from_millis_f64(1_000.5);
/// assert_eq!((t + Duration::from_millis(2)).as_millis_f64(), 1_002.5);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(Duration);

impl Timestamp {
    /// The UNIX epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(Duration::ZERO);

    /// A timestamp `since_epoch` after the UNIX epoch.
    pub const fn from_unix(since_epoch: Duration) -> Self {
        Timestamp(since_epoch)
    }

    /// The time since the UNIX epoch.
    pub const fn since_unix(self) -> Duration {
        self.0
    }

    /// A timestamp from milliseconds since the epoch; negative values and NaN clamp to the
    /// epoch, values past the last representable instant (`+inf` included) to that instant.
    /// It never panics, whatever a store or a server handed over.
    pub fn from_millis_f64(millis: f64) -> Self {
        if millis > 0.0 {
            Timestamp(Duration::try_from_secs_f64(millis / 1000.0).unwrap_or(Duration::MAX))
        } else {
            Timestamp::UNIX_EPOCH
        }
    }

    /// Milliseconds since the epoch, with the sub-millisecond fraction kept.
    pub fn as_millis_f64(self) -> f64 {
        self.0.as_secs_f64() * 1000.0
    }

    /// Whole milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(rhs))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.as_millis_f64())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.as_millis_f64())
    }
}

/// Tells the time and sleeps. Inject one into a stitch or seam with `.clock(...)`.
///
/// Implementations: [`SystemClock`] (the default: tokio timers on native, JavaScript timers on
/// wasm32) and [`ManualClock`] (virtual time for tests).
///
/// `Any` lets the engine recognise the [`SystemClock`] and time requests with tokio's own
/// timeout on native targets (every `'static` type is `Any`: nothing to implement).
pub trait Clock: std::any::Any + MaybeSend + MaybeSync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> Timestamp;

    /// A future that completes after `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// [`sleep`](Clock::sleep), ending as close to `duration` as the clock can: what a
    /// throttle waits for its slot with, so paced calls are evenly spaced. The default is
    /// `sleep`; [`SystemClock`] on native targets sleeps on tokio's millisecond timer until
    /// less than two milliseconds are left, then on `futures-timer`'s precise timer thread.
    fn sleep_precise(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleep(duration)
    }
}

/// Runs `future` for at most `limit` on `clock`: `None` when the limit ran out first (the
/// future is then dropped, which cancels it).
///
/// For store and transport authors who bound a backend call by the stitch's clock (so virtual
/// time in tests drives it too), as the Upstash store does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use stitchapi::time::{ManualClock, timeout};
///
/// let clock = ManualClock::auto_advance();
/// let never = std::future::pending::<()>();
/// assert_eq!(timeout(&clock, Duration::from_secs(2), never).await, None);
/// assert_eq!(timeout(&clock, Duration::from_secs(2), async { 7 }).await, Some(7));
/// # }
/// ```
pub async fn timeout<F: Future>(
    clock: &dyn Clock,
    limit: Duration,
    future: F,
) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    match futures_util::future::select(future, clock.sleep(limit)).await {
        futures_util::future::Either::Left((output, _)) => Some(output),
        futures_util::future::Either::Right(((), _)) => None,
    }
}

/// The real clock: wall-clock time, with tokio timers on native targets and JavaScript timers
/// (`setTimeout`) on wasm32.
///
/// On native targets time is read as "wall clock at construction plus monotonic time elapsed",
/// which keeps it monotonic and makes `tokio::time::pause()` drive it in tests.
#[derive(Clone, Debug)]
pub struct SystemClock {
    #[cfg(not(target_arch = "wasm32"))]
    anchor: (Timestamp, tokio::time::Instant),
}

impl SystemClock {
    /// A system clock anchored at the current time.
    pub fn new() -> Self {
        SystemClock {
            #[cfg(not(target_arch = "wasm32"))]
            anchor: (wall_now(), tokio::time::Instant::now()),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Tokio's timer fires on whole milliseconds, and its wake-up may come about one more late.
#[cfg(not(target_arch = "wasm32"))]
const TIMER_RESOLUTION: Duration = Duration::from_millis(2);

/// Sleeps `duration` to within tens of microseconds, without spinning: tokio's timer until
/// less than its resolution is left, then `futures-timer`'s timer thread (which parks with the
/// OS's precision, as governor's `until_ready` does) for the rest. Under `tokio::time::pause`
/// the rest is real time (at most the resolution) and the end is then reached on the paused
/// clock by a plain sleep.
#[cfg(not(target_arch = "wasm32"))]
async fn precise_sleep(duration: Duration) {
    use tokio::time::Instant;
    let end = Instant::now() + duration;
    if let Some(coarse) = end.checked_sub(TIMER_RESOLUTION) {
        tokio::time::sleep_until(coarse).await;
    }
    let left = end.saturating_duration_since(Instant::now());
    if !left.is_zero() && left <= TIMER_RESOLUTION {
        futures_timer::Delay::new(left).await;
    }
    if Instant::now() < end {
        tokio::time::sleep_until(end).await;
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn wall_now() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(since)
}

#[cfg(target_arch = "wasm32")]
fn wall_now() -> Timestamp {
    let since = web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(since)
}

impl Clock for SystemClock {
    #[cfg(not(target_arch = "wasm32"))]
    fn now(&self) -> Timestamp {
        self.anchor.0 + self.anchor.1.elapsed()
    }

    #[cfg(target_arch = "wasm32")]
    fn now(&self) -> Timestamp {
        wall_now()
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn sleep_precise(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(precise_sleep(duration))
    }

    #[cfg(target_arch = "wasm32")]
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        // setTimeout takes an i32 of milliseconds; longer sleeps are chained.
        Box::pin(async move {
            let mut left = duration;
            while !left.is_zero() {
                let step = left.min(Duration::from_millis(i32::MAX as u64));
                gloo_timers::future::sleep(step).await;
                left -= step;
            }
        })
    }
}

/// A clock that moves only when told to: virtual time for tests.
///
/// [`advance`](ManualClock::advance) moves time forward and wakes every sleeper whose deadline
/// has come. With [`ManualClock::auto_advance`], a sleep instead jumps the clock to its own
/// deadline when it is first polled, which suits tests whose only waits are sleeps (retry
/// backoff, `Retry-After`) and whose transport answers at once (`MockTransport`): a timeout
/// whose future is already done never moves the clock. Do not combine it with timeouts that
/// race real I/O: the timeout's sleep would complete as soon as the request waits, before the
/// response could arrive. Every stitch has a total timeout by default, so a stitch calling a
/// real server on this clock declares `Timeout::none()`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use stitchapi::time::{Clock, ManualClock};
///
/// let clock = ManualClock::auto_advance();
/// let t0 = clock.now();
/// clock.sleep(Duration::from_secs(30)).await; // returns at once
/// assert_eq!(clock.now().saturating_duration_since(t0), Duration::from_secs(30));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: Timestamp,
    auto_advance: bool,
    next_id: u64,
    sleepers: BTreeMap<u64, (Timestamp, Option<Waker>)>,
}

impl ManualClock {
    /// The instant a new manual clock starts at: 2026-01-01T00:00:00Z.
    pub const START: Timestamp = Timestamp(Duration::from_secs(1_767_225_600));

    /// A manual clock at [`ManualClock::START`] that moves only on [`advance`](Self::advance).
    pub fn new() -> Self {
        Self::starting_at(Self::START, false)
    }

    /// A manual clock whose sleeps complete at once, moving the clock to their deadline.
    pub fn auto_advance() -> Self {
        Self::starting_at(Self::START, true)
    }

    /// A manual clock starting at `now`.
    pub fn at(now: Timestamp) -> Self {
        Self::starting_at(now, false)
    }

    fn starting_at(now: Timestamp, auto_advance: bool) -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualState {
                now,
                auto_advance,
                next_id: 0,
                sleepers: BTreeMap::new(),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves time forward by `by` and wakes every sleeper whose deadline has come.
    pub fn advance(&self, by: Duration) {
        let wakers: Vec<Waker> = {
            let mut state = self.state();
            state.now = state.now + by;
            let now = state.now;
            state
                .sleepers
                .values_mut()
                .filter(|(deadline, _)| *deadline <= now)
                .filter_map(|(_, waker)| waker.take())
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Moves time to the earliest pending sleeper's deadline and wakes it; returns how far the
    /// clock moved, or `None` when nothing sleeps.
    pub fn advance_to_next(&self) -> Option<Duration> {
        let step = {
            let state = self.state();
            let next = state
                .sleepers
                .values()
                .map(|(deadline, _)| *deadline)
                .min()?;
            next.saturating_duration_since(state.now)
        };
        self.advance(step);
        Some(step)
    }

    /// How many sleeps are pending (created, not yet finished, not dropped).
    pub fn pending(&self) -> usize {
        let state = self.state();
        let now = state.now;
        state
            .sleepers
            .values()
            .filter(|(deadline, _)| *deadline > now)
            .count()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.state().now
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut state = self.state();
        let deadline = state.now + duration;
        if state.auto_advance {
            // The clock jumps when the sleep is first polled, not when it is created: a timer
            // raced against a future that is already done (`select` polls that future first)
            // never moves the clock.
            let clock = self.clone();
            return Box::pin(std::future::poll_fn(move |_| {
                let mut state = clock.state();
                if deadline > state.now {
                    state.now = deadline;
                }
                Poll::Ready(())
            }));
        }
        let id = state.next_id;
        state.next_id += 1;
        state.sleepers.insert(id, (deadline, None));
        Box::pin(ManualSleep {
            clock: self.clone(),
            id,
            deadline,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    id: u64,
    deadline: Timestamp,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.clock.state();
        if state.now >= self.deadline {
            state.sleepers.remove(&self.id);
            return Poll::Ready(());
        }
        if let Some(entry) = state.sleepers.get_mut(&self.id) {
            entry.1 = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.clock.state().sleepers.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_wakes_on_advance() {
        let clock = ManualClock::new();
        let c2 = clock.clone();
        let task = tokio::spawn(async move { c2.sleep(Duration::from_secs(5)).await });
        while clock.pending() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        clock.advance(Duration::from_secs(1));
        task.await.unwrap();
        assert_eq!(clock.pending(), 0);
    }

    #[tokio::test]
    async fn advance_to_next_moves_to_earliest_deadline() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        let _a = clock.sleep(Duration::from_secs(3));
        let _b = clock.sleep(Duration::from_secs(1));
        assert_eq!(clock.advance_to_next(), Some(Duration::from_secs(1)));
        assert_eq!(
            clock.now().saturating_duration_since(t0),
            Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn system_clock_follows_paused_tokio_time() {
        let clock = SystemClock::new();
        let t0 = clock.now();
        clock.sleep(Duration::from_secs(60)).await;
        let elapsed = clock.now().saturating_duration_since(t0);
        assert!(elapsed >= Duration::from_secs(60) && elapsed < Duration::from_secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn precise_sleep_follows_paused_tokio_time() {
        let clock = SystemClock::new();
        for duration in [Duration::from_micros(2_500), Duration::from_secs(60)] {
            let t0 = clock.now();
            clock.sleep_precise(duration).await;
            let elapsed = clock.now().saturating_duration_since(t0);
            assert!(
                elapsed >= duration && elapsed < duration + TIMER_RESOLUTION,
                "{elapsed:?} for {duration:?}"
            );
        }
    }

    #[tokio::test]
    async fn precise_sleep_never_ends_early() {
        let clock = SystemClock::new();
        for micros in [0, 300, 1_000, 2_700] {
            let duration = Duration::from_micros(micros);
            let start = std::time::Instant::now();
            clock.sleep_precise(duration).await;
            assert!(start.elapsed() >= duration, "{micros} µs");
        }
    }

    #[test]
    fn timestamp_millis_round_trip_keeps_fractions() {
        let t = Timestamp::from_millis_f64(1_767_225_600_333.333);
        assert!((t.as_millis_f64() - 1_767_225_600_333.333).abs() < 1e-3);
        assert_eq!(Timestamp::from_millis_f64(-5.0), Timestamp::UNIX_EPOCH);
    }

    /// Regression: a huge value (from a store or a server) panicked in `from_secs_f64`.
    #[test]
    fn timestamp_arithmetic_saturates_on_extreme_values() {
        let end = Timestamp::from_unix(Duration::MAX);
        assert_eq!(Timestamp::from_millis_f64(1e300), end);
        assert_eq!(Timestamp::from_millis_f64(f64::INFINITY), end);
        assert_eq!(Timestamp::from_millis_f64(f64::NAN), Timestamp::UNIX_EPOCH);
        assert_eq!(
            Timestamp::from_millis_f64(f64::NEG_INFINITY),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(ManualClock::START + Duration::MAX, end);
        assert_eq!(end.as_millis(), u64::MAX);
        assert_eq!(ManualClock::START - Duration::MAX, Timestamp::UNIX_EPOCH);
    }
}
