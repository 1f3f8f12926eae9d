//! `stitch run`: results, retries, events as JSON lines, exit codes, secrets kept out.

use serde_json::{Value, json};

use crate::support::{stitch, write};
use crate::upstream::{Answer, Upstream};

fn declarations(upstream: &Upstream) -> String {
    format!(
        r#"
base_url = "{}"
retry = {{ attempts = 3, base = "1ms", max = "5ms" }}
auth = {{ type = "bearer", token = {{ env = "STITCH_IT_TOKEN" }} }}

[stitches.get_user]
path = "/users/{{id}}"
schema = {{ type = "object", required = ["id"] }}

[stitches.create_user]
method = "POST"
path = "/users"
"#,
        upstream.url()
    )
}

const TOKEN: &str = "tok-9f8e7d6c-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_call_prints_the_result_and_its_events_as_json_lines() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users/7",
        [
            Answer::status(503),
            Answer::status(503),
            Answer::json(200, json!({"id": 7, "name": "Ada"})),
        ],
    );
    let file = write("retry", "stitch.toml", &declarations(&upstream));
    let run = stitch(
        &[
            "--file",
            file.to_str().unwrap(),
            "run",
            "get_user",
            "--param",
            "id=7",
            "--query",
            "limit=5",
            "--events",
        ],
        &[("STITCH_IT_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let result: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result, json!({"id": 7, "name": "Ada"}));
    let hits = upstream.hits();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[2].target, "/users/7?limit=5");
    assert_eq!(
        hits[2].headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );

    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"start"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "attempt").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "retry").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(&kinds[kinds.len() - 2..], ["result", "done"]);
    let retry = lines.iter().find(|l| l["kind"] == "retry").unwrap();
    assert_eq!(retry["reason"], "status 503");
    assert!(retry["delay_ms"].as_u64().unwrap() <= 5);
    for line in &lines {
        assert_eq!(line["stitch"], "get_user");
        assert_eq!(line["call"], lines[0]["call"]);
        assert!(line["ts_ms"].as_u64().unwrap() > 1_600_000_000_000);
    }
    assert_eq!(lines.last().unwrap()["attempts"], 3);
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_kind_has_its_exit_code() {
    let upstream = Upstream::start().await;
    upstream.script("/users/1", [Answer::json(200, json!({"name": "no id"}))]);
    upstream.script("/users/2", [Answer::json(404, json!({"error": "nope"}))]);
    upstream.script("/users", [Answer::status(401)]);
    let file = write("codes", "stitch.toml", &declarations(&upstream));
    let file = file.to_str().unwrap();
    let env = [("STITCH_IT_TOKEN", TOKEN)];

    let run = stitch(&["-f", file, "run", "get_user", "-p", "id=1"], &env).await;
    assert_eq!(run.code, 7, "validation: {}", run.stderr);
    assert!(run.stderr.contains("validation error"), "{}", run.stderr);
    assert!(
        run.stderr.contains("\"id\" is a required property"),
        "{}",
        run.stderr
    );

    let run = stitch(&["-f", file, "run", "get_user", "-p", "id=2"], &env).await;
    assert_eq!(run.code, 5, "http: {}", run.stderr);

    let run = stitch(&["-f", file, "run", "get_user"], &env).await;
    assert_eq!(run.code, 4, "input: {}", run.stderr);
    let run = stitch(&["-f", file, "run", "get_user", "--json", "{oops"], &env).await;
    assert_eq!(run.code, 4, "input: {}", run.stderr);
    let run = stitch(&["-f", file, "run", "no_such_stitch"], &env).await;
    assert_eq!(run.code, 4, "input: {}", run.stderr);
    assert!(run.stderr.contains("get_user"), "{}", run.stderr);

    // A rejected credential: the error and events never carry the token.
    let run = stitch(
        &[
            "-f",
            file,
            "run",
            "create_user",
            "--json",
            r#"{"name":"Ada"}"#,
            "--events",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN));
    let posted = upstream
        .hits()
        .into_iter()
        .find(|h| h.target == "/users")
        .unwrap();
    assert_eq!(&posted.body[..], br#"{"name":"Ada"}"#);

    // A call that outlives its budget.
    upstream.script(
        "/users/3",
        [Answer::json(200, json!({"id": 3})).delayed(std::time::Duration::from_secs(5))],
    );
    let slow = declarations(&upstream).replace("retry = {", "timeout = \"200ms\"\nretry = {");
    let slow = write("codes", "slow.toml", &slow);
    let run = stitch(
        &[
            "-f",
            slow.to_str().unwrap(),
            "run",
            "get_user",
            "-p",
            "id=3",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 6, "timeout: {}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_prints_a_latency_summary() {
    let upstream = Upstream::start().await;
    upstream.script("/users/7", [Answer::json(200, json!({"id": 7}))]);
    let file = write("repeat", "stitch.toml", &declarations(&upstream));
    let run = stitch(
        &[
            "-f",
            file.to_str().unwrap(),
            "run",
            "get_user",
            "-p",
            "id=7",
            "--repeat",
            "12",
            "--concurrency",
            "3",
        ],
        &[("STITCH_IT_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("12 calls, concurrency 3: 12 ok, 0 failed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("p95"), "{}", run.stdout);
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("get_user"))
        .unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("12"), "{row}");
    assert_eq!(upstream.hit_count(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_show_the_inputs() {
    let upstream = Upstream::start().await;
    let file = write("describe", "stitch.toml", &declarations(&upstream));
    let file = file.to_str().unwrap();
    let env = [("STITCH_IT_TOKEN", TOKEN)];
    let run = stitch(&["-f", file, "list"], &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("create_user") && run.stdout.contains("/users/{id}"),
        "{}",
        run.stdout
    );
    let run = stitch(&["-f", file, "describe", "get_user", "--json"], &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let inputs: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(inputs["params"], json!(["id"]));
    assert_eq!(inputs["body"], false);
    assert_eq!(inputs["schema"]["required"], json!(["id"]));
    let run = stitch(&["-f", file, "describe", "create_user"], &env).await;
    assert!(run.stdout.contains("--json '<body>'"), "{}", run.stdout);
    let run = stitch(&["completions", "bash"], &[]).await;
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("from-curl"));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_without_a_panic() {
    use std::process::{Command, Stdio};
    // `stitch completions bash | head -0`: the reader is gone before the first write.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stitch"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stitch");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("stitch ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!output.status.success(), "the write failed, so no success");
}
