//! Throttling: pacing ([`Rate`], `"10/s"`) and a concurrency cap, in this process or fleet-wide.
//!
//! A [`Throttle`] is a declaration; a stitch or seam resolves it when it is built, against its
//! store's [`Capabilities`](crate::store::Capabilities), into a limiter (crate-private):
//!
//! - a store whose scope is [`Scope::Process`] (the memory store) gets the **in-process
//!   limiter**: a FIFO concurrency queue, then a pacing cell ([`gcra`]);
//! - a fleet store, and a host pool ([`Pool::Host`]) over any store, get the **store-backed
//!   limiter**: exact pacing through `reserve` (or a window counter through `increment`, which
//!   can over-admit, see below) and concurrency through `lease`/`release`. A store that lacks
//!   what the throttle needs is a build error naming the capability and the fix.
//!
//! The fallback pacing through `increment` keeps each process exactly spaced and shares one
//! budget at each window boundary, but a fleet that starts in the middle of a window runs at up
//! to N× the rate until the window's slots catch up with the clock.
//!
//! Every wait is bounded by the call's deadline: a grant that would come after it fails at once
//! with a timeout error, and costs the callers after it nothing (the pacing
//! cell is not advanced, in the process or in the store: `reserve` takes the deadline as its
//! `latest`). The window-counter fallback cannot take a counted slot back.
//!
//! A caller cancelled while it waits gives back what it took. Its concurrency slot is freed
//! (a fleet lease still in flight is released in the background, since the store may have
//! granted it). In the process, its pacing turn is given back when no live turn comes after
//! it. On a fleet store its turn stays spent in the store's cell; since the turn was reserved
//! no later than the caller's deadline (30 s by default), that is the most it can cost the
//! callers after it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use http::Method;
//! use stitchapi::testing::{ManualClock, MockResponse, MockTransport};
//! use stitchapi::throttle::Throttle;
//! use stitchapi::time::Clock;
//! use stitchapi::{Input, Stitch};
//!
//! let mock = MockTransport::new();
//! mock.route(Method::GET, "/prices", [MockResponse::status(200)]);
//! let clock = ManualClock::auto_advance();
//! let prices = Stitch::get("https://api.example.com/prices")
//!     .throttle(Throttle::new("10/s").with_concurrency(4))
//!     .transport(Arc::new(mock.clone()))
//!     .clock(Arc::new(clock.clone()))
//!     .build()?;
//! let start = clock.now();
//! prices.call(Input::new()).await?;
//! prices.call(Input::new()).await?; // paced: 100 ms after the first
//! assert_eq!(clock.now().saturating_duration_since(start), Duration::from_millis(100));
//! # Ok(()) }
//! ```

pub mod gcra;
mod local;
mod permit;
mod rate;
mod stored;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::duration::DurationSpec;
use crate::error::{BuildError, Error};
use crate::policy::StatusSpec;
use crate::store::{Consistency, DynStore, Reservation, Scope, StoreError};
use crate::time::{Clock, Timestamp};
use http::StatusCode;

use local::LocalLimiter;
pub(crate) use permit::Permit;
pub use rate::{Rate, RateError, RateSpec};
use stored::{Pacing, StoreLimiter};

/// The default fleet lease: how long a crashed holder keeps its concurrency slot.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Which budget a throttle draws from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// The stitch's (or seam's) own budget (the default).
    #[default]
    Stitch,
    /// One budget for every stitch aimed at the same host (the key is the host, with a
    /// non-default port) over the same store: the budget lives in the store (`reserve` and
    /// `lease`), so stitches and seams that share a store share it, in one process or across a
    /// fleet, and stitches over other stores do not. Each limiter keeps its own concurrency
    /// cap against the shared holders; waiters for a slot poll the store (no FIFO order).
    Host,
}

/// What an acquire does when the store fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreFailure {
    /// Fail the call with the store's error (kind `Store`), not retried. The default.
    #[default]
    FailClosed,
    /// Fall back to the in-process limiter for that acquire and report it (a progress event
    /// carrying the store's error).
    FailOpen,
}

