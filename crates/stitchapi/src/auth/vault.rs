//! Encryption at rest of the auth vault: see [`VaultKey`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;
use crate::store::{
    Capabilities, DynStore, Reservation, StitchStore, StoreError, StoreErrorKind, keys,
};
use crate::time::Timestamp;

/// What a sealed entry starts with: the format's version.
const SEALED: &[u8] = b"stitchapi-vault-v1:";
/// Bound into every entry with its key (the associated data), so an entry written under one
/// key never opens under another.
const DOMAIN: &[u8] = b"stitchapi vault v1\0";
const NONCE_LEN: usize = 24;

/// A 256-bit key that encrypts the auth vault at rest (tokens, refresh tokens, cookie jars):
/// give it to a seam or stitch with `.vault_key(key)`.
///
/// Each entry is sealed with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) under a
/// random 192-bit nonce, with the entry's name in the vault as associated data: whoever can
/// read the store sees neither tokens nor cookies, and an entry copied under another name
/// (another principal's session) does not open. The binding is to the name only: the same
/// name in another store or prefix that shares the key would open it, so give each trust
/// domain (tenant namespace) its own key. An entry that does not open (another key, tampered, or
/// written unencrypted) is treated as absent, with a warning: the token is fetched again or
/// the login redone, and the new entry is sealed. Nothing is ever written in plaintext.
///
/// Every process of a fleet must use the same key. `Debug` never shows it, and its bytes are
/// wiped from memory when the last clone is dropped.
///
/// ```
/// use stitchapi::Seam;
/// use stitchapi::auth::VaultKey;
///
/// // 32 bytes in base64, from a secret manager or the environment.
/// let key = VaultKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
/// assert_eq!(format!("{key:?}"), "VaultKey(<redacted>)");
/// let api = Seam::builder("https://api.example.com").vault_key(key).build().unwrap();
/// # drop(api);
/// assert!(VaultKey::from_base64("c2hvcnQ=").is_err());
/// ```
#[derive(Clone)]
pub struct VaultKey(Arc<XChaCha20Poly1305>);

impl VaultKey {
    /// A key from its 32 bytes.
    pub fn new(mut key: [u8; 32]) -> VaultKey {
        let cipher = XChaCha20Poly1305::new(&key.into());
        key.zeroize();
        VaultKey(Arc::new(cipher))
    }

    /// A key from the base64 (standard or URL-safe, padded or not) of its 32 bytes. A `Config`
    /// error otherwise; it never quotes the text.
    pub fn from_base64(text: &str) -> Result<VaultKey, Error> {
        let text = text.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| {
                Error::config(
                    "vault_key",
                    "the key is not base64",
                    "give the base64 of 32 random bytes (for example `openssl rand -base64 32`)",
                )
            })?;
        let mut key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::config(
                "vault_key",
                format!("the key has {} bytes, not 32", bytes.len()),
                "give the base64 of 32 random bytes (for example `openssl rand -base64 32`)",
            )
        })?;
        let vault_key = VaultKey::new(key);
        key.zeroize();
        Ok(vault_key)
    }

    fn seal(&self, key: &str, plain: &[u8]) -> Result<Bytes, String> {
        let mut nonce = [0_u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce ({e})"))?;
        let sealed = self
            .0
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &associated(key),
                },
            )
            .map_err(|_| "the entry could not be encrypted".to_owned())?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        let mut out = SEALED.to_vec();
        out.extend_from_slice(URL_SAFE_NO_PAD.encode(raw).as_bytes());
        Ok(Bytes::from(out))
    }

    /// The plaintext of a sealed entry, or `None` when it does not open under this key and
    /// `key`.
    fn open(&self, key: &str, stored: &[u8]) -> Option<Bytes> {
        let raw = URL_SAFE_NO_PAD.decode(stored.strip_prefix(SEALED)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).ok()?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &associated(key),
                },
            )
            .ok()
            .map(Bytes::from)
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(<redacted>)")
    }
}

fn associated(key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN.len() + key.len());
    aad.extend_from_slice(DOMAIN);
    aad.extend_from_slice(key.as_bytes());
    aad
}

/// The vault seen through a [`VaultKey`]: values are sealed on the way in and opened on the
/// way out. The fleet locks of token fetches and logins (`lock:` keys) hold random ownership
/// tokens, not credentials, and pass through as they are, as do counters and pacing cells.
///
/// Without a key (`None`) values pass through, except that a sealed entry (written by a
/// process that has the key) reads as absent, with a warning, rather than as data that does
/// not decode: the call fetches or logs in again instead of failing on every call.
#[derive(Debug)]
pub(crate) struct SealedStore {
    inner: DynStore,
    key: Option<VaultKey>,
}

impl SealedStore {
    pub(crate) fn new(inner: DynStore, key: Option<VaultKey>) -> Self {
        SealedStore { inner, key }
    }

    fn seal(&self, operation: &'static str, key: &str, value: Bytes) -> Result<Bytes, StoreError> {
        let Some(vault_key) = &self.key else {
            return Ok(value);
        };
        vault_key.seal(key, &value).map_err(|problem| {
            StoreError::new(self.name(), operation, StoreErrorKind::Backend, problem)
        })
    }

