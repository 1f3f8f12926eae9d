//! `stitch demo`: the bundled declarations against the quickstart's misbehaving API, from a
//! bare shell (no file, no environment).

use crate::support::stitch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_each_behaviour_and_exits_zero() {
    let run = stitch(&["demo"], &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    for expected in [
        "demo API listening on http://127.0.0.1:",
        "attempt 1 failed (status 503), retrying in",
        "200 from network after 2 attempt(s)",
        "validation error: $.data: schema: null is not of type \"string\" at /3/email",
        "attempt 1 failed (attempt timed out after 300ms)",
        "timeout error: timed out after 600ms",
        "cache: miss",
        "cache: hit",
        "200 from cache after 0 attempt(s)",
        "auth: requesting an oauth2 token",
        "result: {\"report\":\"Q3\",\"revenue\":1250000}",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(
        out.matches("auth: requesting an oauth2 token").count(),
        1,
        "the token is fetched once and reused:\n{out}"
    );
    // Five calls at 5/s: the last one cannot finish before 4 gaps of 200 ms.
    let finished: Vec<u64> = out
        .lines()
        .filter_map(|line| line.trim().strip_prefix("call "))
        .filter_map(|rest| rest.split(" done at ").nth(1))
        .map(|at| at.trim_end_matches("ms").parse().unwrap())
        .collect();
    assert_eq!(finished.len(), 5, "{out}");
    assert!(finished[4] >= 750, "the burst was not paced: {finished:?}");
    assert!(!out.contains("s3cret") && !run.stderr.contains("s3cret"));
}
