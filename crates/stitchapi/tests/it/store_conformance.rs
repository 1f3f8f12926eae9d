//! The store conformance kit: the memory store and its prefixed view pass it, and stores that
//! break one rule each fail exactly the rules they break.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use stitchapi::store::*;
use stitchapi::testing::{ConformanceOptions, ConformanceReport, store_conformance, store_rules};
use stitchapi::time::{Clock, ManualClock, Timestamp};

fn memory() -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    (MemoryStore::with_clock(Arc::new(clock.clone())), clock)
}

fn in_virtual_time(clock: &ManualClock) -> ConformanceOptions {
    ConformanceOptions::new().with_manual_clock(clock.clone())
}

/// Every rule the kit knows was run (none skipped) and is in `passed` or `violations`.
fn assert_every_rule_ran(report: &ConformanceReport) {
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    for rule in store_rules() {
        let passed = report.passed.contains(&rule);
        assert!(passed != report.violated(rule), "{rule}: {report}");
    }
    assert_eq!(
        report.passed.len() + report.violations.len(),
        store_rules().count()
    );
}

/// The report violates exactly `broken`, and passes every other rule.
#[track_caller]
fn assert_violates_exactly(report: &ConformanceReport, broken: &[&str]) {
    assert_every_rule_ran(report);
    for rule in broken {
        assert!(
            store_rules().any(|known| known == *rule),
            "unknown rule {rule:?}"
        );
        assert!(report.violated(rule), "{rule} was not reported: {report}");
    }
    let violated: Vec<&str> = report.violations.iter().map(|v| v.rule).collect();
    let mut expected = broken.to_vec();
    expected.sort_unstable();
    let mut got = violated.clone();
    got.sort_unstable();
    assert_eq!(got, expected, "{report}");
    assert!(!report.ok());
}

#[tokio::test]
async fn the_memory_store_passes_in_virtual_time() {
    let (store, clock) = memory();
    let started = clock.now();
    let report = store_conformance(&store, in_virtual_time(&clock)).await;
    report.assert_ok();
    assert_every_rule_ran(&report);
    assert_eq!(report.passed.len(), 32);
    // The kit waited on the manual clock, not for real.
    assert!(clock.now().saturating_duration_since(started) >= Duration::from_millis(110));
}

#[tokio::test]
async fn rules_run_at_once_each_in_its_own_key_space() {
    let store = MemoryStore::new();
    let report = store_conformance(
        &store,
        ConformanceOptions::new()
            .with_ttl(Duration::from_millis(50))
            .with_rules_at_once(),
    )
    .await;
    report.assert_ok();
    assert_every_rule_ran(&report);
    // Reported in the kit's order, whatever order they finished in.
    assert!(report.passed.iter().copied().eq(store_rules()));
}

#[tokio::test]
async fn the_memory_store_passes_in_real_time() {
    let store = MemoryStore::new();
    let started = std::time::Instant::now();
    let report = store_conformance(
        &store,
        ConformanceOptions::new().with_ttl(Duration::from_millis(50)),
    )
    .await;
    report.assert_ok();
    assert_every_rule_ran(&report);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn a_prefixed_view_passes_and_writes_under_its_prefix() {
    let (store, clock) = memory();
    let view = store.prefixed("vault:");
    let report = store_conformance(&view, in_virtual_time(&clock)).await;
    report.assert_ok();
    assert_every_rule_ran(&report);

    // The same view as a shared trait object; a key written through it lands under the prefix.
    let shared: DynStore = Arc::new(PrefixedStore::new(store.clone(), "tenant-7:"));
    store_conformance(&shared, in_virtual_time(&clock))
        .await
        .assert_ok();
    shared.set("k", Some("v".into()), None).await.unwrap();
    assert_eq!(
        store.get("tenant-7:k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn the_key_prefix_option_namespaces_every_key() {
    #[derive(Debug)]
    struct Recording {
        inner: MemoryStore,
        keys: Mutex<HashSet<String>>,
    }
    #[async_trait::async_trait]
    impl StitchStore for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(Scope::Process)
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
            self.keys.lock().unwrap().insert(key.to_owned());
            self.inner.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Option<Bytes>,
            ttl: Option<Duration>,
        ) -> Result<(), StoreError> {
            self.keys.lock().unwrap().insert(key.to_owned());
            self.inner.set(key, value, ttl).await
        }
        async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
            self.keys.lock().unwrap().insert(key.to_owned());
            self.inner.increment(key, ttl).await
        }
    }

    let (inner, clock) = memory();
    let store = Recording {
        inner,
        keys: Mutex::new(HashSet::new()),
    };
    let report =
        store_conformance(&store, in_virtual_time(&clock).with_key_prefix("ci/run-9/")).await;
    report.assert_ok();
    let keys = store.keys.lock().unwrap();
    assert!(keys.len() > 10);
    for key in keys.iter() {
        assert!(key.starts_with("ci/run-9/stitch-conformance:"), "{key}");
    }
    assert!(keys.iter().any(|k| k.contains(":set-a-ttl-entry-expires:")));
    // Without the optional verbs, their rules are skipped and named with the capability.
    assert_eq!(report.skipped.len(), 19);
    for capability in ["atomic_increment", "reserve", "lease", "conditional_writes"] {
        assert!(
            report.skipped.iter().any(|(_, cap)| *cap == capability),
            "{capability}"
        );
    }
    assert!(
        report
            .skipped
            .contains(&("reserve: spaces grants exactly", "reserve"))
    );
    // Every cleaned-up key is gone.
    assert!(store.inner.is_empty());
}