/// A throttle declaration: a rate, a concurrency cap, or delegate mode.
///
/// Three constructors, one per mode: [`Throttle::new`] paces at a [`Rate`] (or a rate string
/// such as `"10/s"`), [`Throttle::concurrency`] only caps the calls in flight, and
/// [`Throttle::delegate`] leaves limiting to the upstream. A paced throttle takes a cap with
/// [`with_concurrency`](Self::with_concurrency).
///
/// A burst allowance (governor's `allow_burst`) is not offered: the fleet pacing cell is the
/// store's `reserve` (the Redis script mirrors [`gcra::step`]), which carries only the spacing;
/// a burst would need a tolerance in that atomic step, so a new store contract.
///
/// ```
/// use std::num::NonZeroU32;
/// use http::StatusCode;
/// use stitchapi::throttle::{Pool, Rate, StoreFailure, Throttle};
///
/// let throttle = Throttle::new(Rate::per_second(NonZeroU32::new(10).unwrap()))
///     .with_concurrency(4)
///     .lease(std::time::Duration::from_secs(20))
///     .pool(Pool::Host)
///     .on_store_error(StoreFailure::FailOpen);
///
/// // The string form, as in config files.
/// let same_rate = Throttle::new("10/s");
/// // A cap only.
/// let capped = Throttle::concurrency(8);
///
/// // Delegate mode: no internal throttle; a 429 becomes a `RateLimited` error.
/// let delegate = Throttle::delegate().on([StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE]);
/// # let _ = (throttle, same_rate, capped, delegate);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Throttle {
    rate: Option<RateSpec>,
    concurrency: Option<u32>,
    lease: Option<DurationSpec>,
    pool: Pool,
    delegate: bool,
    on: Vec<StatusSpec>,
    on_store_error: StoreFailure,
}

impl Throttle {
    fn empty() -> Self {
        Throttle {
            rate: None,
            concurrency: None,
            lease: None,
            pool: Pool::Stitch,
            delegate: false,
            on: vec![StatusSpec::from(StatusCode::TOO_MANY_REQUESTS)],
            on_store_error: StoreFailure::FailClosed,
        }
    }

    /// A throttle pacing at `rate`: a [`Rate`], or a string (`"10/s"`, `"120/m"`,
    /// `"100/15m"`, `"2/500ms"`) checked by [`build`](crate::StitchBuilder::build).
    pub fn new(rate: impl Into<RateSpec>) -> Self {
        Throttle {
            rate: Some(rate.into()),
            ..Throttle::empty()
        }
    }

    /// A throttle that only caps the calls in flight at `limit` (no pacing); 0 is refused by
    /// [`build`](crate::StitchBuilder::build).
    pub fn concurrency(limit: u32) -> Self {
        Throttle::empty().with_concurrency(limit)
    }

    /// Also caps the calls in flight at `limit`; 0 is refused by [`build`](crate::StitchBuilder::build).
    pub fn with_concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// How long a fleet concurrency slot is held before it expires on its own (default 30 s).
    pub fn lease(mut self, lease: impl Into<DurationSpec>) -> Self {
        self.lease = Some(lease.into());
        self
    }

