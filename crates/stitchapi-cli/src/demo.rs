//! `stitch demo`: the quickstart's misbehaving API ([`DemoUpstream`]) on a loopback port and
//! a declared file run against it ([`DEMO_FILE`], shipped as `examples/demo.toml`), printing
//! what each call went through: a retry, a validation error, a timeout, a cache hit, a
//! throttled burst and an OAuth2 token fetched once.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

pub use crate::demo_api::DemoUpstream;
use crate::events::{EventKind, EventLine};
use crate::failure::Failure;
use crate::{CallInput, Declarations, ExitCode, invoke};

/// The declared file the demo runs (its base URL is replaced by the demo API's).
pub const DEMO_FILE: &str = include_str!("../examples/demo.toml");

/// The address [`DEMO_FILE`] names, replaced by the running demo API's.
pub const DEMO_FILE_BASE: &str = "http://127.0.0.1:8808";

/// The environment variable the demo file reads the OAuth2 client secret from.
pub const DEMO_SECRET_ENV: &str = "STITCH_DEMO_CLIENT_SECRET";

/// The demo API's client secret (public: the demo API accepts only this).
pub const DEMO_SECRET: &str = "s3cret";

/// Runs the demo, printing to stdout; needs [`DEMO_SECRET_ENV`] set to [`DEMO_SECRET`].
pub async fn run() -> ExitCode {
    let upstream = match DemoUpstream::start().await {
        Ok(upstream) => upstream,
        Err(e) => {
            eprintln!("stitch: cannot start the demo API on loopback: {e}");
            return ExitCode::OTHER;
        }
    };
    println!("demo API listening on {}", upstream.url());
    let text = DEMO_FILE.replace(DEMO_FILE_BASE, &upstream.url());
    let declarations = match Declarations::parse(Path::new("demo.toml"), &text) {
        Ok(declarations) => declarations,
        Err(e) => {
            eprintln!("stitch: {e}");
            return ExitCode::CONFIG;
        }
    };
    let user_7 = CallInput {
        params: [("id".to_owned(), Value::from(7))].into_iter().collect(),
        ..CallInput::default()
    };
    let none = CallInput::default();
    let d = &declarations;
    section(
        d,
        "a flaky endpoint: the first attempt gets 503, the retry succeeds",
        "get_user --param id=7",
        &user_7,
    )
    .await;
    section(
        d,
        "a response that breaks its schema: the error names the place",
        "list_users",
        &none,
    )
    .await;
    section(d, "an endpoint slower than its timeouts", "slow", &none).await;
    section(d, "a cached endpoint, first call", "prices", &none).await;
    section(d, "the same call again", "prices", &none).await;
    burst(d).await;
    section(d, "an OAuth2-protected endpoint", "reports", &none).await;
    section(
        d,
        "the same, with the token from the store",
        "reports",
        &none,
    )
    .await;
    println!("\nthe demo API served {} requests", upstream.requests());
    println!("the declared file: examples/demo.toml in the stitchapi-cli crate");
    ExitCode::OK
}

/// A titled call: `command` is the stitch's name and its `stitch run` flags.
async fn section(declarations: &Declarations, title: &str, command: &str, input: &CallInput) {
    println!("\n== {title}");
    println!("   $ stitch run {command}");
    let name = command.split(' ').next().unwrap_or(command);
    show(declarations, name, input).await;
}

/// One call, its events printed as they happen.
async fn show(declarations: &Declarations, name: &str, input: &CallInput) {
    let Ok(stitch) = declarations.stitch(name) else {
        return;
    };
    let outcome = invoke::call(name, stitch, input, |line| print_line(&line)).await;
    match outcome {
        Ok(value) => println!("   result: {value}"),
        Err(error) => {
            let failure = Failure::from(&error);
            println!("   {} error: {}", failure.kind, failure.message)
        }
    }
}

fn print_line(line: &EventLine) {
    match &line.kind {
        EventKind::Retry {
            attempt,
            reason,
            delay_ms,
        } => println!("   attempt {attempt} failed ({reason}), retrying in {delay_ms}ms"),
        EventKind::Cache { detail, .. } => println!("   cache: {detail}"),
        EventKind::Throttle { detail, .. } => println!("   throttle: {detail}"),
        EventKind::Auth { detail } => println!("   auth: {detail}"),
        EventKind::Result {
            status,
            attempts,
            served,
        } => println!("   {status} from {served} after {attempts} attempt(s)"),
        EventKind::Done { elapsed_ms, .. } => println!("   took {elapsed_ms:.0}ms"),
        _ => {}
    }
}

/// Five calls at once to a stitch throttled to 5/s: they are spaced 200 ms apart.
async fn burst(declarations: &Declarations) {
    let Ok(paced) = declarations.stitch("paced") else {
        return;
    };
    println!("\n== a burst of five calls throttled to 5/s");
    println!("   $ stitch run paced --repeat 5 --concurrency 5");
    let started = Instant::now();
    let input = CallInput::default();
    let calls = (1..=5).map(|i| {
        let input = &input;
        async move {
            let outcome = invoke::call("paced", paced, input, |_| {}).await;
            (i, outcome.is_ok(), started.elapsed().as_millis())
        }
    });
    let mut done = futures_util::future::join_all(calls).await;
    done.sort_by_key(|(_, _, at)| *at);
    for (i, ok, at) in done {
        let outcome = if ok { "done" } else { "failed" };
        println!("   call {i} {outcome} at {at}ms");
    }
}