/// What a [`Broken`] store gets wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    /// `set` drops the TTL.
    IgnoresSetTtl,
    /// A zero TTL makes the entry expire at once.
    ZeroTtlExpires,
    /// Values go through lossy UTF-8 and an empty value reads as missing.
    TextValues,
    /// `increment` reads, yields, then writes (yet claims to be atomic).
    RacyIncrement,
    /// `increment` re-arms the TTL on every call: a sliding window.
    SlidingWindow,
    /// `reserve` rounds the spacing to whole milliseconds.
    MillisecondCells,
    /// `reserve` sets the TTL only when it creates the cell.
    ReserveTtlNotRefreshed,
    /// `lease` counts holders, yields, then adds: concurrent callers exceed the limit.
    RacyLease,
    /// `lease` grants one slot more than the limit.
    LeaseOffByOne,
    /// `release` of a token that holds nothing is an error.
    ReleaseUnknownFails,
    /// `reserve` commits the cell even when the grant is past `latest`.
    ReserveChargesRefused,
    /// `create` writes whether or not the key is there.
    CreateOverwrites,
    /// `renew_if` renews whatever the key holds.
    RenewIfAnyValue,
    /// `delete_if` deletes whatever the key holds.
    DeleteIfAnyValue,
    /// `increment` panics.
    PanickingIncrement,
}

/// A memory store with one deliberate flaw.
#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    clock: ManualClock,
    flaw: Flaw,
    /// Deadlines the store tracks itself (racy increment, non-refreshing reserve).
    deadlines: Mutex<HashMap<String, Timestamp>>,
    /// key -> token -> expiry (racy lease) or held tokens (release check).
    holders: Mutex<HashMap<String, HashMap<String, Timestamp>>>,
}

impl Broken {
    fn new(flaw: Flaw) -> (Self, ManualClock) {
        let (inner, clock) = memory();
        let store = Broken {
            inner,
            clock: clock.clone(),
            flaw,
            deadlines: Mutex::new(HashMap::new()),
            holders: Mutex::new(HashMap::new()),
        };
        (store, clock)
    }

    fn error(&self, operation: &'static str, message: &str) -> StoreError {
        StoreError::new("broken", operation, StoreErrorKind::Backend, message)
    }

