//! What the benchmarks share: a hyper server on loopback answering every request with one
//! small JSON user, the type it decodes into, a median, and a per-call timer.
#![allow(dead_code)]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

/// The body every request gets (90 bytes, five fields).
pub const BODY: &[u8] =
    br#"{"id":7,"name":"Ada Lovelace","email":"ada@example.com","active":true,"team":"core"}"#;

/// [`BODY`], typed.
#[derive(Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub team: String,
}

/// Starts the server on a free loopback port; returns `http://127.0.0.1:<port>`.
pub async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let mut response = hyper::Response::new(Full::new(Bytes::from_static(BODY)));
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// The median (sorts in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Nanoseconds per call of `f`: a warm-up of a tenth, then the median of 7 timed rounds of
/// `iterations` calls.
pub fn per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    median(&mut rounds)
}
