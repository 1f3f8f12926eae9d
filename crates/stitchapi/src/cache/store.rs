//! The runtime cache of one stitch: generations, entries and their variants, the LRU cap and
//! single-flight fills, all over the stitch's store and clock.
//!
//! The pipeline calls, in order: [`ResponseCache::key`] (a bypass reason, or the key),
//! [`ResponseCache::get`] (a hit, or a miss with its [`Slot`]), then on a miss
//! [`ResponseCache::fill`] with the fetch (which returns only validated responses); `fill`
//! coalesces, writes the entry and tells how the response was obtained. When a hit no longer
//! decodes, the pipeline calls [`ResponseCache::evict`] and then `fill`.
//!
//! A response with `Vary` is stored as variants (RFC 9111 §4.1): the entry's key holds the
//! list of headers it varies on, and each request's values of those headers pick its own
//! variant, so a caller never gets a response negotiated for another (another language, say).
//! `Vary: *` is never stored.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use super::entry::{CachedResponse, Stored, VariantList, Vary};
use super::key::{self, Bypass, CacheKey, KeyRequest};
use super::{CachePolicy, Coalesce};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{CacheEvent, NotStoredReason};
use crate::flight::{self, FleetFlight, FleetTiming, Flights, Flown};
use crate::store::{DynStore, StitchStore, keys};
use crate::time::{Clock, Timestamp};

/// How long a generation counter lives (the reference's 30 days).
const GENERATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Who a cache belongs to, for its store keys.
#[derive(Clone, Debug)]
pub(crate) struct CacheIds {
    /// The stitch id (`name`, else the path template, else `"stitch"`).
    pub(crate) stitch_id: String,
    /// The seam's state id; `None` uses the reference's global `cache:gen`.
    pub(crate) seam_id: Option<String>,
}

/// Where a request's entry lives under the current generations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The entry's key: `cache:k2:g<seamGen>.<stitchGen>.<stitchId>:<32-hex>`.
    pub(crate) entry_key: String,
    /// When the entry is a variant list: the list, and this request's variant key.
    variant: Option<(VariantList, String)>,
}

impl Slot {
    fn primary(entry_key: String) -> Slot {
        Slot {
            entry_key,
            variant: None,
        }
    }

    /// The key this request's response is (or will be) stored under.
    fn key(&self) -> &str {
        self.variant
            .as_ref()
            .map_or(&self.entry_key, |(_, variant)| variant)
    }
}

/// The result of a lookup.
#[derive(Debug)]
pub(crate) struct Lookup {
    /// Where the entry is (pass it to `fill` or `evict`).
    pub(crate) slot: Slot,
    /// The entry, when there is one that decodes.
    pub(crate) hit: Option<CachedResponse>,
}

/// How a miss was served; each maps to a progress event detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Served from the store by `read_through` (`hit`).
    #[cfg(any(test, feature = "testing"))]
    Hit,
    /// This call fetched (event `cache` detail `miss`); `waited` when it first waited on
    /// another process's fill lock.
    Fetched {
        /// Whether it waited on the fleet lock first.
        waited: bool,
    },
    /// It shared a concurrent identical call's result in this process (`coalesced`).
    Coalesced,
    /// Another process fetched; this one read the entry it wrote (`fleet-wait` then `hit`).
    FleetFilled,
}

impl Outcome {
    /// The progress event.
    pub(crate) fn event(self) -> CacheEvent {
        match self {
            #[cfg(any(test, feature = "testing"))]
            Outcome::Hit => CacheEvent::Hit,
            Outcome::Fetched { waited: false } => CacheEvent::Miss,
            Outcome::Fetched { waited: true } => CacheEvent::MissAfterFleetWait,
            Outcome::Coalesced => CacheEvent::Coalesced,
            Outcome::FleetFilled => CacheEvent::FleetFilled,
        }
    }

    fn of(flown: Flown) -> Outcome {
        match flown {
            Flown::Led { waited } => Outcome::Fetched { waited },
            Flown::FleetFilled => Outcome::FleetFilled,
        }
    }
}

