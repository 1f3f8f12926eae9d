//! [`StoredValue`]: the three kinds of value the store contract writes, and how each reads
//! back, shared by every store that keeps values typed rather than as bytes.

use bytes::Bytes;

use crate::time::Timestamp;

/// What a key holds: bytes (`set`, `create`), a counter (`increment`) or a pacing cell
/// (`reserve`). `get` returns any of them as bytes; `increment` and `reserve` also accept
/// values another writer left as decimal text.
///
/// ```
/// use bytes::Bytes;
/// use stitchapi::store::StoredValue;
///
/// assert_eq!(StoredValue::Counter(7).to_bytes(), Bytes::from("7"));
/// assert_eq!(StoredValue::Bytes(Bytes::from("12")).as_counter(), Some(12));
/// assert_eq!(StoredValue::Bytes(Bytes::from("x")).as_cell(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredValue {
    /// Bytes written by `set` or `create`.
    Bytes(Bytes),
    /// A counter written by `increment`.
    Counter(i64),
    /// A pacing cell written by `reserve`.
    Cell(Timestamp),
}

impl StoredValue {
    /// The value as `get` returns it: bytes as given, a counter as decimal text, a cell as
    /// exact milliseconds since the epoch (`"1767225600333.333333"`).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            StoredValue::Bytes(bytes) => bytes.clone(),
            StoredValue::Counter(n) => Bytes::from(n.to_string()),
            StoredValue::Cell(at) => Bytes::from(millis_text(*at)),
        }
    }

    /// The value as a counter, if it is one (or decimal bytes).
    pub fn as_counter(&self) -> Option<i64> {
        match self {
            StoredValue::Counter(n) => Some(*n),
            StoredValue::Bytes(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            StoredValue::Cell(_) => None,
        }
    }

    /// The value as a pacing cell, if it is one (or a number of milliseconds).
    pub fn as_cell(&self) -> Option<Timestamp> {
        match self {
            StoredValue::Cell(at) => Some(*at),
            // i64 -> f64 is exact for any realistic millisecond timestamp (< 2^53).
            StoredValue::Counter(n) => Some(Timestamp::from_millis_f64(*n as f64)),
            StoredValue::Bytes(bytes) => {
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
