//! The response cache through whole calls against a real upstream: hits without the network,
//! TTLs in virtual time, coalescing, validation before storing, principals, invalidation.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use stitchapi::event::{CacheEvent, NotStoredReason};
use stitchapi::testing::ManualClock;
use stitchapi::{Auth, Cache, Event, Input, MemoryStore, Seam, Served, Step, Stitch};
use support::{Answer, Upstream};

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Price {
    eur: f64,
}

#[tokio::test]
async fn a_hit_is_served_without_the_network_until_the_ttl_ends() {
    let upstream = Upstream::start().await;
    upstream.script("/prices", [Answer::json(200, json!({"eur": 1.08}))]);
    let clock = ManualClock::new();
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let stitch = Stitch::get(format!("{}/prices", upstream.url()))
        .output::<Price>()
        .cache("5m")
        .store(store)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(stitch.call(Input::new()).await.unwrap().eur, 1.08);
    }
    assert_eq!(upstream.hit_count(), 1);
    let reply = stitch.call_detailed(Input::new()).await.unwrap();
    assert_eq!(reply.served, Served::CacheHit);
    assert!(reply.served.is_from_cache());
    assert_eq!(reply.attempts, 0, "a hit makes no attempt");

    clock.advance(Duration::from_secs(300));
    stitch.call(Input::new()).await.unwrap();
    assert_eq!(upstream.hit_count(), 2, "the entry expired");

    // Another query is another entry.
    stitch
        .call(Input::new().query("currency", "gbp"))
        .await
        .unwrap();
    assert_eq!(upstream.hit_count(), 3);
}

#[tokio::test]
async fn concurrent_identical_misses_make_one_request() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/prices",
        [Answer::json(200, json!({"eur": 1.08})).delayed(Duration::from_millis(50))],
    );
    let stitch = Stitch::get(format!("{}/prices", upstream.url()))
        .cache("1m")
        .build()
        .unwrap();
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let stitch = stitch.clone();
            tokio::spawn(async move { stitch.call(Input::new()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap()["eur"], 1.08);
    }
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn only_responses_that_validate_are_stored() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/prices",
        [
            Answer::json(200, json!({"eur": "not a number"})),
            Answer::json(200, json!({"eur": 1.1})),
        ],
    );
    let stitch = Stitch::get(format!("{}/prices", upstream.url()))
        .output::<Price>()
        .cache("1m")
        .build()
        .unwrap();
    assert!(stitch.call(Input::new()).await.is_err());
    assert_eq!(stitch.call(Input::new()).await.unwrap().eur, 1.1);
    assert_eq!(stitch.call(Input::new()).await.unwrap().eur, 1.1);
    assert_eq!(
        upstream.hit_count(),
        2,
        "the invalid response was not cached, the valid one was"
    );
}

#[tokio::test]
async fn failures_are_not_cached_and_sensitive_stitches_are_never_cached() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/flaky",
        [Answer::status(500), Answer::json(200, json!({"ok": true}))],
    );
    let stitch = Stitch::get(format!("{}/flaky", upstream.url()))
        .cache("1m")
        .build()
        .unwrap();
    assert!(stitch.call(Input::new()).await.is_err());
    stitch.call(Input::new()).await.unwrap();
    stitch.call(Input::new()).await.unwrap();
    assert_eq!(upstream.hit_count(), 2);

    upstream.script("/secret", [Answer::json(200, json!({"pin": 1234}))]);
    let secret = Stitch::get(format!("{}/secret", upstream.url()))
        .cache("1m")
        .sensitive()
        .build()
        .unwrap();
    secret.call(Input::new()).await.unwrap();
    secret.call(Input::new()).await.unwrap();
    assert_eq!(
        upstream
            .hits()
            .iter()
            .filter(|hit| hit.target == "/secret")
            .count(),
        2
    );
}

