//! `stitch trace` on a recorded log with known figures.

use serde_json::{Value, json};

use crate::support::{stitch, write};

fn line(call: &str, stitch: &str, body: Value) -> String {
    let mut line = json!({"ts_ms": 1_767_000_000_000u64, "call": call, "stitch": stitch});
    line.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    line.to_string()
}

#[tokio::test]
async fn trace_sums_a_log() {
    let mut log = Vec::new();
    // get_user: 10 calls taking 10, 20, ..., 100 ms; the last two fail (http, timeout); three
    // retries; 4 cache hits and 6 misses; 250 ms of throttle wait.
    for i in 1..=10u32 {
        let call = format!("c{i}");
        log.push(line(
            &call,
            "get_user",
            json!({"kind": "start", "method": "GET", "template": "/u/{id}"}),
        ));
        log.push(line(
            &call,
            "get_user",
            json!({"kind": "cache", "outcome": if i <= 4 { "hit" } else { "miss" }, "detail": ""}),
        ));
        if i <= 3 {
            log.push(line(
                &call,
                "get_user",
                json!({"kind": "retry", "attempt": 1, "reason": "status 503", "delay_ms": 100}),
            ));
        }
        if i == 5 {
            log.push(line(&call, "get_user", json!({"kind": "throttle", "attempt": 1, "waited_ms": 250, "detail": "waited 250ms"})));
        }
        if i >= 9 {
            let kind = if i == 9 { "http" } else { "timeout" };
            log.push(line(
                &call,
                "get_user",
                json!({"kind": "error", "error_kind": kind, "status": null, "message": "x"}),
            ));
        }
        log.push(line(
            &call,
            "get_user",
            json!({"kind": "done", "ok": i < 9, "elapsed_ms": f64::from(i) * 10.0, "attempts": 1}),
        ));
    }
    log.push(line(
        "d1",
        "list",
        json!({"kind": "done", "ok": true, "elapsed_ms": 5.0, "attempts": 1}),
    ));
    log.push("not json".to_owned());
    let file = write("trace", "run.jsonl", &log.join("\n"));

    let run = stitch(&["trace", file.to_str().unwrap(), "--json"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let user = &summary["stitches"]["get_user"];
    assert_eq!(user["calls"], 10);
    assert_eq!(user["failures"], 2);
    assert_eq!(user["failures_by_kind"], json!({"http": 1, "timeout": 1}));
    assert_eq!(user["retries"], 3);
    assert_eq!(user["cache_hit_rate"], 0.4);
    assert_eq!(user["throttle_wait_ms"], 250);
    assert_eq!(
        user["latency_ms"],
        json!({"p50": 50.0, "p95": 100.0, "p99": 100.0, "max": 100.0})
    );
    assert_eq!(summary["stitches"]["list"]["calls"], 1);
    assert_eq!(summary["skipped_lines"], 1);

    let run = stitch(&["trace", file.to_str().unwrap()], &[]).await;
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("get_user"))
        .unwrap();
    assert!(
        row.contains("40%") && row.contains("http=1 timeout=1"),
        "{row}"
    );
}