/// A response obtained by [`ResponseCache::fill`].
#[derive(Clone, Debug)]
pub(crate) struct Served {
    /// The response (decode it).
    pub(crate) response: CachedResponse,
    /// How it was obtained.
    pub(crate) outcome: Outcome,
    /// Why the response was not stored, when it was not (a store error, `Vary: *`).
    pub(crate) not_stored: Option<NotStoredReason>,
}

/// What a fill shares with the identical calls waiting on it.
#[derive(Clone, Debug)]
pub(crate) struct Filled {
    response: CachedResponse,
    /// The variant the response was stored as (a response with `Vary`).
    variant: Option<(VariantList, String)>,
    /// `Vary: *`: the response answers its own request only.
    varies_on_everything: bool,
}

/// In-process fills in flight, by entry key. One registry serves every stitch of a seam (or
/// one standalone stitch), so identical requests coalesce however their stitch was built.
pub(crate) type Fills = Flights<Filled>;

/// Keys this process wrote or hit, oldest first.
#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    by_key: HashMap<String, u64>,
    by_tick: BTreeMap<u64, String>,
}

impl Lru {
    /// Marks `key` as used; returns the keys to evict to stay within `cap`.
    fn touch(&mut self, key: &str, cap: usize) -> Vec<String> {
        self.tick += 1;
        if let Some(old) = self.by_key.insert(key.to_owned(), self.tick) {
            self.by_tick.remove(&old);
        }
        self.by_tick.insert(self.tick, key.to_owned());
        let mut evicted = Vec::new();
        while self.by_key.len() > cap {
            let Some((_, oldest)) = self.by_tick.pop_first() else {
                break;
            };
            self.by_key.remove(&oldest);
            evicted.push(oldest);
        }
        evicted
    }

    fn forget(&mut self, key: &str) {
        if let Some(tick) = self.by_key.remove(key) {
            self.by_tick.remove(&tick);
        }
    }
}

/// The response cache of one stitch.
pub(crate) struct ResponseCache {
    policy: CachePolicy,
    store: DynStore,
    clock: Arc<dyn Clock>,
    stitch_id: String,
    seam_gen_key: String,
    stitch_gen_key: String,
    fills: Arc<Fills>,
    /// Whether fills coalesce across processes (fleet coalescing on a store with owned locks).
    fleet: bool,
    lru: Mutex<Lru>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("stitch_id", &self.stitch_id)
            .field("ttl", &self.policy.ttl)
            .field("coalesce", &self.policy.coalesce)
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// A cache over `store` whose in-process fills go through `fills`. Fleet coalescing needs
    /// owned locks; on a store without them fills coalesce within each process (the build
    /// reports it).
    pub(crate) fn new(
        policy: CachePolicy,
        store: DynStore,
        clock: Arc<dyn Clock>,
        ids: CacheIds,
        fills: Arc<Fills>,
    ) -> Self {
        let fleet = policy.coalesce == Coalesce::Fleet && store.capabilities().owned_locks();
        ResponseCache {
            stitch_gen_key: keys::cache_generation(Some(&ids.stitch_id)),
            seam_gen_key: keys::cache_generation(ids.seam_id.as_deref()),
            stitch_id: ids.stitch_id,
            policy,
            store,
            clock,
            fills,
            fleet,
            lru: Mutex::new(Lru::default()),
        }
    }

    /// The key of a resolved request, or why it is not cached.
    pub(crate) fn key(&self, request: &KeyRequest<'_>) -> std::result::Result<CacheKey, Bypass> {
        key::derive(&self.policy, request)
    }

    async fn generation(&self, key: &str) -> Result<u64> {
        Ok(match self.store.get(key).await? {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .map_or(0, |n| n.max(0) as u64),
        })
    }

    /// The key of `key`'s entry under the current generations (reads both).
    async fn entry_key(&self, key: &CacheKey) -> Result<String> {
        // Both generations at once: on a networked store that is one round trip of latency.
        let (seam, stitch) = futures_util::future::join(
            self.generation(&self.seam_gen_key),
            self.generation(&self.stitch_gen_key),
        )
        .await;
        Ok(keys::cache_entry(seam?, stitch?, &self.stitch_id, &key.hex))
    }

