//! Every store key the core writes, in one place. The table in the [store docs](super) lists
//! them; a change here changes what a fleet of older processes can read.

use crate::time::Timestamp;

/// The vault prefix: auth tokens and sessions live under `vault:`.
pub(crate) const VAULT_PREFIX: &str = "vault:";

/// The id of a seam's shared state: `seam:<name or base URL>`.
pub(crate) fn seam_state(seam_id: &str) -> String {
    format!("seam:{seam_id}")
}

/// The pacing cell of a throttle (`reserve`).
pub(crate) fn rate_cell(throttle: &str) -> String {
    format!("rl:{throttle}")
}

/// The window counter of a throttle whose store has no `reserve`.
pub(crate) fn rate_window(throttle: &str, window_start: Timestamp) -> String {
    format!("rl:{throttle}:{}", window_start.as_millis())
}

/// The concurrency semaphore of a throttle (`lease`).
pub(crate) fn concurrency(throttle: &str) -> String {
    format!("cc:{throttle}")
}

/// The keys of one circuit breaker.
#[derive(Clone, Debug)]
pub(crate) struct CircuitKeys {
    /// Consecutive failures (`increment`).
    pub(crate) failures: String,
    /// When the breaker opened, in milliseconds since the epoch.
    pub(crate) opened: String,
    /// The half-open trial's owned lock.
    pub(crate) trial: String,
}

/// The keys of the circuit breaker of `stitch`.
pub(crate) fn circuit(stitch: &str) -> CircuitKeys {
    CircuitKeys {
        failures: format!("circuit:{stitch}:failures"),
        opened: format!("circuit:{stitch}:opened"),
        trial: format!("circuit:{stitch}:trial"),
    }
}

/// A cache generation: the global one (`cache:gen`), a seam's or a stitch's.
pub(crate) fn cache_generation(id: Option<&str>) -> String {
    match id {
        Some(id) => format!("cache:gen:{id}"),
        None => "cache:gen".to_owned(),
    }
}

const CACHE_ENTRY: &str = "cache:k2:";
const CACHE_LOCK: &str = "cache:lock:";

/// A cache entry under the current generations.
pub(crate) fn cache_entry(seam_gen: u64, stitch_gen: u64, stitch: &str, hex: &str) -> String {
    format!("{CACHE_ENTRY}g{seam_gen}.{stitch_gen}.{stitch}:{hex}")
}

/// One variant of the entry at `entry` (a response with `Vary`).
pub(crate) fn cache_variant(entry: &str, variant_hex: &str) -> String {
    format!("{entry}:v{variant_hex}")
}

/// The owned lock of the fill of `entry`.
pub(crate) fn cache_lock(entry: &str) -> String {
    format!(
        "{CACHE_LOCK}{}",
        entry.strip_prefix(CACHE_ENTRY).unwrap_or(entry)
    )
}

/// The failure a fleet flight's leader left for the callers that waited on it (beside the
/// flight's lock).
pub(crate) fn flight_failure(lock_key: &str) -> String {
    format!("{lock_key}:failed")
}

/// The owned lock of the refresh (or login) of the vault entry `vault_key`, inside the vault.
pub(crate) fn vault_lock(vault_key: &str) -> String {
    format!("lock:{vault_key}")
}

/// Whether a vault key is a [`vault_lock`] (which holds an ownership token, not a credential).
pub(crate) fn is_vault_lock(key: &str) -> bool {
    key.starts_with("lock:")
}

/// An OAuth2 token in the vault.
pub(crate) fn oauth2_token(key: &str) -> String {
    format!("oauth2:{key}")
}

/// A cookie session in the vault: the named cookie's, or the whole jar's.
pub(crate) fn cookie_session(cookie: Option<&str>, key: Option<&str>) -> String {
    match (cookie, key) {
        (Some(name), key) => format!("cookie:{}", key.unwrap_or(name)),
        (None, key) => format!("jar:{}", key.unwrap_or("*")),
    }
}

/// A vault key of one principal: `base` then `\0<principal>`.
pub(crate) fn for_principal(base: &str, principal: &str) -> String {
    format!("{base}\u{0}{principal}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats() {
        assert_eq!(seam_state("api"), "seam:api");
        assert_eq!(rate_cell("seam:api"), "rl:seam:api");
        let start = Timestamp::from_unix(Duration::from_millis(1_500));
        assert_eq!(rate_window("s", start), "rl:s:1500");
        assert_eq!(concurrency("s"), "cc:s");
        let circuit = circuit("GET x");
        assert_eq!(circuit.failures, "circuit:GET x:failures");
        assert_eq!(circuit.opened, "circuit:GET x:opened");
        assert_eq!(circuit.trial, "circuit:GET x:trial");
        assert_eq!(cache_generation(None), "cache:gen");
        assert_eq!(cache_generation(Some("seam:a")), "cache:gen:seam:a");
        let entry = cache_entry(1, 2, "users", "ab");
        assert_eq!(entry, "cache:k2:g1.2.users:ab");
        assert_eq!(cache_variant(&entry, "cd"), "cache:k2:g1.2.users:ab:vcd");
        assert_eq!(cache_lock(&entry), "cache:lock:g1.2.users:ab");
        assert_eq!(vault_lock("oauth2:k"), "lock:oauth2:k");
        assert_eq!(oauth2_token("k"), "oauth2:k");
        assert_eq!(cookie_session(Some("sid"), None), "cookie:sid");
        assert_eq!(cookie_session(Some("sid"), Some("app")), "cookie:app");
        assert_eq!(cookie_session(None, None), "jar:*");
        assert_eq!(for_principal("jar:*", "alice"), "jar:*\u{0}alice");
    }
}