    /// The TTL left on `key`'s self-tracked deadline, or `None` (and `ttl` recorded) if it
    /// has none or it has passed.
    fn remaining(&self, key: &str, ttl: Option<Duration>) -> Option<Duration> {
        let now = self.clock.now();
        let mut deadlines = self.deadlines.lock().unwrap();
        match deadlines.get(key) {
            Some(deadline) if *deadline > now => Some(deadline.saturating_duration_since(now)),
            _ => {
                match ttl.filter(|ttl| !ttl.is_zero()) {
                    Some(ttl) => deadlines.insert(key.to_owned(), now + ttl),
                    None => deadlines.remove(key),
                };
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl StitchStore for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    fn capabilities(&self) -> Capabilities {
        // Every flaw still claims the full contract.
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let value = self.inner.get(key).await?;
        if self.flaw == Flaw::TextValues {
            return Ok(value.filter(|v| !v.is_empty()));
        }
        Ok(value)
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        match self.flaw {
            Flaw::IgnoresSetTtl => self.inner.set(key, value, None).await,
            Flaw::ZeroTtlExpires if ttl == Some(Duration::ZERO) => {
                self.inner.set(key, None, None).await
            }
            Flaw::TextValues => {
                let value = value.map(|v| Bytes::from(String::from_utf8_lossy(&v).into_owned()));
                self.inner.set(key, value, ttl).await
            }
            _ => self.inner.set(key, value, ttl).await,
        }
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        match self.flaw {
            Flaw::RacyIncrement => {
                let current = match self.inner.get(key).await? {
                    Some(bytes) => std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| self.error("increment", "not a counter"))?,
                    None => 0,
                };
                tokio::task::yield_now().await;
                let next = current + 1;
                // Keep the first increment's deadline, so only atomicity is broken.
                let ttl = if current == 0 {
                    self.deadlines.lock().unwrap().remove(key);
                    self.remaining(key, ttl);
                    ttl
                } else {
                    self.remaining(key, ttl)
                };
                self.inner
                    .set(key, Some(Bytes::from(next.to_string())), ttl)
                    .await?;
                Ok(next)
            }
            Flaw::SlidingWindow => {
                let next = self.inner.increment(key, ttl).await?;
                self.inner
                    .set(key, Some(Bytes::from(next.to_string())), ttl)
                    .await?;
                Ok(next)
            }
            Flaw::PanickingIncrement => panic!("increment is not implemented yet"),
            _ => self.inner.increment(key, ttl).await,
        }
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        match self.flaw {
            Flaw::MillisecondCells => {
                let spacing =
                    Duration::from_millis(u64::try_from(spacing.as_millis()).unwrap_or(u64::MAX));
                self.inner.reserve(key, spacing, now, latest, ttl).await
            }
            Flaw::ReserveTtlNotRefreshed => {
                let ttl = self.remaining(key, ttl).or(ttl);
                self.inner.reserve(key, spacing, now, latest, ttl).await
            }
            Flaw::ReserveChargesRefused => {
                let at = self.inner.reserve(key, spacing, now, None, ttl).await?.at();
                Ok(match latest {
                    Some(latest) if at > latest => Reservation::Refused(at),
                    _ => Reservation::Granted(at),
                })
            }
            _ => self.inner.reserve(key, spacing, now, latest, ttl).await,
        }
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        if self.flaw == Flaw::CreateOverwrites {
            self.inner.set(key, Some(value), ttl).await?;
            return Ok(true);
        }
        self.inner.create(key, value, ttl).await
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if self.flaw == Flaw::RenewIfAnyValue {
            let Some(held) = self.inner.get(key).await? else {
                return Ok(false);
            };
            return self.inner.renew_if(key, &held, ttl).await;
        }
        self.inner.renew_if(key, expected, ttl).await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        if self.flaw == Flaw::DeleteIfAnyValue {
            let held = self.inner.get(key).await?.is_some();
            self.inner.set(key, None, None).await?;
            return Ok(held);
        }
        self.inner.delete_if(key, expected).await
    }

    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        match self.flaw {
            Flaw::RacyLease => {
                let admit = {
                    let mut all = self.holders.lock().unwrap();
                    let holders = all.entry(key.to_owned()).or_default();
                    holders.retain(|_, expiry| *expiry > now);
                    holders.contains_key(token) || holders.len() < limit as usize
                };
                // The check and the write are not one atomic step.
                tokio::task::yield_now().await;
                if admit {
                    let mut all = self.holders.lock().unwrap();
                    all.entry(key.to_owned())
                        .or_default()
                        .insert(token.to_owned(), now + ttl);
                }
                Ok(admit)
            }
            Flaw::LeaseOffByOne => self.inner.lease(key, token, limit + 1, ttl, now).await,
            Flaw::ReleaseUnknownFails => {
                let granted = self.inner.lease(key, token, limit, ttl, now).await?;
                if granted {
                    let mut all = self.holders.lock().unwrap();
                    all.entry(key.to_owned())
                        .or_default()
                        .insert(token.to_owned(), now + ttl);
                }
                Ok(granted)
            }
            _ => self.inner.lease(key, token, limit, ttl, now).await,
        }
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        match self.flaw {
            Flaw::RacyLease => {
                if let Some(holders) = self.holders.lock().unwrap().get_mut(key) {
                    holders.remove(token);
                }
                Ok(())
            }
            Flaw::ReleaseUnknownFails => {
                let held = self
                    .holders
                    .lock()
                    .unwrap()
                    .get_mut(key)
                    .and_then(|holders| holders.remove(token))
                    .is_some();
                if !held {
                    return Err(self.error("release", "the token holds no slot"));
                }
                self.inner.release(key, token).await
            }
            _ => self.inner.release(key, token).await,
        }
    }
}

async fn check(flaw: Flaw) -> ConformanceReport {
    let (store, clock) = Broken::new(flaw);
    store_conformance(&store, in_virtual_time(&clock)).await
}

#[tokio::test]
async fn a_store_that_ignores_set_ttls_fails_the_expiry_rule() {
    let report = check(Flaw::IgnoresSetTtl).await;
    assert_violates_exactly(&report, &["set: a ttl entry expires"]);
    let text = report.to_string();
    assert!(
        text.starts_with("StitchAPI store contract: 1 violation(s), 31 rule(s) passed\n  - set: a ttl entry expires: get 110ms after a set with ttl 60ms"),
        "{text}"
    );
}

#[tokio::test]
async fn a_store_that_expires_zero_ttls_fails_the_zero_ttl_rule() {
    let report = check(Flaw::ZeroTtlExpires).await;
    assert_violates_exactly(&report, &["set: a zero ttl means no expiry"]);
}

#[tokio::test]
async fn a_text_only_store_fails_the_bytes_rule() {
    let report = check(Flaw::TextValues).await;
    assert_violates_exactly(&report, &["set: values are bytes, byte for byte"]);
    assert!(report.violations[0].detail.contains("an empty value"));
}

#[tokio::test]
async fn a_racy_increment_fails_the_concurrency_rule() {
    let report = check(Flaw::RacyIncrement).await;
    assert_violates_exactly(&report, &["increment: 20 concurrent calls net exactly +20"]);
}

#[tokio::test]
async fn a_store_without_atomic_increment_skips_the_concurrency_rule() {
    #[derive(Debug)]
    struct Honest(Broken);
    #[async_trait::async_trait]
    impl StitchStore for Honest {
        fn name(&self) -> &'static str {
            "honest"
        }
        fn capabilities(&self) -> Capabilities {
            self.0
                .capabilities()
                .with_atomic_increment(false)
                .with_lease(false)
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
            self.0.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Option<Bytes>,
            ttl: Option<Duration>,
        ) -> Result<(), StoreError> {
            self.0.set(key, value, ttl).await
        }
        async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
            self.0.increment(key, ttl).await
        }
        async fn reserve(
            &self,
            key: &str,
            spacing: Duration,
            now: Timestamp,
            latest: Option<Timestamp>,
            ttl: Option<Duration>,
        ) -> Result<Reservation, StoreError> {
            self.0.reserve(key, spacing, now, latest, ttl).await
        }
        async fn create(
            &self,
            key: &str,
            value: Bytes,
            ttl: Option<Duration>,
        ) -> Result<bool, StoreError> {
            self.0.create(key, value, ttl).await
        }
        async fn renew_if(
            &self,
            key: &str,
            expected: &[u8],
            ttl: Duration,
        ) -> Result<bool, StoreError> {
            self.0.renew_if(key, expected, ttl).await
        }
        async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
            self.0.delete_if(key, expected).await
        }
    }

    let (broken, clock) = Broken::new(Flaw::RacyIncrement);
    let report = store_conformance(&Honest(broken), in_virtual_time(&clock)).await;
    report.assert_ok();
    assert_eq!(report.passed.len(), 32 - 1 - 5);
    assert_eq!(
        report.skipped[0],
        (
            "increment: 20 concurrent calls net exactly +20",
            "atomic_increment"
        )
    );
    assert_eq!(report.skipped.len(), 6);
    assert!(report.skipped[1..].iter().all(|(_, cap)| *cap == "lease"));
}