    /// Which budget to draw from.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = pool;
        self
    }

    /// What to do when the store fails during an acquire (default fail-closed).
    pub fn on_store_error(mut self, policy: StoreFailure) -> Self {
        self.on_store_error = policy;
        self
    }

    /// Delegate mode: no internal throttle; a response whose status is in [`on`](Self::on)
    /// (default `[429]`) fails the call as `RateLimited`, never retried.
    pub fn delegate() -> Self {
        Throttle {
            delegate: true,
            ..Throttle::empty()
        }
    }

    /// The statuses that count as a rate limit in delegate mode: [`StatusCode`]s or `u16`s
    /// (an invalid code is refused by [`build`](crate::StitchBuilder::build), naming `throttle.on`).
    pub fn on<S: Into<StatusSpec>>(mut self, statuses: impl IntoIterator<Item = S>) -> Self {
        self.on = statuses.into_iter().map(Into::into).collect();
        self
    }

    /// Whether this is delegate mode.
    pub(crate) fn is_delegate(&self) -> bool {
        self.delegate
    }

    /// Whether `status` is a rate limit under delegate mode (always `false` otherwise).
    pub(crate) fn is_rate_limited(&self, status: impl Into<StatusSpec>) -> bool {
        self.delegate && self.on.contains(&status.into())
    }

    /// The pool: the caller derives the key from it (the host for [`Pool::Host`]).
    pub(crate) fn pool_kind(&self) -> Pool {
        self.pool
    }

    /// Checks the declaration and resolves it against `store`: `Ok(None)` in delegate mode,
    /// otherwise the limiter for `key` (the host under [`Pool::Host`], the stitch or seam key
    /// otherwise). Errors name the field, or the missing store capability and the fix.
    pub(crate) fn build(
        &self,
        key: &str,
        store: DynStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Limiter>, BuildError> {
        self.checked(key, store, clock)
            .map_err(Error::into_build_error)
    }

    fn checked(
        &self,
        key: &str,
        store: DynStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Limiter>, Error> {
        for status in &self.on {
            status.check("throttle.on")?;
        }
        if self.delegate {
            if self.rate.is_some() || self.concurrency.is_some() {
                return Err(Error::config(
                    "throttle.delegate",
                    "delegate mode has no internal throttle, but a rate or concurrency is set",
                    "remove `rate`/`concurrency`, or drop `delegate`",
                ));
            }
            return Ok(None);
        }
        let rate = self
            .rate
            .as_ref()
            .map(|rate| rate.resolve("throttle.rate"))
            .transpose()?;
        if self.concurrency == Some(0) {
            return Err(Error::config(
                "throttle.concurrency",
                "a cap of 0 would block every call",
                "set 1 or more, or remove it",
            ));
        }
        if rate.is_none() && self.concurrency.is_none() {
            return Err(Error::config(
                "throttle",
                "neither a rate nor a concurrency cap is set",
                "set `rate` (e.g. \"10/s\"), `concurrency`, or `delegate`",
            ));
        }
        let lease = match &self.lease {
            Some(spec) => spec.resolve("throttle.lease")?,
            None => DEFAULT_LEASE,
        };
        if lease.is_zero() {
            return Err(Error::config(
                "throttle.lease",
                "a zero lease expires at once",
                "set a lease longer than your slowest call, e.g. \"30s\"",
            ));
        }
        let spacing = rate.map(|rate| rate.spacing());
        let caps = store.capabilities();
        let host_pool = self.pool == Pool::Host;
        if caps.scope == Scope::Process && !host_pool {
            return Ok(Some(Limiter {
                inner: Arc::new(Inner::Local(LocalLimiter::new(
                    spacing,
                    self.concurrency,
                    clock,
                ))),
            }));
        }
        let name = store.name();
        let why = if caps.scope == Scope::Fleet {
            format!("the {name} store is shared by a fleet")
        } else {
            format!("a host pool lives in the store, and the {name} store")
        };
        let rate = match rate {
            None => None,
            Some(rate) if caps.reserve => Some((rate.spacing(), rate.per(), Pacing::Reserve)),
            Some(rate) if caps.atomic_increment => {
                Some((rate.spacing(), rate.per(), Pacing::Window))
            }
            Some(_) => {
                return Err(Error::config(
                    "throttle.rate",
                    format!(
                        "{why} but has neither `reserve` nor an atomic `increment`, so the rate cannot be enforced{}",
                        cannot_count(caps.consistency)
                    ),
                    COUNTING_STORES,
                ));
            }
        };
        if self.concurrency.is_some() && !caps.lease {
            return Err(Error::config(
                "throttle.concurrency",
                format!(
                    "{why} but has no `lease`/`release`, so the cap cannot be enforced{}",
                    cannot_count(caps.consistency)
                ),
                "use a store with leases (Redis, memory, or on Cloudflare Workers the Durable Object store `stitchapi_cloudflare::DurableObjectStore`), or drop `concurrency`",
            ));
        }
        // Fail-open falls back to a private in-process limiter.
        let fallback = LocalLimiter::new(spacing, self.concurrency, clock.clone());
        Ok(Some(Limiter {
            inner: Arc::new(Inner::Store(StoreLimiter::new(
                store,
                clock,
                key.to_owned(),
                rate,
                self.concurrency,
                lease,
                self.on_store_error,
                fallback,
            ))),
        }))
    }
}

/// The fix of a throttle whose store cannot count.
const COUNTING_STORES: &str = "use a store with `reserve` or an atomic `increment` (Redis, memory, or on Cloudflare Workers the Durable Object store `stitchapi_cloudflare::DurableObjectStore`), or throttle per process with a process-scoped store and the default pool";

/// Why a store of this consistency cannot count, added to the build error (empty for a
/// strongly consistent store, which merely lacks the verb).
fn cannot_count(consistency: Consistency) -> &'static str {
    match consistency {
        Consistency::Eventual => {
            ": its writes are eventually consistent and the last write wins, so concurrent callers read the same count and overwrite each other's updates (Workers KV is such a store)"
        }
        Consistency::Strong => "",
    }
}

