//! Declared stores, proven across processes: two `stitch run --repeat` processes share one
//! throttle through a real `redis-server` and a real `denokv serve`, two processes share a
//! cache through one Deno KV SQLite file, and unusable stores fail with their exit code and a
//! message that never holds a password.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::support::{Run, stitch, write};

// The real redis-server the Redis store's own tests start, shared by path (as `examples` does).
#[path = "../../../stitchapi-redis/tests/it/support/server.rs"]
mod redis_server;

use redis_server::RedisServer;

// The real `denokv serve` the Deno KV store's own tests start, shared by path likewise.
#[path = "../../../stitchapi-deno-kv/tests/it/support/server.rs"]
mod denokv_server;

use denokv_server::{Denokv, free_port};

/// A loopback upstream recording when each request arrived and which process sent it
/// (`?proc=`).
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(Instant, String)>>>);

impl Arrivals {
    async fn start() -> (Arrivals, String) {
        let arrivals = Arrivals::default();
        let app = Router::new()
            .route(
                "/tick",
                get(
                    |State(arrivals): State<Arrivals>,
                     Query(query): Query<std::collections::HashMap<String, String>>| async move {
                        let proc = query.get("proc").cloned().unwrap_or_default();
                        let mut seen = arrivals.0.lock().unwrap();
                        seen.push((Instant::now(), proc));
                        Json(json!({"n": seen.len()}))
                    },
                ),
            )
            .with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (arrivals, url)
    }

    fn take(&self) -> Vec<(Instant, String)> {
        let mut seen = self.0.lock().unwrap().clone();
        seen.sort_by_key(|(at, _)| *at);
        seen
    }
}

/// The declared rate: one grant every 100 ms on the shared pacing cell (no burst allowance).
const RATE: usize = 10;
const SPACING: Duration = Duration::from_millis(100);
const CALLS_EACH: usize = 12;
/// How much later than its grant a request may reach the upstream: each process's first
/// requests open connections, and on a loaded 2-core machine running the rest of the suite a
/// debug binary was seen ~100 ms late; twice that is allowed.
const SKEW: Duration = Duration::from_millis(200);

fn throttled(upstream: &str, store: &str) -> String {
    format!(
        r#"
base_url = "{upstream}"
throttle = "{RATE}/s"
timeout = {{ total = "30s" }}
store = {store}

[stitches.tick]
path = "/tick"
"#
    )
}

/// Two `stitch run tick --repeat 12 --concurrency 4` processes at once on `file`; both must
/// succeed.
async fn two_processes_share_the_pace(test: &str, file: &Path, env: &[(&str, &str)]) {
    let run = |proc: &'static str| {
        let file = file.to_str().unwrap().to_owned();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
            stitch(
                &[
                    "-f",
                    &file,
                    "run",
                    "tick",
                    "--query",
                    &format!("proc={proc}"),
                    "--repeat",
                    &CALLS_EACH.to_string(),
                    "--concurrency",
                    "4",
                ],
                &env,
            )
            .await
        }
    };
    let (a, b) = tokio::join!(run("a"), run("b"));
    for (name, run) in [("a", &a), ("b", &b)] {
        assert_eq!(run.code, 0, "{test} process {name}: {}", run.stderr);
        assert!(
            run.stdout.starts_with(&format!(
                "{CALLS_EACH} calls, concurrency 4: {CALLS_EACH} ok"
            )),
            "{test} process {name}: {}",
            run.stdout
        );
    }
}

