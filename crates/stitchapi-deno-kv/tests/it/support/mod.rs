//! Real servers for the tests: `denokv serve` on a free loopback port with a generated access
//! token (stopped when the handle drops), Deno from npm, and the conformance run every store
//! passes.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stitchapi::testing::{ConformanceOptions, store_conformance, store_rules};
use stitchapi::transport::{DynTransport, ReqwestTransport, Transport, TransportError};
use stitchapi_deno_kv::DenoKvStore;

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "stitchapi-deno-kv-{}-{name}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// The `denokv` binary: `DENOKV_BIN`, else `denokv` on `PATH`, else `~/.cargo/bin/denokv`;
/// fails naming the install command.
pub fn denokv_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("DENOKV_BIN") {
        return PathBuf::from(bin);
    }
    // `denokv` has no `--version`; `--help` succeeds.
    let runs = |bin: &Path| {
        Command::new(bin)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let on_path = PathBuf::from("denokv");
    if runs(&on_path) {
        return on_path;
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cargo_bin = Path::new(&home).join(".cargo/bin/denokv");
        if runs(&cargo_bin) {
            return cargo_bin;
        }
    }
    panic!(
        "denokv is not installed: run `cargo install denokv --locked` (./scripts/test does this), \
         or point DENOKV_BIN at the binary"
    );
}

/// A running `denokv serve` on 127.0.0.1 with a generated access token.
pub struct Denokv {
    pub port: u16,
    pub token: String,
    pub sqlite_path: PathBuf,
    child: Option<Child>,
    _scratch: Option<Scratch>,
}

impl Denokv {
    /// Serves a fresh database in a scratch directory.
    pub fn start() -> Denokv {
        let scratch = Scratch::new("denokv");
        let path = scratch.path("kv.sqlite");
        let mut server = Denokv::serve(&path);
        server._scratch = Some(scratch);
        server
    }

    /// Serves the SQLite database at `path` (which the caller keeps).
    pub fn serve(path: &Path) -> Denokv {
        let mut server = Denokv {
            port: free_port(),
            token: format!("test-token-{:016x}", fastrand::u64(..)),
            sqlite_path: path.to_path_buf(),
            child: None,
            _scratch: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(denokv_bin())
            .arg("--sqlite-path")
            .arg(&self.sqlite_path)
            .args(["serve", "--addr", &format!("127.0.0.1:{}", self.port)])
            .args(["--access-token", &self.token])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn denokv serve");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("denokv serve exited with {status} before listening");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "denokv serve did not listen on port {} within 20 s",
            self.port
        );
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A remote store on this server.
    #[cfg(feature = "remote")]
    pub fn store(&self) -> DenoKvStore {
        DenoKvStore::connect(&self.url(), self.token.as_str()).expect("a KV Connect store")
    }

    /// Stops the server (as a crash would: SIGKILL); the database file stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again: same file, same port, same token.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Denokv {
    fn drop(&mut self) {
        self.stop();
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
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let counter = if request.uri().path() == "/" {
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
