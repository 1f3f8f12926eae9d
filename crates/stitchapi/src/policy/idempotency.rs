//! Idempotency keys for writes: one stable key per logical call, resent on every retry.

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, Method};
use url::Url;

use crate::error::{Error, Result};

/// What a custom key function sees: the request as it will first be sent.
#[derive(Debug)]
#[non_exhaustive]
pub struct KeyContext<'a> {
    /// The method.
    pub method: &'a Method,
    /// The expanded URL.
    pub url: &'a Url,
    /// The encoded body.
    pub body: &'a [u8],
}

type KeyFn = Arc<dyn Fn(&KeyContext<'_>) -> String + Send + Sync>;

/// Adds an idempotency key header to writes (every method but the safe ones: GET, HEAD,
/// OPTIONS, TRACE and QUERY):
/// the same key on every retry of one call, a different one for each call. It is skipped when
/// the caller already sent the header. A stitch with a key also retries transport errors and
/// per-attempt timeouts, since the server can deduplicate them.
///
/// ```
/// use stitchapi::{Idempotency, Stitch};
///
/// let create = Stitch::post("https://api.example.com/payments")
///     .idempotency(
///         Idempotency::new()
///             .header("x-idempotency-key")
///             .key_with(|request| format!("pay-{}", request.body.len())),
///     )
///     .build()
///     .unwrap();
/// ```
#[derive(Clone)]
pub struct Idempotency {
    pub(crate) header: String,
    pub(crate) key: Option<KeyFn>,
}

impl Idempotency {
    /// `Idempotency-Key: <random UUID v4>`.
    pub fn new() -> Self {
        Idempotency {
            header: "idempotency-key".to_owned(),
            key: None,
        }
    }

    /// The header name (default `Idempotency-Key`).
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.header = name.into();
        self
    }

    /// Derives the key from the request instead of drawing a random one.
    pub fn key_with(
        mut self,
        key: impl Fn(&KeyContext<'_>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    pub(crate) fn resolve(&self, field: &str) -> Result<IdempotencyPolicy> {
        let header = HeaderName::from_bytes(self.header.as_bytes()).map_err(|_| {
            Error::config(
                &format!("{field}.header"),
                format!("{:?} is not a valid header name", self.header),
                "use a token such as \"Idempotency-Key\"",
            )
        })?;
        Ok(IdempotencyPolicy {
            header,
            key: self.key.clone(),
        })
    }
}

impl Default for Idempotency {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("header", &self.header)
            .field(
                "key",
                &if self.key.is_some() {
                    "<fn>"
                } else {
                    "uuid-v4"
                },
            )
            .finish()
    }
}

/// A validated idempotency policy.
#[derive(Clone)]
pub(crate) struct IdempotencyPolicy {
    pub header: HeaderName,
    key: Option<KeyFn>,
}

impl fmt::Debug for IdempotencyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyPolicy")
            .field("header", &self.header)
            .finish()
    }
}

impl IdempotencyPolicy {
    pub fn key_for(&self, context: &KeyContext<'_>) -> String {
        match &self.key {
            Some(key) => key(context),
            None => uuid_v4(),
        }
    }
}

/// Safe methods (RFC 9110 §9.2.1, and QUERY from the HTTP QUERY method draft): reads, which
/// never carry a key.
pub(crate) fn is_read(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || method.as_str() == "QUERY"
}

/// Methods whose repetition has the same effect as one call (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    is_read(method) || matches!(*method, Method::PUT | Method::DELETE)
}

/// A random (OS entropy) UUID v4, lowercase hex with dashes.
pub(crate) fn uuid_v4() -> String {
    let mut bytes = [0_u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS entropy (should not happen on supported targets): fall back to the
        // process-seeded generator rather than failing the call.
        bytes = fastrand::u128(..).to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = |range: std::ops::Range<usize>| -> String {
        bytes[range].iter().map(|b| format!("{b:02x}")).collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v4_shape_and_uniqueness() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn method_classes() {
        assert!(is_idempotent(&Method::PUT) && !is_read(&Method::PUT));
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
        let query = Method::from_bytes(b"QUERY").unwrap();
        assert!(is_read(&query) && is_idempotent(&query));
        assert!(!is_read(&Method::from_bytes(b"query").unwrap()));
    }
}