#[tokio::test]
async fn a_sliding_window_fails_the_fixed_window_rule() {
    let report = check(Flaw::SlidingWindow).await;
    assert_violates_exactly(
        &report,
        &["increment: a later ttl does not extend the window"],
    );
    assert!(report.violations[0].detail.contains("expected 1, got 3"));
}

#[tokio::test]
async fn millisecond_cells_fail_the_fractional_rule() {
    let report = check(Flaw::MillisecondCells).await;
    assert_violates_exactly(&report, &["reserve: fractional spacing survives"]);
}

#[tokio::test]
async fn a_cell_whose_ttl_is_not_refreshed_fails_the_refresh_rule() {
    let report = check(Flaw::ReserveTtlNotRefreshed).await;
    assert_violates_exactly(&report, &["reserve: the ttl is refreshed on every call"]);
}

#[tokio::test]
async fn a_racy_lease_fails_the_limit_rule() {
    let report = check(Flaw::RacyLease).await;
    assert_violates_exactly(
        &report,
        &["lease: the limit holds under 50 concurrent callers"],
    );
    assert!(
        report.violations[0].detail.contains("expected 5, got 50"),
        "{report}"
    );
}

#[tokio::test]
async fn a_lease_over_its_limit_fails_every_limit_rule() {
    let report = check(Flaw::LeaseOffByOne).await;
    assert_violates_exactly(
        &report,
        &[
            "lease: the limit holds under 50 concurrent callers",
            "lease: renewal by the holder is idempotent",
            "lease: an expired holder frees its slot",
            "lease: release frees a slot",
            "lease: releasing an unknown token is a no-op",
        ],
    );
}

