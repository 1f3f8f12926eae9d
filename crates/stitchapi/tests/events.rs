//! The event stream and the tracing spans of a call.

mod support;

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::json;
use stitchapi::testing::ManualClock;
use stitchapi::{Event, Input, Phase, Stitch, Timeout};
use support::{Answer, Upstream};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[tokio::test]
async fn a_stream_tells_the_whole_story_in_order() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/flaky",
        [Answer::status(503), Answer::json(200, json!({"ok": 1}))],
    );
    let stitch = Stitch::get(format!("{}/flaky", upstream.url()))
        .retry(2)
        .clock(Arc::new(ManualClock::auto_advance()))
        // Sleeps end at once on this clock, so would a timer racing the real upstream: no timeout.
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let events: Vec<Event<serde_json::Value>> = stitch.stream(Input::new()).collect().await;
    let story: Vec<String> = events
        .iter()
        .map(|event| match event {
            Event::Start { .. } => "start".to_owned(),
            Event::Progress(p) => format!("{:?}#{} {}", p.phase, p.attempt, p.detail),
            Event::Result { attempts, .. } => format!("result after {attempts}"),
            Event::Error { error } => format!("error {error}"),
            Event::Done { ok, .. } => format!("done ok={ok}"),
            _ => "other".to_owned(),
        })
        .collect();
    assert_eq!(
        story,
        [
            "start",
            "Request#1 attempt 1",
            "Retry#1 status 503",
            "Request#2 attempt 2",
            "result after 2",
            "done ok=true"
        ]
    );
    let retry = events.iter().find_map(|e| match e {
        Event::Progress(p) if p.phase == Phase::Retry => p.waited,
        _ => None,
    });
    assert!(retry.is_some());
}

#[tokio::test]
async fn a_failed_call_streams_error_then_done() {
    let upstream = Upstream::start().await;
    upstream.script("/down", [Answer::status(500)]);
    let stitch = Stitch::get(format!("{}/down", upstream.url()))
        .build()
        .unwrap();
    let events: Vec<_> = stitch.stream(Input::new()).collect().await;
    assert!(
        matches!(&events[events.len() - 2], Event::Error { error } if error.to_string() == "HTTP 500")
    );
    assert!(matches!(
        events.last(),
        Some(Event::Done {
            ok: false,
            attempts: 1,
            ..
        })
    ));
}

/// A span's name and id (`stitch.call#3`) and its recorded fields.
type SpanRecord = (String, Vec<(String, String)>);

/// Records span names and their fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanRecord>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);
impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
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
        let mut spans = self.0.lock().unwrap();
        spans.push((
            format!("{}#{}", attrs.metadata().name(), id.into_u64()),
            fields,
        ));
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
async fn each_call_is_a_span_with_attempt_children_and_no_secrets() {
    let upstream = Upstream::start().await;
    upstream.script("/items", [Answer::status(503), Answer::status(200)]);
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let stitch = Stitch::get(format!("{}/items?api_key=SECRET", upstream.url()))
        .name("list_items")
        .header("authorization", "Bearer SECRET")
        .retry(2)
        .clock(Arc::new(ManualClock::auto_advance()))
        // Sleeps end at once on this clock, so would a timer racing the real upstream: no timeout.
        .timeout(Timeout::none())
        .build()
        .unwrap();
    stitch.call(Input::new()).await.unwrap();
    let recorded = spans.0.lock().unwrap().clone();
    let text = format!("{recorded:?}");
    assert!(!text.contains("SECRET"), "{text}");
    let calls: Vec<_> = recorded
        .iter()
        .filter(|(n, _)| n.starts_with("stitch.call"))
        .collect();
    let attempts: Vec<_> = recorded
        .iter()
        .filter(|(n, _)| n.starts_with("stitch.attempt"))
        .collect();
    assert_eq!((calls.len(), attempts.len()), (1, 2));
    let call_fields = &calls[0].1;
    assert!(
        call_fields.contains(&("stitch".to_owned(), "list_items".to_owned())),
        "{call_fields:?}"
    );
    assert!(
        call_fields.contains(&("status".to_owned(), "200".to_owned())),
        "{call_fields:?}"
    );
    assert!(
        call_fields.contains(&("attempts".to_owned(), "2".to_owned())),
        "{call_fields:?}"
    );
    assert!(
        call_fields
            .iter()
            .any(|(k, v)| k == "url" && v.ends_with("/items?api_key=…")),
        "{call_fields:?}"
    );
    assert!(
        attempts[0]
            .1
            .contains(&("status".to_owned(), "503".to_owned())),
        "{:?}",
        attempts[0]
    );
    assert!(attempts[0].1.iter().any(|(k, _)| k == "wait_ms"));
}
