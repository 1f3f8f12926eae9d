//! The pieces of a Worker test: the Worker build, miniflare, and a scripted upstream.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    home.join("bin").join(name)
}

/// The directory holding the built Worker (`index.js`, `index_bg.wasm`): built once per test
/// run with `worker-build --release`, unless `STITCHAPI_WORKER_BUILD` names a ready build.
pub fn worker_build() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| {
        if let Some(dir) = std::env::var_os("STITCHAPI_WORKER_BUILD") {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join("index.js").is_file(),
                "STITCHAPI_WORKER_BUILD={} holds no index.js",
                dir.display()
            );
            return dir;
        }
        let worker_build = cargo_bin("worker-build");
        let wasm_bindgen = std::env::var_os("WASM_BINDGEN_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| cargo_bin("wasm-bindgen"));
        for tool in [&worker_build, &wasm_bindgen] {
            assert!(
                tool.is_file(),
                "{} is missing: run scripts/edge-tools (it installs worker-build and wasm-bindgen-cli)",
                tool.display()
            );
        }
        let dir = workspace_root().join("examples/worker");
        let started = Instant::now();
        let status = std::process::Command::new(&worker_build)
            .arg("--release")
            .current_dir(&dir)
            .env("WASM_BINDGEN_BIN", &wasm_bindgen)
            .env("CARGO_INCREMENTAL", "0")
            .status()
            .expect("running worker-build");
        assert!(status.success(), "worker-build --release failed in {}", dir.display());
        eprintln!("worker-build --release took {:.1?}", started.elapsed());
        dir.join("build")
    })
}

/// The example Worker running in workerd (miniflare 4 through Node). Dropping it closes the
/// harness's stdin, which stops workerd.
pub struct Worker {
    // Dropped first: closing stdin makes serve.mjs dispose miniflare and exit.
    _stdin: ChildStdin,
    _child: Child,
    url: String,
    client: reqwest::Client,
}

impl Worker {
    /// Starts the Worker with `UPSTREAM` pointing at `upstream` and a bearer `API_TOKEN`.
    pub async fn start(upstream: &str) -> Worker {
        Self::start_with(upstream, &[], None).await
    }

    /// Starts the Worker with `extra` plain-text bindings besides `UPSTREAM` and `API_TOKEN`,
    /// and its KV and Durable Object storage kept in `persist` when given (`WORKER_PERSIST`).
    pub async fn start_with(
        upstream: &str,
        extra: &[(&str, &str)],
        persist: Option<&Path>,
    ) -> Worker {
        let build = worker_build();
        let harness = workspace_root().join("examples/worker/harness");
        assert!(
            harness.join("node_modules/miniflare").is_dir(),
            "miniflare is not installed in {}: run scripts/edge-tools",
            harness.display()
        );
        let mut bindings = serde_json::json!({ "UPSTREAM": upstream, "API_TOKEN": TOKEN });
        for (name, value) in extra {
            bindings[*name] = (*value).into();
        }
        let mut command = Command::new("node");
        if let Some(dir) = persist {
            command.env("WORKER_PERSIST", dir);
        }
        let mut child = command
            .arg(harness.join("serve.mjs"))
            .arg(build)
            .current_dir(&harness)
            .env("WORKER_BINDINGS", bindings.to_string())
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node (is Node.js installed?)");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("miniflare did not start within 60 s")
            .expect("reading the harness output")
            .expect("the harness exited before printing its URL");
        let url = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected harness output: {line}"))
            .to_owned();
        // Keep draining stdout so the harness never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Worker {
            _stdin: stdin,
            _child: child,
            url,
            client: reqwest::Client::new(),
        }
    }

    /// Stops workerd (closes the harness's stdin) and waits until the harness has exited, so
    /// its persisted storage is closed.
    pub async fn stop(self) {
        let Worker {
            _stdin: stdin,
            _child: mut child,
            ..
        } = self;
        drop(stdin);
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the harness did not exit within 30 s of its stdin closing")
            .expect("waiting for the harness");
        assert!(status.success(), "the harness exited with {status}");
    }

    /// `GET path` on the Worker: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_within(path, Duration::from_secs(30)).await
    }

    /// `GET path` on the Worker, waiting up to `timeout`: the status and the JSON body.
    pub async fn get_within(&self, path: &str, timeout: Duration) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .timeout(timeout)
            .send()
            .await
            .expect("calling the Worker");
        let status = response.status().as_u16();
        let text = response.text().await.expect("the Worker's body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the Worker answered {status} with non-JSON ({e}): {text}"));
        (status, json)
    }
}

/// The bearer token the Worker sends upstream.
pub const TOKEN: &str = "edge-test-token";

/// One scripted upstream answer.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status and JSON body.
    Json(u16, serde_json::Value),
    /// A 302 to this URL.
    Redirect(String),
    /// No answer for this long, then a valid user.
    Hang(Duration),
}

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    /// The `Cookie` header.
    pub cookie: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct UpstreamState {
    script: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Seen>>,
}

/// A loopback HTTP server answering from a script (then with a valid user) and recording
/// every request.
pub struct Upstream {
    state: Arc<UpstreamState>,
    addr: SocketAddr,
    _server: tokio::task::JoinHandle<()>,
}

/// The user a well-behaved upstream returns.
pub fn user(id: u64) -> serde_json::Value {
    serde_json::json!({ "id": id, "name": "Ada", "email": "ada@example.com" })
}

fn header_text(headers: &header::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap_or("<binary>").to_owned())
}

async fn answer(State(state): State<Arc<UpstreamState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let (authorization, cookie) = (
        header_text(request.headers(), header::AUTHORIZATION),
        header_text(request.headers(), header::COOKIE),
    );
    let number = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen {
            path: path.clone(),
            authorization,
            cookie,
            at: Instant::now(),
        });
        seen.iter().filter(|s| s.path == path).count()
    };
    // The auth endpoints answer outside the script: the n-th login sets `session=s<n>`, the
    // n-th token POST issues `t<n>` for an hour.
    if path == "/login" || path == "/auth/login" {
        return Response::builder()
            .status(StatusCode::OK)
            .header(
                header::SET_COOKIE,
                format!("session=s{number}; Path=/; HttpOnly"),
            )
            .body(Body::empty())
            .unwrap();
    }
    if path == "/token" {
        let token = serde_json::json!({
            "access_token": format!("t{number}"),
            "token_type": "Bearer",
            "expires_in": 3600,
        });
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(token.to_string()))
            .unwrap();
    }
    let id = path
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let next = state.script.lock().unwrap().pop_front();
    let (status, body) = match next {
        Some(Answer::Json(status, body)) => (status, body),
        Some(Answer::Redirect(location)) => {
            return Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, location)
                .body(Body::empty())
                .unwrap();
        }
        Some(Answer::Hang(time)) => {
            tokio::time::sleep(time).await;
            (200, user(id))
        }
        None => (200, user(id)),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

impl Upstream {
    /// Starts an upstream on 127.0.0.1, on a free port, answering `script` first.
    pub async fn start(script: impl IntoIterator<Item = Answer>) -> Upstream {
        let state = Arc::new(UpstreamState::default());
        state.script.lock().unwrap().extend(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("upstream server");
        });
        Upstream {
            state,
            addr,
            _server: server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds answers to the end of the script.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}
