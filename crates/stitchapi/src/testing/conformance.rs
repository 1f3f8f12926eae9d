//! The store conformance kit: every rule of the [`StitchStore`] contract, checked against any
//! store and reported rule by rule.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::join_all;

use crate::store::{Capabilities, Reservation, StitchStore, StoreError};
use crate::time::{Clock, ManualClock, SystemClock, Timestamp};

/// How long past a TTL the kit waits before it expects the entry to be gone.
const EXPIRY_MARGIN: Duration = Duration::from_millis(50);
/// A TTL the rules that do not test expiry use, long enough never to run out during a rule.
const LONG_TTL: Duration = Duration::from_secs(5);
/// How far a returned timestamp may be from the exact one (stores may exchange `f64` ms).
const TOLERANCE: Duration = Duration::from_micros(1);
/// The default TTL of the rules that test expiry.
const DEFAULT_TTL: Duration = Duration::from_millis(60);

/// How [`store_conformance`] runs: the TTL of its expiry rules, how it waits, and a key prefix.
///
/// ```
/// use std::time::Duration;
/// use stitchapi::testing::{ConformanceOptions, ManualClock};
///
/// // A real backend: wait for real, with a TTL the backend honours.
/// let real = ConformanceOptions::new().with_ttl(Duration::from_millis(200));
/// // An in-process store on a manual clock: advance the clock instead of sleeping.
/// let clock = ManualClock::new();
/// let virtual_time = ConformanceOptions::new().with_manual_clock(clock.clone());
/// # let _ = (real, virtual_time);
/// ```
#[derive(Clone, Debug)]
pub struct ConformanceOptions {
    ttl: Duration,
    manual_clock: Option<ManualClock>,
    key_prefix: String,
    at_once: bool,
}

impl ConformanceOptions {
    /// TTL 60 ms, real waiting on the [`SystemClock`], no key prefix.
    pub fn new() -> Self {
        ConformanceOptions {
            ttl: DEFAULT_TTL,
            manual_clock: None,
            key_prefix: String::new(),
            at_once: false,
        }
    }

    /// The TTL the expiry rules write with (the kit waits TTL + 50 ms for an entry to go).
    ///
    /// A TTL below the store's [`Capabilities::min_ttl`] is raised to it; a zero TTL is raised
    /// to 1 ms.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Checks in virtual time: instead of sleeping, the kit advances `clock`, and takes the
    /// `now` it passes to `reserve` and `lease` from it. Build the store on the same clock
    /// (for example `MemoryStore::with_clock(Arc::new(clock.clone()))`), or its TTLs will
    /// never run out.
    pub fn with_manual_clock(mut self, clock: ManualClock) -> Self {
        self.manual_clock = Some(clock);
        self
    }

    /// Puts every key the kit writes under `prefix` (the keys then read
    /// `<prefix>stitch-conformance:<run>:<rule>:<name>`), for backends whose test access is
    /// limited to a key space.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

impl ConformanceOptions {
    /// Runs the rules at the same time instead of one after another, each in its own key
    /// space, so the whole kit takes about as long as its slowest rule: for a store whose
    /// TTLs have a long floor (Workers KV: 60 s, where each expiry rule waits it out). The
    /// rules' requests then queue behind each other, so use it only where that queueing stays
    /// well under the TTL. Only on the system clock: with a manual clock, one rule's advance
    /// would move every other rule's time, so the rules still run one by one.
    ///
    /// ```
    /// let options = stitchapi::testing::ConformanceOptions::new().with_rules_at_once();
    /// # let _ = options;
    /// ```
    pub fn with_rules_at_once(mut self) -> Self {
        self.at_once = true;
        self
    }
}

impl Default for ConformanceOptions {
    fn default() -> Self {
        ConformanceOptions::new()
    }
}

/// One rule a store broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name, e.g. `"increment: 20 concurrent calls net exactly +20"`.
    pub rule: &'static str,
    /// What the kit saw: an unexpected value, the store's error, or a panic message.
    pub detail: String,
}

/// The outcome of [`store_conformance`]: the rules passed, violated and skipped.
///
/// `Display` (and the panic of [`assert_ok`](ConformanceReport::assert_ok)) reads
/// `StitchAPI store contract: <N> violation(s), <M> rule(s) passed`, then one line per
/// violation, `  - <rule>: <detail>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// The rules the store kept, in the order they ran.
    pub passed: Vec<&'static str>,
    /// The rules the store broke, with what went wrong.
    pub violations: Vec<Violation>,
    /// The rules not run, each with the capability the store does not declare
    /// (`"atomic_increment"`, `"reserve"`, `"lease"` or `"conditional_writes"`).
    pub skipped: Vec<(&'static str, &'static str)>,
}

impl ConformanceReport {
    /// Whether no rule was violated (skipped rules do not count).
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether the rule named `rule` was violated.
    pub fn violated(&self, rule: &str) -> bool {
        self.violations
            .iter()
            .any(|violation| violation.rule == rule)
    }

    /// Panics with the report (see [`Display`](fmt::Display)) if any rule was violated.
    #[track_caller]
    pub fn assert_ok(&self) {
        if !self.ok() {
            panic!("{self}");
        }
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StitchAPI store contract: {} violation(s), {} rule(s) passed",
            self.violations.len(),
            self.passed.len()
        )?;
        for violation in &self.violations {
            write!(f, "\n  - {}: {}", violation.rule, violation.detail)?;
        }
        Ok(())
    }
}

