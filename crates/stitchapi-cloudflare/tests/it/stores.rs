//! The Workers KV and Durable Object stores inside workerd: the conformance kit rule by rule,
//! a throttle on the Durable Object store measured on the upstream, the same throttle refused
//! on KV at build time, and the response cache in KV (also across a workerd restart on a
//! persisted KV directory).

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Upstream, Worker, user};

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|rule| rule.as_str().expect("a rule name").to_owned())
        .collect()
}

/// Runs `/conformance/{which}` and checks the report: no violation, and every rule of the kit
/// either passed or (only when `may_skip` names its capability) skipped. Returns the passed.
async fn conformance(which: &str, may_skip: &[&str], within: Duration) -> Vec<String> {
    let upstream = Upstream::start([]).await;
    let worker = Worker::start(&upstream.url()).await;
    let (status, report) = worker
        .get_within(&format!("/conformance/{which}"), within)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
    let passed = strings(&report["passed"]);
    let skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().expect("rule").to_owned(),
                pair[1].as_str().expect("capability").to_owned(),
            )
        })
        .collect();
    for (rule, capability) in &skipped {
        assert!(
            may_skip.contains(&capability.as_str()),
            "{which}: {rule:?} was skipped for {capability}, which the store should have"
        );
    }
    for rule in stitchapi::testing::store_rules() {
        assert!(
            passed.iter().any(|p| p == rule) || skipped.iter().any(|(s, _)| s == rule),
            "{which}: the rule {rule:?} was neither passed nor skipped: {report:#}"
        );
    }
    eprintln!(
        "{which} store in workerd: {} rules passed in {} ms, {} skipped",
        passed.len(),
        report["elapsed_ms"],
        skipped.len()
    );
    for rule in &passed {
        eprintln!("  passed  {rule}");
    }
    for (rule, capability) in &skipped {
        eprintln!("  skipped {rule} (no {capability})");
    }
    passed
}

#[tokio::test]
async fn durable_object_store_keeps_every_rule_of_the_contract_in_workerd() {
    let passed = conformance("do", &[], Duration::from_secs(60)).await;
    assert_eq!(passed.len(), stitchapi::testing::store_rules().count());
}

/// KV's 60 s TTL floor makes each of the five rules that wait out a TTL wait a minute:
/// about five minutes in all.
#[tokio::test]
async fn workers_kv_store_keeps_every_applicable_rule_in_workerd() {
    let passed = conformance(
        "kv",
        &["atomic_increment", "reserve", "lease", "conditional_writes"],
        Duration::from_secs(600),
    )
    .await;
    for rule in [
        "set: a ttl entry expires",
        "increment: the counter expires after its ttl",
        "increment: a later ttl does not extend the window",
        "set: values are bytes, byte for byte",
    ] {
        assert!(passed.iter().any(|p| p == rule), "{rule} did not run");
    }
}

#[tokio::test]
async fn throttle_on_the_durable_object_store_spaces_40_concurrent_requests() {
    let upstream = Upstream::start([]).await;
    let worker = std::sync::Arc::new(Worker::start(&upstream.url()).await);
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let worker = worker.clone();
            tokio::spawn(async move { worker.get(&format!("/throttle/do/{i}")).await })
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.expect("a call");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ok"], true, "{body}");
    }
    let mut arrivals: Vec<_> = upstream.seen().iter().map(|seen| seen.at).collect();
    assert_eq!(
        arrivals.len(),
        40,
        "the upstream saw {} requests",
        arrivals.len()
    );
    arrivals.sort();
    let first = arrivals[0];
    let spacing = Duration::from_millis(100);
    // Grants are exact; what the upstream sees adds the Worker's timer and fetch jitter.
    let noise = Duration::from_millis(25);
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, at) in arrivals.iter().enumerate() {
        let due = spacing * i as u32;
        assert!(
            *at - first + noise >= due,
            "request {i} arrived {:?} after the first, before its slot at {due:?}; gaps {gaps:?}",
            *at - first
        );
    }
    // A request delivered late (its gap to the one before is long) shortens the gap to the
    // next one, which left on time: so the rate is checked over windows, not single gaps.
    // In any second, at most 10 arrivals plus the one on its edge.
    for (i, start) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|at| **at - *start < Duration::from_secs(1))
            .count();
        assert!(
            within <= 11,
            "{within} requests within a second from request {i}; gaps {gaps:?}"
        );
    }
    let span = arrivals[39] - first;
    assert!(
        span < Duration::from_millis(3900) + Duration::from_secs(2),
        "{span:?}"
    );
    let min_gap = gaps.iter().min().copied().unwrap_or_default();
    eprintln!("10/s over the Durable Object store: 40 arrivals over {span:?}, min gap {min_gap:?}");
}

#[tokio::test]
async fn throttle_on_the_kv_store_is_refused_at_build_time() {
    let upstream = Upstream::start([]).await;
    let worker = Worker::start(&upstream.url()).await;
    let (status, body) = worker.get("/throttle/kv/1").await;
    assert_eq!(status, 500, "{body}");
    let error = body["build_error"].as_str().expect("a build error");
    for needle in [
        "throttle.rate",
        "workers-kv",
        "neither `reserve` nor an atomic `increment`",
        "eventually consistent and the last write wins",
        "DurableObjectStore",
    ] {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    assert!(
        upstream.seen().is_empty(),
        "the refused stitch called the upstream"
    );
}

#[tokio::test]
async fn cache_in_workers_kv_reaches_the_upstream_once() {
    let upstream = Upstream::start([]).await;
    let worker = Worker::start(&upstream.url()).await;
    let (status, first) = worker.get("/cached/users/5").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["user"].clone(), first["from_cache"].clone()),
        (user(5), false.into())
    );
    let (status, second) = worker.get("/cached/users/5").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        (second["user"].clone(), second["from_cache"].clone()),
        (user(5), true.into())
    );
    assert_eq!(upstream.seen().len(), 1, "{:?}", upstream.seen());
}

#[tokio::test]
async fn cache_in_workers_kv_survives_a_workerd_restart() {
    let persist = std::env::temp_dir().join(format!(
        "stitchapi-worker-kv-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    std::fs::create_dir_all(&persist).expect("the persist directory");
    /// Removes the directory however the test ends.
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(persist.clone());
    let upstream = Upstream::start([]).await;

    let worker = Worker::start_with(&upstream.url(), &[], Some(&persist)).await;
    let (status, first) = worker.get("/cached/users/9").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["user"].clone(), first["from_cache"].clone()),
        (user(9), false.into())
    );
    worker.stop().await;
    assert!(
        std::fs::read_dir(persist.join("kv"))
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false),
        "workerd wrote nothing under {}",
        persist.join("kv").display()
    );

    // A new workerd process on the same directory: the entry is still there.
    let worker = Worker::start_with(&upstream.url(), &[], Some(&persist)).await;
    let (status, second) = worker.get("/cached/users/9").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        (second["user"].clone(), second["from_cache"].clone()),
        (user(9), true.into()),
        "the restarted Worker missed the cache"
    );
    assert_eq!(upstream.seen().len(), 1, "{:?}", upstream.seen());
    worker.stop().await;
}
