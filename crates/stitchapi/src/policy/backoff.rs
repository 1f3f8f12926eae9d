//! Backoff curves: how long to wait before a retry.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The curve of waits between attempts. Bounds come from the retry policy: `base` (default
/// 100 ms) and `max` (default 10 s).
///
/// For the `n`th retry (`n` = 1 for the first):
/// - `Fixed`: `base`;
/// - `Expo`: `base × 2^(n−1)`;
/// - `ExpoJitter` (the default, "full jitter"): uniform in `[0, base × 2^(n−1))`;
/// - `DecorrelatedJitter`: uniform in `[base, previous × 3)`, starting from `base`;
///
/// each clamped to `max`.
///
/// ```
/// use stitchapi::{Backoff, Retry};
///
/// let retry = Retry::attempts(5).backoff(Backoff::DecorrelatedJitter).base("50ms").max("2s");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Backoff {
    /// Always `base`.
    Fixed,
    /// `base × 2^(n−1)`.
    Expo,
    /// Uniform in `[0, base × 2^(n−1))`: full jitter.
    #[default]
    ExpoJitter,
    /// Uniform in `[base, previous × 3)`: decorrelated jitter.
    DecorrelatedJitter,
}

impl Backoff {
    /// The wait before retry `n` (1-based). `previous` is the last wait (for decorrelated
    /// jitter) and `random` a uniform draw in `[0, 1)`.
    ///
    /// Never panics: the curve is computed in floating point and converted back saturating, so
    /// any `n`, bound or previous wait gives a duration in `[0, max]`.
    pub(crate) fn delay(
        self,
        n: u32,
        base: Duration,
        max: Duration,
        previous: Duration,
        random: f64,
    ) -> Duration {
        let exponential = || {
            let factor = 2_f64.powi(n.saturating_sub(1).min(62) as i32);
            base.as_secs_f64() * factor
        };
        let seconds = match self {
            Backoff::Fixed => base.as_secs_f64(),
            Backoff::Expo => exponential(),
            Backoff::ExpoJitter => random * exponential(),
            Backoff::DecorrelatedJitter => {
                let low = base.as_secs_f64();
                let high = (previous.max(base).as_secs_f64() * 3.0).max(low);
                low + random * (high - low)
            }
        };
        // Zero, negative or NaN (a draw outside `[0, 1)`) is no wait; a curve past what a
        // `Duration` holds is over `max`.
        if seconds.is_nan() || seconds <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(seconds).map_or(max, |wait| wait.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn curves_follow_their_formulas() {
        let (base, max) = (MS(100), MS(10_000));
        assert_eq!(Backoff::Fixed.delay(5, base, max, MS(0), 0.5), MS(100));
        let expo: Vec<_> = (1..=4)
            .map(|n| Backoff::Expo.delay(n, base, max, MS(0), 0.0))
            .collect();
        assert_eq!(expo, vec![MS(100), MS(200), MS(400), MS(800)]);
        assert_eq!(Backoff::Expo.delay(20, base, max, MS(0), 0.0), max);
        assert_eq!(Backoff::ExpoJitter.delay(3, base, max, MS(0), 0.5), MS(200));
        assert_eq!(Backoff::ExpoJitter.delay(3, base, max, MS(0), 0.0), MS(0));
        assert_eq!(
            Backoff::DecorrelatedJitter.delay(2, base, max, MS(400), 0.5),
            MS(650)
        );
    }

    #[test]
    fn extreme_bounds_saturate_instead_of_panicking() {
        let curves = [
            Backoff::Fixed,
            Backoff::Expo,
            Backoff::ExpoJitter,
            Backoff::DecorrelatedJitter,
        ];
        for curve in curves {
            for n in [0, 1, 2, 63, 64, u32::MAX] {
                for random in [0.0, 0.5, 0.999_999, f64::NAN, -1.0, 2.0] {
                    // No panic at the extremes (what this line checks).
                    let _ = curve.delay(n, Duration::MAX, Duration::MAX, Duration::MAX, random);
                    let wait = curve.delay(n, MS(100), MS(1_000), Duration::MAX, random);
                    assert!(wait <= MS(1_000), "{curve:?} {n} {random}");
                }
            }
        }
        assert_eq!(
            Backoff::Fixed.delay(1, Duration::MAX, Duration::MAX, MS(0), 0.5),
            Duration::MAX
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2_000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// No input to the formula panics, and the wait never passes `max`.
        #[test]
        fn no_input_panics(
            curve in proptest::sample::select(vec![
                Backoff::Fixed,
                Backoff::Expo,
                Backoff::ExpoJitter,
                Backoff::DecorrelatedJitter,
            ]),
            n: u32,
            base: (u64, u32),
            max: (u64, u32),
            previous: (u64, u32),
            random: f64,
        ) {
            let duration = |(secs, nanos): (u64, u32)| Duration::new(secs, nanos % 1_000_000_000);
            let max = duration(max);
            let wait = curve.delay(n, duration(base), max, duration(previous), random);
            proptest::prop_assert!(wait <= max);
        }
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let (base, max) = (MS(100), MS(3_000));
        let mut previous = base;
        for n in 1..200 {
            let r = fastrand::f64();
            let full = Backoff::ExpoJitter.delay(n, base, max, previous, r);
            assert!(full <= max);
            let d = Backoff::DecorrelatedJitter.delay(n, base, max, previous, r);
            assert!(d >= base && d <= max && d <= previous.max(base) * 3);
            previous = d;
        }
    }
}
