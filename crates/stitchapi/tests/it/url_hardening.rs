//! Inputs and declarations that would change the endpoint, and secrets written into a URL:
//! checked through whole calls against a real loopback server.

use crate::support;

use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::json;
use stitchapi::store::MemoryStore;
use stitchapi::{ErrorKind, Input, Seam, StatusMatch, Stitch};
use support::{Answer, Upstream};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The tests of this file run one at a time: `tracing` computes a callsite's interest when it
/// is first hit, and a call running in another test while the span test installs its
/// subscriber can leave the call span's callsite disabled for it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------
// Empty path values (issue 9, item 15)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_empty_path_value_is_an_input_error_naming_the_variable() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let base = upstream.url();
    let cases = [
        (Stitch::delete(format!("{base}/users/{{id}}")), "id"),
        (Stitch::delete(format!("{base}/users{{/id}}")), "id"),
        (Stitch::get(format!("{base}/files/{{+path}}")), "path"),
        (Stitch::get(format!("{base}/files/{{name}}.json")), "name"),
        (Stitch::get(format!("{base}/files/report{{.ext}}")), "ext"),
        (Stitch::get(format!("{base}/orgs/{{org,team}}")), "team"),
    ];
    for (builder, name) in cases {
        let stitch = builder.build().unwrap();
        let input = Input::new()
            .param("id", "")
            .param("path", "")
            .param("name", "")
            .param("ext", "")
            .param("org", "acme")
            .param("team", "");
        let error = stitch.call(input).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Input, "{}: {error}", stitch.name());
        assert_eq!(error.attempts(), 0);
        assert!(
            error
                .to_string()
                .contains(&format!("parameter `{name}` is empty")),
            "{}: {error}",
            stitch.name()
        );
        assert!(
            error.to_string().contains("allow_empty"),
            "the error names the fix: {error}"
        );
    }
    // The same values in a list-free, numeric form go through.
    let stitch = Stitch::delete(format!("{base}/users/{{id}}"))
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    stitch.call(Input::new().param("id", 0)).await.unwrap();
    assert_eq!(upstream.hits().len(), 1, "only the valid call was sent");
    assert_eq!(upstream.hits()[0].target, "/users/0");
    assert_eq!(upstream.hits()[0].method, "DELETE");
}

#[tokio::test]
async fn empty_values_keep_their_meaning_in_the_query_and_in_exploded_lists() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let base = upstream.url();
    let send = |template: String, input: Input| {
        let stitch = Stitch::get(template)
            .accept(StatusMatch::when(|_| true))
            .text()
            .build()
            .unwrap();
        async move { stitch.call(input).await.unwrap() }
    };
    send(format!("{base}/search{{?q}}"), Input::new().param("q", "")).await;
    send(
        format!("{base}/search?q={{q}}&page={{page}}"),
        Input::new().param("q", "").param("page", 2),
    )
    .await;
    send(
        format!("{base}/search{{?q}}{{&tags}}"),
        Input::new().param("q", "x").param("tags", json!([""])),
    )
    .await;
    send(
        format!("{base}/p{{/segments*}}"),
        Input::new().param("segments", json!(["a", ""])),
    )
    .await;
    send(format!("{base}/m{{;flag}}"), Input::new().param("flag", "")).await;
    let targets: Vec<_> = upstream.hits().into_iter().map(|hit| hit.target).collect();
    assert_eq!(
        targets,
        [
            "/search?q=",
            "/search?q=&page=2",
            "/search?q=x&tags=",
            "/p/a/",
            "/m;flag",
        ]
    );
}

