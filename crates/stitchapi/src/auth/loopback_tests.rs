//! Auth strategies against real loopback token and login endpoints, driven through the
//! engine's entry points (`Auth::apply`, `Auth::refresh`) with a hand-built `AuthContext`:
//! crate-private, so these tests live inside the crate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::{
    Auth, AuthContext, CookieSession, CredentialId, LoginFailure, LoginOutcome, OAuth2, Secret,
    VAULT_PREFIX,
};
use crate::store::{DynStore, PrefixedStore};
use crate::testing::FleetStore;
use crate::time::{SystemClock, Timestamp};
use crate::transport::ReqwestTransport;
use crate::{ErrorKind, Input, MemoryStore, Retry, Stitch, StitchStore, Tenancy};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::Method;
use url::Url;

/// What the loopback auth server does, and what it saw.
#[derive(Default)]
struct Server {
    token_posts: AtomicUsize,
    token_bodies: Mutex<Vec<String>>,
    token_headers: Mutex<Vec<HeaderMap>>,
    /// Token endpoint answers 400 when set.
    token_fails: std::sync::atomic::AtomicBool,
    /// Include a refresh_token, and this expires_in.
    refresh_token: std::sync::atomic::AtomicBool,
    logins: AtomicUsize,
    login_bodies: Mutex<Vec<String>>,
    /// Login answers 429 when set.
    login_limited: std::sync::atomic::AtomicBool,
}

async fn token(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = server.token_posts.fetch_add(1, Ordering::SeqCst) + 1;
    server
        .token_bodies
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    server.token_headers.lock().unwrap().push(headers);
    // Slow enough that concurrent callers overlap.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if server.token_fails.load(Ordering::SeqCst) {
        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_client"}"#).into_response();
    }
    let mut value = serde_json::json!({"access_token": format!("tok-{n}"), "expires_in": 3600});
    if server.refresh_token.load(Ordering::SeqCst) {
        value["refresh_token"] = serde_json::json!(format!("ref-{n}"));
    }
    axum::Json(value).into_response()
}

async fn login(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    let n = server.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let body = String::from_utf8_lossy(&body).into_owned();
    server.login_bodies.lock().unwrap().push(body.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    if server.login_limited.load(Ordering::SeqCst) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "9")],
            "slow down",
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(
            "set-cookie",
            format!("session=s{n}-{body}; Path=/; HttpOnly"),
        )],
        "welcome",
    )
        .into_response()
}

async fn start() -> (Arc<Server>, u16) {
    let server = Arc::new(Server::default());
    let app = Router::new()
        .route("/token", post(token))
        .route("/login", post(login))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (server, port)
}

/// One "process": a store view, a clock and a transport.
struct Process {
    store: DynStore,
    vault: DynStore,
    clock: SystemClock,
    transport: ReqwestTransport,
}

impl Process {
    fn new(store: impl StitchStore) -> Self {
        let store: DynStore = Arc::new(store);
        Process {
            vault: Arc::new(PrefixedStore::new(store.clone(), VAULT_PREFIX)),
            store,
            clock: SystemClock::new(),
            transport: ReqwestTransport::new(),
        }
    }
    fn cx(&self) -> AuthContext<'_> {
        AuthContext::new(&self.vault, &self.store, &self.clock, &self.transport)
    }
}

async fn header(
    auth: &Auth,
    cx: &AuthContext<'_>,
    url: &str,
    name: &str,
) -> crate::Result<Option<String>> {
    let mut url = Url::parse(url).unwrap();
    let mut headers = HeaderMap::new();
    auth.apply(&Method::GET, &mut url, &mut headers, cx).await?;
    Ok(headers.get(name).map(|v| v.to_str().unwrap().to_owned()))
}

fn oauth(port: u16) -> OAuth2 {
    OAuth2::client_credentials(
        format!("http://127.0.0.1:{port}/token"),
        "client-1",
        Secret::new("very-secret"),
    )
    .scope("read")
}