/// The capability a rule needs.
#[derive(Clone, Copy, Debug)]
enum Needs {
    Nothing,
    AtomicIncrement,
    Reserve,
    Lease,
    ConditionalWrites,
}

impl Needs {
    /// The missing capability's name, if `caps` lacks it.
    fn missing(self, caps: &Capabilities) -> Option<&'static str> {
        match self {
            Needs::Nothing => None,
            Needs::AtomicIncrement => (!caps.atomic_increment).then_some("atomic_increment"),
            Needs::Reserve => (!caps.reserve).then_some("reserve"),
            Needs::Lease => (!caps.lease).then_some("lease"),
            Needs::ConditionalWrites => (!caps.conditional_writes).then_some("conditional_writes"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Rule {
    RoundTrip,
    MissingKey,
    Overwrite,
    Delete,
    TtlExpires,
    NoTtl,
    ZeroTtl,
    ByteForByte,
    IncrementInitializes,
    IncrementIncrements,
    IncrementConcurrent,
    IncrementExpires,
    IncrementFixedWindow,
    KeysIsolated,
    ReserveSpacing,
    ReserveFractional,
    ReserveRefresh,
    ReserveLost,
    ReserveConcurrent,
    ReserveRefused,
    ReserveAtLatest,
    LeaseLimit,
    LeaseRenewal,
    LeaseExpired,
    LeaseRelease,
    LeaseReleaseUnknown,
    CreateAbsent,
    CreateExpired,
    CreateConcurrent,
    RenewIf,
    DeleteIf,
    StaleOwner,
}

/// Every rule, in the order it runs, with the capability it needs.
const RULES: &[(&str, Needs, Rule)] = &[
    (
        "set/get: round-trips a value",
        Needs::Nothing,
        Rule::RoundTrip,
    ),
    (
        "get: a missing key resolves to None",
        Needs::Nothing,
        Rule::MissingKey,
    ),
    (
        "set: overwrite replaces the value",
        Needs::Nothing,
        Rule::Overwrite,
    ),
    (
        "set: set(key, None) deletes the entry",
        Needs::Nothing,
        Rule::Delete,
    ),
    ("set: a ttl entry expires", Needs::Nothing, Rule::TtlExpires),
    ("set: no ttl means no expiry", Needs::Nothing, Rule::NoTtl),
    (
        "set: a zero ttl means no expiry",
        Needs::Nothing,
        Rule::ZeroTtl,
    ),
    (
        "set: values are bytes, byte for byte",
        Needs::Nothing,
        Rule::ByteForByte,
    ),
    (
        "increment: initializes a missing key to 1",
        Needs::Nothing,
        Rule::IncrementInitializes,
    ),
    (
        "increment: increments an existing counter",
        Needs::Nothing,
        Rule::IncrementIncrements,
    ),
    (
        "increment: 20 concurrent calls net exactly +20",
        Needs::AtomicIncrement,
        Rule::IncrementConcurrent,
    ),
    (
        "increment: the counter expires after its ttl",
        Needs::Nothing,
        Rule::IncrementExpires,
    ),
    (
        "increment: a later ttl does not extend the window",
        Needs::Nothing,
        Rule::IncrementFixedWindow,
    ),
    (
        "keys: writes are isolated by key",
        Needs::Nothing,
        Rule::KeysIsolated,
    ),
    (
        "reserve: spaces grants exactly",
        Needs::Reserve,
        Rule::ReserveSpacing,
    ),
    (
        "reserve: fractional spacing survives",
        Needs::Reserve,
        Rule::ReserveFractional,
    ),
    (
        "reserve: the ttl is refreshed on every call",
        Needs::Reserve,
        Rule::ReserveRefresh,
    ),
    (
        "reserve: a lost cell restarts from now",
        Needs::Reserve,
        Rule::ReserveLost,
    ),
    (
        "reserve: 20 concurrent reserves get distinct slots",
        Needs::Reserve,
        Rule::ReserveConcurrent,
    ),
    (
        "reserve: a grant past `latest` is refused and changes nothing",
        Needs::Reserve,
        Rule::ReserveRefused,
    ),
    (
        "reserve: a grant exactly at `latest` is taken",
        Needs::Reserve,
        Rule::ReserveAtLatest,
    ),
    (
        "lease: the limit holds under 50 concurrent callers",
        Needs::Lease,
        Rule::LeaseLimit,
    ),
    (
        "lease: renewal by the holder is idempotent",
        Needs::Lease,
        Rule::LeaseRenewal,
    ),
    (
        "lease: an expired holder frees its slot",
        Needs::Lease,
        Rule::LeaseExpired,
    ),
    (
        "lease: release frees a slot",
        Needs::Lease,
        Rule::LeaseRelease,
    ),
    (
        "lease: releasing an unknown token is a no-op",
        Needs::Lease,
        Rule::LeaseReleaseUnknown,
    ),
    (
        "create: writes a missing key and refuses a present one",
        Needs::ConditionalWrites,
        Rule::CreateAbsent,
    ),
    (
        "create: an expired key can be created again",
        Needs::ConditionalWrites,
        Rule::CreateExpired,
    ),
    (
        "create: of 20 concurrent creates exactly one wins",
        Needs::ConditionalWrites,
        Rule::CreateConcurrent,
    ),
    (
        "renew_if: only the expected value's ttl is renewed",
        Needs::ConditionalWrites,
        Rule::RenewIf,
    ),
    (
        "delete_if: only the expected value is deleted",
        Needs::ConditionalWrites,
        Rule::DeleteIf,
    ),
    (
        "owned lock: a stale owner's release and renewal leave the new owner's lock alone",
        Needs::ConditionalWrites,
        Rule::StaleOwner,
    ),
];

/// The names of every rule [`store_conformance`] knows, in the order they run (including the
/// ones a store's capabilities may skip).
///
/// ```
/// let rules: Vec<&str> = stitchapi::testing::store_rules().collect();
/// assert!(rules.contains(&"set: a ttl entry expires"));
/// ```
pub fn store_rules() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|(name, _, _)| *name)
}

/// Checks `store` against every rule of the [`StitchStore`] contract its
/// [`capabilities`](StitchStore::capabilities) call for, and reports each rule's outcome.
///
/// Every rule runs on its own, under its own keys
/// (`stitch-conformance:<base36 millis>-<random>:<rule>:...`), so one failure never hides
/// another. A store error or an unexpected value becomes that rule's violation detail, and so
/// does a panic: a panicking rule does not abort the kit (on targets that unwind). The rules that test expiry wait the
/// TTL plus 50 ms on the clock the [`ConformanceOptions`] choose; each rule deletes its keys
/// and releases its leases afterwards (best effort, errors ignored).
///
/// Always checked: get/set round trips (byte for byte, empty and non-UTF-8 values included),
/// missing keys, overwrite, delete, TTL expiry and its absence (`None` and zero), counters
/// (start at 1, count up, read back as decimal bytes, expire, fixed windows) and key
/// isolation. With `atomic_increment`: 20 concurrent increments net +20. With `reserve`: exact
/// and fractional spacing, TTL refresh, restart after loss, distinct concurrent slots, and a
/// `latest` that refuses without moving the cell (and grants exactly at it). With `lease`: the
/// limit under 50 concurrent callers, idempotent renewal, expiry by the caller's `now`,
/// release, and release of unknown tokens. With `conditional_writes`: create only when
/// missing or expired, one winner of 20 concurrent creates, `renew_if` and `delete_if` only for
/// the expected value, and an owned lock whose stale owner can neither release nor renew its
/// successor's lock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use stitchapi::store::MemoryStore;
/// use stitchapi::testing::{ConformanceOptions, ManualClock, store_conformance};
///
/// // The memory store, checked in virtual time: the kit advances the clock it shares.
/// let clock = ManualClock::new();
/// let store = MemoryStore::with_clock(Arc::new(clock.clone()));
/// let options = ConformanceOptions::new().with_manual_clock(clock);
/// let report = store_conformance(&store, options).await;
/// report.assert_ok();
/// assert!(report.skipped.is_empty());
/// # }
/// ```
pub async fn store_conformance(
    store: &dyn StitchStore,
    options: ConformanceOptions,
) -> ConformanceReport {
    let caps = store.capabilities();
    let waiter = match options.manual_clock {
        Some(clock) => Waiter::Manual(clock),
        None => Waiter::System(SystemClock::new()),
    };
    let ttl = options
        .ttl
        .max(caps.min_ttl.unwrap_or_default())
        .max(Duration::from_millis(1));
    let run = format!(
        "{}stitch-conformance:{}-{}",
        options.key_prefix,
        base36(waiter.now().as_millis()),
        base36(fastrand::u64(..)),
    );

    let mut report = ConformanceReport::default();
    let mut runnable = Vec::new();
    for &(name, needs, rule) in RULES {
        match needs.missing(&caps) {
            Some(missing) => report.skipped.push((name, missing)),
            None => runnable.push((name, rule)),
        }
    }
    let check = |name: &'static str, rule| {
        let ctx = Ctx {
            store,
            waiter: &waiter,
            ttl,
            namespace: format!("{run}:{}", slug(name)),
            keys: Mutex::new(Vec::new()),
            holders: Mutex::new(Vec::new()),
        };
        async move {
            let outcome = AssertUnwindSafe(run_rule(rule, &ctx)).catch_unwind().await;
            // A panic in the clean-up is as irrelevant as its errors.
            let _ = AssertUnwindSafe(ctx.clean_up()).catch_unwind().await;
            (name, outcome)
        }
    };
    let outcomes = if options.at_once && matches!(waiter, Waiter::System(_)) {
        futures_util::future::join_all(runnable.into_iter().map(|(name, rule)| check(name, rule)))
            .await
    } else {
        let mut outcomes = Vec::with_capacity(runnable.len());
        for (name, rule) in runnable {
            outcomes.push(check(name, rule).await);
        }
        outcomes
    };
    for (name, outcome) in outcomes {
        match outcome {
            Ok(Ok(())) => report.passed.push(name),
            Ok(Err(detail)) => report.violations.push(Violation { rule: name, detail }),
            Err(payload) => report.violations.push(Violation {
                rule: name,
                detail: format!("panicked: {}", panic_message(payload.as_ref())),
            }),
        }
    }
    report
}

