//! The stitchapi quickstart: `cargo run --example quickstart`.
//!
//! Starts a local API that misbehaves on purpose, declares a seam with retry, timeout and
//! typed validation on the default in-memory store, and shows what each call went through:
//! a retry, a validation error with its JSON path, a timeout, a cached call, a throttled
//! burst and an OAuth2-protected call.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use stitchapi::{Auth, Backoff, Event, Input, OAuth2, Phase, Retry, Seam, Step, Stitch, Timeout};
use stitchapi_examples::DemoUpstream;

#[derive(Debug, Deserialize, Serialize)]
struct User {
    id: u64,
    name: String,
    email: String,
}

/// Runs one call and prints its events as they happen, and its output as JSON.
async fn show<O: Serialize + Send + 'static>(title: &str, stitch: &Stitch<O>, input: Input) {
    println!("\n== {title}");
    let mut events = stitch.stream(input);
    while let Some(event) = events.next().await {
        match event {
            Event::Start { method, url, .. } => println!("   {method} {}", url.path()),
            Event::Progress(p) => match p.step {
                Step::Retry { reason, delay } => println!(
                    "   attempt {} failed ({reason}), retrying in {}ms",
                    p.attempt,
                    delay.as_millis()
                ),
                _ if matches!(p.phase(), Phase::Cache | Phase::Throttled | Phase::Auth) => {
                    println!("   {:?}: {p}", p.phase())
                }
                _ => {}
            },
            Event::Result {
                data,
                attempts,
                served,
                ..
            } => {
                let json = serde_json::to_string(&data).unwrap_or_default();
                println!("   ok ({served:?}, {attempts} attempt(s)): {json}")
            }
            Event::Error { error } => println!("   error [{:?}]: {error}", error.kind()),
            Event::Done { elapsed, .. } => println!("   took {}ms", elapsed.as_millis()),
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = DemoUpstream::start().await?;
    println!("demo API listening on {}", upstream.url());

    // One seam: base URL, shared headers, retry and timeout defaults, in-memory store.
    let api = Seam::builder(upstream.url())
        .header("x-app", "quickstart")
        .retry(
            Retry::attempts(3)
                .backoff(Backoff::ExpoJitter)
                .base("100ms"),
        )
        .timeout(Timeout::total("3s").each("1s"))
        .build()?;

    let get_user = api.get("/users/{id}").output::<User>().build()?;
    let list_users = api
        .get("/users")
        .output::<Vec<User>>()
        .pick("data")
        .build()?;
    let slow = api
        .get("/slow")
        .timeout(Timeout::total("600ms").each("300ms"))
        .build()?;

    show(
        "a flaky endpoint: the first attempt gets 503, the retry succeeds",
        &get_user,
        Input::new().param("id", 7),
    )
    .await;
    show(
        "a response that breaks the contract: the error names the JSON path",
        &list_users,
        Input::new(),
    )
    .await;
    show(
        "an endpoint slower than the per-attempt timeout",
        &slow,
        Input::new(),
    )
    .await;

    // A cached call: the second one is served from the store without touching the network.
    let prices = api.get("/prices").cache("1m").build()?;
    show("a cached endpoint, first call", &prices, Input::new()).await;
    show("the same call again", &prices, Input::new()).await;

    // A throttled burst: five calls at "5/s" are spaced 200 ms apart.
    let paced = api.get("/prices").name("paced").throttle("5/s").build()?;
    println!("\n== a burst of five calls throttled to 5/s");
    let burst = std::time::Instant::now();
    for i in 1..=5 {
        paced.call(Input::new()).await?;
        println!("   call {i} done at {}ms", burst.elapsed().as_millis());
    }

    // An OAuth2-protected call: the token is fetched once, kept in the store, and reused.
    let reports = api
        .get("/reports")
        .auth(Auth::oauth2(OAuth2::client_credentials(
            format!("{}/oauth/token", upstream.url()),
            "demo",
            "s3cret",
        )))
        .build()?;
    show("an OAuth2-protected endpoint", &reports, Input::new()).await;
    show(
        "the same, with the token from the store",
        &reports,
        Input::new(),
    )
    .await;

    // The plain way to call: a typed value or a typed error.
    let user: User = get_user.call(Input::new().param("id", 8)).await?;
    println!("\nget_user(8) = {user:?}");
    println!("the demo API served {} requests", upstream.requests());
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