#[tokio::test]
async fn oauth2_twenty_cold_callers_one_post_then_cached() {
    let (server, port) = start().await;
    let process = Process::new(MemoryStore::new());
    let auth = Auth::oauth2(oauth(port));
    let cx = process.cx();
    let results = futures_util::future::join_all(
        (0..20).map(|_| header(&auth, &cx, "https://api.test/x", "authorization")),
    )
    .await;
    for result in &results {
        assert_eq!(result.as_ref().unwrap().as_deref(), Some("Bearer tok-1"));
    }
    assert_eq!(
        header(&auth, &cx, "https://api.test/y", "authorization")
            .await
            .unwrap()
            .as_deref(),
        Some("Bearer tok-1")
    );
    assert_eq!(server.token_posts.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.token_bodies.lock().unwrap()[0],
        "grant_type=client_credentials&scope=read&client_id=client-1&client_secret=very-secret"
    );
    let headers = &server.token_headers.lock().unwrap()[0];
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
}

#[tokio::test]
async fn oauth2_three_processes_on_a_fleet_store_one_post_separate_stores_three() {
    let (server, port) = start().await;
    let shared = FleetStore::new(crate::time::SystemClock::new());
    let processes: Vec<_> = (0..3).map(|_| Process::new(shared.clone())).collect();
    let auths: Vec<_> = (0..3)
        .map(|_| Auth::oauth2(oauth(port).key("fleet")))
        .collect();
    let cxs: Vec<_> = processes.iter().map(Process::cx).collect();
    let results = futures_util::future::join_all((0..12).map(|i| {
        header(
            &auths[i % 3],
            &cxs[i % 3],
            "https://api.test/",
            "authorization",
        )
    }))
    .await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().as_deref() == Some("Bearer tok-1"))
    );
    assert_eq!(server.token_posts.load(Ordering::SeqCst), 1);

    let (server, port) = start().await;
    let processes: Vec<_> = (0..3)
        .map(|_| Process::new(FleetStore::new(crate::time::SystemClock::new())))
        .collect();
    let auths: Vec<_> = (0..3)
        .map(|_| Auth::oauth2(oauth(port).key("fleet")))
        .collect();
    let cxs: Vec<_> = processes.iter().map(Process::cx).collect();
    futures_util::future::join_all(
        (0..3).map(|i| header(&auths[i], &cxs[i], "https://api.test/", "authorization")),
    )
    .await;
    assert_eq!(server.token_posts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn oauth2_forced_refresh_refresh_token_grant_and_failure() {
    let (server, port) = start().await;
    server.refresh_token.store(true, Ordering::SeqCst);
    let process = Process::new(MemoryStore::new());
    let auth = Auth::oauth2(oauth(port));
    let cx = process.cx();
    assert_eq!(
        header(&auth, &cx, "https://api.test/", "authorization")
            .await
            .unwrap()
            .as_deref(),
        Some("Bearer tok-1")
    );
    assert!(auth.should_refresh(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b""));
    auth.refresh(Some(CredentialId::of(b"tok-1")), &cx)
        .await
        .unwrap();
    assert_eq!(
        header(&auth, &cx, "https://api.test/", "authorization")
            .await
            .unwrap()
            .as_deref(),
        Some("Bearer tok-2")
    );
    assert_eq!(server.token_posts.load(Ordering::SeqCst), 2);
    assert!(
        server.token_bodies.lock().unwrap()[1]
            .starts_with("grant_type=refresh_token&refresh_token=ref-1&")
    );

    let (server, port) = start().await;
    server.token_fails.store(true, Ordering::SeqCst);
    let auth = Auth::oauth2(oauth(port));
    let error = header(&auth, &cx, "https://api.test/", "authorization")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert!(
        error
            .to_string()
            .starts_with("oauth2 token request failed: HTTP 400. Fix:")
    );
    assert!(!format!("{error} {error:?}").contains("very-secret"));
}

fn login_stitch(port: u16) -> Stitch<String> {
    Stitch::post(format!("http://127.0.0.1:{port}/login"))
        .text()
        .retry(Retry::attempts(1))
        .build()
        .unwrap()
}

#[tokio::test]
async fn cookie_session_login_replay_relogin_principals_and_scoping() {
    let (server, port) = start().await;
    let process = Process::new(MemoryStore::new());
    let auth = Auth::cookie_session(
        CookieSession::new(login_stitch(port), "session")
            .login_input(|p: Option<&str>| Input::new().form(&serde_json::json!({"user": p}))),
    );
    let api = format!("http://127.0.0.1:{port}/api");
    // Fail closed without a principal, before any login.
    let error = header(&auth, &process.cx(), &api, "cookie")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert!(error.to_string().contains("requires a bound principal"));
    assert_eq!(server.logins.load(Ordering::SeqCst), 0);

    let alice = process.cx().with_principal(Some("alice"));
    let bob = process.cx().with_principal(Some("bob"));
    // Ten concurrent cold callers for alice: one login.
    let results =
        futures_util::future::join_all((0..10).map(|_| header(&auth, &alice, &api, "cookie")))
            .await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().as_deref() == Some("session=s1-user=alice"))
    );
    assert_eq!(server.logins.load(Ordering::SeqCst), 1);
    assert_eq!(
        header(&auth, &bob, &api, "cookie")
            .await
            .unwrap()
            .as_deref(),
        Some("session=s2-user=bob")
    );
    assert_eq!(
        header(&auth, &alice, &api, "cookie")
            .await
            .unwrap()
            .as_deref(),
        Some("session=s1-user=alice")
    );
    // Another host never receives the cookie.
    let other = format!("http://localhost:{port}/api");
    assert_eq!(header(&auth, &alice, &other, "cookie").await.unwrap(), None);

    // 401: one re-login, even with concurrent refreshers.
    assert!(auth.should_refresh(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b""));
    let stored = alice
        .vault
        .get("cookie:session\u{0}alice")
        .await
        .unwrap()
        .unwrap();
    let rejected = Some(CredentialId::of(&stored));
    let refreshed =
        futures_util::future::join_all((0..5).map(|_| auth.refresh(rejected, &alice))).await;
    assert!(refreshed.iter().all(Result::is_ok));
    assert_eq!(server.logins.load(Ordering::SeqCst), 3);
    assert_eq!(
        header(&auth, &alice, &api, "cookie")
            .await
            .unwrap()
            .as_deref(),
        Some("session=s3-user=alice")
    );
}

