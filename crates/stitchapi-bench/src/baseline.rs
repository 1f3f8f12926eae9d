//! The floor the memory store and the response cache are measured against: the same data
//! structures, doing the same work per operation, with nothing else (no lock, no clock, no
//! value kinds, no boxed futures).
//!
//! A lookup in a hash map of a million entries misses the CPU caches (and the TLB) whatever
//! the algorithm, so its cost grows with the size; what stitchapi adds on top should not.
//! The growth bench reports stitchapi's cost divided by this floor's at each size.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

/// How many expired entries one write drops, as in `stitchapi::store::MemoryStore`.
pub const SWEEP_LIMIT: usize = 64;

/// A map with TTLs: a `HashMap<String, Bytes>` (each value with its place in the expiry
/// index) and a `BTreeMap` expiry index ordered by (expiry, write sequence); every write first
/// drops up to [`SWEEP_LIMIT`] expired entries, earliest first.
#[derive(Debug, Default)]
pub struct BareTtlMap {
    values: HashMap<String, (Bytes, (u64, u64))>,
    expiries: BTreeMap<(u64, u64), String>,
    next_seq: u64,
}

impl BareTtlMap {
    /// An empty map.
    pub fn new() -> Self {
        BareTtlMap::default()
    }

    /// The value at `key` (expiry is not checked: the floor).
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.values.get(key).map(|(value, _)| value.clone())
    }

    /// Drops up to [`SWEEP_LIMIT`] entries expired at `now`, then stores `value` at `key`
    /// until `expires_at` (both in milliseconds on any clock).
    pub fn set(&mut self, key: &str, value: Bytes, expires_at: u64, now: u64) {
        self.sweep(now);
        let index = (expires_at, self.next_seq);
        self.next_seq += 1;
        if let Some((_, old)) = self.values.insert(key.to_owned(), (value, index)) {
            self.expiries.remove(&old);
        }
        self.expiries.insert(index, key.to_owned());
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        if let Some((_, index)) = self.values.remove(key) {
            self.expiries.remove(&index);
        }
    }

    /// How many entries it holds, expired or not.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn sweep(&mut self, now: u64) {
        for _ in 0..SWEEP_LIMIT {
            match self.expiries.first_key_value() {
                Some((&(at, _), _)) if at <= now => {}
                _ => break,
            }
            if let Some((_, key)) = self.expiries.pop_first() {
                self.values.remove(&key);
            }
        }
    }
}

/// A least-recently-used order: a `HashMap` from key to its last use and a `BTreeMap` from use
/// to key, as in the response cache's cap.
#[derive(Debug, Default)]
pub struct BareLru {
    tick: u64,
    by_key: HashMap<String, u64>,
    by_tick: BTreeMap<u64, String>,
}

impl BareLru {
    /// An empty order.
    pub fn new() -> Self {
        BareLru::default()
    }

    /// Marks `key` as used; returns the least recently used key when more than `cap` are held.
    pub fn touch(&mut self, key: &str, cap: usize) -> Option<String> {
        self.tick += 1;
        if let Some(old) = self.by_key.insert(key.to_owned(), self.tick) {
            self.by_tick.remove(&old);
        }
        self.by_tick.insert(self.tick, key.to_owned());
        if self.by_key.len() <= cap {
            return None;
        }
        let (_, oldest) = self.by_tick.pop_first()?;
        self.by_key.remove(&oldest);
        Some(oldest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ttl_map_sweeps_64_expired_entries_per_write() {
        let mut map = BareTtlMap::new();
        for i in 0..200 {
            map.set(&format!("k{i}"), Bytes::from_static(b"x"), 10, 0);
        }
        map.set("k0", Bytes::from_static(b"y"), 10, 0);
        assert_eq!(map.len(), 200);
        assert_eq!(map.get("k0").as_deref(), Some(&b"y"[..]));
        map.set("new", Bytes::from_static(b"x"), 100, 10);
        assert_eq!(map.len(), 200 - 64 + 1);
        map.remove("new");
        assert_eq!(map.len(), 200 - 64);
        assert!(!map.is_empty());
    }

    #[test]
    fn the_lru_evicts_the_least_recently_used() {
        let mut lru = BareLru::new();
        assert_eq!(lru.touch("a", 2), None);
        assert_eq!(lru.touch("b", 2), None);
        assert_eq!(lru.touch("a", 2), None);
        assert_eq!(lru.touch("c", 2).as_deref(), Some("b"));
    }
}
