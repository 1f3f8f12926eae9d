//! Auth through whole calls against a real upstream with a token endpoint and a login
//! endpoint: credentials applied, refreshed once on 401, shared through the store, kept apart
//! per principal, dropped on cross-origin redirects, never visible in errors.

use crate::support;

use std::sync::Arc;

use serde_json::json;
use stitchapi::auth::ApiKey;
use stitchapi::testing::ManualClock;
use stitchapi::{Auth, CookieSession, ErrorKind, Input, MemoryStore, OAuth2, Seam, Stitch};
use support::{Answer, Upstream};

fn token(value: &str) -> Answer {
    Answer::json(
        200,
        json!({"access_token": value, "token_type": "Bearer", "expires_in": 3600}),
    )
}

fn bearer_of(hit: &support::Hit) -> String {
    hit.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn oauth2_fetches_one_token_for_many_calls_and_refreshes_once_on_401() {
    let upstream = Upstream::start().await;
    upstream.script("/oauth/token", [token("t1"), token("t2")]);
    upstream.script("/reports", [Answer::status(200)]);
    let clock = ManualClock::new();
    let api = Seam::builder(upstream.url())
        .auth(Auth::oauth2(OAuth2::client_credentials(
            format!("{}/oauth/token", upstream.url()),
            "demo",
            "s3cret",
        )))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let reports = api.get("/reports").build().unwrap();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let reports = reports.clone();
            tokio::spawn(async move { reports.call(Input::new()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let posts = upstream
        .hits()
        .iter()
        .filter(|hit| hit.target == "/oauth/token")
        .count();
    assert_eq!(posts, 1, "concurrent cold callers share one token request");
    assert!(
        upstream
            .hits()
            .iter()
            .filter(|h| h.target == "/reports")
            .all(|h| bearer_of(h) == "Bearer t1")
    );

    // A minute later the server revokes t1: one refresh, and the same attempt is redone with
    // t2. (A refresh whose rejected token is no longer the stored one fetches nothing: that is
    // how concurrent 401s share one refresh.)
    clock.advance(std::time::Duration::from_secs(60));
    upstream.script("/reports", [Answer::status(401), Answer::status(200)]);
    let reply = reports.call_detailed(Input::new()).await.unwrap();
    assert_eq!(
        reply.attempts, 1,
        "the redo after a refresh is not an extra attempt"
    );
    let hits = upstream.hits();
    assert_eq!(bearer_of(hits.last().unwrap()), "Bearer t2");
    assert_eq!(
        hits.iter()
            .filter(|hit| hit.target == "/oauth/token")
            .count(),
        2
    );
}

#[tokio::test]
async fn oauth2_token_endpoint_failures_are_auth_errors_without_secrets() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/oauth/token",
        [Answer::json(400, json!({"error": "invalid_client"}))],
    );
    let stitch = Stitch::get(format!("{}/reports", upstream.url()))
        .auth(Auth::oauth2(OAuth2::client_credentials(
            format!("{}/oauth/token", upstream.url()),
            "demo",
            "s3cret-value",
        )))
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    assert!(
        error
            .to_string()
            .contains("oauth2 token request failed: HTTP 400"),
        "{error}"
    );
    assert!(!format!("{error} {error:?}").contains("s3cret-value"));
    assert!(
        !upstream.hits().iter().any(|hit| hit.target == "/reports"),
        "no call without a token"
    );
}

#[tokio::test]
async fn processes_sharing_a_store_share_one_token_and_separate_stores_do_not() {
    let upstream = Upstream::start().await;
    upstream.script("/oauth/token", [token("t1")]);
    upstream.script("/reports", [Answer::status(200)]);
    let token_url = format!("{}/oauth/token", upstream.url());
    let worker = |store: Arc<MemoryStore>| {
        let api = Seam::builder(upstream.url())
            .store(store)
            .auth(Auth::oauth2(OAuth2::client_credentials(
                token_url.clone(),
                "demo",
                "s3cret",
            )))
            .build()
            .unwrap();
        api.get("/reports").build().unwrap()
    };
    let shared = Arc::new(MemoryStore::new());
    for reports in [
        worker(shared.clone()),
        worker(shared.clone()),
        worker(shared),
    ] {
        reports.call(Input::new()).await.unwrap();
    }
    let posts = |upstream: &Upstream| {
        upstream
            .hits()
            .iter()
            .filter(|hit| hit.target == "/oauth/token")
            .count()
    };
    assert_eq!(posts(&upstream), 1);
    for reports in [
        worker(Arc::new(MemoryStore::new())),
        worker(Arc::new(MemoryStore::new())),
    ] {
        reports.call(Input::new()).await.unwrap();
    }
    assert_eq!(posts(&upstream), 3);
}

#[tokio::test]
async fn cookie_sessions_log_in_once_per_principal_and_relogin_once_on_401() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [Answer::status(200).header("set-cookie", "session=abc; Path=/; HttpOnly")],
    );
    upstream.script("/me", [Answer::status(200)]);
    let clock = ManualClock::new();
    let api = Seam::builder(upstream.url())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let login = api.post("/login").build().unwrap();
    let session = Auth::cookie_session(CookieSession::new(login, "session"));
    let me = api.get("/me").auth(session).build().unwrap();

    // Principal tenancy is the default and fails closed.
    let error = me.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert_eq!(upstream.hit_count(), 0, "no login without a principal");

    let alice = me.as_principal("alice");
    alice.call(Input::new()).await.unwrap();
    alice.call(Input::new()).await.unwrap();
    let logins = |upstream: &Upstream| {
        upstream
            .hits()
            .iter()
            .filter(|hit| hit.target == "/login")
            .count()
    };
    assert_eq!(logins(&upstream), 1);
    let cookie_of = |hit: &support::Hit| {
        hit.headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert!(
        upstream
            .hits()
            .iter()
            .filter(|h| h.target == "/me")
            .all(|h| cookie_of(h).as_deref() == Some("session=abc"))
    );

    me.as_principal("bob").call(Input::new()).await.unwrap();
    assert_eq!(logins(&upstream), 2, "bob has his own session");

    clock.advance(std::time::Duration::from_secs(60));
    upstream.script("/me", [Answer::status(401), Answer::status(200)]);
    alice.call(Input::new()).await.unwrap();
    assert_eq!(logins(&upstream), 3, "one re-login on 401");
}

#[tokio::test]
async fn credentials_added_by_auth_never_cross_origins_or_reach_urls() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    a.script(
        "/start",
        [Answer::status(302).header("location", &format!("{}/land", b.url()))],
    );
    b.script("/land", [Answer::status(200)]);
    let header_key = Stitch::get(format!("{}/start", a.url()))
        .auth(Auth::api_key(ApiKey::header("k-123").name("x-custom-key")))
        .build()
        .unwrap();
    header_key.call(Input::new()).await.unwrap();
    assert_eq!(a.hits()[0].headers["x-custom-key"], "k-123");
    assert!(
        !b.hits()[0].headers.contains_key("x-custom-key"),
        "an auth header crossed origins"
    );

    a.script("/q", [Answer::status(500)]);
    let query_key = Stitch::get(format!("{}/q", a.url()))
        .auth(Auth::api_key(ApiKey::query("k-456")))
        .build()
        .unwrap();
    let error = query_key.call(Input::new()).await.unwrap_err();
    assert_eq!(a.hits().last().unwrap().target, "/q?api_key=k-456");
    assert!(
        !error.url().unwrap().as_str().contains("k-456"),
        "{:?}",
        error.url()
    );
}

