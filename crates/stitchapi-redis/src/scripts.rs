//! The Lua scripts behind the atomic verbs, shared by the TCP store and the Upstash store,
//! with the arguments both drivers send them and the parsing of what they return.
//!
//! Each script touches exactly one key, so it runs on Redis Cluster without hash tags. Times
//! travel as decimal strings of milliseconds with six decimals (`"1767225600333.333333"`,
//! nanoseconds), so fractional spacings (`"3/s"` is 333.333333 ms) survive: RESP integers would
//! truncate them. [`RESERVE`] does its arithmetic on the whole milliseconds and the nanoseconds
//! apart, both exact in Lua's doubles (a double holds a millisecond timestamp only to about a
//! quarter of a microsecond), so it mirrors the core's
//! [`gcra::step`](stitchapi::throttle::gcra::step) exactly, `latest` comparison included.
//!
//! `create` needs no script: `SET key value NX [PX ttl]` is atomic. Nor does `increment` over
//! TCP, a `MULTI; SET key 0 NX PX ttl; INCR key; EXEC` transaction; [`INCREMENT`] serves the
//! REST path, where the request, not the server's Lua, is the cost.

// Built without a driver, the crate has only the scripts: their helpers have no caller.
#![cfg_attr(
    not(any(all(feature = "tcp", not(target_arch = "wasm32")), feature = "upstash")),
    allow(dead_code)
)]

use std::time::Duration;

use stitchapi::store::Reservation;
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

/// `reserve(key, spacing, now, latest, ttl)`: the GCRA cell. `at = max(now, cell)`; when the
/// grant is past `latest` nothing changes (the cell and its TTL stay as they are) and the
/// answer is a refusal; otherwise `cell = at + spacing`, the TTL is refreshed, and the answer
/// is a grant.
///
/// `KEYS[1]` = cell; `ARGV[1]` = spacing ms, `ARGV[2]` = the caller's now ms, `ARGV[3]` = ttl ms
/// (0 = none), `ARGV[4]` = "1" to take `now` from the server's clock (`TIME`) instead of the
/// caller's, `ARGV[5]` = the caller's `latest` ms, or `""` for none. Times are decimal
/// milliseconds with up to six decimals; the script computes on (whole ms, ns) pairs, so every
/// step is exact.
///
/// Returns `"g<ms>"` for a grant or `"r<ms>"` for a refusal, the time always on the caller's
/// clock with six decimals (`"g1767225600333.333333"`); both drivers read it with one parser.
/// With the server's clock the cell holds server time and the grant is `caller now + (at -
/// server now)`, so the caller waits exactly what Redis's clock says, whatever its own skew;
/// `latest` is compared with that caller-clock time.
pub const RESERVE: &str = r"
local function parse(text)
  local whole, fraction = string.match(text, '^%s*(%d+)%.?(%d*)%s*$')
  if whole == nil then return nil end
  return tonumber(whole), tonumber(string.sub(fraction .. '000000', 1, 6))
end
local function norm(ms, ns)
  local carry = math.floor(ns / 1000000)
  return ms + carry, ns - carry * 1000000
end
local function later(ams, ans, bms, bns)
  return ams > bms or (ams == bms and ans > bns)
end
local function text(ms, ns)
  if ms < 0 then return '0.000000' end
  return string.format('%.0f.%06d', ms, ns)
end
local sms, sns = parse(ARGV[1])
local cms, cns = parse(ARGV[2])
local nms, nns = cms, cns
if ARGV[4] == '1' then
  local t = redis.call('TIME')
  local us = tonumber(t[2])
  nms = tonumber(t[1]) * 1000 + math.floor(us / 1000)
  nns = (us % 1000) * 1000
end
local ams, ans = nms, nns
local stored = redis.call('GET', KEYS[1])
if stored then
  local ms, ns = parse(stored)
  if ms == nil then
    return redis.error_reply('the value at the reserve key is not a pacing cell')
  end
  if later(ms, ns, ams, ans) then ams, ans = ms, ns end
