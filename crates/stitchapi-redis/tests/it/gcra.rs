//! Property: the Redis `reserve` script is the core's GCRA step. For random sequences of
//! reserves (spacings of 1 to 1000 ms, fractional ones included; `now` moving forward; a
//! `latest` that is absent, anywhere ahead, or a nanosecond either side of the next grant),
//! a `RedisStore` on a real redis-server and a `MemoryStore` give the same answers, granted
//! times are spaced by at least the spacing, and a refused reserve changes nothing: both
//! stores keep agreeing with a model that applies only the granted steps, and a refusal
//! leaves the Redis cell's value and TTL as they were.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use stitchapi::store::{MemoryStore, Reservation, StitchStore};
use stitchapi::throttle::gcra;
use stitchapi::time::{ManualClock, Timestamp};
use stitchapi_redis::RedisStore;
use support::RedisServer;

/// The TTL of a granted reserve: far longer than a case runs.
const TTL: Duration = Duration::from_secs(3600);
/// The TTL a reserve the model expects to be refused asks for: if Redis refreshed the TTL on
/// a refusal, the cell's PTTL would show it.
const REFUSED_TTL: Duration = Duration::from_secs(7200);
/// How far two stores' times may differ.
const TOLERANCE: Duration = Duration::from_micros(1);

/// The last grant a call accepts.
#[derive(Clone, Debug)]
enum Latest {
    /// None: any grant.
    Any,
    /// `now + offset`.
    After(Duration),
    /// The model's next grant plus this many nanoseconds (-1, 0 or 1): the exact boundary.
    AroundGrant(i8),
}

#[derive(Clone, Debug)]
struct Call {
    spacing: Duration,
    /// How far `now` moves forward before this call.
    advance: Duration,
    latest: Latest,
}

fn spacing() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1_u64..=1000).prop_map(Duration::from_millis),
        // 1000/k ms: 1000/3, 1000/7, ... (to the nanosecond, truncated).
        (1_u64..=1000).prop_map(|k| Duration::from_nanos(1_000_000_000 / k)),
        (1_000_000_u64..=1_000_000_000).prop_map(Duration::from_nanos),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    let advance = prop_oneof![
        1 => Just(Duration::ZERO),
        3 => (0_u64..2_000_000_000).prop_map(Duration::from_nanos),
    ];
    let latest = prop_oneof![
        2 => Just(Latest::Any),
        3 => (0_u64..=3_000_000_000).prop_map(|ns| Latest::After(Duration::from_nanos(ns))),
        1 => (-1_i8..=1).prop_map(Latest::AroundGrant),
    ];
    (spacing(), advance, latest).prop_map(|(spacing, advance, latest)| Call {
        spacing,
        advance,
        latest,
    })
}

fn distance(a: Timestamp, b: Timestamp) -> Duration {
    a.max(b).saturating_duration_since(a.min(b))
}

fn same_answer(redis: Reservation, memory: Reservation) -> bool {
    redis.is_granted() == memory.is_granted() && distance(redis.at(), memory.at()) <= TOLERANCE
}

#[test]
fn redis_reserve_agrees_with_the_memory_store_and_the_gcra_model() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let redis = runtime.block_on(async { RedisStore::from_url(&server.url()).unwrap() });
    let raw = redis::Client::open(server.url()).unwrap();
    let cases = AtomicU64::new(0);

    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    // A start with a sub-millisecond part, and up to 20 calls.
    let strategy = (
        0_u64..1_000_000_000,
        proptest::collection::vec(call(), 1..=20),
    );
    let outcome = runner.run(&strategy, |(start_ns, calls)| {
        let key = format!("prop:{}", cases.fetch_add(1, Ordering::Relaxed));
        let memory = MemoryStore::with_clock(Arc::new(ManualClock::new()));
        let mut connection = raw
            .get_connection()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut now = Timestamp::from_unix(
            Duration::from_secs(1_767_225_600) + Duration::from_nanos(start_ns),
        );
        // The model: only granted steps move the cell.
        let mut cell: Option<Timestamp> = None;
        let mut last_grant: Option<(Timestamp, Duration)> = None;
        for (i, call) in calls.iter().enumerate() {
            now = now + call.advance;
            let next_grant = cell.map_or(now, |cell| cell.max(now));
            let latest = match call.latest {
                Latest::Any => None,
                Latest::After(offset) => Some(now + offset),
                Latest::AroundGrant(-1) => Some(next_grant - Duration::from_nanos(1)),
                Latest::AroundGrant(0) => Some(next_grant),
                Latest::AroundGrant(_) => Some(next_grant + Duration::from_nanos(1)),
            };
            let (want, model_cell) = gcra::step(cell, now, call.spacing, latest);
            let ttl = if want.is_granted() { TTL } else { REFUSED_TTL };
            let before: (Option<Vec<u8>>, i64) = redis::pipe()
                .cmd("GET")
                .arg(&key)
                .cmd("PTTL")
                .arg(&key)
                .query(&mut connection)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;

            let (from_redis, from_memory) = runtime.block_on(async {
                let redis = redis
                    .reserve(&key, call.spacing, now, latest, Some(ttl))
                    .await;
                let memory = memory
                    .reserve(&key, call.spacing, now, latest, Some(ttl))
                    .await;
                (redis, memory)
            });
            let from_redis = from_redis.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let from_memory = from_memory.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let context = format!("call #{i} {call:?} at {now:?} (latest {latest:?})");
            prop_assert_eq!(from_memory, want, "memory vs model, {}", &context);
            prop_assert!(
                same_answer(from_redis, from_memory),
                "redis {:?} vs memory {:?}, {}",
                from_redis,
                from_memory,
                &context
            );

            match from_redis {
                Reservation::Granted(at) => {
                    if let Some((previous, spacing)) = last_grant {
                        prop_assert!(
                            at + TOLERANCE >= previous + spacing,
                            "grant {:?} is closer than {:?} to the previous one {:?}, {}",
                            at,
                            spacing,
                            previous,
                            &context
                        );
                    }
                    last_grant = Some((at, call.spacing));
                }
                Reservation::Refused(_) => {
                    let after: (Option<Vec<u8>>, i64) = redis::pipe()
                        .cmd("GET")
                        .arg(&key)
                        .cmd("PTTL")
                        .arg(&key)
                        .query(&mut connection)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(&after.0, &before.0, "the cell moved, {}", &context);
                    prop_assert!(
                        after.1 <= before.1,
                        "a refusal refreshed the TTL ({} ms, then {} ms), {}",
                        before.1,
                        after.1,
                        &context
                    );
                }
            }
            cell = model_cell;
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
