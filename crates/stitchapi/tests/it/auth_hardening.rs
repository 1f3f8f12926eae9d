//! Hostile token endpoints and login responses, through whole calls against loopback servers:
//! remote lifetimes are clamped and never panic (issue 9, item 5), the token fetch and the
//! login end at the per-attempt timeout (item 6), and cookies scoped to a public suffix or
//! breaking the `__Host-`/`__Secure-` prefix rules are never stored or sent (item 11).

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use stitchapi::auth::CookieSession;
use stitchapi::store::{Capabilities, StoreError};
use stitchapi::testing::ManualClock;
use stitchapi::transport::ReqwestTransport;
use stitchapi::{
    Auth, ErrorKind, Input, MemoryStore, OAuth2, Stitch, StitchStore, Tenancy, Timeout,
};
use support::{Answer, Upstream};

/// A memory store that records the TTL of every write.
#[derive(Debug)]
struct TtlSpy {
    inner: MemoryStore,
    writes: Mutex<Vec<(String, Option<Duration>)>>,
}

impl TtlSpy {
    fn new(clock: &ManualClock) -> Arc<TtlSpy> {
        Arc::new(TtlSpy {
            inner: MemoryStore::with_clock(Arc::new(clock.clone())),
            writes: Mutex::default(),
        })
    }
    fn writes(&self) -> Vec<(String, Option<Duration>)> {
        self.writes.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl StitchStore for TtlSpy {
    fn name(&self) -> &'static str {
        "ttl-spy"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if value.is_some() {
            self.writes.lock().unwrap().push((key.to_owned(), ttl));
        }
        self.inner.set(key, value, ttl).await
    }
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.inner.increment(key, ttl).await
    }
}

fn token_posts(upstream: &Upstream) -> usize {
    upstream
        .hits()
        .iter()
        .filter(|hit| hit.target == "/token")
        .count()
}