    /// Looks `key` up for a request with `headers` (which pick the variant of a response
    /// with `Vary`). A corrupt entry is evicted and reported as a miss.
    pub(crate) async fn get(&self, key: &CacheKey, headers: &HeaderMap) -> Result<Lookup> {
        let entry_key = self.entry_key(key).await?;
        self.find(entry_key, headers).await
    }

    async fn find(&self, entry_key: String, headers: &HeaderMap) -> Result<Lookup> {
        let Some(bytes) = self.store.get(&entry_key).await? else {
            return Ok(Lookup {
                slot: Slot::primary(entry_key),
                hit: None,
            });
        };
        let list = match Stored::decode(&bytes) {
            Some(Stored::Response(response)) => {
                self.touch(&entry_key).await;
                return Ok(Lookup {
                    slot: Slot::primary(entry_key),
                    hit: Some(response),
                });
            }
            Some(Stored::Variants(list)) => list,
            None => {
                let slot = Slot::primary(entry_key);
                self.evict(&slot).await;
                return Ok(Lookup { slot, hit: None });
            }
        };
        let variant = keys::cache_variant(&entry_key, &key::variant(&list, headers));
        let slot = Slot {
            entry_key,
            variant: Some((list, variant)),
        };
        let hit = match self.store.get(slot.key()).await? {
            None => None,
            Some(bytes) => match CachedResponse::decode(&bytes) {
                Some(response) => {
                    self.touch(slot.key()).await;
                    Some(response)
                }
                None => {
                    self.evict(&slot).await;
                    None
                }
            },
        };
        Ok(Lookup { slot, hit })
    }