    fn not_comparable(&self, operation: &'static str) -> StoreError {
        StoreError::new(
            self.name(),
            operation,
            StoreErrorKind::Unsupported,
            "a sealed vault entry cannot be compared; only lock entries can",
        )
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl StitchStore for SealedStore {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let stored = self.inner.get(key).await?;
        if keys::is_vault_lock(key) {
            return Ok(stored);
        }
        Ok(stored.and_then(|stored| match &self.key {
            Some(vault_key) => {
                let opened = vault_key.open(key, &stored);
                if opened.is_none() {
                    tracing::warn!(
                        store = self.name(),
                        "a vault entry does not open with the vault key (another key, tampered, \
                         or written unencrypted): treated as absent"
                    );
                }
                opened
            }
            None if stored.starts_with(SEALED) => {
                tracing::warn!(
                    store = self.name(),
                    "a vault entry is sealed but this stitch has no vault key: treated as \
                     absent; give every process the same `vault_key`"
                );
                None
            }
            None => Some(stored),
        }))
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let value = match value {
            Some(value) if !keys::is_vault_lock(key) => Some(self.seal("set", key, value)?),
            value => value,
        };
        self.inner.set(key, value, ttl).await
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.inner.increment(key, ttl).await
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        self.inner.reserve(key, spacing, now, latest, ttl).await
    }

    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.lease(key, token, limit, ttl, now).await
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        self.inner.release(key, token).await
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let value = if keys::is_vault_lock(key) {
            value
        } else {
            self.seal("create", key, value)?
        };
        self.inner.create(key, value, ttl).await
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if self.key.is_some() && !keys::is_vault_lock(key) {
            return Err(self.not_comparable("renew_if"));
        }
        self.inner.renew_if(key, expected, ttl).await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        if self.key.is_some() && !keys::is_vault_lock(key) {
            return Err(self.not_comparable("delete_if"));
        }
        self.inner.delete_if(key, expected).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn key(byte: u8) -> VaultKey {
        VaultKey::new([byte; 32])
    }

    #[test]
    fn sealed_entries_open_only_under_their_key_and_name() {
        let sealed = key(1).seal("oauth2:k", b"token-abc").unwrap();
        assert!(sealed.starts_with(SEALED));
        assert!(!sealed.windows(9).any(|w| w == b"token-abc"));
        assert_eq!(
            key(1).open("oauth2:k", &sealed).as_deref(),
            Some(&b"token-abc"[..])
        );
        assert_ne!(
            sealed,
            key(1).seal("oauth2:k", b"token-abc").unwrap(),
            "fresh nonce"
        );
        assert_eq!(key(2).open("oauth2:k", &sealed), None, "another key");
        assert_eq!(key(1).open("oauth2:other", &sealed), None, "another name");
        for cut in [0, SEALED.len(), SEALED.len() + 10, sealed.len() - 1] {
            assert_eq!(
                key(1).open("oauth2:k", &sealed[..cut]),
                None,
                "cut at {cut}"
            );
        }
        let mut flipped = sealed.to_vec();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert_eq!(key(1).open("oauth2:k", &flipped), None, "tampered");
        assert_eq!(key(1).open("oauth2:k", b"{\"token\":\"plain\"}"), None);
    }

    #[test]
    fn keys_parse_from_base64_and_never_show() {
        let text = STANDARD.encode([7_u8; 32]);
        for form in [
            text.clone(),
            text.trim_end_matches('=').to_owned(),
            URL_SAFE.encode([7_u8; 32]),
            format!(" {text}\n"),
        ] {
            let key = VaultKey::from_base64(&form).unwrap();
            assert_eq!(format!("{key:?}"), "VaultKey(<redacted>)");
        }
        let short = VaultKey::from_base64(&STANDARD.encode([7_u8; 16])).unwrap_err();
        assert_eq!(short.kind(), crate::ErrorKind::Config);
        assert!(short.to_string().contains("16 bytes, not 32"), "{short}");
        let garbage = VaultKey::from_base64("not base64 at all!").unwrap_err();
        assert!(
            !garbage.to_string().contains("not base64 at all!"),
            "{garbage}"
        );
    }

    #[tokio::test]
    async fn locks_pass_through_and_entries_cannot_be_compared() {
        let memory = Arc::new(MemoryStore::new());
        let store = SealedStore::new(memory.clone(), Some(key(1)));
        assert!(
            store
                .create("lock:oauth2:k", "owner".into(), None)
                .await
                .unwrap()
        );
        assert_eq!(
            memory.get("lock:oauth2:k").await.unwrap().as_deref(),
            Some(&b"owner"[..])
        );
        assert!(
            store
                .renew_if("lock:oauth2:k", b"owner", Duration::from_secs(1))
                .await
                .unwrap()
        );
        assert!(store.delete_if("lock:oauth2:k", b"owner").await.unwrap());
        assert!(store.create("cookie:s", "jar".into(), None).await.unwrap());
        assert_eq!(
            store.get("cookie:s").await.unwrap().as_deref(),
            Some(&b"jar"[..])
        );
        assert!(
            !memory
                .get("cookie:s")
                .await
                .unwrap()
                .unwrap()
                .ends_with(b"jar")
        );
        let error = store.delete_if("cookie:s", b"jar").await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unsupported);
    }
}
