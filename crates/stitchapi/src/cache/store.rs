//! The runtime cache of one stitch: generations, entries, the LRU cap, coalescing and the
//! fleet lock, all over the stitch's store and clock.
//!
//! The pipeline calls, in order: [`ResponseCache::key`] (a bypass reason, or the key),
//! [`ResponseCache::get`] (a hit, or a miss with its [`Slot`]), then on a miss
//! [`ResponseCache::fill`] with the fetch (which returns only validated responses); `fill`
//! coalesces, writes the entry and tells how the response was obtained. When a hit no longer
//! decodes, the pipeline calls [`ResponseCache::evict`] and then `fill`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::coalesce::{Flights, Role};
use super::entry::CachedResponse;
use super::key::{self, Bypass, CacheKey, KeyRequest};
use super::{CachePolicy, Coalesce};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{DynStore, StitchStore};
use crate::time::Clock;

/// How long a generation counter lives (the reference's 30 days).
const GENERATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Who a cache belongs to, for its store keys.
#[derive(Clone, Debug)]
pub(crate) struct CacheIds {
    /// The stitch id (`name`, else the path template, else `"stitch"`).
    pub(crate) stitch_id: String,
    /// The seam id; `None` uses the reference's global `cache:gen`.
    pub(crate) seam_id: Option<String>,
}

