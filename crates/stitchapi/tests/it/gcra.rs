//! Property tests of the GCRA cell: the pure step, the memory store's `reserve` and the
//! in-process limiter agree, grants are spaced, and a refused reserve changes nothing.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use stitchapi::store::{MemoryStore, Reservation, StitchStore};
use stitchapi::throttle::gcra;
use stitchapi::time::{Clock, ManualClock, Timestamp};

/// One reserve of a sequence: how far `now` moves first, and the caller's `latest` (an
/// offset from `now`), if any.
#[derive(Clone, Debug)]
struct Step {
    advance: Duration,
    latest: Option<Duration>,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0..2_000_u64, prop::option::of(0..3_000_u64)).prop_map(|(advance, latest)| Step {
            advance: Duration::from_millis(advance),
            latest: latest.map(Duration::from_millis),
        }),
        1..40,
    )
}

/// Spacings from 1 ms to 1 s, fractional ones (1000/3 ms) included.
fn spacing() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1..=1_000_u64).prop_map(Duration::from_millis),
        (1..=9_u32).prop_map(|n| Duration::from_secs(1) / (3 * n)),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_memory_store_follows_the_step_and_refusals_cost_nothing(
        spacing in spacing(),
        steps in steps(),
    ) {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let ttl = Some(Duration::from_secs(3_600));
        let runtime = runtime();
        let mut cell = None;
        let mut last_grant: Option<Timestamp> = None;
        for step in steps {
            clock.advance(step.advance);
            let now = clock.now();
            let latest = step.latest.map(|offset| now + offset);
            let got = runtime
                .block_on(store.reserve("rl:p", spacing, now, latest, ttl))
                .unwrap();
            // The model: the pure step, applied only when it grants.
            let (want, next) = gcra::step(cell, now, spacing, latest);
            prop_assert_eq!(got, want);
            cell = next;
            match got {
                Reservation::Granted(at) => {
                    prop_assert!(at >= now);
                    prop_assert!(latest.is_none_or(|latest| at <= latest));
                    if let Some(previous) = last_grant {
                        prop_assert!(at >= previous + spacing, "{at:?} after {previous:?}");
                    }
                    last_grant = Some(at);
                }
                Reservation::Refused(at) => {
                    prop_assert!(latest.is_some_and(|latest| at > latest));
                    // Nothing moved: the earliest grant is still where the last grant put it.
                    prop_assert_eq!(Some(at), last_grant.map(|g| (g + spacing).max(now)));
                }
            }
        }
    }
}
