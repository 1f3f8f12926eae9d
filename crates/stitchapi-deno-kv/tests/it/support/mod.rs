//! Real servers for the tests: `denokv serve` on a free loopback port with a generated access
//! token (stopped when the handle drops), Deno from npm, and the conformance run every store
//! passes.
#![allow(dead_code)]

mod server;

pub use server::{Denokv, Scratch, free_port};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use stitchapi::testing::{ConformanceOptions, store_conformance, store_rules};
use stitchapi::transport::{
    DynTransport, ReqwestTransport, Transport, TransportError, TransportRequest,
};
use stitchapi_deno_kv::DenoKvStore;

/// Runs the core conformance kit and asserts every rule ran and passed. Its expiry rules wait
/// for real, with a TTL of 300 ms (not the kit's 60 ms): this binary runs `denokv` and Deno
/// processes alongside, and on a loaded 2-core machine two calls 60 ms apart are not rare.
pub async fn passes_every_rule(store: &DenoKvStore) {
    let options = ConformanceOptions::new().with_ttl(Duration::from_millis(300));
    let report = store_conformance(store, options).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report:?}");
    let every: Vec<&str> = store_rules().collect();
    assert_eq!(report.passed, every, "every rule ran and passed");
}

impl Denokv {
    /// A remote store on this server.
    #[cfg(feature = "remote")]
    pub fn store(&self) -> DenoKvStore {
        DenoKvStore::connect(&self.url(), self.token.as_str()).expect("a KV Connect store")
    }
}

/// The reqwest transport, counting the requests to each path (`/` is the metadata exchange).
#[derive(Debug)]
pub struct Counting {
    inner: DynTransport,
    pub metadata: AtomicUsize,
    pub data: AtomicUsize,
}

impl Counting {
    pub fn new() -> Arc<Counting> {
        Arc::new(Counting {
            inner: Arc::new(ReqwestTransport::new()),
            metadata: AtomicUsize::new(0),
            data: AtomicUsize::new(0),
        })
    }

    pub fn exchanges(&self) -> usize {
        self.metadata.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Transport for Counting {
    async fn send(
        &self,
        request: TransportRequest,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let counter = if request.url.path() == "/" {
            &self.metadata
        } else {
            &self.data
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.inner.send(request).await
    }
}

/// The `deno` binary from npm (`tests/deno`, installed by `./scripts/test` with `npm ci`),
/// or `DENO_BIN`; fails naming the install command.
pub fn deno_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("DENO_BIN") {
        return PathBuf::from(bin);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deno");
    let bin = dir.join("node_modules/.bin/deno");
    assert!(
        bin.exists(),
        "Deno is not installed for the interop tests: run `npm ci --prefix {}` \
         (./scripts/test does this), or point DENO_BIN at a deno binary",
        dir.display()
    );
    bin
}

/// `deno eval --unstable-kv <script>` against `server` (the script's `kv` is open), with a
/// scratch `DENO_DIR`; returns its stdout, failing with its stderr.
pub fn deno_command(server: &Denokv, script: &str, deno_dir: &Path) -> tokio::process::Command {
    let program = format!(
        "const kv = await Deno.openKv({url:?});\n{script}\nkv.close();",
        url = server.url()
    );
    let mut command = tokio::process::Command::new(deno_bin());
    command
        .args(["eval", "--unstable-kv", "--no-check"])
        .arg(program)
        .env("DENO_KV_ACCESS_TOKEN", &server.token)
        .env("DENO_DIR", deno_dir)
        .env("DENO_NO_UPDATE_CHECK", "1")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs a Deno script to the end (see [`deno_command`]) and returns its stdout.
pub async fn deno_eval(server: &Denokv, script: &str) -> String {
    let deno_dir = Scratch::new("deno-dir");
    let output = deno_command(server, script, &deno_dir.0)
        .output()
        .await
        .expect("run deno");
    assert!(
        output.status.success(),
        "deno failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}