impl From<&str> for Throttle {
    /// `"10/s"`: shorthand for `Throttle::new("10/s")`.
    fn from(rate: &str) -> Self {
        Throttle::new(rate)
    }
}

impl From<Rate> for Throttle {
    /// Shorthand for `Throttle::new(rate)`.
    fn from(rate: Rate) -> Self {
        Throttle::new(rate)
    }
}

/// A resolved throttle, cheap to clone. Acquire before each attempt; drop the [`Permit`] when
/// the attempt ends.
#[derive(Clone, Debug)]
pub(crate) struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    Local(LocalLimiter),
    Store(StoreLimiter),
}

impl Limiter {
    #[cfg(test)]
    /// Waits for a concurrency slot, then for the pacing grant, both bounded by `deadline`.
    pub(crate) async fn acquire(&self, deadline: Option<Timestamp>) -> Result<Grant, AcquireError> {
        self.acquire_inner(deadline, false).await
    }

    #[cfg(test)]
    /// Pacing only, no concurrency slot (streaming opens and reconnects).
    pub(crate) async fn acquire_rate_only(
        &self,
        deadline: Option<Timestamp>,
    ) -> Result<Grant, AcquireError> {
        self.acquire_inner(deadline, true).await
    }

    async fn acquire_inner(
        &self,
        deadline: Option<Timestamp>,
        rate_only: bool,
    ) -> Result<Grant, AcquireError> {
        match &*self.inner {
            Inner::Local(local) => local.acquire(deadline, rate_only).await,
            Inner::Store(stored) => stored.acquire(deadline, rate_only).await,
        }
    }

    /// Acquires every limiter in order (a seam's bucket, then the member's own throttle), so
    /// each gate must pass and the waits add up. The permit releases in reverse order; if a
    /// later gate fails, the earlier grants are released at once.
    pub(crate) async fn acquire_chain<'a>(
        limiters: impl IntoIterator<Item = &'a Limiter>,
        deadline: Option<Timestamp>,
        rate_only: bool,
    ) -> Result<Grant, AcquireError> {
        let limiters = limiters.into_iter();
        let mut permits = Vec::with_capacity(limiters.size_hint().0);
        let mut waited = Duration::ZERO;
        let mut fell_back = None;
        for limiter in limiters {
            let grant = limiter.acquire_inner(deadline, rate_only).await?;
            waited += grant.waited;
            if fell_back.is_none() {
                fell_back = grant.fell_back;
            }
            permits.push(grant.permit);
        }
        Ok(Grant {
            permit: Permit::chain(permits),
            waited,
            fell_back,
        })
    }

    #[cfg(test)]
    /// Whether this limiter keeps its budget in the store (a fleet store, or a host pool).
    pub(crate) fn is_store_backed(&self) -> bool {
        matches!(&*self.inner, Inner::Store(_))
    }
}