end
local gms, gns = norm(cms + ams - nms, cns + ans - nns)
if ARGV[5] ~= '' then
  local lms, lns = parse(ARGV[5])
  if later(gms, gns, lms, lns) then return 'r' .. text(gms, gns) end
end
local cell = text(norm(ams + sms, ans + sns))
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], cell, 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], cell)
end
return 'g' .. text(gms, gns)
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

/// `renew_if(key, expected, ttl)`: resets the TTL only if the key holds exactly `expected`
/// (byte for byte), so a holder that lost its lock cannot extend its successor's. A TTL of 0
/// means no expiry: `PERSIST`, never `PEXPIRE 0`, which would delete the key.
///
/// `KEYS[1]` = the key; `ARGV[1]` = the expected value, `ARGV[2]` = ttl ms (0 = no expiry).
/// Returns 1 when the TTL was reset, else 0.
pub const RENEW_IF: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// `delete_if(key, expected)`: deletes the key only if it holds exactly `expected` (byte for
/// byte), so a holder that lost its lock cannot release its successor's.
///
/// `KEYS[1]` = the key; `ARGV[1]` = the expected value. Returns 1 when the key was deleted,
/// else 0.
pub const DELETE_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A TTL as whole milliseconds for Redis (rounded up, so a TTL never ends early; zero means
/// none).
pub(crate) fn ttl_millis(ttl: Option<Duration>) -> u64 {
    match stitchapi::store::normalize_ttl(ttl) {
        Some(ttl) => u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
        None => 0,
    }
}

/// The options after `SET key value`: `NX` when the write must only create the key (`create`),
/// then `PX <ttl ms>` when there is a TTL. `SET ... NX` answers nil when the key exists.
pub(crate) fn set_options(ttl: Option<Duration>, only_if_missing: bool) -> Vec<String> {
    let mut options = Vec::with_capacity(3);
    if only_if_missing {
        options.push("NX".to_owned());
    }
    match ttl_millis(ttl) {
        0 => {}
        ttl => options.extend(["PX".to_owned(), ttl.to_string()]),
    }
    options
}

/// The `ARGV` of [`INCREMENT`], as Redis receives it.
pub(crate) fn increment_args(ttl: Option<Duration>) -> [String; 1] {
    [ttl_millis(ttl).to_string()]
}

/// The `ARGV` of [`RESERVE`], as Redis receives it.
pub(crate) fn reserve_args(
    spacing: Duration,
    now: Timestamp,
    latest: Option<Timestamp>,
    ttl: Option<Duration>,
    server_time: bool,
) -> [String; 5] {
    [
        millis_arg(spacing),
        millis_arg(now.since_unix()),
        ttl_millis(ttl).to_string(),
        flag(server_time),
        latest.map_or_else(String::new, |latest| millis_arg(latest.since_unix())),
    ]
}

/// The answer [`RESERVE`] returned (`"g<ms>"` or `"r<ms>"`), or what is wrong with the reply.
pub(crate) fn parse_reservation(reply: &str) -> Result<Reservation, String> {
    let invalid = || format!("the script returned {reply:?}, not a reservation");
    let (answer, at): (fn(Timestamp) -> Reservation, &str) =
        match (reply.strip_prefix('g'), reply.strip_prefix('r')) {
            (Some(at), _) => (Reservation::Granted, at),
            (_, Some(at)) => (Reservation::Refused, at),
            _ => return Err(invalid()),
        };
    parse_millis(at).map(answer).ok_or_else(invalid)
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

/// The `ARGV` of [`RENEW_IF`], as Redis receives it. `expected` is the value as the driver
/// stores it (raw bytes over TCP, the stored text over REST).
pub(crate) fn renew_if_args<V: From<String>>(expected: V, ttl: Duration) -> [V; 2] {
    [expected, V::from(ttl_millis(Some(ttl)).to_string())]
}

/// The `ARGV` of [`DELETE_IF`], as Redis receives it. `expected` is the value as the driver
/// stores it (raw bytes over TCP, the stored text over REST).
pub(crate) fn delete_if_args<V>(expected: V) -> [V; 1] {
    [expected]
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

/// Whole microseconds (since the epoch, or of a duration), as the scripts' integer argument.
fn micros_arg(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A duration (or a time since the epoch) as the decimal milliseconds the scripts parse, exact
/// to the nanosecond: `"333.333333"`.
fn millis_arg(duration: Duration) -> String {
    format!(
        "{}.{:06}",
        duration.as_millis(),
        duration.subsec_nanos() % 1_000_000
    )
}

/// A time the scripts wrote as decimal milliseconds (`"1767225600333.333333"`, at most six
/// decimals), read back exactly; `None` for anything else.
fn parse_millis(text: &str) -> Option<Timestamp> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || fraction.len() > 6 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let millis = Duration::from_millis(whole.parse().ok()?);
    let nanos: u64 = format!("{fraction:0<6}").parse().ok()?;
    millis
        .checked_add(Duration::from_nanos(nanos))
        .map(Timestamp::from_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_travel_as_exact_decimal_milliseconds() {
        assert_eq!(millis_arg(Duration::from_nanos(333_333_333)), "333.333333");
        assert_eq!(millis_arg(Duration::from_millis(7)), "7.000000");
        let at = Timestamp::from_unix(Duration::new(1_767_225_600, 333_333_333));
        assert_eq!(millis_arg(at.since_unix()), "1767225600333.333333");
        assert_eq!(parse_millis("1767225600333.333333"), Some(at));
        assert_eq!(
            parse_millis("12"),
            Some(Timestamp::from_unix(Duration::from_millis(12)))
        );
        assert_eq!(
            parse_millis("12.5"),
            Some(Timestamp::from_unix(Duration::from_micros(12_500)))
        );
        for bad in [
            "",
            ".5",
            "1.2345678",
            "-1",
            "+1",
            "1e3",
            "1.x",
            "99999999999999999999",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reservations_parse_or_say_what_is_wrong() {
        let at = Timestamp::from_unix(Duration::from_millis(1_500));
        assert_eq!(
            parse_reservation("g1500.000000"),
            Ok(Reservation::Granted(at))
        );
        assert_eq!(parse_reservation("r1500"), Ok(Reservation::Refused(at)));
        for bad in ["1500.000000", "x1500", "g", "gr1500", "g1500.0000000"] {
            let error = parse_reservation(bad).unwrap_err();
            assert!(error.contains("not a reservation"), "{error}");
        }
    }

    #[test]
    fn reserve_args_carry_latest_or_nothing() {
        let now = Timestamp::from_unix(Duration::from_millis(1_000));
        let args = reserve_args(
            Duration::from_nanos(1_500),
            now,
            Some(now + Duration::from_millis(2)),
            Some(Duration::from_micros(1_200)),
            true,
        );
        assert_eq!(
            args,
            ["0.001500", "1000.000000", "2", "1", "1002.000000"].map(String::from)
        );
        let args = reserve_args(Duration::from_millis(1), now, None, None, false);
        assert_eq!(args[3..], ["0".to_owned(), String::new()]);
    }

    #[test]
    fn set_options_and_conditional_args() {
        assert!(set_options(None, false).is_empty());
        assert_eq!(set_options(Some(Duration::ZERO), true), ["NX"]);
        assert_eq!(
            set_options(Some(Duration::from_micros(1_500)), true),
            ["NX", "PX", "2"]
        );
        assert_eq!(
            renew_if_args(b"t".to_vec(), Duration::ZERO),
            [b"t".to_vec(), b"0".to_vec()]
        );
        assert_eq!(
            renew_if_args("t".to_owned(), Duration::from_millis(200)),
            ["t", "200"]
        );
        assert_eq!(delete_if_args("t"), ["t"]);
    }
}
