//! A throttled call costs exactly one Redis round trip: every command a client sends is
//! watched on the server with MONITOR (commands a script runs inside Redis are not round
//! trips and are told apart).

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use http::Method;
use stitchapi::testing::{MockResponse, MockTransport};
use stitchapi::{Input, Seam};
use stitchapi_redis::RedisStore;
use support::RedisServer;

#[tokio::test]
async fn a_rate_only_throttled_call_is_one_round_trip() {
    let server = RedisServer::start();
    let mock = MockTransport::new();
    mock.route(Method::GET, "/items", [MockResponse::status(200)]);
    let api = Seam::builder("https://api.example.com")
        .throttle("100000/s")
        .store(Arc::new(RedisStore::from_url(&server.url()).unwrap()))
        .transport(Arc::new(mock))
        .build()
        .unwrap();
    let items = api.get("/items").build().unwrap();
    items.call(Input::new()).await.unwrap(); // the first call also loads the script

    let mut monitor = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli monitor");
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "OK");
    for _ in 0..50 {
        items.call(Input::new()).await.unwrap();
    }
    // A marker command ends the observation.
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("ECHO")
        .arg("end-of-run")
        .query::<String>(&mut connection)
        .unwrap();
    let mut from_clients = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("end-of-run") {
            break;
        }
        if !line.contains("[0 lua]") {
            from_clients.push(line);
        }
    }
    monitor.kill().unwrap();
    let _ = monitor.wait();
    assert_eq!(
        from_clients.len(),
        50,
        "one round trip per call: {from_clients:#?}"
    );
    assert!(
        from_clients.iter().all(|line| line.contains("\"EVALSHA\"")),
        "{from_clients:#?}"
    );
}
