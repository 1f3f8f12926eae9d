//! `stitch serve`: a real HTTP client against the served process, which calls a loopback
//! upstream: results, errors and their statuses, server-sent events, the OpenAPI
//! description, a throttle shared by concurrent callers, the event log, secrets kept out.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{stitch, write};
use crate::upstream::{Answer, Upstream};

const TOKEN: &str = "tok-serve-5a4b3c2d-secret";

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

[stitches.paced]
path = "/paced"
throttle = "10/s"
"#,
        upstream.url()
    )
}

/// A running `stitch serve` on a free port; killed when dropped.
struct Served {
    _child: Child,
    url: String,
}

async fn serve(file: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stitch"))
        .args([
            "--file",
            file.to_str().unwrap(),
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("STITCH_IT_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start stitch serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("stitch serve printed its address")
        .unwrap()
        .expect("a first line");
    let url = first
        .strip_prefix("stitch serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    Served { _child: child, url }
}

/// POSTs `body` to `/stitches/{name}`: the status and the JSON answer.
async fn post(served: &Served, name: &str, body: &str) -> (u16, Value, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/stitches/{name}", served.url))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("serve answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    (status, json, text)
}

/// One server-sent event: its name and data.
#[derive(Debug)]
struct Sse {
    event: String,
    data: Value,
}

/// Parses a `text/event-stream` body (comments and keep-alives skipped).
fn parse_sse(text: &str) -> Vec<Sse> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = Some(name.trim_start().to_owned());
                } else if let Some(chunk) = line.strip_prefix("data:") {
                    data.push(chunk.strip_prefix(' ').unwrap_or(chunk));
                }
            }
            let data = data.join("\n");
            Some(Sse {
                event: event?,
                data: serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data:?}: {e}")),
            })
        })
        .collect()
}

