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
use stitchapi::store::StoredValue;
use stitchapi::time::Timestamp;

const MAGIC: [u8; 3] = [0xF5, b'S', 0x01];
const HEADER: usize = MAGIC.len() + 1 + 8;

/// A value and the instant it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) value: StoredValue,
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
        if let (StoredValue::Bytes(bytes), None) = (&self.value, self.deadline)
            && !bytes.starts_with(&MAGIC)
        {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(HEADER + 16);
        out.extend_from_slice(&MAGIC);
        out.push(match self.value {
            StoredValue::Bytes(_) => b'v',
            StoredValue::Counter(_) => b'n',
            StoredValue::Cell(_) => b'c',
        });
        out.extend_from_slice(&self.deadline.unwrap_or(0).to_be_bytes());
        match &self.value {
            StoredValue::Bytes(bytes) => out.extend_from_slice(bytes),
            StoredValue::Counter(n) => out.extend_from_slice(&n.to_be_bytes()),
            StoredValue::Cell(at) => {
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
                value: StoredValue::Bytes(Bytes::copy_from_slice(raw)),
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
            b'v' => StoredValue::Bytes(Bytes::copy_from_slice(payload)),
            b'n' => StoredValue::Counter(i64::from_be_bytes(payload.try_into().ok()?)),
            b'c' if payload.len() == 12 => {
                let secs = u64::from_be_bytes(payload[..8].try_into().ok()?);
                let nanos = u32::from_be_bytes(payload[8..].try_into().ok()?);
                if nanos >= 1_000_000_000 {
                    return None;
                }
                StoredValue::Cell(Timestamp::from_unix(Duration::new(secs, nanos)))
            }
            _ => return None,
        };
        Some(Envelope {
            value,
            deadline: (deadline != 0).then_some(deadline),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_foreign_bytes_are_plain_values() {
        let cell = Timestamp::from_unix(Duration::new(1_767_225_600, 333_333_333));
        for value in [
            StoredValue::Bytes(Bytes::from_static(b"\xff\x00\r\n")),
            StoredValue::Bytes(Bytes::new()),
            StoredValue::Counter(-7),
            StoredValue::Cell(cell),
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
            value: StoredValue::Bytes(Bytes::from_static(b"hello")),
            deadline: None,
        };
        assert_eq!(plain.encode(), b"hello", "stored as it is");
        let plain = Envelope::decode(b"hello").unwrap();
        assert_eq!(
            plain.value,
            StoredValue::Bytes(Bytes::from_static(b"hello"))
        );
        assert_eq!(plain.deadline, None);
        assert_eq!(Envelope::decode(&[0xF5, b'S', 0x01, b'n']), None);
        assert_eq!(StoredValue::Cell(cell).to_bytes(), "1767225600333.333333");
        assert_eq!(StoredValue::Counter(2).to_bytes(), "2");
    }
}