/// How the kit waits and tells the time.
enum Waiter {
    System(SystemClock),
    Manual(ManualClock),
}

impl Waiter {
    fn now(&self) -> Timestamp {
        match self {
            Waiter::System(clock) => clock.now(),
            Waiter::Manual(clock) => clock.now(),
        }
    }

    async fn wait(&self, duration: Duration) {
        match self {
            Waiter::System(clock) => clock.sleep(duration).await,
            Waiter::Manual(clock) => clock.advance(duration),
        }
    }
}

/// One rule's view of the run.
struct Ctx<'a> {
    store: &'a dyn StitchStore,
    waiter: &'a Waiter,
    /// The TTL of the expiry rules.
    ttl: Duration,
    /// This rule's key namespace.
    namespace: String,
    /// Value keys to delete after the rule.
    keys: Mutex<Vec<String>>,
    /// (key, token) leases to release after the rule.
    holders: Mutex<Vec<(String, String)>>,
}

impl Ctx<'_> {
    /// A value key of this rule, deleted after it.
    fn key(&self, name: &str) -> String {
        let key = format!("{}:{name}", self.namespace);
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key.clone());
        key
    }

    /// A semaphore key of this rule (its leases are released after it).
    fn semaphore(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    fn now(&self) -> Timestamp {
        self.waiter.now()
    }

    /// Waits long enough for an entry written with the kit's TTL to expire.
    async fn wait_past_ttl(&self) {
        self.waiter
            .wait(self.ttl.saturating_add(EXPIRY_MARGIN))
            .await;
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, String> {
        self.store.get(key).await.step(format_args!("get({key:?})"))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), String> {
        self.store
            .set(key, Some(Bytes::copy_from_slice(value)), ttl)
            .await
            .step(format_args!("set({key:?}, ttl {ttl:?})"))
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, String> {
        self.store
            .increment(key, ttl)
            .await
            .step(format_args!("increment({key:?}, ttl {ttl:?})"))
    }

    /// A reserve with no `latest`, which must be granted.
    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        ttl: Option<Duration>,
    ) -> Result<Timestamp, String> {
        match self.reserve_until(key, spacing, now, None, ttl).await? {
            Reservation::Granted(at) => Ok(at),
            Reservation::Refused(at) => Err(format!(
                "reserve({key:?}, spacing {spacing:?}, {now:?}) without a `latest` was refused \
                 ({})",
                relative(at, now)
            )),
        }
    }

    async fn reserve_until(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, String> {
        self.store
            .reserve(key, spacing, now, latest, ttl)
            .await
            .step(format_args!(
                "reserve({key:?}, spacing {spacing:?}, {now:?}, latest {latest:?})"
            ))
    }

    async fn create(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool, String> {
        self.store
            .create(key, Bytes::copy_from_slice(value.as_bytes()), ttl)
            .await
            .step(format_args!("create({key:?}, {value:?}, ttl {ttl:?})"))
    }

    async fn renew_if(&self, key: &str, expected: &str, ttl: Duration) -> Result<bool, String> {
        self.store
            .renew_if(key, expected.as_bytes(), ttl)
            .await
            .step(format_args!("renew_if({key:?}, {expected:?}, ttl {ttl:?})"))
    }

    async fn delete_if(&self, key: &str, expected: &str) -> Result<bool, String> {
        self.store
            .delete_if(key, expected.as_bytes())
            .await
            .step(format_args!("delete_if({key:?}, {expected:?})"))
    }

    async fn lease(
        &self,
        key: &str,
        token: String,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, String> {
        let result = self
            .store
            .lease(key, &token, limit, ttl, now)
            .await
            .step(format_args!(
                "lease({key:?}, {token:?}, limit {limit}, ttl {ttl:?}, {now:?})"
            ));
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key.to_owned(), token));
        result
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), String> {
        self.store
            .release(key, token)
            .await
            .step(format_args!("release({key:?}, {token:?})"))
    }

    /// Deletes the rule's keys and releases its leases, ignoring failures.
    async fn clean_up(&self) {
        let keys = std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner));
        for key in keys {
            let _ = self.store.set(&key, None, None).await;
        }
        let holders =
            std::mem::take(&mut *self.holders.lock().unwrap_or_else(PoisonError::into_inner));
        for (key, token) in holders {
            let _ = self.store.release(&key, &token).await;
        }
    }
}

