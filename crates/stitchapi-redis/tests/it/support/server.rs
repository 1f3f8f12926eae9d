//! A real `redis-server` for tests and benchmarks: spawned on a free loopback port with no
//! persistence, stopped when the handle drops. Shared by this crate's tests and the fleet tests
//! in `examples/` (which include this file by path).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Fails with the install command when `binary` is missing.
pub fn require(binary: &str) {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{binary} is not installed: run `apt-get install -y redis-server redis-tools` (./scripts/test does this)"
    );
}

fn spawn(port: u16, dir: &PathBuf, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server")
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        require("redis-server");
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("stitchapi-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let extra: Vec<String> = extra.iter().map(|arg| arg.to_string()).collect();
        let child = spawn(port, &dir, &extra);
        let server = RedisServer {
            port,
            child,
            dir,
            extra,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }

    /// Whether the server answers PING.
    pub fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            .is_ok()
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (as a crash would: SIGKILL).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(self.port, &self.dir, &self.extra);
        self.wait_ready();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