/// The 24 arrivals together respect the declared 10/s.
///
/// Grants 100 ms apart: 24 grants span at least 23 × 100 ms = 2.3 s, and a 1 s window holds
/// at most 11 of them (one on each edge). An arrival comes 0..=[`SKEW`] after its grant, so
/// the arrivals span at least 2.3 s − SKEW and a 1 s window of arrivals holds the grants of
/// 1 s + SKEW: at most 11 + SKEW / 100 ms. Two processes pacing on their own (an unshared
/// store) would send 20/s: about 1.1 s for all 24, and ~20 in one window, outside both bounds.
fn assert_paced(test: &str, seen: &[(Instant, String)]) {
    assert_eq!(
        seen.len(),
        2 * CALLS_EACH,
        "{test}: every call arrived once"
    );
    let from = |proc: &str| seen.iter().filter(|(_, p)| p == proc).count();
    assert_eq!((from("a"), from("b")), (CALLS_EACH, CALLS_EACH), "{test}");
    let span = seen.last().unwrap().0 - seen[0].0;
    let least = SPACING * (2 * CALLS_EACH as u32 - 1) - SKEW;
    assert!(
        span >= least,
        "{test}: {} calls at a shared {RATE}/s took {span:?}, under {least:?}",
        2 * CALLS_EACH
    );
    let busiest = seen
        .iter()
        .map(|(start, _)| {
            seen.iter()
                .filter(|(at, _)| *at >= *start && *at - *start < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    let most = RATE + 1 + (SKEW.as_millis() / SPACING.as_millis()) as usize;
    assert!(
        busiest <= most,
        "{test}: {busiest} arrivals in one second at a shared {RATE}/s"
    );
    // The processes overlapped: process b's calls interleave with a's, not after them.
    let first_b = seen.iter().position(|(_, p)| p == "b").unwrap();
    let last_a = seen.iter().rposition(|(_, p)| p == "a").unwrap();
    let first_a = seen.iter().position(|(_, p)| p == "a").unwrap();
    let last_b = seen.iter().rposition(|(_, p)| p == "b").unwrap();
    assert!(
        first_b < last_a && first_a < last_b,
        "{test}: the two processes ran at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_throttle_through_redis() {
    let server = RedisServer::start();
    let (arrivals, upstream) = Arrivals::start().await;
    let file = write(
        "redis-pace",
        "stitch.toml",
        &throttled(&upstream, &format!("{:?}", server.url())),
    );
    two_processes_share_the_pace("redis", &file, &[]).await;
    assert_paced("redis", &arrivals.take());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_throttle_through_deno_kv_connect() {
    let server = Denokv::start();
    let (arrivals, upstream) = Arrivals::start().await;
    let file = write(
        "denokv-pace",
        "stitch.toml",
        &throttled(
            &upstream,
            &format!(
                "{{ url = \"denokv+{}\", token = {{ env = \"STITCH_IT_KV_TOKEN\" }} }}",
                server.url()
            ),
        ),
    );
    two_processes_share_the_pace("deno kv", &file, &[("STITCH_IT_KV_TOKEN", &server.token)]).await;
    assert_paced("deno kv", &arrivals.take());
}

fn event_lines(run: &Run) -> Vec<Value> {
    run.stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn cache_outcomes(run: &Run) -> Vec<String> {
    event_lines(run)
        .iter()
        .filter(|line| line["kind"] == "cache")
        .map(|line| line["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_reads_the_cache_the_first_filled_in_a_deno_kv_file() {
    let (arrivals, upstream) = Arrivals::start().await;
    let dir = crate::support::scratch("denokv-file");
    let kv = dir.join("kv.sqlite");
    let _ = std::fs::remove_file(&kv);
    let file = write(
        "denokv-file",
        "stitch.toml",
        &format!(
            "base_url = \"{upstream}\"\nstore = \"denokv:{}\"\n\n[stitches.tick]\npath = \"/tick\"\ncache = \"5m\"\n",
            kv.display()
        ),
    );
    let args = ["-f", file.to_str().unwrap(), "run", "tick", "--events"];
    let run = || stitch(&args, &[]);

    let first = run().await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&first.stdout).unwrap(),
        json!({"n": 1})
    );
    assert_eq!(cache_outcomes(&first), ["miss"], "{}", first.stderr);
    assert!(kv.exists(), "the first process created the SQLite file");

    let second = run().await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&second.stdout).unwrap(),
        json!({"n": 1}),
        "the second process answers with the first process's response"
    );
    assert_eq!(cache_outcomes(&second), ["hit"], "{}", second.stderr);
    let served = event_lines(&second)
        .into_iter()
        .find(|line| line["kind"] == "result")
        .unwrap();
    assert_eq!(served["served"], "cache", "{served}");
    assert_eq!(
        arrivals.take().len(),
        1,
        "the upstream was called once in all"
    );
}

const PASSWORD: &str = "pw-5e1f0c-never-shown";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_a_store_error_without_its_password() {
    let (arrivals, upstream) = Arrivals::start().await;
    let port = free_port();
    let file = write(
        "redis-down",
        "stitch.toml",
        &throttled(
            &upstream,
            &format!("\"redis://default:{PASSWORD}@127.0.0.1:{port}/0\""),
        ),
    );
    let run = stitch(
        &["-f", file.to_str().unwrap(), "run", "tick", "--events"],
        &[],
    )
    .await;
    assert_eq!(run.code, 11, "the store exit code: {}", run.stderr);
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("stitch: store error: redis store: "),
        "{last}"
    );
    assert!(
        last.ends_with(&format!(
            "Fix: check that the store redis://default:<redacted>@127.0.0.1:{port}/0 ({}) \
             is running, reachable and takes these credentials",
            file.display()
        )),
        "{last}"
    );
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    assert!(!run.stdout.contains(PASSWORD), "{}", run.stdout);
    assert!(
        arrivals.take().is_empty(),
        "a fail-closed throttle sent nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_store_url_is_a_config_error_without_its_password() {
    let file = write(
        "redis-bad",
        "stitch.toml",
        &throttled(
            "http://127.0.0.1:1",
            &format!("\"redis://default:{PASSWORD}@127.0.0.1:notaport/0\""),
        ),
    );
    let run = stitch(&["-f", file.to_str().unwrap(), "list"], &[]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("stitch.toml:5: store: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("redis://default:<redacted>@127.0.0.1:notaport/0"),
        "the message names the store, redacted: {}",
        run.stderr
    );
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_from_the_environment_authenticates_and_a_wrong_one_fails_as_store() {
    let server = RedisServer::start();
    let (arrivals, upstream) = Arrivals::start().await;
    // Set after start: the harness's readiness PING runs without a password.
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .exec(&mut admin)
        .unwrap();
    let file = write(
        "redis-password",
        "stitch.toml",
        &throttled(
            &upstream,
            &format!(
                "{{ url = \"{}\", password = {{ env = \"STITCH_IT_REDIS_PASSWORD\" }} }}",
                server.url()
            ),
        ),
    );
    let run = |password: &'static str| {
        let file = file.clone();
        async move {
            stitch(
                &["-f", file.to_str().unwrap(), "run", "tick"],
                &[("STITCH_IT_REDIS_PASSWORD", password)],
            )
            .await
        }
    };
    let ok = run(PASSWORD).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(arrivals.take().len(), 1);
    // The throttle's pacing cell is in this Redis.
    let mut admin = redis::Client::open(
        server
            .url()
            .replace("redis://", &format!("redis://:{PASSWORD}@")),
    )
    .unwrap()
    .get_connection()
    .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    assert!(
        !keys.is_empty(),
        "the throttle wrote its cell to the server"
    );

    let wrong = run("not-the-password-3c9a").await;
    assert_eq!(wrong.code, 11, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("stitch: store error: ")
            && wrong.stderr.contains("takes these credentials"),
        "{}",
        wrong.stderr
    );
    assert!(
        !wrong.stderr.contains("not-the-password-3c9a"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains(PASSWORD), "{}", wrong.stderr);
    assert_eq!(arrivals.take().len(), 1, "the refused call sent nothing");
}

#[tokio::test]
async fn a_cloudflare_binding_is_refused_naming_where_it_lives_and_the_fix() {
    let file = write(
        "cloudflare",
        "stitch.toml",
        "base_url = \"http://127.0.0.1:1\"\nstore = \"cloudflare-kv:STITCH_KV\"\n[stitches.a]\npath = \"/a\"\n",
    );
    let run = stitch(&["-f", file.to_str().unwrap(), "list"], &[]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("stitch.toml:2: store: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("exists only inside a Worker"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Fix: ") && run.stderr.contains("upstash+https://"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_redis_store_loaded_outside_a_runtime_is_an_error_not_a_panic() {
    let text = "base_url = \"http://127.0.0.1:1\"\nstore = \"redis://127.0.0.1:1/0\"\n";
    let error = stitchapi_cli::Declarations::parse("stitch.toml".as_ref(), text).unwrap_err();
    assert_eq!((error.field.as_str(), error.line), ("store", Some(2)));
    assert!(error.problem.contains("Tokio runtime"), "{error}");
}