/// Turns a store error into a violation detail naming the call.
trait Step<T> {
    fn step(self, call: fmt::Arguments<'_>) -> Result<T, String>;
}

impl<T> Step<T> for Result<T, StoreError> {
    fn step(self, call: fmt::Arguments<'_>) -> Result<T, String> {
        self.map_err(|error| format!("{call} returned an error: {error}"))
    }
}

/// `Ok` if `got == want`, else a detail saying what was expected.
fn expect_eq<T: PartialEq + fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?}, got {got:?}"))
    }
}

/// `Ok` if `got` is within [`TOLERANCE`] of `want`; times are shown relative to `now`.
fn expect_time(what: &str, got: Timestamp, want: Timestamp, now: Timestamp) -> Result<(), String> {
    let off = got.max(want).saturating_duration_since(got.min(want));
    if off <= TOLERANCE {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {}, got {} (off by {off:?})",
            relative(want, now),
            relative(got, now)
        ))
    }
}

/// `now`, `now + 250ms` or `now - 1s`.
fn relative(at: Timestamp, now: Timestamp) -> String {
    if at >= now {
        let after = at.saturating_duration_since(now);
        if after.is_zero() {
            "now".to_owned()
        } else {
            format!("now + {after:?}")
        }
    } else {
        format!("now - {:?}", now.saturating_duration_since(at))
    }
}

