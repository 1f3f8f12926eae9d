//! The event stream and the tracing spans of a call.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use stitchapi::event::{AuthEvent, CircuitEvent, RetryReason, ThrottleEvent};
use stitchapi::testing::ManualClock;
use stitchapi::transport::TransportErrorKind;
use stitchapi::{Auth, Event, Input, OAuth2, Retry, Served, Step, Stitch, Timeout};
use support::{Answer, Upstream};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The tests of this file run one at a time: `tracing` computes a callsite's interest when it
/// is first hit, and a call running in another test while the span test installs its
/// subscriber can leave the attempt span's callsite disabled for it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_stream_tells_the_whole_story_in_order() {
    let _serial = SERIAL.lock().await;
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
            Event::Progress(p) => format!("{:?}#{} {p}", p.phase(), p.attempt),
            Event::Result {
                attempts, served, ..
            } => format!("result after {attempts} from {served:?}"),
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
            "result after 2 from Network",
            "done ok=true"
        ]
    );
    let retry = events.iter().find_map(|e| match e {
        Event::Progress(p) => match p.step {
            Step::Retry { reason, delay } => Some((p.attempt, reason, delay)),
            _ => None,
        },
        _ => None,
    });
    let (attempt, reason, delay) = retry.unwrap();
    assert_eq!(attempt, 1);
    assert_eq!(
        reason,
        RetryReason::Status(http::StatusCode::SERVICE_UNAVAILABLE)
    );
    // The default backoff starts at a few hundred milliseconds, never zero.
    assert!(delay > std::time::Duration::ZERO, "{delay:?}");
    assert!(matches!(
        events.iter().find(|e| matches!(e, Event::Result { .. })),
        Some(Event::Result {
            served: Served::Network,
            ..
        })
    ));
}

#[tokio::test]
async fn a_failed_call_streams_error_then_done() {
    let _serial = SERIAL.lock().await;
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
    let _serial = SERIAL.lock().await;
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

/// The progress steps of one call's events, with their attempt numbers.
fn steps<O>(events: &[Event<O>]) -> Vec<(u32, Step)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Progress(p) => Some((p.attempt, p.step)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn throttle_waits_and_circuit_transitions_are_typed() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    upstream.script("/ok", [Answer::status(200)]);
    upstream.script("/down", [Answer::status(500)]);
    let clock = Arc::new(ManualClock::auto_advance());
    let paced = Stitch::get(format!("{}/ok", upstream.url()))
        .throttle("10/s")
        .clock(clock.clone())
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let first: Vec<_> = paced.stream(Input::new()).collect().await;
    assert_eq!(steps(&first), [(1, Step::Request)]);
    let second: Vec<_> = paced.stream(Input::new()).collect().await;
    let waited = Step::Throttle(ThrottleEvent::Waited(Duration::from_millis(100)));
    assert_eq!(steps(&second), [(1, waited), (1, Step::Request)]);
    assert_eq!(waited.to_string(), "waited 100ms");

    let fragile = Stitch::get(format!("{}/down", upstream.url()))
        .retry(Retry::none())
        .circuit(1, Duration::from_secs(30))
        .clock(clock)
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let opened: Vec<_> = fragile.stream(Input::new()).collect().await;
    assert_eq!(
        steps(&opened),
        [(1, Step::Request), (0, Step::Circuit(CircuitEvent::Opened))]
    );
    let rejected: Vec<_> = fragile.stream(Input::new()).collect().await;
    assert_eq!(
        steps(&rejected),
        [(0, Step::Circuit(CircuitEvent::Rejected))]
    );
    assert_eq!(upstream.hit_count(), 3, "the open circuit sent nothing");
}

#[tokio::test]
async fn a_retry_says_whether_the_transport_or_the_attempt_timeout_failed() {
    let _serial = SERIAL.lock().await;
    // A port nothing listens on: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = Stitch::get(format!("http://127.0.0.1:{port}/x"))
        .retry(2)
        .clock(Arc::new(ManualClock::auto_advance()))
        .timeout(Timeout::none())
        .build()
        .unwrap();
    let events: Vec<_> = refused.stream(Input::new()).collect().await;
    let reasons: Vec<_> = steps(&events)
        .into_iter()
        .filter_map(|(attempt, step)| match step {
            Step::Retry { reason, .. } => Some((attempt, reason)),
            _ => None,
        })
        .collect();
    // How a refused connection is classified is the transport's call (reqwest says
    // `Request` or `Connect` depending on where the failure surfaces).
    assert!(
        matches!(
            reasons[..],
            [(
                1,
                RetryReason::Transport(TransportErrorKind::Connect | TransportErrorKind::Request)
            )]
        ),
        "{reasons:?}"
    );
    assert_eq!(
        RetryReason::Transport(TransportErrorKind::Connect).to_string(),
        "transport error: connect"
    );

    let upstream = Upstream::start().await;
    upstream.script("/hang", [Answer::hang()]);
    // The attempt's timer runs on this clock and ends at once; the upstream never answers.
    let slow = Stitch::get(format!("{}/hang", upstream.url()))
        .retry(2)
        .clock(Arc::new(ManualClock::auto_advance()))
        .timeout(Timeout::none().each(Duration::from_millis(300)))
        .build()
        .unwrap();
    let events: Vec<_> = slow.stream(Input::new()).collect().await;
    let after = Duration::from_millis(300);
    assert!(
        matches!(
            steps(&events)[..],
            [
                (1, Step::Request),
                (1, Step::Retry { reason: RetryReason::AttemptTimeout(t), .. }),
                (2, Step::Request),
            ] if t == after
        ),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::Done {
            ok: false,
            attempts: 2,
            ..
        })
    ));
}

#[tokio::test]
async fn auth_steps_say_what_the_strategy_did() {
    let _serial = SERIAL.lock().await;
    let upstream = Upstream::start().await;
    let token = |value: &str| {
        Answer::json(
            200,
            json!({"access_token": value, "token_type": "Bearer", "expires_in": 3600}),
        )
    };
    upstream.script("/oauth/token", [token("t1"), token("t2")]);
    upstream.script("/reports", [Answer::status(401), Answer::status(200)]);
    let reports = Stitch::get(format!("{}/reports", upstream.url()))
        .auth(Auth::oauth2(OAuth2::client_credentials(
            format!("{}/oauth/token", upstream.url()),
            "demo",
            "s3cret",
        )))
        .clock(Arc::new(ManualClock::new()))
        .build()
        .unwrap();
    let events: Vec<_> = reports.stream(Input::new()).collect().await;
    let auth: Vec<_> = steps(&events)
        .into_iter()
        .filter_map(|(_, step)| match step {
            Step::Auth(event) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(
        auth,
        [
            AuthEvent::TokenRequested,
            AuthEvent::CredentialRefresh,
            AuthEvent::TokenRequested
        ],
        "{events:?}"
    );
    assert!(!format!("{events:?}").contains("s3cret"));
    assert!(matches!(
        events.last(),
        Some(Event::Done {
            ok: true,
            attempts: 1,
            ..
        })
    ));
}
