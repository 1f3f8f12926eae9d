//! How a stitchapi value sits in a Deno KV entry.
//!
//! Every entry the store writes with a deadline (and a counter below zero, a pacing cell)
//! is `KvValue::Bytes` holding an envelope:
//!
//! ```text
//! MAGIC (3 bytes: F5 'S' 01) · kind (1 byte) · deadline (u64 BE, ms since the epoch, 0 = never)
//! · payload
//! ```
//!
//! | kind | payload |
//! |---|---|
//! | `v` | the value's bytes, as given |
//! | `n` | a counter: `i64` BE (the `{n, deadline}` envelope of `increment`) |
//! | `c` | a GCRA cell: seconds `u64` BE, nanoseconds `u32` BE since the epoch (exact) |
//!
//! The deadline travels with the value because Deno KV's own `expireIn` is best effort: an
//! expired entry may still be read until the backend's collector runs, so the store treats
//! an entry at or past its deadline as missing, and passes `expireIn` (the same instant) only
//! so the backend eventually drops it. Bytes that never expire are stored as they are (unless
//! they begin with the magic), and a counter that never expires as a `KvU64` (see the store).
//! Entries written by others read as plain values: bytes without the magic as bytes that
//! never expire, a `KvU64` (Deno's `sum`) as a counter.

use std::time::Duration;

use bytes::Bytes;
use stitchapi::time::Timestamp;

const MAGIC: [u8; 3] = [0xF5, b'S', 0x01];
const HEADER: usize = MAGIC.len() + 1 + 8;

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// Bytes written by `set` or `create`.
    Bytes(Bytes),
    /// A counter written by `increment`.
    Counter(i64),
    /// A pacing cell written by `reserve`.
    Cell(Timestamp),
}

/// A value and the instant it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) value: Value,
    /// Milliseconds since the epoch; `None` never expires.
    pub(crate) deadline: Option<u64>,
}

impl Envelope {
    /// Whether the entry has expired at `now` (ms since the epoch).
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now_ms)
    }

    /// The envelope's bytes: bytes that never expire are stored as they are (other clients
    /// read them directly), unless they begin with the magic.
    pub(crate) fn encode(&self) -> Vec<u8> {
        if let (Value::Bytes(bytes), None) = (&self.value, self.deadline)
            && !bytes.starts_with(&MAGIC)
        {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(HEADER + 16);
        out.extend_from_slice(&MAGIC);
        out.push(match self.value {
            Value::Bytes(_) => b'v',
            Value::Counter(_) => b'n',
            Value::Cell(_) => b'c',
        });
        out.extend_from_slice(&self.deadline.unwrap_or(0).to_be_bytes());
        match &self.value {
            Value::Bytes(bytes) => out.extend_from_slice(bytes),
            Value::Counter(n) => out.extend_from_slice(&n.to_be_bytes()),
            Value::Cell(at) => {
                let since = at.since_unix();
                out.extend_from_slice(&since.as_secs().to_be_bytes());
                out.extend_from_slice(&since.subsec_nanos().to_be_bytes());
            }
        }
        out
    }

    /// Reads an envelope; bytes without the magic are a plain value that never expires.
    /// `None` when the magic is there but the rest is not a valid envelope.
    pub(crate) fn decode(raw: &[u8]) -> Option<Envelope> {
        if !raw.starts_with(&MAGIC) {
            return Some(Envelope {
                value: Value::Bytes(Bytes::copy_from_slice(raw)),
                deadline: None,
            });
        }
        if raw.len() < HEADER {
            return None;
        }
        let kind = raw[MAGIC.len()];
        let deadline = u64::from_be_bytes(raw[MAGIC.len() + 1..HEADER].try_into().ok()?);
        let payload = &raw[HEADER..];
        let value = match kind {
            b'v' => Value::Bytes(Bytes::copy_from_slice(payload)),
            b'n' => Value::Counter(i64::from_be_bytes(payload.try_into().ok()?)),
            b'c' if payload.len() == 12 => {
                let secs = u64::from_be_bytes(payload[..8].try_into().ok()?);
                let nanos = u32::from_be_bytes(payload[8..].try_into().ok()?);
                if nanos >= 1_000_000_000 {
                    return None;
                }
                Value::Cell(Timestamp::from_unix(Duration::new(secs, nanos)))
            }
            _ => return None,
        };
        Some(Envelope {
            value,
            deadline: (deadline != 0).then_some(deadline),
        })
    }
}

impl Value {
    /// The value as `get` returns it: bytes as given, a counter as decimal text, a cell as
    /// exact milliseconds since the epoch.
    pub(crate) fn to_bytes(&self) -> Bytes {
        match self {
            Value::Bytes(bytes) => bytes.clone(),
            Value::Counter(n) => Bytes::from(n.to_string()),
            Value::Cell(at) => Bytes::from(millis_text(*at)),
        }
    }

    /// The value as a counter, if it is one (or decimal bytes).
    pub(crate) fn as_counter(&self) -> Option<i64> {
        match self {
            Value::Counter(n) => Some(*n),
            Value::Bytes(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            Value::Cell(_) => None,
        }
    }

    /// The value as a pacing cell, if it is one (or a number of milliseconds).
    pub(crate) fn as_cell(&self) -> Option<Timestamp> {
        match self {
            Value::Cell(at) => Some(*at),
            // i64 -> f64 is exact for any realistic millisecond timestamp (< 2^53).
            Value::Counter(n) => Some(Timestamp::from_millis_f64(*n as f64)),
            Value::Bytes(bytes) => {
                let millis: f64 = std::str::from_utf8(bytes).ok()?.trim().parse().ok()?;
                millis
                    .is_finite()
                    .then(|| Timestamp::from_millis_f64(millis))
            }
        }
    }
}

/// Milliseconds since the epoch as exact decimal text (`"1767225600333.333333"`).
fn millis_text(at: Timestamp) -> String {
    let since = at.since_unix();
    let millis = since.as_millis();
    let nanos = since.subsec_nanos() % 1_000_000;
    if nanos == 0 {
        return millis.to_string();
    }
    let fraction = format!("{nanos:06}");
    format!("{millis}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_foreign_bytes_are_plain_values() {
        let cell = Timestamp::from_unix(Duration::new(1_767_225_600, 333_333_333));
        for value in [
            Value::Bytes(Bytes::from_static(b"\xff\x00\r\n")),
            Value::Bytes(Bytes::new()),
            Value::Counter(-7),
            Value::Cell(cell),
        ] {
            for deadline in [None, Some(1_767_225_600_123)] {
                let envelope = Envelope {
                    value: value.clone(),
                    deadline,
                };
                assert_eq!(Envelope::decode(&envelope.encode()), Some(envelope));
            }
        }
        let plain = Envelope {
            value: Value::Bytes(Bytes::from_static(b"hello")),
            deadline: None,
        };
        assert_eq!(plain.encode(), b"hello", "stored as it is");
        let plain = Envelope::decode(b"hello").unwrap();
        assert_eq!(plain.value, Value::Bytes(Bytes::from_static(b"hello")));
        assert_eq!(plain.deadline, None);
        assert_eq!(Envelope::decode(&[0xF5, b'S', 0x01, b'n']), None);
        assert_eq!(Value::Cell(cell).to_bytes(), "1767225600333.333333");
        assert_eq!(Value::Counter(2).to_bytes(), "2");
    }
}
