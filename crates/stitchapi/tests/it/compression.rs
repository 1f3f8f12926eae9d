//! Compressed responses: asked for, decoded on native (gzip, br, zstd, deflate), bounded by the
//! body limit in decoded bytes, cached decoded.

use crate::support;

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use stitchapi::transport::TransportErrorKind;
use stitchapi::{Cache, ErrorKind, Input, Served, Stitch};
use support::{Answer, Upstream};

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// `body` in the given content coding.
fn encode(coding: &str, body: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => gzip(body),
        "deflate" => {
            // HTTP's `deflate` is the zlib format (RFC 9110 §8.4.1.2).
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::BrotliCompress(
                &mut &body[..],
                &mut out,
                &brotli::enc::BrotliEncoderParams::default(),
            )
            .unwrap();
            out
        }
        "zstd" => zstd::encode_all(body, 3).unwrap(),
        other => panic!("no encoder for {other}"),
    }
}

fn catalogue() -> Value {
    let items: Vec<Value> = (0..200)
        .map(|n| json!({"id": n, "name": format!("item {n}"), "tags": ["a", "b", "c"]}))
        .collect();
    json!({ "items": items })
}

#[tokio::test]
async fn every_coding_is_asked_for_and_decoded() {
    let upstream = Upstream::start().await;
    let body = catalogue().to_string();
    for coding in ["gzip", "br", "zstd", "deflate"] {
        let encoded = encode(coding, body.as_bytes());
        assert!(
            encoded.len() < body.len() / 4,
            "{coding} compressed the body"
        );
        upstream.script(
            &format!("/{coding}"),
            [Answer::status(200)
                .header("content-type", "application/json")
                .header("content-encoding", coding)
                .body(encoded)],
        );
        let stitch = Stitch::get(format!("{}/{coding}", upstream.url()))
            .build()
            .unwrap();
        let reply = stitch.call_detailed(Input::new()).await.unwrap();
        assert_eq!(reply.data, catalogue(), "{coding} decoded");
        assert!(
            reply.headers.get("content-encoding").is_none(),
            "{coding}: the reply describes the decoded body"
        );
    }
    for hit in upstream.hits() {
        let asked = hit.headers["accept-encoding"].to_str().unwrap().to_owned();
        for coding in ["gzip", "br", "zstd", "deflate"] {
            assert!(asked.contains(coding), "{coding} missing from {asked:?}");
        }
    }
}

#[tokio::test]
async fn an_uncompressed_answer_is_unchanged() {
    let upstream = Upstream::start().await;
    upstream.script("/plain", [Answer::json(200, catalogue())]);
    let stitch = Stitch::get(format!("{}/plain", upstream.url()))
        .build()
        .unwrap();
    assert_eq!(stitch.call(Input::new()).await.unwrap(), catalogue());
}

#[tokio::test]
async fn a_corrupt_compressed_body_is_a_body_error_not_a_decode_error() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/corrupt",
        [Answer::status(200)
            .header("content-encoding", "gzip")
            .body(&b"\x1f\x8b\x08\x00not gzip at all"[..])],
    );
    let stitch = Stitch::get(format!("{}/corrupt", upstream.url()))
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    assert_eq!(error.transport_kind(), Some(TransportErrorKind::Body));
}

#[tokio::test]
async fn the_cache_stores_decoded_bodies_whatever_the_encoding() {
    let upstream = Upstream::start().await;
    let body = catalogue().to_string();
    upstream.script(
        "/cached",
        [
            Answer::status(200)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .header("vary", "Accept-Encoding")
                .body(gzip(body.as_bytes())),
            Answer::status(200)
                .header("content-type", "application/json")
                .header("content-encoding", "br")
                .header("vary", "Accept-Encoding")
                .body(encode("br", body.as_bytes())),
        ],
    );
    let stitch = Stitch::get(format!("{}/cached", upstream.url()))
        .cache(Cache::ttl(Duration::from_secs(60)))
        .build()
        .unwrap();
    let first = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(
        (first.served, first.data.clone()),
        (Served::Network, catalogue())
    );
    // `Vary: Accept-Encoding` makes no variant: the stored body is the decoded one, and a
    // call that names its own encoding preference reads it too.
    let hit = stitch
        .call_detailed(Input::new().header("accept-encoding", "identity"))
        .await
        .unwrap();
    assert_eq!((hit.served, hit.data), (Served::CacheHit, catalogue()));
    assert!(hit.headers.get("content-encoding").is_none());
    assert_eq!(upstream.hit_count(), 1);
}