#[tokio::test]
async fn cookie_session_failed_login_fires_hooks_once_for_all_waiters() {
    let (server, port) = start().await;
    server.login_limited.store(true, Ordering::SeqCst);
    let process = Process::new(MemoryStore::new());
    let seen = Arc::new(Mutex::new(Vec::<LoginOutcome>::new()));
    let auth = Auth::cookie_session(
        CookieSession::new(login_stitch(port), "session")
            .tenancy(Tenancy::App)
            .on_outcome({
                let seen = seen.clone();
                move |o: &LoginOutcome| seen.lock().unwrap().push(o.clone())
            }),
    );
    let cx = process.cx();
    let api = format!("http://127.0.0.1:{port}/api");
    let results =
        futures_util::future::join_all((0..8).map(|_| header(&auth, &cx, &api, "cookie"))).await;
    for result in &results {
        let error = result.as_ref().unwrap_err();
        assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    }
    assert_eq!(server.logins.load(Ordering::SeqCst), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].failure,
        Some(LoginFailure::RateLimited {
            retry_after: Some(Duration::from_secs(9))
        })
    );
}

#[tokio::test]
async fn the_deadline_bounds_the_login() {
    let (_server, port) = start().await;
    let process = Process::new(MemoryStore::new());
    let auth = Auth::cookie_session(
        CookieSession::new(login_stitch(port), "session").tenancy(Tenancy::App),
    );
    let cx = process.cx();
    let cx = cx.with_deadline(Some(Timestamp::from_millis_f64(
        crate::time::Clock::now(&process.clock).as_millis_f64() + 20.0,
    )));
    let error = header(
        &auth,
        &cx,
        &format!("http://127.0.0.1:{port}/api"),
        "cookie",
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
}
