//! A real `denokv serve` for tests and benchmarks: a fresh database in a scratch directory (or
//! a given SQLite file), served on a free loopback port with a generated access token, stopped
//! when the handle drops. Shared by this crate's tests and the fleet tests and benchmarks in
//! `examples/` (which include this file by path), so it needs nothing but `std` and `fastrand`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
