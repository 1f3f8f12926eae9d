//! Path parameters are always percent-encoded: no value changes the host, the path shape,
//! the query or the headers. Checked on the wire, at a real server.

use crate::support;

use serde::Serialize;
use stitchapi::{ErrorKind, Input, StatusMatch, Stitch};
use support::{Answer, Upstream};

#[tokio::test]
async fn hostile_path_values_stay_inside_their_segment() {
    let upstream = Upstream::start().await;
    let stitch = Stitch::get(format!("{}/users/{{id}}/profile", upstream.url()))
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    let cases = [
        ("a/b", "/users/a%2Fb/profile"),
        ("x?y#z", "/users/x%3Fy%23z/profile"),
        ("@evil.com", "/users/%40evil.com/profile"),
        (
            "a\r\nX-Injected: 1",
            "/users/a%0D%0AX-Injected%3A%201/profile",
        ),
        ("%2e%2e", "/users/%252e%252e/profile"),
        ("ünï", "/users/%C3%BCn%C3%AF/profile"),
    ];
    for (value, _) in &cases {
        stitch.call(Input::new().param("id", *value)).await.unwrap();
    }
    let hits = upstream.hits();
    assert_eq!(hits.len(), cases.len());
    for (hit, (value, expected)) in hits.iter().zip(cases) {
        assert_eq!(hit.target, expected, "value {value:?}");
        assert_eq!(hit.headers["host"], upstream.addr.to_string());
        assert!(!hit.headers.contains_key("x-injected"));
    }
}

#[tokio::test]
async fn dot_segments_and_missing_parameters_are_input_errors_before_sending() {
    let upstream = Upstream::start().await;
    let stitch = Stitch::get(format!("{}/users/{{id}}", upstream.url()))
        .build()
        .unwrap();
    // `../admin` would be sent as `..%2Fadmin`, which servers that decode `%2F` before
    // resolving dot-segments read as `../admin`.
    for value in ["..", ".", "../admin", "a/../b", "..\\admin"] {
        let error = stitch
            .call(Input::new().param("id", value))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Input, "{value}");
        assert_eq!(error.attempts(), 0);
    }
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input);
    assert!(
        error.to_string().contains("missing parameter `id`"),
        "{error}"
    );
    assert_eq!(upstream.hit_count(), 0);
}

#[tokio::test]
async fn reserved_expansion_cannot_move_the_host() {
    let upstream = Upstream::start().await;
    let stitch = Stitch::get(format!("{}{{+path}}", upstream.url()))
        .build()
        .unwrap();
    let error = stitch
        .call(Input::new().param("path", "@evil.example/x"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input, "{error}");
    let error = stitch
        .call(Input::new().param("path", "/a/../../admin"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input, "{error}");
    assert_eq!(upstream.hit_count(), 0);
    upstream.script("/files/a/b.txt", [Answer::status(200)]);
    stitch
        .call(Input::new().param("path", "/files/a/b.txt"))
        .await
        .unwrap();
    assert_eq!(upstream.hits()[0].target, "/files/a/b.txt");
}

#[tokio::test]
async fn query_values_and_headers_cannot_inject() {
    let upstream = Upstream::start().await;
    upstream.script("/search", [Answer::status(200)]);
    let stitch = Stitch::get(format!("{}/search?limit=10", upstream.url()))
        .build()
        .unwrap();
    stitch
        .call(Input::new().query("q", "a&admin=true#x").query("limit", 50))
        .await
        .unwrap();
    assert_eq!(
        upstream.hits()[0].target,
        "/search?q=a%26admin%3Dtrue%23x&limit=50"
    );
    let error = stitch
        .call(Input::new().header("x-a", "1\r\nx-injected: 1"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input);
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn call_with_fills_the_template_then_the_query() {
    #[derive(Serialize)]
    struct GetUser {
        id: u64,
        expand: Option<&'static str>,
        tags: Vec<&'static str>,
    }
    let upstream = Upstream::start().await;
    upstream.script("/users/7", [Answer::status(200)]);
    let stitch = Stitch::get(format!("{}/users/{{id}}", upstream.url()))
        .build()
        .unwrap();
    stitch
        .call_with(&GetUser {
            id: 7,
            expand: None,
            tags: vec!["a", "b"],
        })
        .await
        .unwrap();
    stitch
        .call_with(&GetUser {
            id: 7,
            expand: Some("teams"),
            tags: vec![],
        })
        .await
        .unwrap();
    let hits = upstream.hits();
    assert_eq!(hits[0].target, "/users/7?tags=a&tags=b");
    assert_eq!(hits[1].target, "/users/7?expand=teams");
}

#[tokio::test]
async fn rfc6570_query_and_path_operators() {
    let upstream = Upstream::start().await;
    upstream.script("/repos/a/b", [Answer::status(200)]);
    let stitch = Stitch::get(format!(
        "{}/repos{{/owner,repo}}{{?q,page}}",
        upstream.url()
    ))
    .build()
    .unwrap();
    stitch
        .call(
            Input::new()
                .param("owner", "a")
                .param("repo", "b")
                .param("q", "x y"),
        )
        .await
        .unwrap();
    assert_eq!(upstream.hits()[0].target, "/repos/a/b?q=x%20y");
}