#[tokio::test]
async fn allow_empty_opts_a_variable_in_on_a_stitch_and_on_a_seam_member() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let stitch = Stitch::get(format!("{}/users/{{id}}", upstream.url()))
        .allow_empty("id")
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    stitch.call(Input::new().param("id", "")).await.unwrap();
    let api = Seam::builder(format!("{}/v1", upstream.url()))
        .build()
        .unwrap();
    let member = api
        .get("/prefix/{+rest}")
        .allow_empty("rest")
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    member.call(Input::new().param("rest", "")).await.unwrap();
    let targets: Vec<_> = upstream.hits().into_iter().map(|hit| hit.target).collect();
    assert_eq!(targets, ["/users/", "/v1/prefix/"]);
    // A name the template does not have is a declaration error naming the field and fix.
    let error = Stitch::get(format!("{}/users/{{id}}", upstream.url()))
        .allow_empty("idd")
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "allow_empty");
    assert!(error.to_string().starts_with("allow_empty: "), "{error}");
    assert!(error.to_string().contains("`idd`"), "{error}");
    assert!(error.to_string().contains("id"), "{error}");

    // The same opt-in from a config file.
    let catalog: stitchapi::config::SeamConfig = toml::from_str(&format!(
        "base_url = \"{}\"\n[stitches.remove]\npath = \"/users/{{id}}\"\nallow_empty = [\"id\"]\n[stitches.strict]\npath = \"/users/{{id}}\"\n",
        upstream.url()
    ))
    .unwrap();
    let catalog = catalog.build().unwrap();
    let from_file = &catalog.stitches["remove"];
    // Sent (the upstream answers 404 to it): not refused as input.
    let sent = from_file
        .call(Input::new().param("id", ""))
        .await
        .unwrap_err();
    assert_eq!(sent.status(), Some(http::StatusCode::NOT_FOUND), "{sent}");
    let strict = catalog.stitches["strict"]
        .call(Input::new().param("id", ""))
        .await
        .unwrap_err();
    assert_eq!(strict.kind(), ErrorKind::Input);
}

// ---------------------------------------------------------------------------------------
// Reserved expansion behind encoded separators (issue 9, item 16)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reserved_expansion_refuses_dot_segments_behind_encoded_separators() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let stitch = Stitch::get(format!("{}/files/{{+path}}/raw", upstream.url()))
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    for value in [
        "..%2fadmin",
        "..%2Fadmin",
        "..%5cadmin",
        "..%5Cadmin",
        "..\\admin",
        "%2e%2e%2fadmin",
        "%2E%2E%5Cadmin",
        "a%2f..%2fadmin",
        "a%2F..",
        "docs/..%2f..%2fetc",
        ".%2fx",
        "..;x%2fadmin",
    ] {
        let error = stitch
            .call(Input::new().param("path", value))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Input, "{value}: {error}");
        assert!(
            error.to_string().contains("dot-segment"),
            "{value}: {error}"
        );
    }
    // Expanded encoded separators turning the template's own dots into a dot-segment.
    let dots = Stitch::get(format!("{}/files/..{{+path}}", upstream.url()))
        .build()
        .unwrap();
    for value in ["%2fadmin", "%5Cadmin"] {
        let error = dots
            .call(Input::new().param("path", value))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Input, "{value}: {error}");
    }
    assert_eq!(upstream.hit_count(), 0, "nothing was sent");
    // Encoded separators without dot-segments, and dots that are not segments, still pass.
    for value in ["a%2fb", "a%5Cb", "...%2fx", "..a%2fb", "v1.2%2F..."] {
        stitch
            .call(Input::new().param("path", value))
            .await
            .unwrap_or_else(|e| panic!("{value}: {e}"));
    }
    let targets: Vec<_> = upstream.hits().into_iter().map(|hit| hit.target).collect();
    assert_eq!(
        targets,
        [
            "/files/a%2fb/raw",
            "/files/a%5Cb/raw",
            "/files/...%2fx/raw",
            "/files/..a%2fb/raw",
            "/files/v1.2%2F.../raw",
        ]
    );
}

#[tokio::test]
async fn path_values_refuse_dot_segments_a_decoding_server_would_see() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let stitch = Stitch::get(format!("{}/users/{{id}}/profile", upstream.url()))
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    // Sent as `..%2Fadmin` / `..%5Cadmin`: a server that decodes first sees `../admin`.
    for value in ["../admin", "..\\admin", "a/../b", "./x"] {
        let error = stitch
            .call(Input::new().param("id", value))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Input, "{value}: {error}");
        assert!(
            error.to_string().contains("dot-segment"),
            "{value}: {error}"
        );
    }
    assert_eq!(upstream.hit_count(), 0);
    for value in ["a/b", "a\\b", ".../x", "%2e%2e"] {
        stitch.call(Input::new().param("id", value)).await.unwrap();
    }
    let targets: Vec<_> = upstream.hits().into_iter().map(|hit| hit.target).collect();
    assert_eq!(
        targets,
        [
            "/users/a%2Fb/profile",
            "/users/a%5Cb/profile",
            "/users/...%2Fx/profile",
            "/users/%252e%252e/profile",
        ]
    );
}