#[tokio::test]
async fn principals_get_their_own_entries_and_credentialed_calls_without_one_bypass() {
    let upstream = Upstream::start().await;
    upstream.script("/me", [Answer::json(200, json!({"me": true}))]);
    let api = Seam::builder(upstream.url())
        .auth(Auth::bearer("t"))
        .cache("1m")
        .build()
        .unwrap();
    let me = api.get("/me").build().unwrap();
    me.call(Input::new()).await.unwrap();
    me.call(Input::new()).await.unwrap();
    assert_eq!(
        upstream.hit_count(),
        2,
        "no principal + credentials: fail closed, never shared"
    );
    let alice = me.as_principal("alice");
    alice.call(Input::new()).await.unwrap();
    alice.call(Input::new()).await.unwrap();
    me.as_principal("bob").call(Input::new()).await.unwrap();
    assert_eq!(upstream.hit_count(), 4, "alice once, bob once");
}

#[tokio::test]
async fn invalidation_exact_per_stitch_and_per_seam() {
    let upstream = Upstream::start().await;
    upstream.script("/a/1", [Answer::status(200)]);
    upstream.script("/a/2", [Answer::status(200)]);
    let api = Seam::builder(upstream.url()).cache("1h").build().unwrap();
    let a = api.get("/a/{id}").build().unwrap();
    let warm = |a: stitchapi::Stitch| async move {
        a.call(Input::new().param("id", 1)).await.unwrap();
        a.call(Input::new().param("id", 2)).await.unwrap();
    };
    warm(a.clone()).await;
    warm(a.clone()).await;
    assert_eq!(upstream.hit_count(), 2);
    a.invalidate(Input::new().param("id", 1)).await.unwrap();
    warm(a.clone()).await;
    assert_eq!(upstream.hit_count(), 3, "only id 1 was refetched");
    a.invalidate_all().await.unwrap();
    warm(a.clone()).await;
    assert_eq!(upstream.hit_count(), 5);
    api.invalidate().await.unwrap();
    warm(a.clone()).await;
    assert_eq!(upstream.hit_count(), 7);
}