#[tokio::test]
async fn failing_release_of_an_unknown_token_fails_the_no_op_rule() {
    let report = check(Flaw::ReleaseUnknownFails).await;
    assert_violates_exactly(&report, &["lease: releasing an unknown token is a no-op"]);
    assert!(
        report.violations[0].detail.contains("release(")
            && report.violations[0]
                .detail
                .contains("the token holds no slot"),
        "{report}"
    );
}

/// The old `reserve`, which charged a caller it then refused.
#[tokio::test]
async fn a_reserve_that_charges_refused_callers_fails_the_latest_rule() {
    let report = check(Flaw::ReserveChargesRefused).await;
    assert_violates_exactly(
        &report,
        &["reserve: a grant past `latest` is refused and changes nothing"],
    );
    assert!(
        report.violations[0]
            .detail
            .contains("a refusal must not move the cell"),
        "{report}"
    );
}

#[tokio::test]
async fn a_create_that_overwrites_fails_the_create_rules() {
    let report = check(Flaw::CreateOverwrites).await;
    assert_violates_exactly(
        &report,
        &[
            "create: writes a missing key and refuses a present one",
            "create: of 20 concurrent creates exactly one wins",
        ],
    );
}

#[tokio::test]
async fn a_renewal_that_ignores_the_owner_fails_the_ownership_rules() {
    let report = check(Flaw::RenewIfAnyValue).await;
    assert_violates_exactly(
        &report,
        &[
            "renew_if: only the expected value's ttl is renewed",
            "owned lock: a stale owner's release and renewal leave the new owner's lock alone",
        ],
    );
}

/// The old lock release: an unconditional delete.
#[tokio::test]
async fn a_release_that_ignores_the_owner_fails_the_ownership_rules() {
    let report = check(Flaw::DeleteIfAnyValue).await;
    assert_violates_exactly(
        &report,
        &[
            "delete_if: only the expected value is deleted",
            "owned lock: a stale owner's release and renewal leave the new owner's lock alone",
        ],
    );
    let stale = report
        .violations
        .iter()
        .find(|v| v.rule.starts_with("owned lock"))
        .unwrap();
    assert!(stale.detail.contains("a's late release"), "{report}");
}

#[tokio::test]
async fn a_panicking_store_is_reported_not_fatal() {
    let report = check(Flaw::PanickingIncrement).await;
    assert_violates_exactly(
        &report,
        &[
            "increment: initializes a missing key to 1",
            "increment: increments an existing counter",
            "increment: 20 concurrent calls net exactly +20",
            "increment: the counter expires after its ttl",
            "increment: a later ttl does not extend the window",
            "keys: writes are isolated by key",
        ],
    );
    for violation in &report.violations {
        assert_eq!(
            violation.detail, "panicked: increment is not implemented yet",
            "{report}"
        );
    }
}

#[tokio::test]
#[should_panic(
    expected = "StitchAPI store contract: 1 violation(s), 31 rule(s) passed\n  - \
                           set: a zero ttl means no expiry: "
)]
async fn assert_ok_panics_with_the_report() {
    check(Flaw::ZeroTtlExpires).await.assert_ok();
}