/// Found by `fuzz_template`: `?` or `#` in a `{+…}` value moved the rest of the template's
/// path into the query or the fragment, so another endpoint was called.
#[tokio::test]
async fn a_reserved_value_cannot_end_the_path_before_the_template_does() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let stitch = Stitch::delete(format!("{}/files/{{+path}}/versions?all=1", upstream.url()))
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    for (value, delimiter) in [("a?", "?"), ("a#", "#"), ("docs/x?y=1", "?")] {
        let error = stitch
            .call(Input::new().param("path", value))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Input, "{value}: {error}");
        assert!(
            error
                .to_string()
                .contains(&format!("parameter `path` contains `{delimiter}`")),
            "{error}"
        );
    }
    assert_eq!(upstream.hit_count(), 0);
    stitch
        .call(Input::new().param("path", "docs/a%3Fb"))
        .await
        .unwrap();
    // At the end of a template, `{+…}` keeps its RFC meaning.
    let tail = Stitch::get(format!("{}/files/{{+rest}}", upstream.url()))
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    tail.call(Input::new().param("rest", "a/b?v=2"))
        .await
        .unwrap();
    let targets: Vec<_> = upstream.hits().into_iter().map(|hit| hit.target).collect();
    assert_eq!(
        targets,
        ["/files/docs/a%3Fb/versions?all=1", "/files/a/b?v=2"]
    );
}

// ---------------------------------------------------------------------------------------
// Absolute-URL detection (issue 9, item 18)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_member_path_with_a_url_in_its_query_is_relative() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let api = Seam::builder(format!("{}/v1", upstream.url()))
        .build()
        .unwrap();
    let redirect = api
        .get("/redirect?next=https://x.example/a")
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    redirect.call(Input::new()).await.unwrap();
    let batch = api
        .post("projects/{p}:batchGet?callback=http://cb.example")
        .accept(StatusMatch::when(|_| true))
        .text()
        .build()
        .unwrap();
    batch.call(Input::new().param("p", "p1")).await.unwrap();
    let targets: Vec<_> = upstream.hits().into_iter().map(|hit| hit.target).collect();
    assert_eq!(
        targets,
        [
            "/v1/redirect?next=https://x.example/a",
            "/v1/projects/p1:batchGet?callback=http://cb.example",
        ]
    );
    // Without a seam, such a path is not an absolute URL, and the error says so.
    let error = Stitch::get("/redirect?next=https://x.example")
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "url");
    assert!(error.problem().contains("not an absolute URL"), "{error}");
}