#[tokio::test]
async fn the_stream_reports_miss_then_hit() {
    let upstream = Upstream::start().await;
    upstream.script("/prices", [Answer::json(200, json!({"eur": 1.08}))]);
    let stitch = Stitch::get(format!("{}/prices", upstream.url()))
        .cache("1m")
        .build()
        .unwrap();
    let cache_events = |events: &[Event<serde_json::Value>]| -> Vec<CacheEvent> {
        events
            .iter()
            .filter_map(|event| match event {
                Event::Progress(p) => match p.step {
                    Step::Cache(event) => Some(event),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let served = |events: &[Event<serde_json::Value>]| {
        events.iter().find_map(|event| match event {
            Event::Result { served, .. } => Some(*served),
            _ => None,
        })
    };
    let first: Vec<_> = stitch.stream(Input::new()).collect().await;
    assert_eq!(cache_events(&first), [CacheEvent::Miss]);
    assert_eq!(served(&first), Some(Served::Network));
    let second: Vec<_> = stitch.stream(Input::new()).collect().await;
    assert_eq!(cache_events(&second), [CacheEvent::Hit]);
    assert_eq!(served(&second), Some(Served::CacheHit));
    assert_eq!(CacheEvent::Hit.to_string(), "hit");
}

#[tokio::test]
async fn a_miss_decodes_and_validates_once_and_a_hit_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let upstream = Upstream::start().await;
    upstream.script("/prices", [Answer::json(200, json!({"eur": 1.08}))]);
    let validations = Arc::new(AtomicUsize::new(0));
    let counted = validations.clone();
    let stitch = Stitch::get(format!("{}/prices", upstream.url()))
        .output::<Price>()
        .validate(move |_: &Price| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .cache("5m")
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap();
    assert_eq!(validations.load(Ordering::SeqCst), 1, "the miss");
    stitch.call(Input::new()).await.unwrap();
    assert_eq!(validations.load(Ordering::SeqCst), 2, "the hit");
}

/// An upstream that negotiates the language: `/greeting` answers in the request's
/// `Accept-Language` with `Vary: Accept-Language` after 50 ms; `/unique` answers with
/// `Vary: *`. Returns its URL and a counter of requests.
async fn negotiating_upstream() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::HeaderMap;
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let (greeting_hits, unique_hits) = (hits.clone(), hits.clone());
    let app = axum::Router::new()
        .route(
            "/greeting",
            get(move |headers: HeaderMap| {
                let hits = greeting_hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let body = match headers.get("accept-language").map(|v| v.as_bytes()) {
                        Some(b"fr") => "bonjour",
                        Some(b"de") => "hallo",
                        _ => "hello",
                    };
                    ([("vary", "Accept-Language")], body)
                }
            }),
        )
        .route(
            "/unique",
            get(move || {
                let hits = unique_hits.clone();
                async move {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    ([("vary", "*")], format!("response {n}"))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// Regression: only the declared `vary` list entered the key, so the first language cached
/// was served to every caller.
#[tokio::test]
async fn a_response_that_varies_on_accept_language_is_cached_per_language() {
    use std::sync::atomic::Ordering;
    let (url, hits) = negotiating_upstream().await;
    let greeting = Stitch::get(format!("{url}/greeting"))
        .text()
        .cache("5m")
        .build()
        .unwrap();
    let in_language = |language: &str| Input::new().header("accept-language", language);
    assert_eq!(greeting.call(in_language("en")).await.unwrap(), "hello");
    assert_eq!(greeting.call(in_language("fr")).await.unwrap(), "bonjour");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // Each language is now a hit on its own variant.
    for _ in 0..2 {
        assert_eq!(greeting.call(in_language("fr")).await.unwrap(), "bonjour");
        assert_eq!(greeting.call(in_language("en")).await.unwrap(), "hello");
    }
    assert_eq!(greeting.call(Input::new()).await.unwrap(), "hello");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "no language is a variant too"
    );
    let reply = greeting.call_detailed(in_language("fr")).await.unwrap();
    assert_eq!((reply.served, reply.attempts), (Served::CacheHit, 0));
    assert_eq!(reply.headers["vary"], "Accept-Language");

    // Invalidating the entry drops every variant.
    greeting.invalidate(in_language("en")).await.unwrap();
    assert_eq!(greeting.call(in_language("fr")).await.unwrap(), "bonjour");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn concurrent_misses_in_different_languages_each_get_their_own() {
    use std::sync::atomic::Ordering;
    let (url, hits) = negotiating_upstream().await;
    let greeting = Stitch::get(format!("{url}/greeting"))
        .text()
        .cache("5m")
        .build()
        .unwrap();
    let calls: Vec<_> = ["en", "fr", "de", "en", "fr", "de", "en", "fr", "de"]
        .into_iter()
        .map(|language| {
            let greeting = greeting.clone();
            tokio::spawn(async move {
                let input = Input::new().header("accept-language", language);
                (language, greeting.call(input).await.unwrap())
            })
        })
        .collect();
    for call in calls {
        let (language, body) = call.await.unwrap();
        let expected = match language {
            "fr" => "bonjour",
            "de" => "hallo",
            _ => "hello",
        };
        assert_eq!(body, expected, "{language}");
    }
    let fetched = hits.load(Ordering::SeqCst);
    assert!(
        (3..=4).contains(&fetched),
        "{fetched}: one fetch per language"
    );
}

#[tokio::test]
async fn a_response_with_vary_star_is_never_stored() {
    use std::sync::atomic::Ordering;
    let (url, hits) = negotiating_upstream().await;
    let unique = Stitch::get(format!("{url}/unique"))
        .text()
        .cache("5m")
        .build()
        .unwrap();
    let details = |events: Vec<Event<String>>| -> Vec<(CacheEvent, String)> {
        events
            .into_iter()
            .filter_map(|event| match event {
                Event::Progress(p) => match p.step {
                    Step::Cache(event) => Some((event, p.to_string())),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        details(unique.stream(Input::new()).collect().await),
        [
            (CacheEvent::Miss, "miss".to_owned()),
            (
                CacheEvent::NotStored(NotStoredReason::VariesOnEverything),
                "not stored: the response varies on every request (Vary: *)".to_owned()
            )
        ]
    );
    assert_eq!(unique.call(Input::new()).await.unwrap(), "response 1");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// Regression: coalescing was per declaration, so members built per request (as in a
/// handler) fetched once each.
#[tokio::test]
async fn members_built_per_request_coalesce_identical_calls() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/prices",
        [Answer::json(200, json!({"eur": 1.08})).delayed(Duration::from_millis(100))],
    );
    let api = Seam::builder(upstream.url()).build().unwrap();
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                // What a handler does: declare the member for this request's user, call it.
                let who = if i % 2 == 0 { "alice" } else { "bob" };
                let prices = api
                    .as_principal(who)
                    .get("/prices")
                    .cache("1m")
                    .build()
                    .unwrap();
                prices.call_detailed(Input::new()).await
            })
        })
        .collect();
    let mut served = Vec::new();
    for call in calls {
        let reply = call.await.unwrap().unwrap();
        assert_eq!(reply.data["eur"], 1.08);
        assert_eq!(reply.attempts > 0, reply.served == Served::Network);
        served.push(reply.served);
    }
    // Principal tenancy keeps alice's and bob's entries apart: one fetch each.
    assert_eq!(upstream.hit_count(), 2);
    let fetched = served.iter().filter(|s| **s == Served::Network).count();
    assert_eq!(fetched, 2, "{served:?}");
    // The others shared a fetch in flight (or, if they started late, hit its entry).
    assert!(
        served
            .iter()
            .all(|s| matches!(s, Served::Network | Served::Coalesced | Served::CacheHit)),
        "{served:?}"
    );
    assert!(served.contains(&Served::Coalesced), "{served:?}");
}

/// A call that waits on an identical call's fetch still ends at its own deadline, with the
/// timeout error its own fetch would have given.
#[tokio::test]
async fn a_coalesced_call_ends_at_its_own_deadline() {
    let upstream = Upstream::start().await;
    upstream.script("/slow", [Answer::hang()]);
    let clock = ManualClock::new();
    let api = Seam::builder(upstream.url())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let patient = api.get("/slow").cache("1m").build().unwrap();
    let leader = tokio::spawn(async move { patient.call(Input::new()).await });
    upstream.wait_for_hits(1).await;
    // Declared per request with a 2 s budget: it joins the leader's fetch.
    let hurried = api.get("/slow").cache("1m").timeout("2s").build().unwrap();
    let follower = tokio::spawn(async move { hurried.call(Input::new()).await });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(!follower.is_finished());
    clock.advance(Duration::from_secs(2));
    let error = follower.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), stitchapi::ErrorKind::Timeout, "{error}");
    assert_eq!(upstream.hit_count(), 1, "the follower sent nothing");
    leader.abort();
}

/// An upstream that answers `/me` with the token it was sent, in whichever of the headers
/// `x-auth-token` and `private-token` carries one, and counts its answers.
async fn whoami_upstream() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::HeaderMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/me",
        axum::routing::get(move |headers: HeaderMap| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let token = ["x-auth-token", "private-token"]
                    .iter()
                    .find_map(|name| headers.get(*name))
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("anonymous")
                    .to_owned();
                axum::Json(json!({ "me": token }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fetches)
}

#[tokio::test]
async fn a_per_user_token_in_any_header_keeps_users_apart() {
    use std::sync::atomic::Ordering;
    for header in ["x-auth-token", "private-token"] {
        let (url, fetches) = whoami_upstream().await;
        let api = Seam::builder(url).cache("1m").build().unwrap();
        let me = api.get("/me").build().unwrap();
        let call = |token: &'static str| {
            let me = me.clone();
            async move {
                me.call(Input::new().header(header, token)).await.unwrap()["me"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        assert_eq!(call("alice-token").await, "alice-token");
        assert_eq!(
            call("bob-token").await,
            "bob-token",
            "{header}: bob got alice's entry"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "{header}");
        // The same user again: a hit each.
        assert_eq!(call("alice-token").await, "alice-token");
        assert_eq!(call("bob-token").await, "bob-token");
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "{header}: the same user is served from the cache"
        );
    }
}

#[tokio::test]
async fn per_user_seams_sharing_a_store_keep_users_apart() {
    use std::sync::atomic::Ordering;
    let (url, fetches) = whoami_upstream().await;
    let store = Arc::new(MemoryStore::new());
    // One seam per user, each with the user's token as a declared header, over one store.
    let me_for = |token: &str| {
        Seam::builder(url.clone())
            .name("accounts")
            .store(store.clone())
            .header("private-token", token)
            .cache("1m")
            .build()
            .unwrap()
            .get("/me")
            .build()
            .unwrap()
    };
    let me = |token: &'static str| {
        let stitch = me_for(token);
        async move { stitch.call(Input::new()).await.unwrap()["me"].clone() }
    };
    assert_eq!(me("alice-token").await, "alice-token");
    assert_eq!(me("alice-token").await, "alice-token");
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "the seams share their entries through the store"
    );
    assert_eq!(me("bob-token").await, "bob-token", "bob got alice's entry");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn headers_the_declaration_ignores_stay_out_of_the_key() {
    let upstream = Upstream::start().await;
    upstream.script("/prices", [Answer::json(200, json!({"eur": 1.08}))]);
    let url = format!("{}/prices", upstream.url());
    // By default a header that differs keeps the calls apart, whatever it is called.
    let strict = Stitch::get(&url).cache("1m").build().unwrap();
    strict
        .call(Input::new().header("x-request-id", "r1"))
        .await
        .unwrap();
    strict
        .call(Input::new().header("x-request-id", "r2"))
        .await
        .unwrap();
    assert_eq!(upstream.hit_count(), 2);
    // The declaration says the request id does not change the response.
    let relaxed = Stitch::get(&url)
        .cache(Cache::ttl("1m").ignore_headers(["X-Request-Id", "traceparent"]))
        .build()
        .unwrap();
    for id in ["r3", "r4", "r5"] {
        relaxed
            .call(
                Input::new()
                    .header("x-request-id", id)
                    .header("traceparent", format!("00-{id}-01")),
            )
            .await
            .unwrap();
    }
    assert_eq!(upstream.hit_count(), 3, "one fetch for every request id");
    // Safe headers (content negotiation) stay out of the key by default, as before: a
    // response that depends on them says so with `Vary`.
    relaxed
        .call(Input::new().header("accept-language", "fr"))
        .await
        .unwrap();
    assert_eq!(upstream.hit_count(), 3);
}

#[tokio::test]
async fn ignored_headers_are_checked_when_the_stitch_is_built() {
    let bad = Stitch::get("https://api.example.com/x")
        .cache(Cache::ttl("1m").ignore_headers(["bad header"]))
        .build()
        .unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("cache.ignore_headers: \"bad header\" is not a valid header name"),
        "{bad}"
    );
    let both = Stitch::get("https://api.example.com/x")
        .cache(
            Cache::ttl("1m")
                .vary(["accept-language"])
                .ignore_headers(["Accept-Language"]),
        )
        .build()
        .unwrap_err();
    assert!(
        both.to_string()
            .starts_with("cache.ignore_headers: \"accept-language\" is also in `vary`"),
        "{both}"
    );
}

#[tokio::test]
async fn an_idempotency_key_the_engine_generates_stays_out_of_the_key() {
    let upstream = Upstream::start().await;
    upstream.script("/search", [Answer::json(200, json!({"hits": 1}))]);
    let search = Stitch::post(format!("{}/search", upstream.url()))
        .cache(Cache::ttl("1m").methods(["POST"]))
        .idempotency(stitchapi::Idempotency::new())
        .build()
        .unwrap();
    let query = || Input::new().json(&json!({"q": "rust"}));
    search.call(query()).await.unwrap();
    search.call(query()).await.unwrap();
    assert_eq!(upstream.hit_count(), 1);
    search.invalidate(query()).await.unwrap();
    search.call(query()).await.unwrap();
    assert_eq!(upstream.hit_count(), 2, "invalidate found the entry");
}
