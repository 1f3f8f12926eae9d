//! The loopback upstream every client calls: an axum server on its own runtime (own threads),
//! so a client measured on its thread is not charged for the server's work.
//!
//! Routes:
//! - `GET /users/{id}`: 200 with [`crate::BODY`];
//! - `GET /flaky/{key}`: 503 the first time a key is seen, then 200 with the body (one real
//!   retry per key; the key is forgotten after its 200, so the set stays small);
//! - `GET /cached/{id}`: 200 with the body and `Cache-Control: max-age=3600`, counted;
//! - `GET /fail`: 500.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::BODY;

/// A running upstream (it runs until the process exits).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    flaky_seen: Mutex<HashSet<String>>,
    cached_served: AtomicU64,
}

impl Upstream {
    /// Starts the upstream on a free loopback port, on its own `threads`-worker runtime.
    pub fn start(threads: usize) -> Upstream {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let state = shared.clone();
        std::thread::Builder::new()
            .name("upstream".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("upstream-worker")
                    .enable_all()
                    .build()
                    .expect("upstream runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind a loopback port");
                    let addr = listener.local_addr().expect("local addr");
                    let app = Router::new()
                        .route("/users/{id}", get(user))
                        .route("/flaky/{key}", get(flaky))
                        .route("/cached/{id}", get(cached))
                        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
                        .with_state(state);
                    tx.send(addr).expect("report the address");
                    axum::serve(listener, app).await.expect("serve");
                });
            })
            .expect("spawn the upstream thread");
        let addr = rx.recv().expect("the upstream's address");
        Upstream {
            base: format!("http://{addr}"),
            shared,
        }
    }

    /// How many responses `/cached/{id}` has sent (a cache hit sends none).
    pub fn cached_served(&self) -> u64 {
        self.shared.cached_served.load(Ordering::Relaxed)
    }
}

fn json(cache_control: Option<&'static str>) -> axum::response::Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        BODY,
    )
        .into_response();
    if let Some(value) = cache_control {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static(value),
        );
    }
    response
}

async fn user(Path(_id): Path<String>) -> impl IntoResponse {
    json(None)
}

async fn flaky(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
) -> axum::response::Response {
    let first = {
        let mut seen = shared.flaky_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.remove(&key) {
            false
        } else {
            seen.insert(key);
            true
        }
    };
    if first {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    } else {
        json(None)
    }
}

async fn cached(State(shared): State<Arc<Shared>>, Path(_id): Path<String>) -> impl IntoResponse {
    shared.cached_served.fetch_add(1, Ordering::Relaxed);
    json(Some("max-age=3600"))
}
