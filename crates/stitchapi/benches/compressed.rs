//! A 1 MiB compressible JSON body, served gzip-, brotli- and zstd-encoded and plain, fetched,
//! decoded and deserialised by a stitch and by bare reqwest with the same decoders (the same
//! reqwest build), against the same loopback server, in interleaved rounds.
//!
//! `cargo bench -p stitchapi --bench compressed`. Target: the stitch within 5% of bare reqwest
//! (median latency ratio ≤ 1.05) for every encoding.

use std::convert::Infallible;
use std::io::Write as _;
use std::time::{Duration, Instant};

mod support;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use stitchapi::{Input, Retry, Stitch, Timeout};
use support::median;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    id: u64,
    name: String,
    tags: Vec<String>,
    price: f64,
}

#[derive(Deserialize)]
struct Catalogue {
    items: Vec<Item>,
}

/// About 1 MiB of JSON that compresses well (as real API listings do).
fn catalogue() -> Vec<u8> {
    let mut body = String::from(r#"{"items":["#);
    let mut id = 0;
    while body.len() < 1 << 20 {
        if id > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"id":{id},"name":"item number {id}","tags":["catalogue","example","{}"],"price":{}.99}}"#,
            id % 17,
            id % 100
        ));
        id += 1;
    }
    body.push_str("]}");
    body.into_bytes()
}

fn encode(coding: &str, body: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            let params = brotli::enc::BrotliEncoderParams {
                quality: 5,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params).unwrap();
            out
        }
        "zstd" => zstd::encode_all(body, 3).unwrap(),
        _ => body.to_vec(),
    }
}

const CODINGS: [&str; 4] = ["identity", "gzip", "br", "zstd"];

/// Serves `/<coding>` with the body in that encoding.
async fn serve(body: &[u8]) -> String {
    let encoded: Vec<(String, Bytes)> = CODINGS
        .iter()
        .map(|coding| (format!("/{coding}"), Bytes::from(encode(coding, body))))
        .collect();
    for (path, bytes) in &encoded {
        println!("  {path:<10} {:>8} bytes on the wire", bytes.len());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let encoded = std::sync::Arc::new(encoded);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let encoded = encoded.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let encoded = encoded.clone();
                    async move {
                        let path = request.uri().path();
                        let (coding, body) = encoded
                            .iter()
                            .find(|(p, _)| p == path)
                            .map(|(p, b)| (&p[1..], b.clone()))
                            .unwrap();
                        let mut response = hyper::Response::new(Full::new(body));
                        let headers = response.headers_mut();
                        headers.insert("content-type", "application/json".parse().unwrap());
                        if coding != "identity" {
                            headers.insert("content-encoding", coding.parse().unwrap());
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let body = catalogue();
    println!("1 MiB JSON body ({} bytes decoded):", body.len());
    let base = serve(&body).await;
    let client = reqwest::Client::new();
    let (rounds, per_round) = (10, 20);
    println!("median per call, stitchapi vs bare reqwest (same decoders), interleaved:");
    for coding in CODINGS {
        let url = format!("{base}/{coding}");
        let stitch = Stitch::get(url.clone())
            .output::<Catalogue>()
            .retry(Retry::attempts(3))
            .timeout(Timeout::total("10s").each("4s"))
            .max_response_bytes(4 << 20)
            .build()
            .unwrap();
        let bare = || async {
            let response = client
                .get(&url)
                .timeout(Duration::from_secs(4))
                .send()
                .await
                .unwrap();
            let bytes = response.bytes().await.unwrap();
            serde_json::from_slice::<Catalogue>(&bytes).unwrap()
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..=rounds {
            for side in [round % 2, 1 - round % 2] {
                for _ in 0..per_round {
                    let start = Instant::now();
                    let items = if side == 0 {
                        stitch.call(Input::new()).await.unwrap().items.len()
                    } else {
                        bare().await.items.len()
                    };
                    assert!(items > 1000);
                    if round > 0 {
                        let micros = start.elapsed().as_secs_f64() * 1e6;
                        if side == 0 {
                            ours.push(micros);
                        } else {
                            theirs.push(micros);
                        }
                    }
                }
            }
        }
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        println!(
            "  {coding:<9} stitchapi {:>7.0} µs   bare reqwest {:>7.0} µs   ratio {:.3}",
            ours,
            theirs,
            ours / theirs
        );
    }
}
