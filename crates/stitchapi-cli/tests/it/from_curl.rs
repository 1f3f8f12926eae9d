//! `stitch from-curl`: the declaration it prints works as it is, credentials moved to the
//! environment.

use serde_json::json;

use crate::support::{stitch, write};
use crate::upstream::{Answer, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curl_command_round_trips_to_a_working_declaration() {
    let upstream = Upstream::start().await;
    upstream.script("/v1/orders", [Answer::json(201, json!({"id": 42}))]);
    let secret = "curl-secret-5b1c";
    let curl = format!(
        "curl -X POST '{}/v1/orders?source=cli' -H 'Authorization: Bearer {secret}' -H 'X-App: demo' -H 'Content-Type: application/json' -d '{{\"qty\": 2}}'",
        upstream.url()
    );
    let run = stitch(&["from-curl", &curl], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(secret), "{}", run.stdout);
    assert!(
        run.stdout.contains("[stitches.post_orders]"),
        "{}",
        run.stdout
    );
    let file = write("from_curl", "stitch.toml", &run.stdout);

    let run = stitch(
        &[
            "-f",
            file.to_str().unwrap(),
            "run",
            "post_orders",
            "--json",
            r#"{"qty": 2}"#,
        ],
        &[("API_TOKEN", secret)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap(),
        json!({"id": 42})
    );
    let hit = &upstream.hits()[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.target, "/v1/orders?source=cli");
    assert_eq!(
        hit.headers["authorization"],
        format!("Bearer {secret}").as_str()
    );
    assert_eq!(hit.headers["x-app"], "demo");
    assert_eq!(&hit.body[..], br#"{"qty":2}"#);

    let run = stitch(
        &[
            "from-curl",
            "curl -u ann:pw https://api.example.com/me?api_key=k1",
        ],
        &[],
    )
    .await;
    assert!(run.stdout.contains("type = \"basic\""), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("Dropped a second credential (query parameter api_key)"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("k1") && !run.stdout.contains(":pw"),
        "{}",
        run.stdout
    );
}
