//! A real HTTP upstream on loopback for the integration tests: scripted answers per path,
//! every request recorded, TCP connections counted. It stops with the test's runtime.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Never answer (the client must time out).
    pub hang: bool,
    /// Send the body chunked, without a content-length.
    pub chunked: bool,
    /// Answer after this much real time.
    pub delay: Option<Duration>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            hang: false,
            chunked: false,
            delay: None,
        }
    }
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Answer::status(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
    pub fn hang() -> Self {
        Answer {
            hang: true,
            ..Answer::status(200)
        }
    }
}

/// A request the upstream received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: Method,
    /// The raw request target (path and query) as sent on the wire.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Shared {
    scripts: Mutex<HashMap<String, VecDeque<Answer>>>,
    hits: Mutex<Vec<Hit>>,
    connections: AtomicUsize,
    arrived: Notify,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The upstream server.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accept_shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = accept_shared.clone();
                tokio::spawn(serve_connection(stream, shared));
            }
        });
        Upstream { addr, shared }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `path` with `answers` in order, then repeats the last one.
    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Answer>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .insert(path.to_owned(), answers.into_iter().collect());
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    pub fn hit_count(&self) -> usize {
        self.shared.hits.lock().unwrap().len()
    }

    /// The most requests the upstream was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for_hits(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.shared.arrived.notified();
                if self.hit_count() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the upstream never received the expected requests");
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move {
            let request = request.map(axum::body::Body::new);
            Ok::<_, std::convert::Infallible>(handle(State(shared), request).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    shared.hits.lock().unwrap().push(Hit {
        method: parts.method.clone(),
        target,
        headers: parts.headers.clone(),
        body,
    });
    shared.arrived.notify_waiters();
    let answer = {
        let mut scripts = shared.scripts.lock().unwrap();
        match scripts.get_mut(&path) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    };
    let Some(answer) = answer else {
        return (StatusCode::NOT_FOUND, format!("no script for {path}")).into_response();
    };
    if answer.hang {
        std::future::pending::<()>().await;
    }
    if let Some(delay) = answer.delay {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    let body = if answer.chunked {
        let chunks: Vec<Result<Bytes, std::io::Error>> = answer
            .body
            .chunks(8192)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        axum::body::Body::from_stream(futures_util::stream::iter(chunks))
    } else {
        axum::body::Body::from(answer.body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap();
    for (name, value) in answer.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// A server that reads each request and closes the connection without answering: every
/// request to it is a transport error.
pub struct RudeServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl RudeServer {
    pub async fn start() -> RudeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buffer = [0_u8; 4096];
                let _ = stream.read(&mut buffer).await;
                drop(stream);
            }
        });
        RudeServer { addr, accepted }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received (each on its own connection).
    pub fn requests(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