/// Regression: a refresh was skipped for a credential obtained less than a second before, so
/// a token the API rejected at once was sent again on the redo.
#[tokio::test]
async fn a_token_rejected_the_moment_it_was_issued_is_refreshed() {
    let upstream = Upstream::start().await;
    upstream.script("/oauth/token", [token("rejected"), token("good")]);
    upstream.script("/reports", [Answer::status(401), Answer::status(200)]);
    let clock = ManualClock::new();
    let reports = Stitch::get(format!("{}/reports", upstream.url()))
        .auth(Auth::oauth2(OAuth2::client_credentials(
            format!("{}/oauth/token", upstream.url()),
            "demo",
            "s3cret",
        )))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    reports.call(Input::new()).await.unwrap();
    let sent: Vec<String> = upstream
        .hits()
        .iter()
        .filter(|hit| hit.target == "/reports")
        .map(bearer_of)
        .collect();
    assert_eq!(sent, ["Bearer rejected", "Bearer good"]);
}

/// Regression: the same for a cookie session rejected right after the login.
#[tokio::test]
async fn a_session_rejected_the_moment_it_was_issued_is_renewed() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [
            Answer::status(200).header("set-cookie", "session=one; Path=/"),
            Answer::status(200).header("set-cookie", "session=two; Path=/"),
        ],
    );
    upstream.script("/me", [Answer::status(401), Answer::status(200)]);
    let clock = ManualClock::new();
    let api = Seam::builder(upstream.url())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let login = api.post("/login").build().unwrap();
    let me = api
        .get("/me")
        .auth(Auth::cookie_session(
            CookieSession::new(login, "session").tenancy(stitchapi::Tenancy::App),
        ))
        .build()
        .unwrap();
    me.call(Input::new()).await.unwrap();
    let sent: Vec<String> = upstream
        .hits()
        .iter()
        .filter(|hit| hit.target == "/me")
        .map(|hit| hit.headers["cookie"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["session=one", "session=two"]);
}