    /// Writes `value` at `key` with the TTL, within the store's size limit.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        if let Some(max) = self.store.capabilities().max_value_bytes
            && value.len() > max
        {
            return Err(Error::new(
                ErrorKind::Store,
                format!(
                    "cache entry of {} bytes exceeds the {} store's limit of {max} bytes",
                    value.len(),
                    self.store.name()
                ),
            ));
        }
        self.store
            .set(key, Some(Bytes::from(value)), Some(self.policy.ttl))
            .await?;
        Ok(())
    }

    /// Stores a validated response for a request with `headers`: as the entry, or (with
    /// `Vary`) as this request's variant plus the variant list. Returns what followers share
    /// and why nothing was stored, if it was not.
    async fn store_response(
        &self,
        slot: &Slot,
        headers: &HeaderMap,
        response: CachedResponse,
    ) -> (Filled, Option<NotStoredReason>) {
        let names = match Vary::of(&response.headers, &self.policy.ignored) {
            Vary::Any => {
                let filled = Filled {
                    response,
                    variant: None,
                    varies_on_everything: true,
                };
                return (filled, Some(NotStoredReason::VariesOnEverything));
            }
            Vary::None => {
                let stored = self.put(&slot.entry_key, response.encode()).await;
                if stored.is_ok() {
                    self.touch(&slot.entry_key).await;
                }
                let filled = Filled {
                    response,
                    variant: None,
                    varies_on_everything: false,
                };
                return (
                    filled,
                    stored.err().map(|e| NotStoredReason::store_failed(&e)),
                );
            }
            Vary::On(names) => names,
        };
        let list = match &slot.variant {
            Some((list, _)) if list.names == names => list.clone(),
            _ => VariantList::new(names),
        };
        let variant = keys::cache_variant(&slot.entry_key, &key::variant(&list, headers));
        let stored = match self.put(&variant, response.encode()).await {
            // The list last: a reader that finds it finds this variant too.
            Ok(()) => self.put(&slot.entry_key, list.encode()).await,
            Err(error) => Err(error),
        };
        if stored.is_ok() {
            self.touch(&variant).await;
        }
        let filled = Filled {
            response,
            variant: Some((list, variant)),
            varies_on_everything: false,
        };
        (
            filled,
            stored.err().map(|e| NotStoredReason::store_failed(&e)),
        )
    }

    /// Deletes the entry a lookup found (a hit that no longer decodes), best effort.
    pub(crate) async fn evict(&self, slot: &Slot) {
        self.lru
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(slot.key());
        let _ = self.store.set(slot.key(), None, None).await;
    }

    async fn touch(&self, key: &str) {
        let evicted = self
            .lru
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .touch(key, self.policy.entries);
        for key in evicted {
            let _ = self.store.set(&key, None, None).await;
        }
    }

    /// Deletes `key`'s entry under the current generations (with its variant list, so every
    /// variant becomes unreachable).
    pub(crate) async fn invalidate(&self, key: &CacheKey) -> Result<()> {
        let entry_key = self.entry_key(key).await?;
        self.lru
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(&entry_key);
        self.store.set(&entry_key, None, None).await?;
        Ok(())
    }

    /// Makes every entry of this stitch unreachable (bumps `cache:gen:<stitch-id>`).
    pub(crate) async fn invalidate_stitch(&self) -> Result<()> {
        bump_generation(&*self.store, &self.stitch_gen_key).await
    }

    /// Serves a miss of a request with `headers`: coalesces with identical calls in flight (in
    /// this process, and with `Coalesce::Fleet` across processes), runs `fetch` if this call
    /// is the one, and stores its result. `fetch` must return only validated responses; its
    /// error is shared with the calls that waited on it. A call waits on others until its
    /// `deadline` at most; then it runs its own `fetch`, which is expected to fail at once with
    /// the call's timeout.
    pub(crate) async fn fill<F, Fut>(
        &self,
        slot: &Slot,
        headers: &HeaderMap,
        deadline: Option<Timestamp>,
        fetch: F,
    ) -> Result<Served>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedResponse>>,
    {
        if self.policy.coalesce == Coalesce::Off {
            let response = fetch().await?;
            let (filled, not_stored) = self.store_response(slot, headers, response).await;
            return Ok(served(
                filled,
                Outcome::Fetched { waited: false },
                not_stored,
            ));
        }
        let mut fetch = Some(fetch);
        let mut slot = slot.clone();
        // The slot's flight; then, if that flight stored another variant, this request's own.
        for _ in 0..2 {
            let until = deadline.map(|deadline| (&*self.clock, deadline));
            let (filled, led) = self
                .fills
                .run(slot.key(), until, || {
                    let fetch = fetch.take();
                    let slot = &slot;
                    async move {
                        let fetch = fetch.ok_or_else(fetch_spent)?;
                        let ((filled, not_stored), flown) =
                            self.lead(slot, headers, deadline, fetch).await?;
                        Ok((filled, (flown, not_stored)))
                    }
                })
                .await?;
            if let Some((flown, not_stored)) = led {
                return Ok(served(filled, Outcome::of(flown), not_stored));
            }
            match self.applies(&filled, &slot, headers) {
                Some(None) => return Ok(served(filled, Outcome::Coalesced, None)),
                Some(Some(own)) => slot = own,
                None => break,
            }
        }
        // A response to one request only (`Vary: *`), or a variant list that changed under
        // this call: fetch for this request alone.
        let fetch = fetch.take().ok_or_else(fetch_spent)?;
        let response = fetch().await?;
        let (filled, not_stored) = self.store_response(&slot, headers, response).await;
        Ok(served(
            filled,
            Outcome::Fetched { waited: false },
            not_stored,
        ))
    }

    /// Whether a response another call fetched answers this request: `Some(None)` yes,
    /// `Some(Some(slot))` no, this request's variant is at `slot`, `None` no (`Vary: *`).
    fn applies(&self, filled: &Filled, slot: &Slot, headers: &HeaderMap) -> Option<Option<Slot>> {
        if filled.varies_on_everything {
            return None;
        }
        let Some((list, stored)) = &filled.variant else {
            return Some(None);
        };
        let own = keys::cache_variant(&slot.entry_key, &key::variant(list, headers));
        Some((own != *stored).then(|| Slot {
            entry_key: slot.entry_key.clone(),
            variant: Some((list.clone(), own)),
        }))
    }

    /// Fetches and stores as the leader of this process's flight: under the fleet lock when
    /// fills coalesce across processes, else at once.
    async fn lead<F, Fut>(
        &self,
        slot: &Slot,
        headers: &HeaderMap,
        deadline: Option<Timestamp>,
        fetch: F,
    ) -> Result<((Filled, Option<NotStoredReason>), Flown)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedResponse>>,
    {
        let fleet = self.fleet.then(|| FleetFlight {
            store: self.store.clone(),
            lock_key: keys::cache_lock(slot.key()),
            timing: FleetTiming {
                lock_ttl: self.policy.lock_ttl,
                poll: self.policy.poll,
                wait: self.policy.wait,
            },
            clock: &*self.clock,
            deadline,
        });
        let done = || async {
            let lookup = self.find(slot.entry_key.clone(), headers).await?;
            Ok(lookup.hit.map(|response| {
                let filled = Filled {
                    response,
                    variant: lookup.slot.variant,
                    varies_on_everything: false,
                };
                (filled, None)
            }))
        };
        let fetch = || async {
            let response = fetch().await?;
            Ok(self.store_response(slot, headers, response).await)
        };
        flight::lead(fleet, done, fetch).await
    }

    /// `key` -> `get` -> (miss) `fill`, failing open: a store error on the read is a miss.
    /// (The pipeline decodes hits itself; this serves the tests and the benchmark.)
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn read_through<F, Fut>(
        &self,
        key: &CacheKey,
        headers: &HeaderMap,
        fetch: F,
    ) -> Result<Served>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedResponse>>,
    {
        match self.get(key, headers).await {
            Ok(Lookup {
                hit: Some(response),
                ..
            }) => Ok(Served {
                response,
                outcome: Outcome::Hit,
                not_stored: None,
            }),
            Ok(Lookup { slot, hit: None }) => self.fill(&slot, headers, None, fetch).await,
            Err(e) => {
                let response = fetch().await?;
                Ok(Served {
                    response,
                    outcome: Outcome::Fetched { waited: false },
                    not_stored: Some(NotStoredReason::store_failed(&e)),
                })
            }
        }
    }
}

