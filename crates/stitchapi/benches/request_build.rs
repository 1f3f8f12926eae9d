//! Template expansion and request building, in ns per call.
//!
//! `cargo bench -p stitchapi --bench request_build`. Target: under 2 µs for a 3-parameter
//! template, whole request included.

mod support;

use std::hint::black_box;

use serde_json::Value;
use stitchapi::template::UrlTemplate;
use stitchapi::{Input, Stitch};
use support::per_call;

fn main() {
    let template =
        UrlTemplate::parse("https://api.example.com/orgs/{org}/users/{id}{?fields}").unwrap();
    let vars: Vec<(&str, Value)> = vec![
        ("org", Value::from("acme")),
        ("id", Value::from(12345)),
        ("fields", Value::from("name,email")),
    ];
    let mut out = String::with_capacity(128);
    let expand = per_call(1_000_000, || {
        out.clear();
        template.expand(black_box(&vars), &mut out).unwrap();
        black_box(&out);
    });

    let stitch = Stitch::get("https://api.example.com/orgs/{org}/users/{id}{?fields}")
        .header("x-app", "bench")
        .build()
        .unwrap();
    let build = per_call(200_000, || {
        let input = Input::new()
            .param("org", "acme")
            .param("id", 12345)
            .param("fields", "name,email");
        black_box(stitch.to_request(black_box(input)).unwrap());
    });

    println!("template expansion (3 parameters): {expand:.0} ns/call");
    println!("request build (input + expansion + URL parse + headers): {build:.0} ns/call");
    println!(
        "request build vs the 2 µs budget: {:.2}x of budget",
        build / 2000.0
    );
}