fn some(bytes: &[u8]) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(bytes))
}

async fn run_rule(rule: Rule, ctx: &Ctx<'_>) -> Result<(), String> {
    match rule {
        Rule::RoundTrip => {
            let key = ctx.key("value");
            let value = br#"{"kit":"stitchapi","n":7}"#;
            ctx.set(&key, value, None).await?;
            expect_eq("get after set", ctx.get(&key).await?, some(value))
        }
        Rule::MissingKey => {
            let key = ctx.key("never-written");
            expect_eq("get of a key never written", ctx.get(&key).await?, None)
        }
        Rule::Overwrite => {
            let key = ctx.key("value");
            ctx.set(&key, b"first", None).await?;
            ctx.set(&key, b"second", None).await?;
            expect_eq("get after two sets", ctx.get(&key).await?, some(b"second"))
        }
        Rule::Delete => {
            let key = ctx.key("value");
            ctx.set(&key, b"present", None).await?;
            expect_eq(
                "get before the delete",
                ctx.get(&key).await?,
                some(b"present"),
            )?;
            ctx.store
                .set(&key, None, None)
                .await
                .step(format_args!("set({key:?}, None)"))?;
            expect_eq("get after set(key, None)", ctx.get(&key).await?, None)
        }
        Rule::TtlExpires => {
            let key = ctx.key("value");
            ctx.set(&key, b"short-lived", Some(ctx.ttl)).await?;
            expect_eq(
                "get right after set with a ttl",
                ctx.get(&key).await?,
                some(b"short-lived"),
            )?;
            ctx.wait_past_ttl().await;
            expect_eq(
                &format!(
                    "get {:?} after a set with ttl {:?}",
                    ctx.ttl.saturating_add(EXPIRY_MARGIN),
                    ctx.ttl
                ),
                ctx.get(&key).await?,
                None,
            )
        }
        Rule::NoTtl => {
            let key = ctx.key("value");
            ctx.set(&key, b"forever", None).await?;
            ctx.wait_past_ttl().await;
            expect_eq(
                "get of an entry set without a ttl, after a wait",
                ctx.get(&key).await?,
                some(b"forever"),
            )
        }
        Rule::ZeroTtl => {
            let key = ctx.key("value");
            ctx.set(&key, b"forever", Some(Duration::ZERO)).await?;
            expect_eq(
                "get right after set with a zero ttl",
                ctx.get(&key).await?,
                some(b"forever"),
            )?;
            ctx.wait_past_ttl().await;
            expect_eq(
                "get of an entry set with a zero ttl, after a wait",
                ctx.get(&key).await?,
                some(b"forever"),
            )
        }
        Rule::ByteForByte => {
            let every_byte: Vec<u8> = (0..=u8::MAX).collect();
            let cases: [(&str, &[u8]); 5] = [
                ("an empty value", b""),
                ("invalid UTF-8", &[0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28]),
                ("every byte value", &every_byte),
                ("NUL, CR and LF", b"a\0b\r\nc\n"),
                ("a decimal number", b"007"),
            ];
            for (index, (what, value)) in cases.into_iter().enumerate() {
                let key = ctx.key(&format!("value-{index}"));
                ctx.set(&key, value, None).await?;
                expect_eq(&format!("get of {what}"), ctx.get(&key).await?, some(value))?;
            }
            Ok(())
        }
        Rule::IncrementInitializes => {
            let key = ctx.key("counter");
            expect_eq(
                "increment of a missing key",
                ctx.increment(&key, Some(LONG_TTL)).await?,
                1,
            )
        }
        Rule::IncrementIncrements => {
            let key = ctx.key("counter");
            expect_eq(
                "first increment",
                ctx.increment(&key, Some(LONG_TTL)).await?,
                1,
            )?;
            expect_eq(
                "second increment",
                ctx.increment(&key, Some(LONG_TTL)).await?,
                2,
            )?;
            expect_eq(
                "get of a counter (its ASCII decimal bytes)",
                ctx.get(&key).await?,
                some(b"2"),
            )
        }
        Rule::IncrementConcurrent => {
            let key = ctx.key("counter");
            let results = join_all((0..20).map(|_| ctx.increment(&key, Some(LONG_TTL)))).await;
            let mut counts = results.into_iter().collect::<Result<Vec<i64>, String>>()?;
            counts.sort_unstable();
            expect_eq(
                "the sorted results of 20 concurrent increments",
                counts,
                (1..=20).collect(),
            )
        }
        Rule::IncrementExpires => {
            let key = ctx.key("counter");
            expect_eq(
                "first increment",
                ctx.increment(&key, Some(ctx.ttl)).await?,
                1,
            )?;
            ctx.wait_past_ttl().await;
            expect_eq(
                "increment after the counter's ttl",
                ctx.increment(&key, Some(ctx.ttl)).await?,
                1,
            )
        }
        Rule::IncrementFixedWindow => {
            let key = ctx.key("counter");
            let first_wait = ctx.ttl.mul_f64(0.6);
            expect_eq(
                "first increment",
                ctx.increment(&key, Some(ctx.ttl)).await?,
                1,
            )?;
            ctx.waiter.wait(first_wait).await;
            expect_eq(
                "second increment, with a longer ttl, inside the window",
                ctx.increment(&key, Some(ctx.ttl.saturating_mul(100)))
                    .await?,
                2,
            )?;
            ctx.waiter
                .wait(
                    ctx.ttl
                        .saturating_sub(first_wait)
                        .saturating_add(EXPIRY_MARGIN),
                )
                .await;
            expect_eq(
                "increment after the first increment's ttl (a later increment must not \
                 extend or slide the window)",
                ctx.increment(&key, Some(ctx.ttl)).await?,
                1,
            )
        }
        Rule::KeysIsolated => {
            let (n, m) = (ctx.key("iso-n"), ctx.key("iso-m"));
            expect_eq(
                "increment(iso-n)",
                ctx.increment(&n, Some(LONG_TTL)).await?,
                1,
            )?;
            expect_eq(
                "increment(iso-m)",
                ctx.increment(&m, Some(LONG_TTL)).await?,
                1,
            )?;
            expect_eq(
                "second increment(iso-n)",
                ctx.increment(&n, Some(LONG_TTL)).await?,
                2,
            )?;
            let (a, b) = (ctx.key("iso-a"), ctx.key("iso-b"));
            ctx.set(&a, b"a", None).await?;
            ctx.set(&b, b"b", None).await?;
            expect_eq("get(iso-a)", ctx.get(&a).await?, some(b"a"))?;
            expect_eq("get(iso-b)", ctx.get(&b).await?, some(b"b"))
        }
        Rule::ReserveSpacing => {
            let key = ctx.key("cell");
            let now = ctx.now();
            let spacing = Duration::from_millis(250);
            for i in 0..3_u32 {
                let at = ctx.reserve(&key, spacing, now, Some(LONG_TTL)).await?;
                expect_time(
                    &format!("reserve #{} at the same now", i + 1),
                    at,
                    now + spacing * i,
                    now,
                )?;
            }
            Ok(())
        }
        Rule::ReserveFractional => {
            let key = ctx.key("cell");
            let now = ctx.now();
            // 1000/3 ms.
            let spacing = Duration::from_nanos(333_333_333);
            let mut at = now;
            for _ in 0..3 {
                at = ctx.reserve(&key, spacing, now, Some(LONG_TTL)).await?;
            }
            expect_time(
                "the third reserve with a spacing of 1000/3 ms (now + 666.666... ms)",
                at,
                now + Duration::from_nanos(666_666_667),
                now,
            )
        }
        Rule::ReserveRefresh => {
            let key = ctx.key("cell");
            let now = ctx.now();
            let spacing = Duration::from_secs(1);
            let step = ctx.ttl.mul_f64(0.6);
            let at = ctx.reserve(&key, spacing, now, Some(ctx.ttl)).await?;
            expect_time("the first reserve", at, now, now)?;
            ctx.waiter.wait(step).await;
            ctx.reserve(&key, spacing, ctx.now(), Some(ctx.ttl)).await?;
            ctx.waiter.wait(step).await;
            let at = ctx.reserve(&key, spacing, now, Some(ctx.ttl)).await?;
            if at > now + TOLERANCE {
                Ok(())
            } else {
                Err(format!(
                    "the cell was lost {:?} after the first reserve although a reserve {:?} \
                     later refreshed its ttl of {:?}: a reserve at the first now returned \
                     {at}, that now itself",
                    step.saturating_mul(2),
                    step,
                    ctx.ttl
                ))
            }
        }
        Rule::ReserveLost => {
            let key = ctx.key("cell");
            let now = ctx.now();
            let spacing = Duration::from_secs(3600);
            let at = ctx.reserve(&key, spacing, now, Some(ctx.ttl)).await?;
            expect_time("the first reserve", at, now, now)?;
            ctx.wait_past_ttl().await;
            let later = ctx.now();
            let at = ctx.reserve(&key, spacing, later, Some(ctx.ttl)).await?;
            expect_time(
                "a reserve after the cell's ttl (the lost cell restarts from the given now)",
                at,
                later,
                later,
            )
        }
        Rule::ReserveConcurrent => {
            let key = ctx.key("cell");
            let now = ctx.now();
            let spacing = Duration::from_millis(10);
            let results =
                join_all((0..20).map(|_| ctx.reserve(&key, spacing, now, Some(LONG_TTL)))).await;
            let mut grants = results
                .into_iter()
                .collect::<Result<Vec<Timestamp>, String>>()?;
            grants.sort_unstable();
            for (i, at) in (0_u32..).zip(grants) {
                expect_time(
                    &format!("slot #{} of 20 concurrent reserves", i + 1),
                    at,
                    now + spacing * i,
                    now,
                )?;
            }
            Ok(())
        }
        Rule::ReserveRefused => {
            let key = ctx.key("cell");
            let now = ctx.now();
            let spacing = Duration::from_secs(1);
            let first = ctx.reserve(&key, spacing, now, Some(LONG_TTL)).await?;
            expect_time("the first reserve", first, now, now)?;
            let latest = now + spacing / 2;
            match ctx
                .reserve_until(&key, spacing, now, Some(latest), Some(LONG_TTL))
                .await?
            {
                Reservation::Refused(at) => expect_time(
                    "the earliest grant a refused reserve reports",
                    at,
                    now + spacing,
                    now,
                )?,
                Reservation::Granted(at) => {
                    return Err(format!(
                        "a reserve whose grant ({}) is past its latest ({}) was granted",
                        relative(at, now),
                        relative(latest, now)
                    ));
                }
            }
            let next = ctx.reserve(&key, spacing, now, Some(LONG_TTL)).await?;
            expect_time(
                "the reserve after a refused one (a refusal must not move the cell)",
                next,
                now + spacing,
                now,
            )
        }
        Rule::ReserveAtLatest => {
            let key = ctx.key("cell");
            let now = ctx.now();
            let spacing = Duration::from_millis(250);
            ctx.reserve(&key, spacing, now, Some(LONG_TTL)).await?;
            match ctx
                .reserve_until(&key, spacing, now, Some(now + spacing), Some(LONG_TTL))
                .await?
            {
                Reservation::Granted(at) => expect_time(
                    "a reserve whose grant is exactly its latest",
                    at,
                    now + spacing,
                    now,
                ),
                Reservation::Refused(at) => Err(format!(
                    "a reserve whose grant ({}) is exactly its latest was refused",
                    relative(at, now)
                )),
            }
        }
        Rule::LeaseLimit => {
            let key = ctx.semaphore("semaphore");
            let now = ctx.now();
            let results =
                join_all((0..50).map(|i| ctx.lease(&key, format!("holder-{i}"), 5, LONG_TTL, now)))
                    .await;
            let granted = results
                .into_iter()
                .collect::<Result<Vec<bool>, String>>()?
                .into_iter()
                .filter(|granted| *granted)
                .count();
            expect_eq(
                "slots granted to 50 concurrent callers with limit 5",
                granted,
                5,
            )
        }
        Rule::LeaseRenewal => {
            let key = ctx.semaphore("semaphore");
            let now = ctx.now();
            let lease = |token: &str| ctx.lease(&key, token.to_owned(), 2, LONG_TTL, now);
            expect_eq("lease a (limit 2)", lease("a").await?, true)?;
            expect_eq("lease a again (a renewal)", lease("a").await?, true)?;
            expect_eq(
                "lease b (a renewed holder occupies one slot)",
                lease("b").await?,
                true,
            )?;
            expect_eq(
                "lease c (a and b hold both slots)",
                lease("c").await?,
                false,
            )
        }
        Rule::LeaseExpired => {
            let key = ctx.semaphore("semaphore");
            let now = ctx.now();
            let ttl = ctx.ttl;
            expect_eq(
                "lease a (limit 1)",
                ctx.lease(&key, "a".into(), 1, ttl, now).await?,
                true,
            )?;
            expect_eq(
                "lease b while a holds the slot",
                ctx.lease(&key, "b".into(), 1, ttl, now).await?,
                false,
            )?;
            expect_eq(
                &format!("lease b at now + {ttl:?}, when a's lease has expired"),
                ctx.lease(&key, "b".into(), 1, ttl, now + ttl).await?,
                true,
            )
        }
        Rule::LeaseRelease => {
            let key = ctx.semaphore("semaphore");
            let now = ctx.now();
            let lease = |token: &str| ctx.lease(&key, token.to_owned(), 1, LONG_TTL, now);
            expect_eq("lease a (limit 1)", lease("a").await?, true)?;
            expect_eq("lease b while a holds the slot", lease("b").await?, false)?;
            ctx.release(&key, "a").await?;
            expect_eq("lease b after a's release", lease("b").await?, true)
        }
        Rule::LeaseReleaseUnknown => {
            let key = ctx.semaphore("semaphore");
            let now = ctx.now();
            ctx.release(&key, "ghost").await?;
            let lease = |token: &str| ctx.lease(&key, token.to_owned(), 1, LONG_TTL, now);
            expect_eq("lease a (limit 1)", lease("a").await?, true)?;
            ctx.release(&key, "ghost").await?;
            expect_eq(
                "lease b after releasing a token that holds nothing",
                lease("b").await?,
                false,
            )?;
            expect_eq("lease a again (still the holder)", lease("a").await?, true)
        }
        Rule::CreateAbsent => {
            let key = ctx.key("lock");
            expect_eq(
                "create of a missing key",
                ctx.create(&key, "first", Some(LONG_TTL)).await?,
                true,
            )?;
            expect_eq(
                "create of a present key",
                ctx.create(&key, "second", Some(LONG_TTL)).await?,
                false,
            )?;
            expect_eq(
                "get after a refused create",
                ctx.get(&key).await?,
                some(b"first"),
            )
        }
        Rule::CreateExpired => {
            let key = ctx.key("lock");
            expect_eq(
                "create with a ttl",
                ctx.create(&key, "first", Some(ctx.ttl)).await?,
                true,
            )?;
            ctx.wait_past_ttl().await;
            expect_eq(
                "create after the first value's ttl",
                ctx.create(&key, "second", Some(ctx.ttl)).await?,
                true,
            )?;
            expect_eq(
                "get after the second create",
                ctx.get(&key).await?,
                some(b"second"),
            )
        }
        Rule::CreateConcurrent => {
            let key = ctx.key("lock");
            let values: Vec<String> = (0..20).map(|i| format!("owner-{i}")).collect();
            let results =
                join_all(values.iter().map(|v| ctx.create(&key, v, Some(LONG_TTL)))).await;
            let won = results.into_iter().collect::<Result<Vec<bool>, String>>()?;
            let winners: Vec<&String> = values
                .iter()
                .zip(&won)
                .filter(|(_, won)| **won)
                .map(|(value, _)| value)
                .collect();
            expect_eq("how many of 20 concurrent creates won", winners.len(), 1)?;
            expect_eq(
                "get after 20 concurrent creates (the winner's value)",
                ctx.get(&key).await?,
                some(winners[0].as_bytes()),
            )
        }
        Rule::RenewIf => {
            let key = ctx.key("lock");
            let step = ctx.ttl.mul_f64(0.6);
            expect_eq(
                "renew_if of a missing key",
                ctx.renew_if(&key, "owner", ctx.ttl).await?,
                false,
            )?;
            ctx.create(&key, "owner", Some(ctx.ttl)).await?;
            ctx.waiter.wait(step).await;
            expect_eq(
                "renew_if with a value the key does not hold",
                ctx.renew_if(&key, "other", ctx.ttl).await?,
                false,
            )?;
            expect_eq(
                "renew_if with the value the key holds",
                ctx.renew_if(&key, "owner", ctx.ttl).await?,
                true,
            )?;
            ctx.waiter.wait(step).await;
            expect_eq(
                &format!(
                    "get {:?} after the create, {step:?} after the renewal (ttl {:?})",
                    step.saturating_mul(2),
                    ctx.ttl
                ),
                ctx.get(&key).await?,
                some(b"owner"),
            )?;
            ctx.wait_past_ttl().await;
            expect_eq("get after the renewed ttl", ctx.get(&key).await?, None)
        }
        Rule::DeleteIf => {
            let key = ctx.key("lock");
            expect_eq(
                "delete_if of a missing key",
                ctx.delete_if(&key, "owner").await?,
                false,
            )?;
            ctx.set(&key, b"owner", None).await?;
            expect_eq(
                "delete_if with a value the key does not hold",
                ctx.delete_if(&key, "other").await?,
                false,
            )?;
            expect_eq(
                "get after a refused delete_if",
                ctx.get(&key).await?,
                some(b"owner"),
            )?;
            expect_eq(
                "delete_if with the value the key holds",
                ctx.delete_if(&key, "owner").await?,
                true,
            )?;
            expect_eq("get after delete_if", ctx.get(&key).await?, None)
        }
        Rule::StaleOwner => {
            let key = ctx.key("lock");
            expect_eq(
                "owner a takes the lock",
                ctx.create(&key, "owner-a", Some(ctx.ttl)).await?,
                true,
            )?;
            ctx.wait_past_ttl().await;
            expect_eq(
                "owner b takes the lock after a's ttl",
                ctx.create(&key, "owner-b", Some(LONG_TTL)).await?,
                true,
            )?;
            expect_eq(
                "a's late release (delete_if with a's token)",
                ctx.delete_if(&key, "owner-a").await?,
                false,
            )?;
            expect_eq(
                "a's late renewal (renew_if with a's token)",
                ctx.renew_if(&key, "owner-a", ctx.ttl).await?,
                false,
            )?;
            expect_eq(
                "get after a's late release and renewal (b's lock)",
                ctx.get(&key).await?,
                some(b"owner-b"),
            )
        }
    }
}

