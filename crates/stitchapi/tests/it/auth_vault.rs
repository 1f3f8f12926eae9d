//! The auth vault encrypted at rest with a `VaultKey` (issue 9, item 14), through whole calls
//! against a loopback token endpoint and login, over a real memory store whose raw bytes are
//! inspected.

use crate::support;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use stitchapi::auth::VaultKey;
use stitchapi::{
    Auth, CookieSession, Input, MemoryStore, OAuth2, Seam, Stitch, StitchStore, Tenancy,
};
use support::{Answer, Upstream};

const TOKEN: &str = "t1-very-secret-token";
const REFRESH: &str = "r1-very-secret-refresh";

fn key(byte: u8) -> VaultKey {
    VaultKey::new([byte; 32])
}

fn reports(upstream: &Upstream, store: &Arc<MemoryStore>, key: Option<VaultKey>) -> Stitch<String> {
    let mut api = Seam::builder(upstream.url())
        .store(store.clone())
        .auth(Auth::oauth2(
            OAuth2::client_credentials(format!("{}/token", upstream.url()), "demo", "s3cret")
                .key("api"),
        ));
    if let Some(key) = key {
        api = api.vault_key(key);
    }
    api.build().unwrap().get("/reports").text().build().unwrap()
}

fn token_posts(upstream: &Upstream) -> usize {
    upstream
        .hits()
        .iter()
        .filter(|hit| hit.target == "/token")
        .count()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn tokens_are_sealed_in_the_store_and_a_bad_entry_is_fetched_again() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/token",
        [Answer::json(
            200,
            json!({"access_token": TOKEN, "expires_in": 3600, "refresh_token": REFRESH}),
        )],
    );
    upstream.script("/reports", [Answer::status(200)]);
    let store = Arc::new(MemoryStore::new());
    let sealed = reports(&upstream, &store, Some(key(1)));
    sealed.call(Input::new()).await.unwrap();
    sealed.call(Input::new()).await.unwrap();
    assert_eq!(token_posts(&upstream), 1, "the sealed entry opens");
    let raw = store.get("vault:oauth2:api").await.unwrap().unwrap();
    assert!(
        !contains(&raw, TOKEN) && !contains(&raw, REFRESH),
        "{raw:?}"
    );
    assert!(
        !contains(&raw, "token"),
        "not even the field names: {raw:?}"
    );
    assert!(
        upstream
            .hits()
            .iter()
            .filter(|hit| hit.target == "/reports")
            .all(|hit| hit.headers["authorization"] == format!("Bearer {TOKEN}").as_str())
    );

    // A tampered entry is absent: the token is fetched again, no error.
    let mut tampered = raw.to_vec();
    let at = tampered.len() - 5;
    tampered[at] ^= 0x01;
    store
        .set("vault:oauth2:api", Some(Bytes::from(tampered)), None)
        .await
        .unwrap();
    sealed.call(Input::new()).await.unwrap();
    assert_eq!(token_posts(&upstream), 2);

    // Another key does not open it either.
    let other = reports(&upstream, &store, Some(key(2)));
    other.call(Input::new()).await.unwrap();
    assert_eq!(token_posts(&upstream), 3);

    // A stitch without the key reads a sealed entry as absent (not as an error on every
    // call): it fetches a token of its own, which it keeps in plaintext. A plaintext entry is
    // never used by a sealed vault, and the vault writes back only sealed entries.
    let plain = reports(&upstream, &store, None);
    plain.call(Input::new()).await.unwrap();
    assert_eq!(token_posts(&upstream), 4);
    let raw = store.get("vault:oauth2:api").await.unwrap().unwrap();
    assert!(
        contains(&raw, TOKEN),
        "without a key the vault is plaintext"
    );
    sealed.call(Input::new()).await.unwrap();
    assert_eq!(token_posts(&upstream), 5);
    let raw = store.get("vault:oauth2:api").await.unwrap().unwrap();
    assert!(!contains(&raw, TOKEN));
}

#[tokio::test]
async fn a_session_copied_to_another_principal_does_not_open() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [
            Answer::status(200).header("set-cookie", "session=alice-secret-cookie; Path=/"),
            Answer::status(200).header("set-cookie", "session=bob-secret-cookie; Path=/"),
            Answer::status(200).header("set-cookie", "session=bob-second-cookie; Path=/"),
        ],
    );
    upstream.script("/me", [Answer::status(200)]);
    let store = Arc::new(MemoryStore::new());
    let api = Seam::builder(upstream.url())
        .store(store.clone())
        .vault_key(key(9))
        .build()
        .unwrap();
    let login = api.post("/login").build().unwrap();
    let me = api
        .get("/me")
        .auth(Auth::cookie_session(
            CookieSession::new(login, "session").tenancy(Tenancy::Principal),
        ))
        .build()
        .unwrap();
    me.as_principal("alice").call(Input::new()).await.unwrap();
    me.as_principal("bob").call(Input::new()).await.unwrap();
    let alice = store
        .get("vault:cookie:session\u{0}alice")
        .await
        .unwrap()
        .unwrap();
    assert!(!contains(&alice, "alice-secret-cookie"), "{alice:?}");

    // Someone with write access to the store puts alice's session under bob's key.
    store
        .set("vault:cookie:session\u{0}bob", Some(alice), None)
        .await
        .unwrap();
    me.as_principal("bob").call(Input::new()).await.unwrap();
    let hits = upstream.hits();
    let logins = hits.iter().filter(|hit| hit.target == "/login").count();
    assert_eq!(logins, 3, "bob logs in again");
    let cookies: Vec<&str> = hits
        .iter()
        .filter(|hit| hit.target == "/me")
        .map(|hit| hit.headers["cookie"].to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        [
            "session=alice-secret-cookie",
            "session=bob-secret-cookie",
            "session=bob-second-cookie"
        ]
    );
}
