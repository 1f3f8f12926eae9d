//! Auth sessions and tokens kept in Workers KV, inside workerd: every Worker request builds
//! its stitch afresh, so only the KV store carries the session from one request to the next.

use serde_json::json;

use crate::harness::{Answer, Upstream, Worker, user};

fn count(upstream: &Upstream, path: &str) -> usize {
    upstream.seen().iter().filter(|s| s.path == path).count()
}

#[tokio::test]
async fn cookie_session_in_kv_logs_in_once_and_once_more_after_a_401() {
    let upstream = Upstream::start([]).await;
    let worker = Worker::start(&upstream.url()).await;
    for id in 1..=5 {
        let (status, body) = worker.get(&format!("/session/users/{id}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"], user(id));
    }
    assert_eq!(count(&upstream, "/login"), 1, "{:?}", upstream.seen());
    let users: Vec<_> = upstream
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/users/"))
        .collect();
    assert_eq!(users.len(), 5);
    assert!(
        users
            .iter()
            .all(|s| s.cookie.as_deref() == Some("session=s1")),
        "{users:?}"
    );

    // The server drops the session: one 401, one re-login, the call retried with the new one.
    upstream.script([Answer::Json(401, json!({ "error": "session expired" }))]);
    let (status, body) = worker.get("/session/users/6").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&upstream, "/login"), 2, "{:?}", upstream.seen());
    for id in 7..=9 {
        let (status, body) = worker.get(&format!("/session/users/{id}")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(count(&upstream, "/login"), 2, "{:?}", upstream.seen());
    let last = upstream.seen().last().cloned().expect("a request");
    assert_eq!(last.cookie.as_deref(), Some("session=s2"), "{last:?}");
}

#[tokio::test]
async fn oauth2_client_credentials_in_kv_post_one_token_for_many_requests() {
    let upstream = Upstream::start([]).await;
    let worker = Worker::start(&upstream.url()).await;
    for id in 1..=6 {
        let (status, body) = worker.get(&format!("/oauth/users/{id}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"], user(id));
    }
    assert_eq!(count(&upstream, "/token"), 1, "{:?}", upstream.seen());
    let users: Vec<_> = upstream
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/users/"))
        .collect();
    assert_eq!(users.len(), 6);
    assert!(
        users
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer t1")),
        "{users:?}"
    );
}