fn served(filled: Filled, outcome: Outcome, not_stored: Option<NotStoredReason>) -> Served {
    Served {
        response: filled.response,
        outcome,
        not_stored,
    }
}

/// The fetch of a fill is run at most once; asking for it twice is a bug in this module.
fn fetch_spent() -> Error {
    Error::new(
        ErrorKind::Store,
        "internal: the cache fill's fetch was already used",
    )
}

/// Bumps a seam's generation (`cache:gen:<seam-id>`, or `cache:gen` without an id): every
/// entry of every stitch in the seam becomes unreachable. No key is scanned.
pub(crate) async fn invalidate_seam(store: &dyn StitchStore, seam_id: Option<&str>) -> Result<()> {
    bump_generation(store, &keys::cache_generation(seam_id)).await
}

/// Moves a generation counter on, so every entry written under its old value is unreachable.
///
/// With an atomic `increment` the generation counts up (0, 1, 2, ...). A store without one
/// (Workers KV: eventually consistent, last write wins) cannot count: two invalidations that
/// read the same value would write the same next value, and a reader served an old value by a
/// lagging replica would count up to a generation that was used before, bringing its stale
/// entries back. There the generation is instead **set to a fresh random number** (in
/// `1..2^62`): it never repeats an earlier generation, whatever a replica says, so an entry
/// once invalidated is never served again. Readers that still see the old generation (on KV
/// until the write propagates, up to about 60 s) keep hitting the old entries for that long:
/// that propagation delay is the staleness window of an invalidation on such a store.
async fn bump_generation(store: &dyn StitchStore, key: &str) -> Result<()> {
    if store.capabilities().atomic_increment {
        store.increment(key, Some(GENERATION_TTL)).await?;
    } else {
        let fresh = fastrand::u64(1..1 << 62);
        store
            .set(
                key,
                Some(Bytes::from(fresh.to_string())),
                Some(GENERATION_TTL),
            )
            .await?;
    }
    Ok(())
}
