//! The Lua scripts behind the atomic verbs, shared by the TCP store and the Upstash store.
//!
//! Each script touches exactly one key, so it runs on Redis Cluster without hash tags. Times
//! travel as decimal strings of milliseconds, so fractional spacings (`"3/s"` is 333.33… ms)
//! survive: Lua numbers are doubles, RESP integers would truncate them.

use std::time::Duration;

use stitchapi::time::Timestamp;

/// `increment(key, ttl)`: INCR, then PEXPIRE only when the counter was just created, so a
/// window is fixed (never sliding) and a crash cannot leave an immortal counter.
///
/// `KEYS[1]` = counter; `ARGV[1]` = ttl in ms (0 = no expiry). Returns the count.
pub const INCREMENT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[1])
if n == 1 and ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return n
";

/// `reserve(key, spacing, now, ttl)`: the GCRA cell. `at = max(now, cell)`, `cell = at +
/// spacing`, TTL refreshed on every call; returns `at` as a string.
///
/// `KEYS[1]` = cell; `ARGV[1]` = spacing ms, `ARGV[2]` = the caller's now ms, `ARGV[3]` = ttl ms
/// (0 = none), `ARGV[4]` = "1" to take `now` from the server's clock (`TIME`) instead of the
/// caller's. With the server's clock the cell holds server time, and the grant comes back on
/// the caller's clock (`caller now + (at - server now)`), so the caller waits exactly what
/// Redis's clock says, whatever its own skew.
pub const RESERVE: &str = r"
local caller = tonumber(ARGV[2])
local now = caller
if ARGV[4] == '1' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local at = now
local stored = redis.call('GET', KEYS[1])
if stored then
  local cell = tonumber(stored)
  if cell == nil then
    return redis.error_reply('the value at the reserve key is not a pacing cell')
  end
  if cell > at then at = cell end
end
local next = string.format('%.6f', at + tonumber(ARGV[1]))
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], next, 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], next)
end
return string.format('%.6f', caller + (at - now))
";

/// `lease(key, token, limit, ttl, now)`: a counting semaphore in a sorted set of token ->
/// expiry, in whole microseconds (exact in Lua's doubles, so "expired at `now`" is an exact
/// comparison). Expired holders are pruned first (always); a holder renews; a newcomer gets a
/// slot while fewer than `limit` are held. The key lives twice the lease, so an abandoned
/// semaphore disappears by itself.
///
/// `KEYS[1]` = semaphore; `ARGV[1]` = token, `ARGV[2]` = limit, `ARGV[3]` = ttl µs, `ARGV[4]` = now µs,
/// `ARGV[5]` = "1" for the server's clock. Returns 1 when the token holds a slot, else 0.
pub const LEASE: &str = r"
local now = tonumber(ARGV[4])
if ARGV[5] == '1' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 2 / 1000))
  return 1
end
return 0
";

/// `release(key, token)`: drops the token; a token that holds nothing is a no-op. Redis
/// deletes an emptied sorted set by itself.
///
/// `KEYS[1]` = semaphore; `ARGV[1]` = token.
pub const RELEASE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
";

/// A TTL as whole milliseconds for Redis (rounded up, so a TTL never ends early; zero means
/// none).
pub(crate) fn ttl_millis(ttl: Option<Duration>) -> u64 {
    match stitchapi::store::normalize_ttl(ttl) {
        Some(ttl) => u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
        None => 0,
    }
}

/// The `ARGV` of [`INCREMENT`], as Redis receives it.
pub(crate) fn increment_args(ttl: Option<Duration>) -> [String; 1] {
    [ttl_millis(ttl).to_string()]
}

/// The `ARGV` of [`RESERVE`], as Redis receives it.
pub(crate) fn reserve_args(
    spacing: Duration,
    now: Timestamp,
    ttl: Option<Duration>,
    server_time: bool,
) -> [String; 4] {
    [
        millis_arg(spacing.as_secs_f64() * 1000.0),
        millis_arg(now.as_millis_f64()),
        ttl_millis(ttl).to_string(),
        flag(server_time),
    ]
}

/// The grant [`RESERVE`] returned, or what is wrong with the reply.
pub(crate) fn parse_grant(reply: &str) -> Result<Timestamp, String> {
    reply
        .parse::<f64>()
        .map(Timestamp::from_millis_f64)
        .map_err(|_| format!("the script returned {reply:?}, not a time"))
}

/// The `ARGV` of [`LEASE`], as Redis receives it.
pub(crate) fn lease_args(
    token: &str,
    limit: u32,
    ttl: Duration,
    now: Timestamp,
    server_time: bool,
) -> [String; 5] {
    [
        token.to_owned(),
        limit.to_string(),
        micros_arg(ttl).max(1).to_string(),
        micros_arg(now.since_unix()).to_string(),
        flag(server_time),
    ]
}

/// The `ARGV` of [`RELEASE`], as Redis receives it.
pub(crate) fn release_args(token: &str) -> [String; 1] {
    [token.to_owned()]
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

/// Whole microseconds (since the epoch, or of a duration), as the scripts' integer argument.
fn micros_arg(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A duration or instant in milliseconds, as the decimal the scripts parse.
fn millis_arg(millis: f64) -> String {
    format!("{millis:.6}")
}
