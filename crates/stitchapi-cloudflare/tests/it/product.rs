//! The crate README's two Workers (the edge product document's examples,
//! `examples/worker/src/product.rs`) in workerd: the bare Worker returns the validated user
//! after retrying a 503; the Worker with Workers KV on its seam logs in once and serves the
//! second request from the cache.

use crate::harness::{Answer, Upstream, Worker, user};

#[tokio::test]
async fn the_bare_worker_returns_the_user_after_a_503() {
    let upstream = Upstream::start([Answer::Json(503, serde_json::json!({}))]).await;
    let worker = Worker::start(&upstream.url()).await;
    let (status, body) = worker.get("/edge/users?id=4").await;
    assert_eq!((status, body), (200, user(4)));
    let paths: Vec<String> = upstream.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/users/4", "/users/4"]);
}

#[tokio::test]
async fn the_kv_worker_logs_in_once_and_caches_in_kv() {
    let upstream = Upstream::start([]).await;
    let worker = Worker::start(&upstream.url()).await;
    for _ in 0..3 {
        let (status, body) = worker.get("/edge/kv/users?id=6").await;
        assert_eq!((status, body), (200, user(6)));
    }
    let seen = upstream.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/auth/login", "/users/6"], "{seen:?}");
    assert_eq!(seen[1].cookie.as_deref(), Some("session=s1"), "{seen:?}");
}
