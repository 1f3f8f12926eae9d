//! `stitch mcp`: rmcp's client drives the built binary over its stdio: the tool list with
//! input schemas, a call, a failing call as a tool error, a throttle shared by concurrent
//! tool calls, secrets kept out.

use std::path::Path;
use std::process::Stdio;

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::write;
use crate::upstream::{Answer, Upstream};

const TOKEN: &str = "tok-mcp-0a1b2c3d-secret";

fn declarations(upstream: &Upstream) -> String {
    format!(
        r#"
base_url = "{}"
retry = {{ attempts = 2, base = "1ms", max = "5ms" }}
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

/// `stitch mcp` as a child process, with rmcp's client on its stdio.
async fn connect(file: &Path, extra: &[&str]) -> RunningService<RoleClient, ()> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stitch"));
    command
        .args(["--file", file.to_str().unwrap(), "mcp"])
        .args(extra)
        .env("STITCH_IT_TOKEN", TOKEN);
    let (child, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .expect("start stitch mcp");
    ().serve(child).await.expect("the MCP handshake")
}

fn arguments(value: Value) -> JsonObject {
    value.as_object().unwrap().clone()
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_the_stitches_as_tools_and_calls_them() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users/7",
        [
            Answer::status(503),
            Answer::json(200, json!({"id": 7, "name": "Ada"})),
        ],
    );
    upstream.script("/users/9", [Answer::status(500).body(TOKEN)]);
    upstream.script("/users", [Answer::json(201, json!({"id": 10}))]);
    let file = write("mcp-tools", "stitch.toml", &declarations(&upstream));
    let client = connect(&file, &[]).await;

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["create_user", "get_user", "paced"]);
    let get_user = &tools[1];
    let schema = Value::Object((*get_user.input_schema).clone());
    assert_eq!(schema["required"], json!(["params"]));
    assert_eq!(schema["properties"]["params"]["required"], json!(["id"]));
    assert!(schema["properties"].get("body").is_none());
    let output = get_user.output_schema.as_ref().expect("declared schema");
    assert_eq!(output["required"], json!(["id"]));
    let create = Value::Object((*tools[0].input_schema).clone());
    assert!(create["properties"].get("body").is_some());

    let result = client
        .call_tool(
            CallToolRequestParams::new("get_user").with_arguments(arguments(
                json!({"params": {"id": 7}, "query": {"limit": 5}}),
            )),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&text(&result)).unwrap(),
        json!({"id": 7, "name": "Ada"})
    );
    assert_eq!(
        result.structured_content,
        Some(json!({"id": 7, "name": "Ada"}))
    );
    let hits = upstream.hits();
    assert_eq!(hits.len(), 2, "one retry");
    assert_eq!(hits[1].target, "/users/7?limit=5");

    let created = client
        .call_tool(
            CallToolRequestParams::new("create_user")
                .with_arguments(arguments(json!({"body": {"name": "Bo"}}))),
        )
        .await
        .unwrap();
    assert_eq!(text(&created), r#"{"id":10}"#);
    assert_eq!(&upstream.hits()[2].body[..], br#"{"name":"Bo"}"#);

    // A failing call (the upstream's body even echoes the token): a tool error with the
    // kind and message, nothing secret.
    let failed = client
        .call_tool(
            CallToolRequestParams::new("get_user")
                .with_arguments(arguments(json!({"params": {"id": 9}}))),
        )
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    let failure: Value = serde_json::from_str(&text(&failed)).unwrap();
    assert_eq!(failure["kind"], "http", "{failure}");
    assert_eq!(failure["upstream_status"], 500);
    assert!(!format!("{failed:?}").contains(TOKEN), "{failed:?}");

    // Arguments that are not a call input, a missing template variable: input tool errors.
    for bad in [json!({"parms": {"id": 7}}), json!({})] {
        let failed = client
            .call_tool(CallToolRequestParams::new("get_user").with_arguments(arguments(bad)))
            .await
            .unwrap();
        assert_eq!(failed.is_error, Some(true));
        let failure: Value = serde_json::from_str(&text(&failed)).unwrap();
        assert_eq!(failure["kind"], "input", "{failure}");
    }
    // An unknown tool is a protocol error naming the declared ones.
    let unknown = client
        .call_tool(CallToolRequestParams::new("no_such_stitch"))
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("get_user"), "{unknown}");
    assert_eq!(upstream.hit_count(), 4, "no request for the refused calls");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tool_calls_share_the_declared_rate() {
    let upstream = Upstream::start().await;
    upstream.script("/paced", [Answer::json(200, json!({"ok": true}))]);
    let file = write("mcp-throttle", "stitch.toml", &declarations(&upstream));
    let log = file.with_file_name("events.jsonl");
    let _ = std::fs::remove_file(&log);
    let client = connect(&file, &["--events", log.to_str().unwrap()]).await;

    let calls: Vec<_> = (0..5)
        .map(|_| {
            let peer = client.peer().clone();
            tokio::spawn(async move { peer.call_tool(CallToolRequestParams::new("paced")).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().is_error, Some(false));
    }
    assert_eq!(upstream.hit_count(), 5);
    let mut attempts: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["kind"] == "attempt")
        .map(|line| line["ts_ms"].as_u64().unwrap())
        .collect();
    attempts.sort_unstable();
    assert_eq!(attempts.len(), 5);
    let span = attempts[4] - attempts[0];
    assert!(span >= 350, "5 attempts at 10/s took only {span} ms");
    client.cancel().await.unwrap();
}