/// A rule name as a key segment: `set/get: round-trips a value` -> `set-get-round-trips-a-value`.
fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut reversed = Vec::new();
    loop {
        // `n % 36` is below 36, a valid index.
        reversed.push(char::from(DIGITS[(n % 36) as usize]));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    reversed.into_iter().rev().collect()
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn rule_names_are_unique_and_slugs_are_distinct() {
        let names: Vec<&str> = store_rules().collect();
        assert_eq!(names.len(), 32);
        let mut slugs: Vec<String> = names.iter().map(|name| slug(name)).collect();
        assert_eq!(slugs[0], "set-get-round-trips-a-value");
        assert_eq!(slugs[3], "set-set-key-none-deletes-the-entry");
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), names.len());
    }

    #[test]
    fn base36_encodes() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u64::MAX), "3w5e11264sgsf");
    }

    #[test]
    fn report_display_and_assert_ok() {
        let mut report = ConformanceReport {
            passed: vec!["a", "b"],
            ..ConformanceReport::default()
        };
        assert!(report.ok());
        report.assert_ok();
        report.violations.push(Violation {
            rule: "set: a ttl entry expires",
            detail: "still there".into(),
        });
        assert!(!report.ok());
        assert!(report.violated("set: a ttl entry expires"));
        assert!(!report.violated("a"));
        let text = report.to_string();
        assert_eq!(
            text,
            "StitchAPI store contract: 1 violation(s), 2 rule(s) passed\n  \
             - set: a ttl entry expires: still there"
        );
        let panic = std::panic::catch_unwind(|| report.assert_ok()).unwrap_err();
        assert_eq!(panic_message(panic.as_ref()), text);
    }

    #[test]
    fn the_kit_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let store = MemoryStore::new();
        let future = store_conformance(&store, ConformanceOptions::new());
        assert_send(&future);
    }

    #[tokio::test]
    async fn the_memory_store_passes_in_virtual_time() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let report = store_conformance(
            &store,
            ConformanceOptions::new()
                .with_manual_clock(clock.clone())
                .with_key_prefix("test:"),
        )
        .await;
        report.assert_ok();
        assert_eq!(report.passed.len(), 32);
        // Every rule cleaned up after itself.
        assert!(store.is_empty(), "{store:?}");
    }
}
