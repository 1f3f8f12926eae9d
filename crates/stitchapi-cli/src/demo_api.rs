//! The quickstart's local API, which misbehaves on purpose so `stitch demo` and the
//! runnable examples (`cargo run --example quickstart`) can show retries, validation errors,
//! timeouts, caching, throttling and OAuth2 without any network access.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;

/// A local API on 127.0.0.1:
/// - `GET /users/{id}`: every other request fails with 503;
/// - `GET /users`: a list whose fourth user has no email (`null`);
/// - `GET /slow`: answers after 5 seconds;
/// - `GET /prices`: a slow-changing price list (counts how often it is really fetched);
/// - `POST /oauth/token`: an OAuth2 client-credentials token endpoint (`demo` / `s3cret`);
/// - `GET /reports`: needs `Authorization: Bearer <token from /oauth/token>`.
#[derive(Debug)]
pub struct DemoUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl DemoUpstream {
    /// Starts the API on a free loopback port; it stops when the runtime does.
    pub async fn start() -> std::io::Result<DemoUpstream> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/users", get(list_users))
            .route("/users/{id}", get(get_user))
            .route("/slow", get(slow))
            .route("/prices", get(prices))
            .route("/oauth/token", axum::routing::post(token))
            .route("/reports", get(reports))
            .with_state(requests.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(DemoUpstream { addr, requests })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests it has served.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn get_user(
    State(requests): State<Arc<AtomicUsize>>,
    Path(id): Path<u64>,
) -> impl IntoResponse {
    let n = requests.fetch_add(1, Ordering::SeqCst);
    if n % 2 == 0 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "try again"})),
        )
            .into_response();
    }
    Json(json!({"id": id, "name": format!("User {id}"), "email": format!("user{id}@example.com")}))
        .into_response()
}

async fn list_users(State(requests): State<Arc<AtomicUsize>>) -> impl IntoResponse {
    requests.fetch_add(1, Ordering::SeqCst);
    let mut data: Vec<_> = (1..=3)
        .map(|id| json!({"id": id, "name": format!("User {id}"), "email": format!("user{id}@example.com")}))
        .collect();
    data.push(json!({"id": 4, "name": "User 4", "email": null}));
    Json(json!({ "data": data }))
}

async fn slow(State(requests): State<Arc<AtomicUsize>>) -> impl IntoResponse {
    requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    Json(json!({"finally": true}))
}

async fn prices(State(requests): State<Arc<AtomicUsize>>) -> impl IntoResponse {
    requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(40)).await;
    Json(json!({"EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}))
}

/// The one token this API hands out.
const TOKEN: &str = "demo-token-7f3a";

async fn token(State(requests): State<Arc<AtomicUsize>>, body: String) -> impl IntoResponse {
    requests.fetch_add(1, Ordering::SeqCst);
    let form: Vec<(String, String)> = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") == Some("client_credentials")
        && field("client_id") == Some("demo")
        && field("client_secret") == Some("s3cret")
    {
        Json(json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}))
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response()
    }
}

async fn reports(
    State(requests): State<Arc<AtomicUsize>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    requests.fetch_add(1, Ordering::SeqCst);
    let authorized = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == format!("Bearer {TOKEN}"));
    if authorized {
        Json(json!({"report": "Q3", "revenue": 1_250_000})).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or bad token"})),
        )
            .into_response()
    }
}