// ---------------------------------------------------------------------------------------
// Secrets written into a URL (issue 9, item 12)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn userinfo_in_a_url_is_refused_pointing_to_basic_auth() {
    let _serial = SERIAL.lock().await;
    for url in [
        "https://user:hunter2@api.example.com/x",
        "https://hunter2@api.example.com/{id}",
        "http://user:hunter2@127.0.0.1:1{/seg}",
    ] {
        let error = Stitch::get(url).build().unwrap_err();
        assert_eq!(error.field(), "url", "{url}");
        let text = format!("{error} {error:?}");
        assert!(text.starts_with("url: "), "{text}");
        assert!(text.contains("Auth::basic"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    let error = Seam::builder("https://user:hunter2@api.example.com/v1")
        .build()
        .unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.starts_with("base_url: "), "{text}");
    assert!(text.contains("Auth::basic"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let builder = Seam::builder("https://user:hunter2@api.example.com/v1");
    assert!(!format!("{builder:?}").contains("hunter2"));
}

type SpanRecord = (String, Vec<(String, String)>);

/// Records every span and its fields as the subscriber sees them.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanRecord>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        let name = format!("{}#{}", attrs.metadata().name(), id.into_u64());
        self.0.lock().unwrap().push((name, fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: Context<'_, S>,
    ) {
        let mut spans = self.0.lock().unwrap();
        let key = format!("#{}", id.into_u64());
        if let Some((_, fields)) = spans.iter_mut().find(|(name, _)| name.ends_with(&key)) {
            values.record(&mut Fields(fields));
        }
    }
}

#[tokio::test]
async fn literal_query_values_never_show_in_names_debug_errors_or_traces() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(500)]);
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let template = format!(
        "{}/items?api_key=SECRET1&sig=SECRET2{{&page}}#frag-SECRET3",
        upstream.url()
    );
    let builder = Stitch::get(template.clone());
    let builder_debug = format!("{builder:?}");
    let stitch = builder.build().unwrap();
    let error = stitch
        .call(Input::new().param("page", 2))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http);
    // The request itself still carries them.
    assert_eq!(
        upstream.hits()[0].target,
        "/items?api_key=SECRET1&sig=SECRET2&page=2"
    );

    let url = error.url().expect("an HTTP error has a URL");
    assert_eq!(url.path(), "/items");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["api_key", "sig", "page"], "the keys stay readable");
    let missing = stitch.call(Input::new().param("page", json!(null)));
    let missing = missing.await.map(|_| ()).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Http, "page is optional");
    let bad = Stitch::get(format!("{}/items?api_key=SECRET1&{{oops", upstream.url()))
        .build()
        .unwrap_err();
    let required = Stitch::get(format!("{}/u/{{id}}?api_key=SECRET1", upstream.url()))
        .build()
        .unwrap()
        .call(Input::new())
        .await
        .unwrap_err();
    assert_eq!(required.kind(), ErrorKind::Input);
    assert!(required.to_string().contains("missing parameter `id`"));

    let name = stitch.name().to_owned();
    assert!(name.starts_with("GET http://127.0.0.1:"), "{name}");
    assert!(name.contains("/items?api_key=…&sig=…{&page}"), "{name}");
    let recorded = spans.0.lock().unwrap().clone();
    let call_span = recorded
        .iter()
        .find(|(span, _)| span.starts_with("stitch.call"))
        .expect("a call span");
    assert!(
        call_span.1.contains(&("stitch".to_owned(), name.clone())),
        "{call_span:?}"
    );
    for (what, text) in [
        ("builder Debug", builder_debug),
        ("stitch Debug", format!("{stitch:?}")),
        ("name()", name),
        ("template Display", stitch.template().to_string()),
        ("template Debug", format!("{:?}", stitch.template())),
        ("error Display", error.to_string()),
        ("error Debug", format!("{error:?}")),
        ("error url()", url.to_string()),
        ("template error", format!("{bad} {bad:?}")),
        (
            "missing-parameter error",
            format!("{required} {required:?}"),
        ),
        ("spans", format!("{recorded:?}")),
    ] {
        for secret in ["SECRET1", "SECRET2", "SECRET3"] {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
    // The raw template stays reachable through its explicit accessor.
    assert_eq!(stitch.template().as_str(), template);
}

#[tokio::test]
async fn seam_members_redact_their_joined_url() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    upstream.script("/v1/items", [Answer::status(404)]);
    let api = Seam::builder(format!("{}/v1", upstream.url()))
        .build()
        .unwrap();
    let member = api.get("/items?token=SECRET1").build().unwrap();
    let error = member.call(Input::new()).await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(404));
    for text in [
        format!("{api:?}"),
        format!("{member:?}"),
        member.name().to_owned(),
        format!("{error:?}"),
        error.url().unwrap().to_string(),
    ] {
        assert!(!text.contains("SECRET1"), "{text}");
    }
    assert!(
        member.name().ends_with("/v1/items?token=…"),
        "{}",
        member.name()
    );
}

#[tokio::test]
async fn stitches_that_differ_only_in_literal_query_values_keep_their_own_state() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    upstream.script("/search", [Answer::status(500)]);
    let store = Arc::new(MemoryStore::new());
    let declare = |kind: &str| {
        Stitch::get(format!("{}/search?type={kind}", upstream.url()))
            .circuit(1, "1h")
            .store(store.clone())
            .build()
            .unwrap()
    };
    let (users, repos) = (declare("user"), declare("repo"));
    assert_eq!(users.name(), repos.name(), "both display as ?type=…");
    let error = users.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http);
    let error = users.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    // The other stitch's circuit is its own: its call reaches the server.
    let error = repos.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Http, "{error}");
    assert_eq!(upstream.hit_count(), 2);
}