/// Where a key's entry lives under the current generations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// `cache:k2:g<seamGen>.<stitchGen>.<stitchId>:<32-hex>`.
    pub(crate) entry_key: String,
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
    /// This call fetched (event `cache` detail `miss`); `waited` when it first waited for a
    /// fleet peer that did not deliver (`fleet-wait`).
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
    /// The event detail.
    pub(crate) fn detail(self) -> &'static str {
        match self {
            #[cfg(any(test, feature = "testing"))]
            Outcome::Hit => "hit",
            Outcome::Fetched { waited: false } => "miss",
            Outcome::Fetched { waited: true } => "miss (fleet wait expired)",
            Outcome::Coalesced => "coalesced",
            Outcome::FleetFilled => "hit (fleet filled)",
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
    /// A store error that was swallowed while writing the entry (the call still succeeds).
    pub(crate) store_error: Option<Error>,
}

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
    flights: Flights<CachedResponse>,
    lru: Mutex<Lru>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("stitch_id", &self.stitch_id)
            .field("ttl", &self.policy.ttl)
            .field("coalesce", &self.policy.coalesce)
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// A cache over `store`. Fleet coalescing needs an atomic `increment`.
    pub(crate) fn new(
        policy: CachePolicy,
        store: DynStore,
        clock: Arc<dyn Clock>,
        ids: CacheIds,
    ) -> Result<Self> {
        if policy.coalesce == Coalesce::Fleet && !store.capabilities().atomic_increment {
            return Err(Error::config(
                "cache.coalesce",
                format_args!(
                    "fleet coalescing needs an atomic increment, which the {} store lacks",
                    store.name()
                ),
                "use coalesce = \"process\", or a store with atomic counters (Redis, memory)",
            ));
        }
        Ok(ResponseCache {
            stitch_gen_key: format!("cache:gen:{}", ids.stitch_id),
            seam_gen_key: seam_gen_key(ids.seam_id.as_deref()),
            stitch_id: ids.stitch_id,
            policy,
            store,
            clock,
            flights: Flights::new(),
            lru: Mutex::new(Lru::default()),
        })
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

    /// Where `key`'s entry lives now (reads both generations).
    pub(crate) async fn slot(&self, key: &CacheKey) -> Result<Slot> {
        // Both generations at once: on a networked store that is one round trip of latency.
        let (seam, stitch) = futures_util::future::join(
            self.generation(&self.seam_gen_key),
            self.generation(&self.stitch_gen_key),
        )
        .await;
        let (seam, stitch) = (seam?, stitch?);
        Ok(Slot {
            entry_key: format!("cache:k2:g{seam}.{stitch}.{}:{}", self.stitch_id, key.hex),
        })
    }

    /// Looks `key` up. A corrupt entry is evicted and reported as a miss.
    pub(crate) async fn get(&self, key: &CacheKey) -> Result<Lookup> {
        let slot = self.slot(key).await?;
        let hit = self.read(&slot).await?;
        Ok(Lookup { slot, hit })
    }

    async fn read(&self, slot: &Slot) -> Result<Option<CachedResponse>> {
        let Some(bytes) = self.store.get(&slot.entry_key).await? else {
            return Ok(None);
        };
        match CachedResponse::decode(&bytes) {
            Some(response) => {
                self.touch(&slot.entry_key).await;
                Ok(Some(response))
            }
            None => {
                self.evict(slot).await;
                Ok(None)
            }
        }
    }

    /// Writes a validated response with the TTL.
    pub(crate) async fn put(&self, slot: &Slot, response: &CachedResponse) -> Result<()> {
        let bytes = Bytes::from(response.encode());
        if let Some(max) = self.store.capabilities().max_value_bytes
            && bytes.len() > max
        {
            return Err(Error::new(
                ErrorKind::Store,
                format!(
                    "cache entry of {} bytes exceeds the {} store's limit of {max} bytes; not cached",
                    bytes.len(),
                    self.store.name()
                ),
            ));
        }
        self.store
            .set(&slot.entry_key, Some(bytes), Some(self.policy.ttl))
            .await?;
        self.touch(&slot.entry_key).await;
        Ok(())
    }

    /// Deletes an entry (a hit that no longer decodes), best effort.
    pub(crate) async fn evict(&self, slot: &Slot) {
        self.lru
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(&slot.entry_key);
        let _ = self.store.set(&slot.entry_key, None, None).await;
    }

    async fn touch(&self, entry_key: &str) {
        let evicted = self
            .lru
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .touch(entry_key, self.policy.entries);
        for key in evicted {
            let _ = self.store.set(&key, None, None).await;
        }
    }

    /// Deletes `key`'s entry under the current generations.
    pub(crate) async fn invalidate(&self, key: &CacheKey) -> Result<()> {
        let slot = self.slot(key).await?;
        self.lru
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(&slot.entry_key);
        self.store.set(&slot.entry_key, None, None).await?;
        Ok(())
    }

    /// Makes every entry of this stitch unreachable (bumps `cache:gen:<stitch-id>`).
    pub(crate) async fn invalidate_stitch(&self) -> Result<()> {
        self.store
            .increment(&self.stitch_gen_key, Some(GENERATION_TTL))
            .await?;
        Ok(())
    }

    /// Serves a miss: coalesces with identical calls in flight, (with `Coalesce::Fleet`)
    /// elects one fetcher across processes, runs `fetch` if this call is the one, and writes
    /// its result. `fetch` must return only validated responses; its error is returned to
    /// this caller alone.
    pub(crate) async fn fill<F, Fut>(&self, slot: &Slot, fetch: F) -> Result<Served>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedResponse>>,
    {
        if self.policy.coalesce == Coalesce::Off {
            let (response, outcome, store_error) = self.fetch_and_put(slot, fetch).await?;
            return Ok(Served {
                response,
                outcome,
                store_error,
            });
        }
        let (response, role, extra) = self
            .flights
            .run(&slot.entry_key, || async {
                let (response, outcome, store_error) = self.fetch_and_put(slot, fetch).await?;
                Ok::<_, Error>((response, (outcome, store_error)))
            })
            .await?;
        let (outcome, store_error) = match (role, extra) {
            (Role::Ran, Some(extra)) => extra,
            _ => (Outcome::Coalesced, None),
        };
        Ok(Served {
            response,
            outcome,
            store_error,
        })
    }

    /// `key` -> `get` -> (miss) `fill`, failing open: a store error on the read is a miss.
    /// (The pipeline decodes hits itself; this serves the tests and the benchmark.)
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn read_through<F, Fut>(&self, key: &CacheKey, fetch: F) -> Result<Served>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedResponse>>,
    {
        match self.get(key).await {
            Ok(Lookup {
                hit: Some(response),
                ..
            }) => Ok(Served {
                response,
                outcome: Outcome::Hit,
                store_error: None,
            }),
            Ok(Lookup { slot, hit: None }) => self.fill(&slot, fetch).await,
            Err(e) => {
                let response = fetch().await?;
                Ok(Served {
                    response,
                    outcome: Outcome::Fetched { waited: false },
                    store_error: Some(e),
                })
            }
        }
    }

    async fn fetch_and_put<F, Fut>(
        &self,
        slot: &Slot,
        fetch: F,
    ) -> Result<(CachedResponse, Outcome, Option<Error>)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedResponse>>,
    {
        let mut waited = false;
        let lock_key = format!(
            "cache:lock:{}",
            slot.entry_key
                .strip_prefix("cache:k2:")
                .unwrap_or(&slot.entry_key)
        );
        let fleet = self.policy.coalesce == Coalesce::Fleet;
        if fleet && !self.take_lock(&lock_key).await {
            waited = true;
            let deadline = self.clock.now() + self.policy.wait;
            loop {
                let now = self.clock.now();
                if now >= deadline {
                    break;
                }
                let poll = self.policy.poll.mul_f64(0.5 + fastrand::f64());
                self.clock
                    .sleep(poll.min(deadline.saturating_duration_since(now)))
                    .await;
                if let Ok(Some(response)) = self.read(slot).await {
                    return Ok((response, Outcome::FleetFilled, None));
                }
                if self.take_lock(&lock_key).await {
                    // The holder released (failed) or its lock expired: this call fetches.
                    break;
                }
            }
        }
        let result = fetch().await;
        let store_error = match &result {
            Ok(response) => self.put(slot, response).await.err(),
            Err(_) => None,
        };
        if fleet {
            // Best effort: let waiters take over at once (after a failure) or stop polling.
            let _ = self.store.set(&lock_key, None, None).await;
        }
        Ok((result?, Outcome::Fetched { waited }, store_error))
    }

    /// Takes the fleet lock; a store error counts as taken (fetch rather than wait).
    async fn take_lock(&self, lock_key: &str) -> bool {
        !matches!(
            self.store.increment(lock_key, Some(self.policy.lock_ttl)).await,
            Ok(n) if n > 1
        )
    }
}

/// Bumps a seam's generation (`cache:gen:<seam-id>`, or `cache:gen` without an id): every
/// entry of every stitch in the seam becomes unreachable. No key is scanned.
pub(crate) async fn invalidate_seam(store: &dyn StitchStore, seam_id: Option<&str>) -> Result<()> {
    store
        .increment(&seam_gen_key(seam_id), Some(GENERATION_TTL))
        .await?;
    Ok(())
}

/// The key of a seam's cache generation, which every member's entries name.
fn seam_gen_key(seam_id: Option<&str>) -> String {
    match seam_id {
        Some(seam) => format!("cache:gen:{seam}"),
        None => "cache:gen".to_owned(),
    }
}