async fn post_sse(served: &Served, name: &str, body: &str) -> (String, String, Vec<Sse>) {
    let response = reqwest::Client::new()
        .post(format!("{}/stitches/{name}", served.url))
        .header("accept", "text/event-stream")
        .body(body.to_owned())
        .send()
        .await
        .expect("serve answers");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    let events = parse_sse(&text);
    (content_type, text, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_results_and_failures_with_their_statuses() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users/7",
        [
            Answer::status(503),
            Answer::json(200, json!({"id": 7, "name": "Ada"})),
        ],
    );
    upstream.script("/users/8", [Answer::json(200, json!({"name": "no id"}))]);
    upstream.script("/users/9", [Answer::status(500).body("boom")]);
    upstream.script("/users", [Answer::json(201, json!({"id": 10}))]);
    let file = write("serve-calls", "stitch.toml", &declarations(&upstream));
    let served = serve(&file, &[]).await;
    let mut answers = String::new();

    let (status, result, text) = post(
        &served,
        "get_user",
        r#"{"params": {"id": 7}, "query": {"limit": 5}}"#,
    )
    .await;
    answers += &text;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result, json!({"id": 7, "name": "Ada"}));
    let hits = upstream.hits();
    assert_eq!(hits.len(), 2, "one retry");
    assert_eq!(hits[1].target, "/users/7?limit=5");
    assert_eq!(
        hits[1].headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );

    let (status, result, text) = post(&served, "create_user", r#"{"body": {"name": "Bo"}}"#).await;
    answers += &text;
    assert_eq!((status, result), (200, json!({"id": 10})));
    assert_eq!(&upstream.hits()[2].body[..], br#"{"name":"Bo"}"#);

    let cases = [
        // The upstream's answer breaks the declared schema.
        ("get_user", r#"{"params": {"id": 8}}"#, 502, "validation"),
        // The upstream fails (500 is not retried by default).
        ("get_user", r#"{"params": {"id": 9}}"#, 502, "http"),
        // A missing template variable: nothing is sent.
        ("get_user", r#"{}"#, 400, "input"),
        // Not a call input.
        ("get_user", r#"{"parms": {"id": 7}}"#, 400, "input"),
        ("get_user", "not json", 400, "input"),
        ("no_such_stitch", "{}", 404, "input"),
    ];
    for (name, body, expected, kind) in cases {
        let (status, failure, text) = post(&served, name, body).await;
        answers += &text;
        assert_eq!(status, expected, "{name} {body}: {failure}");
        assert_eq!(failure["kind"], kind, "{name} {body}: {failure}");
        assert!(failure["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, failure, _) = post(&served, "get_user", r#"{"params": {"id": 9}}"#).await;
    assert_eq!(failure["upstream_status"], 500);
    let (_, failure, _) = post(&served, "no_such_stitch", "{}").await;
    assert!(
        failure["message"].as_str().unwrap().contains("get_user"),
        "names the declared stitches: {failure}"
    );

    let listed: Value = reqwest::get(format!("{}/stitches", served.url))
        .await
        .unwrap()
        .json_text()
        .await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["create_user", "get_user", "paced"]);
    assert_eq!(listed[1]["params"], json!(["id"]));
    assert!(!answers.contains(TOKEN), "the token leaked: {answers}");
}

/// `.json()` needs reqwest's `json` feature; the text is enough here.
trait JsonText {
    async fn json_text(self) -> Value;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> Value {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_carries_the_events_then_the_result_or_the_error() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users/7",
        [
            Answer::status(503),
            Answer::json(200, json!({"id": 7, "name": "Ada"})),
        ],
    );
    upstream.script("/users/9", [Answer::status(500)]);
    let file = write("serve-sse", "stitch.toml", &declarations(&upstream));
    let log = file.with_file_name("events.jsonl");
    let served = serve(&file, &["--events", log.to_str().unwrap()]).await;

    let (content_type, text, events) =
        post_sse(&served, "get_user", r#"{"params": {"id": 7}}"#).await;
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let (last, lines) = events.split_last().expect("events");
    assert_eq!(last.event, "result", "{text}");
    assert_eq!(last.data, json!({"id": 7, "name": "Ada"}));
    assert!(lines.iter().all(|e| e.event == "event"), "{text}");
    let kinds: Vec<&str> = lines
        .iter()
        .map(|e| e.data["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["start", "attempt", "retry", "attempt", "result", "done"],
        "{text}"
    );
    assert!(lines.iter().all(|e| e.data["stitch"] == "get_user"));
    assert_eq!(lines[2].data["reason"], "status 503");
    let call = &lines[0].data["call"];
    assert!(lines.iter().all(|e| &e.data["call"] == call), "one call id");

    let (_, failed_text, events) = post_sse(&served, "get_user", r#"{"params": {"id": 9}}"#).await;
    let last = events.last().expect("events");
    assert_eq!(last.event, "error", "{failed_text}");
    assert_eq!(last.data["kind"], "http");
    assert_eq!(last.data["upstream_status"], 500);
    assert!(!text.contains(TOKEN) && !failed_text.contains(TOKEN));

    // The log holds both calls' events, and `stitch trace` summarises it.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(TOKEN));
    let trace = stitch(&["trace", log.to_str().unwrap(), "--json"], &[]).await;
    assert_eq!(trace.code, 0, "{}", trace.stderr);
    let summary: Value = serde_json::from_str(&trace.stdout).unwrap();
    let get_user = &summary["stitches"]["get_user"];
    assert_eq!(get_user["calls"], 2, "{summary}");
    // One retry after the 503; a 500 is not retried by default.
    assert_eq!(get_user["retries"], 1, "{summary}");
    assert_eq!(
        get_user["failures_by_kind"],
        json!({"http": 1}),
        "{summary}"
    );
    assert_eq!(summary["skipped_lines"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_stitch() {
    let upstream = Upstream::start().await;
    let file = write("serve-openapi", "stitch.toml", &declarations(&upstream));
    let served = serve(&file, &[]).await;
    let spec = reqwest::get(format!("{}/openapi.json", served.url))
        .await
        .unwrap()
        .json_text()
        .await;
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    let names: Vec<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "/stitches/create_user",
            "/stitches/get_user",
            "/stitches/paced"
        ]
    );
    let get_user = &paths["/stitches/get_user"]["post"];
    assert_eq!(get_user["operationId"], "get_user");
    assert_eq!(
        get_user["summary"],
        format!("GET {}/users/{{id}}", upstream.url())
    );
    let input = &get_user["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(input["required"], json!(["params"]));
    assert_eq!(input["properties"]["params"]["required"], json!(["id"]));
    assert!(
        input["properties"].get("body").is_none(),
        "GET sends no body"
    );
    let output = &get_user["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(output, &json!({"type": "object", "required": ["id"]}));
    let create = &paths["/stitches/create_user"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert!(
        create["properties"].get("body").is_some(),
        "POST takes a body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_declared_rate_holds_across_concurrent_http_callers() {
    let upstream = Upstream::start().await;
    upstream.script("/paced", [Answer::json(200, json!({"ok": true}))]);
    let file = write("serve-throttle", "stitch.toml", &declarations(&upstream));
    let log = file.with_file_name("events.jsonl");
    let _ = std::fs::remove_file(&log);
    let served = serve(&file, &["--events", log.to_str().unwrap()]).await;

    // Eight callers at once against "10/s": one request per 100 ms reaches the upstream.
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let request = client.post(format!("{}/stitches/paced", served.url)).send();
            tokio::spawn(async move { request.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // However slow this machine is, by 250 ms at most 3 grants (0, 100, 200 ms) were due.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let early = upstream.hit_count();
    assert!(
        early <= 4,
        "{early} requests within 250 ms of a 10/s throttle"
    );
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 200);
    }
    assert_eq!(upstream.hit_count(), 8);

    // The attempts the server logged span at least 7 gaps of 100 ms (less a little slack).
    let logged = std::fs::read_to_string(&log).unwrap();
    let mut attempts: Vec<u64> = logged
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["kind"] == "attempt")
        .map(|line| line["ts_ms"].as_u64().unwrap())
        .collect();
    attempts.sort_unstable();
    assert_eq!(attempts.len(), 8);
    let span = attempts[7] - attempts[0];
    assert!(span >= 650, "8 attempts at 10/s took only {span} ms");
}