fn reports(upstream: &Upstream, clock: &ManualClock, store: Arc<TtlSpy>) -> Stitch<String> {
    Stitch::get(format!("{}/reports", upstream.url()))
        .text()
        .auth(Auth::oauth2(OAuth2::client_credentials(
            format!("{}/token", upstream.url()),
            "demo",
            "s3cret",
        )))
        .store(store)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

/// Regression (item 5): `expires_in` of `1e300` or `u64::MAX` overflowed `now + s * 1000`
/// (a panic in debug builds, an expiry in the past in release builds) and went to the store
/// as a TTL no Redis accepts.
#[tokio::test]
async fn a_huge_expires_in_is_clamped_to_a_day_and_never_panics() {
    for expires_in in [json!(1e300), json!(u64::MAX), json!("99999999999999999999")] {
        let upstream = Upstream::start().await;
        upstream.script(
            "/token",
            [Answer::json(
                200,
                json!({"access_token": "t1", "expires_in": expires_in}),
            )],
        );
        upstream.script("/reports", [Answer::status(200)]);
        let clock = ManualClock::new();
        let store = TtlSpy::new(&clock);
        let reports = reports(&upstream, &clock, store.clone());
        for _ in 0..3 {
            reports.call(Input::new()).await.unwrap();
        }
        assert_eq!(
            token_posts(&upstream),
            1,
            "{expires_in}: cached, not refetched"
        );
        let writes = store.writes();
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert!(
            writes[0].1.is_some_and(|ttl| ttl <= OAuth2::MAX_LIFETIME),
            "{expires_in}: the vault TTL is bounded: {writes:?}"
        );
        // Past the cap, the token is fetched again (the server's lifetime is not trusted
        // beyond a day).
        clock.advance(OAuth2::MAX_LIFETIME);
        reports.call(Input::new()).await.unwrap();
        assert_eq!(token_posts(&upstream), 2, "{expires_in}");
    }
}

/// Regression (item 5): a zero or negative `expires_in` cached the token forever; the token
/// is now taken as already expired: used by the call that fetched it, never served again from
/// the vault.
#[tokio::test]
async fn a_zero_or_negative_expires_in_is_never_served_from_the_vault() {
    for expires_in in [json!(0), json!(-5), json!(-1e300), json!("-5"), json!("0")] {
        let upstream = Upstream::start().await;
        upstream.script(
            "/token",
            [Answer::json(
                200,
                json!({"access_token": "t1", "expires_in": expires_in}),
            )],
        );
        upstream.script("/reports", [Answer::status(200)]);
        let clock = ManualClock::new();
        let store = TtlSpy::new(&clock);
        let reports = reports(&upstream, &clock, store.clone());
        reports.call(Input::new()).await.unwrap();
        reports.call(Input::new()).await.unwrap();
        assert_eq!(token_posts(&upstream), 2, "{expires_in}: not cached");
        // Vault writes only (the spy also sees fleet lock and cache keys, if any): an
        // already-expired bare token is not kept at all, so it can never live forever.
        let kept: Vec<_> = store
            .writes()
            .into_iter()
            .filter(|(key, _)| key.starts_with("vault:oauth2"))
            .collect();
        assert!(kept.is_empty(), "{expires_in}: nothing kept: {kept:?}");
        let sent = upstream
            .hits()
            .iter()
            .filter(|hit| hit.target == "/reports")
            .filter(|hit| hit.headers["authorization"] == "Bearer t1")
            .count();
        assert_eq!(sent, 2, "{expires_in}: each call used its fresh token");
    }
}

/// Item 5: TTLs handed to any store are bounded, so no remote value can make a Redis `PX`
/// overflow.
#[test]
fn store_ttls_are_bounded() {
    use stitchapi::store::{MAX_TTL, normalize_ttl};
    assert_eq!(normalize_ttl(Some(Duration::MAX)), Some(MAX_TTL));
    assert_eq!(normalize_ttl(Some(Duration::ZERO)), None);
    assert_eq!(
        normalize_ttl(Some(Duration::from_secs(5))),
        Some(Duration::from_secs(5))
    );
    assert!(MAX_TTL.as_millis() < i64::MAX as u128 / 2);
}

/// Regression (item 6): with only a per-attempt timeout, a token endpoint that accepts and
/// never answers hung the call forever.
#[tokio::test]
async fn a_silent_token_endpoint_ends_at_the_per_attempt_timeout() {
    let upstream = Upstream::start().await;
    upstream.script("/token", [Answer::hang()]);
    upstream.script("/reports", [Answer::status(200)]);
    let clock = ManualClock::new();
    let reports = Stitch::get(format!("{}/reports", upstream.url()))
        .auth(Auth::oauth2(OAuth2::client_credentials(
            format!("{}/token", upstream.url()),
            "demo",
            "s3cret",
        )))
        .timeout(Timeout::per_attempt("1s"))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { reports.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    clock.advance(Duration::from_millis(999));
    tokio::task::yield_now().await;
    assert!(!call.is_finished(), "not before the per-attempt timeout");
    clock.advance(Duration::from_millis(1));
    let error = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the token fetch was not bounded by the per-attempt timeout")
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.to_string(), "timed out after 1000ms");
    assert_eq!(
        upstream.hit_count(),
        1,
        "no request went out without a token"
    );
}

/// Regression (item 6): the same for a cookie login that never answers.
#[tokio::test]
async fn a_silent_login_ends_at_the_per_attempt_timeout() {
    let upstream = Upstream::start().await;
    upstream.script("/login", [Answer::hang()]);
    upstream.script("/me", [Answer::status(200)]);
    let clock = ManualClock::new();
    let login = Stitch::post(format!("{}/login", upstream.url()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let me = Stitch::get(format!("{}/me", upstream.url()))
        .auth(Auth::cookie_session(
            CookieSession::new(login, "session").tenancy(Tenancy::App),
        ))
        .timeout(Timeout::per_attempt("1s"))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let call = tokio::spawn(async move { me.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    clock.advance(Duration::from_secs(1));
    let error = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the login was not bounded by the per-attempt timeout")
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(
        upstream.hit_count(),
        1,
        "no request went out without a session"
    );
}

/// A transport that sends `*.example.com` and `*.other.com` to the loopback upstream, so
/// cookie domains can be tested with real host names.
fn named_hosts(upstream: &Upstream) -> Arc<ReqwestTransport> {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    for host in ["app.example.com", "api.example.com", "api.other.com"] {
        builder = builder.resolve(host, upstream.addr);
    }
    Arc::new(ReqwestTransport::from_client(builder.build().unwrap()))
}

fn cookie_of(hit: &support::Hit) -> Option<String> {
    hit.headers
        .get("cookie")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Regression (item 11): a login answering `Set-Cookie: sid=X; Domain=com` made the cookie go
/// to every `*.com` host the session called.
#[tokio::test]
async fn a_cookie_scoped_to_a_public_suffix_is_never_sent() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [Answer::status(200)
            .header("set-cookie", "sid=stolen; Domain=com; Path=/")
            .header("set-cookie", "site=ok; Domain=example.com; Path=/")
            .header("set-cookie", "session=mine; Path=/")],
    );
    upstream.script("/me", [Answer::status(200)]);
    let port = upstream.addr.port();
    let transport = named_hosts(&upstream);
    let login = Stitch::post(format!("http://app.example.com:{port}/login"))
        .transport(transport.clone())
        .build()
        .unwrap();
    let auth = Auth::cookie_session(CookieSession::jar(login).tenancy(Tenancy::App));
    let me = |host: &str| {
        Stitch::get(format!("http://{host}:{port}/me"))
            .auth(auth.clone())
            .transport(transport.clone())
            .build()
            .unwrap()
    };
    me("api.other.com").call(Input::new()).await.unwrap();
    me("api.example.com").call(Input::new()).await.unwrap();
    me("app.example.com").call(Input::new()).await.unwrap();
    let sent: Vec<(String, Option<String>)> = upstream
        .hits()
        .iter()
        .filter(|hit| hit.target == "/me")
        .map(|hit| {
            (
                hit.headers["host"].to_str().unwrap().to_owned(),
                cookie_of(hit),
            )
        })
        .collect();
    let cookies = |i: usize| -> Vec<String> {
        let mut names: Vec<String> = sent[i]
            .1
            .as_deref()
            .unwrap_or("")
            .split("; ")
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    };
    assert_eq!(sent.len(), 3);
    assert!(cookies(0).is_empty(), "a .com host got {:?}", sent[0]);
    assert_eq!(cookies(1), ["site=ok"], "{:?}", sent[1]);
    assert_eq!(cookies(2), ["session=mine", "site=ok"], "{:?}", sent[2]);

    // A session named after a public-suffix cookie has no session at all.
    let login = Stitch::post(format!("http://app.example.com:{port}/login"))
        .transport(transport.clone())
        .build()
        .unwrap();
    let error = Stitch::get(format!("http://api.other.com:{port}/me"))
        .auth(Auth::cookie_session(
            CookieSession::new(login, "sid").tenancy(Tenancy::App),
        ))
        .transport(transport)
        .build()
        .unwrap()
        .call(Input::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert!(
        error.to_string().contains("set no \"sid\" cookie"),
        "{error}"
    );
}

/// Regression (item 11): `__Host-` and `__Secure-` cookies that break their prefix's rules
/// (RFC 6265bis) were stored and replayed. Loopback counts as a secure origin, as in browsers.
#[tokio::test]
async fn cookie_prefix_rules_are_enforced() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [Answer::status(200)
            .header("set-cookie", "__Host-good=1; Path=/; Secure")
            .header("set-cookie", "__Host-nopath=1; Secure")
            .header(
                "set-cookie",
                "__Host-domain=1; Path=/; Secure; Domain=127.0.0.1",
            )
            .header("set-cookie", "__Host-insecure=1; Path=/")
            .header("set-cookie", "__Secure-good=1; Secure; Path=/")
            .header("set-cookie", "__Secure-insecure=1; Path=/")
            .header("set-cookie", "__SECURE-shout=1; Path=/")],
    );
    upstream.script("/me", [Answer::status(200)]);
    let login = Stitch::post(format!("{}/login", upstream.url()))
        .build()
        .unwrap();
    let me = Stitch::get(format!("{}/me", upstream.url()))
        .auth(Auth::cookie_session(
            CookieSession::jar(login).tenancy(Tenancy::App),
        ))
        .build()
        .unwrap();
    me.call(Input::new()).await.unwrap();
    let hit = upstream
        .hits()
        .into_iter()
        .find(|hit| hit.target == "/me")
        .unwrap();
    let mut sent: Vec<String> = cookie_of(&hit)
        .unwrap_or_default()
        .split("; ")
        .map(str::to_owned)
        .collect();
    sent.sort();
    assert_eq!(sent, ["__Host-good=1", "__Secure-good=1"]);
}
