//! The fleet's upstream: a loopback API that records every arrival.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::worker::CLIENT;

/// How long the token, login and cached-data endpoints take to answer, so that cold workers
/// really do race each other.
const SLOW: Duration = Duration::from_millis(300);
const TOKEN: &str = "fleet-token-51c2";
const SESSION: &str = "fleet-session-9e0d";

/// One request as the upstream saw it arrive.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The `x-worker` header, if any.
    pub worker: Option<String>,
    /// When it arrived (before its handler ran).
    pub at: Instant,
}

#[derive(Default)]
struct Record {
    arrivals: Mutex<Vec<Arrival>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    data_fetches: AtomicUsize,
}

/// A loopback API for fleet runs; it stops when the runtime does.
///
/// - `GET /hit`: answers at once;
/// - `GET /hold/{ms}`: answers after `ms` milliseconds;
/// - `GET /hang`: never answers;
/// - `GET /fail`: answers 500;
/// - `GET /data`: a report, after 300 ms (counts real fetches);
/// - `POST /oauth/token`: a client-credentials token endpoint (`fleet` / `s3cret`), 300 ms;
/// - `GET /reports`: needs that token as a bearer;
/// - `POST /login`: sets the `session` cookie, 300 ms;
/// - `GET /me`: needs that cookie.
#[derive(Clone)]
pub struct FleetUpstream {
    addr: SocketAddr,
    record: Arc<Record>,
}

impl FleetUpstream {
    /// Starts the API on a free loopback port.
    pub async fn start() -> std::io::Result<FleetUpstream> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let record = Arc::new(Record::default());
        let app = Router::new()
            .route("/hit", get(|| async { Json(json!({"ok": true})) }))
            .route("/hold/{ms}", get(hold))
            .route("/hang", get(std::future::pending::<()>))
            .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .route("/data", get(data))
            .route("/oauth/token", post(token))
            .route("/reports", get(reports))
            .route("/login", post(login))
            .route("/me", get(me))
            .layer(middleware::from_fn_with_state(record.clone(), arrive))
            .with_state(record.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FleetUpstream { addr, record })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every arrival so far, in order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.lock().clone()
    }

    /// How many requests arrived for `method path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.lock()
            .iter()
            .filter(|arrival| arrival.method == method && arrival.path == path)
            .count()
    }

    /// The most requests it has had in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.record.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until `count(method, path) >= n`, for at most `within`; says whether it got there.
    pub async fn wait_for(&self, method: &str, path: &str, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.count(method, path) < n {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arrival>> {
        self.record.arrivals()
    }
}

impl Record {
    fn arrivals(&self) -> MutexGuard<'_, Vec<Arrival>> {
        self.arrivals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counts a request in flight for as long as its handler runs (or until the client hangs up).
struct InFlight(Arc<Record>);

impl InFlight {
    fn enter(record: Arc<Record>) -> InFlight {
        let now = record.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        record.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(record)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn arrive(State(record): State<Arc<Record>>, request: Request, next: Next) -> Response {
    let arrival = Arrival {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        worker: request
            .headers()
            .get("x-worker")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        at: Instant::now(),
    };
    record.arrivals().push(arrival);
    let _in_flight = InFlight::enter(record);
    next.run(request).await
}

async fn hold(Path(ms): Path<u64>) -> impl IntoResponse {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"held_ms": ms}))
}

async fn data(State(record): State<Arc<Record>>) -> impl IntoResponse {
    let fetch = record.data_fetches.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(SLOW).await;
    Json(json!({"report": "quarterly", "fetch": fetch}))
}

async fn token(body: String) -> Response {
    tokio::time::sleep(SLOW).await;
    let (id, secret) = CLIENT;
    let expected = [format!("client_id={id}"), format!("client_secret={secret}")];
    if !expected
        .iter()
        .all(|part| body.split('&').any(|p| p == part))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    Json(json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

async fn reports(headers: HeaderMap) -> Response {
    let bearer = format!("Bearer {TOKEN}");
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&bearer)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"reports": ["q1", "q2"]})).into_response()
}

async fn login() -> Response {
    tokio::time::sleep(SLOW).await;
    (
        [(
            header::SET_COOKIE,
            format!("session={SESSION}; Path=/; HttpOnly"),
        )],
        Json(json!({"ok": true})),
    )
        .into_response()
}

async fn me(headers: HeaderMap) -> Response {
    let cookie = format!("session={SESSION}");
    if headers.get(header::COOKIE).and_then(|v| v.to_str().ok()) != Some(&cookie) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"user": "fleet-user"})).into_response()
}