/// A granted acquire.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) struct Grant {
    /// Frees the concurrency slot: [`Permit::release`], or when dropped.
    pub(crate) permit: Permit,
    /// How long the acquire waited (for the `throttled` progress event when above zero).
    pub(crate) waited: Duration,
    /// Set when the store failed and the fail-open policy fell back to the in-process limiter
    /// for this acquire: the error to report as an event.
    pub(crate) fell_back: Option<StoreError>,
}

impl Grant {
    #[cfg(test)]
    /// How long the acquire waited.
    pub(crate) fn waited(&self) -> Duration {
        self.waited
    }

    /// Grants `permit` once the pacing grant `at` has come, with the time waited since
    /// `start`. The wait is measured from the clock's time now (after the reservation's
    /// round trip) and slept with [`Clock::sleep_precise`], so paced calls are evenly spaced.
    async fn paced(
        clock: &dyn Clock,
        permit: Permit,
        start: Timestamp,
        at: Option<Timestamp>,
    ) -> Grant {
        if let Some(at) = at {
            let wait = at.saturating_duration_since(clock.now());
            if !wait.is_zero() {
                clock.sleep_precise(wait).await;
            }
        }
        Grant {
            permit,
            waited: clock.now().saturating_duration_since(start),
            fell_back: None,
        }
    }
}

/// The time a pacing reservation grants, or, refused, the deadline error (having waited
/// `waited` so far).
fn granted(reservation: Reservation, waited: Duration) -> Result<Timestamp, AcquireError> {
    match reservation {
        Reservation::Granted(at) => Ok(at),
        Reservation::Refused(_) => Err(AcquireError::deadline(waited)),
    }
}

/// Why an acquire failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AcquireError {
    /// The grant would come after the call's deadline; the caller fails with a timeout.
    #[error("throttle wait would pass the deadline (waited {}ms)", waited.as_millis())]
    DeadlineExceeded {
        /// How long the acquire waited before giving up.
        waited: Duration,
    },
    /// The store failed (fail-closed): the call fails with kind `Store`, not retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AcquireError {
    fn deadline(waited: Duration) -> Self {
        AcquireError::DeadlineExceeded { waited }
    }
}

// ---- serde ----

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u16),
    Many(Vec<u16>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleTable {
    rate: Option<String>,
    concurrency: Option<u32>,
    lease: Option<DurationSpec>,
    pool: Option<Pool>,
    delegate: Option<bool>,
    on: Option<OneOrMany>,
    on_store_error: Option<StoreFailure>,
}

impl<'de> Deserialize<'de> for Throttle {
    /// `"10/s"` or `{ rate, concurrency, lease, pool = "host", delegate, on,
    /// on_store_error = "fail-open" }`; unknown fields are rejected.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Throttle;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as \"10/s\" or a throttle table")
            }
            fn visit_str<E: de::Error>(self, rate: &str) -> Result<Throttle, E> {
                Ok(Throttle::new(rate))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Throttle, A::Error> {
                let t = ThrottleTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if t.rate.is_none() && t.concurrency.is_none() && t.delegate != Some(true) {
                    return Err(de::Error::custom(
                        "an empty throttle: set `rate`, `concurrency` or `delegate = true`",
                    ));
                }
                let mut throttle = Throttle {
                    rate: t.rate.map(RateSpec::from),
                    concurrency: t.concurrency,
                    lease: t.lease,
                    pool: t.pool.unwrap_or_default(),
                    delegate: t.delegate.unwrap_or(false),
                    on_store_error: t.on_store_error.unwrap_or_default(),
                    ..Throttle::empty()
                };
                match t.on {
                    Some(OneOrMany::One(status)) => throttle.on = vec![status.into()],
                    Some(OneOrMany::Many(statuses)) => {
                        throttle.on = statuses.into_iter().map(StatusSpec::from).collect();
                    }
                    None => {}
                }
                Ok(throttle)
            }
        }
        deserializer.deserialize_any(V)
    }
}