/// How many times `upstream` saw `target`, and the cookie each of those requests carried.
fn cookies_at(upstream: &Upstream, target: &str) -> Vec<Option<String>> {
    upstream
        .hits()
        .iter()
        .filter(|hit| hit.target == target)
        .map(|hit| {
            hit.headers
                .get("cookie")
                .map(|value| value.to_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_form_login_that_redirects_keeps_the_session_its_302_set() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [Answer::status(302)
            .header("set-cookie", "session=abc; Path=/; HttpOnly")
            .header("location", "/dashboard")],
    );
    upstream.script("/dashboard", [Answer::status(200).body("<h1>Welcome</h1>")]);
    upstream.script("/me", [Answer::json(200, json!({"user": "alice"}))]);
    let api = Seam::builder(upstream.url()).build().unwrap();
    // The login's body is a page, not JSON: read it as bytes (it is not used).
    let login = api.post("/login").bytes().build().unwrap();
    let me = api
        .get("/me")
        .auth(Auth::cookie_session(
            CookieSession::new(login, "session").tenancy(stitchapi::Tenancy::App),
        ))
        .build()
        .unwrap();
    assert_eq!(me.call(Input::new()).await.unwrap()["user"], "alice");
    // The landing page got the cookie as it would in a browser, and the session is replayed.
    assert_eq!(
        cookies_at(&upstream, "/dashboard"),
        [Some("session=abc".to_owned())]
    );
    assert_eq!(
        cookies_at(&upstream, "/me"),
        [Some("session=abc".to_owned())]
    );
    assert_eq!(cookies_at(&upstream, "/login").len(), 1);
}

#[tokio::test]
async fn a_login_that_follows_no_redirect_sees_its_302() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [Answer::status(303)
            .header("set-cookie", "session=abc; Path=/")
            .header("location", "/dashboard")],
    );
    upstream.script("/me", [Answer::json(200, json!({"ok": true}))]);
    let api = Seam::builder(upstream.url()).build().unwrap();
    let login = api
        .post("/login")
        .redirects(stitchapi::policy::Redirects::none())
        .bytes()
        .build()
        .unwrap();
    let me = api
        .get("/me")
        .auth(Auth::cookie_session(
            CookieSession::new(login, "session").tenancy(stitchapi::Tenancy::App),
        ))
        .build()
        .unwrap();
    me.call(Input::new()).await.unwrap();
    assert!(
        cookies_at(&upstream, "/dashboard").is_empty(),
        "not followed"
    );
    assert_eq!(
        cookies_at(&upstream, "/me"),
        [Some("session=abc".to_owned())]
    );
}

#[tokio::test]
async fn a_login_redirected_to_another_host_keeps_its_cookie_where_it_was_set() {
    let (app, sso) = (Upstream::start().await, Upstream::start().await);
    // Cookies are scoped by host, not port: the other site is `localhost`.
    let sso_url = format!("http://localhost:{}", sso.addr.port());
    app.script(
        "/login",
        [Answer::status(302)
            .header("set-cookie", "session=app; Path=/")
            .header("location", &format!("{sso_url}/welcome"))],
    );
    sso.script(
        "/welcome",
        [Answer::status(200).header("set-cookie", "sso=1; Path=/")],
    );
    app.script("/me", [Answer::json(200, json!({"ok": true}))]);
    sso.script("/profile", [Answer::json(200, json!({"ok": true}))]);
    let login = Stitch::post(format!("{}/login", app.url()))
        .bytes()
        .build()
        .unwrap();
    let session = Auth::cookie_session(CookieSession::jar(login).tenancy(stitchapi::Tenancy::App));
    // One store, so both stitches read the one session.
    let store: stitchapi::store::DynStore = Arc::new(MemoryStore::new());
    let me = Stitch::get(format!("{}/me", app.url()))
        .store(store.clone())
        .auth(session.clone())
        .build()
        .unwrap();
    me.call(Input::new()).await.unwrap();
    assert_eq!(cookies_at(&app, "/me"), [Some("session=app".to_owned())]);
    assert_eq!(
        cookies_at(&sso, "/welcome"),
        [None],
        "app's cookie stayed on app"
    );
    // The same session, sent to the other host, carries only what that host set.
    let profile = Stitch::get(format!("{sso_url}/profile"))
        .store(store)
        .auth(session)
        .build()
        .unwrap();
    profile.call(Input::new()).await.unwrap();
    assert_eq!(cookies_at(&sso, "/profile"), [Some("sso=1".to_owned())]);
    assert_eq!(cookies_at(&app, "/login").len(), 1, "one login for both");
}

#[tokio::test]
async fn a_login_that_sets_no_session_names_its_answer_and_every_hop() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/login",
        [Answer::status(302).header("location", "/next?token=s3cret")],
    );
    upstream.script("/next", [Answer::status(303).header("location", "/home")]);
    upstream.script("/home", [Answer::status(200).body("<form id=login>")]);
    let login = Stitch::post(format!("{}/login", upstream.url()))
        .text()
        .build()
        .unwrap();
    let me = Stitch::get(format!("{}/me", upstream.url()))
        .auth(Auth::cookie_session(
            CookieSession::new(login, "session").tenancy(stitchapi::Tenancy::App),
        ))
        .build()
        .unwrap();
    let error = me.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth);
    let base = upstream.url();
    assert_eq!(
        error.to_string(),
        format!(
            "cookie_session login answered HTTP 200 from {base}/home after 302 from {base}/login, \
             303 from {base}/next?token=… but set no \"session\" cookie. \
             Fix: check the login input and the cookie name"
        )
    );
    assert!(!format!("{error:?}").contains("s3cret"));
}