/// A gzip body of `decoded` zero bytes, built from one compressed block repeated (a full
/// flush resets the compressor, so each 1 MiB block encodes the same way): about 1 KiB per
/// MiB, so the 1 GiB bomb weighs about 1 MiB on the wire.
fn gzip_bomb(decoded: usize) -> Vec<u8> {
    const BLOCK: usize = 1 << 20;
    assert_eq!(decoded % BLOCK, 0);
    let zeros = vec![0u8; BLOCK];
    let compress_block = |compressor: &mut flate2::Compress, flush| {
        let (mut out, before) = (Vec::with_capacity(BLOCK), compressor.total_in());
        compressor.compress_vec(&zeros, &mut out, flush).unwrap();
        assert_eq!(
            compressor.total_in() - before,
            BLOCK as u64,
            "the whole block went in"
        );
        out
    };
    let mut compressor = flate2::Compress::new(flate2::Compression::best(), false);
    let first = compress_block(&mut compressor, flate2::FlushCompress::Full);
    let block = compress_block(&mut compressor, flate2::FlushCompress::Full);
    assert_eq!(first, block, "a full flush makes every block encode alike");
    let mut end = Vec::with_capacity(64);
    compressor
        .compress_vec(&[], &mut end, flate2::FlushCompress::Finish)
        .unwrap();
    // The CRC of `decoded` zeros, from the CRC of one block, doubled.
    let mut crc = crc32fast::Hasher::new();
    crc.update(&zeros);
    let mut covered = BLOCK;
    while covered < decoded {
        let twin = crc.clone();
        crc.combine(&twin);
        covered *= 2;
    }
    assert_eq!(covered, decoded, "a power of two");
    let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..decoded / BLOCK {
        bomb.extend_from_slice(&block);
    }
    bomb.extend_from_slice(&end);
    bomb.extend_from_slice(&crc.finalize().to_le_bytes());
    bomb.extend_from_slice(&(decoded as u32).to_le_bytes());
    bomb
}

#[test]
fn the_bomb_is_a_valid_gzip_body() {
    use std::io::Read as _;
    let bomb = gzip_bomb(4 << 20);
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&bomb[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded.len(), 4 << 20);
    assert!(decoded.iter().all(|b| *b == 0));
}

/// The process's peak resident memory, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

const BOMB_CHILD: &str = "STITCHAPI_BOMB_CHILD";

/// A 1 GiB gzip bomb (1 MiB on the wire) stops at the body limit, counted in decoded bytes,
/// with bounded memory. It runs in a child process of this test binary, alone, so that the
/// peak memory it reports is its own.
#[test]
fn a_compression_bomb_stops_at_the_limit_with_bounded_memory() {
    if std::env::var_os(BOMB_CHILD).is_some() {
        return bomb_child();
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "compression::a_compression_bomb_stops_at_the_limit_with_bounded_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BOMB_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = stdout
        .lines()
        .find_map(|line| line.split("bomb: ").nth(1))
        .unwrap_or_else(|| panic!("the child printed no report:\n{stdout}"));
    let grew: u64 = report.parse().unwrap();
    eprintln!(
        "1 GiB gzip bomb, 4 MiB limit: peak RSS grew {:.1} MiB",
        grew as f64 / (1 << 20) as f64
    );
    assert!(
        grew < 32 << 20,
        "peak memory grew {grew} bytes decoding a bomb with a 4 MiB limit"
    );
}

fn bomb_child() {
    const GIB: usize = 1 << 30;
    const LIMIT: usize = 4 << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let bomb = gzip_bomb(GIB);
        assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
        let upstream = Upstream::start().await;
        upstream.script(
            "/bomb",
            [Answer::status(200)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(bomb)],
        );
        let stitch = Stitch::get(format!("{}/bomb", upstream.url()))
            .max_response_bytes(LIMIT)
            .build()
            .unwrap();
        // Everything above is in place (the server, the encoded bomb, a warm client) before
        // the baseline is read.
        let warm = Stitch::get(format!("{}/warm", upstream.url()))
            .build()
            .unwrap();
        let _ = warm.call(Input::new()).await;
        let before = peak_rss();
        let error = stitch.call(Input::new()).await.unwrap_err();
        let grew = peak_rss().saturating_sub(before);
        assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
        assert_eq!(
            error.transport_kind(),
            Some(TransportErrorKind::BodyTooLarge),
            "{error}"
        );
        assert!(error.to_string().contains("4194304 bytes"), "{error}");
        println!("bomb: {grew}");
    });
}
