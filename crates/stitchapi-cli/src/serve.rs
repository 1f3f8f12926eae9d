//! `stitch serve`: the declared stitches behind an HTTP front door (axum).
//!
//! - `POST /stitches/{name}`: the body is the call input as JSON (the [`CallInput`] form,
//!   `{"params": {...}, "query": {...}, "body": ...}`, every part optional, an empty body
//!   meaning no input); the answer is the result JSON (200), or a [`Failure`] JSON with the
//!   status of its kind ([`status_of`]). With `Accept: text/event-stream` the answer is a
//!   stream of server-sent events: one `event` per [`EventLine`] as the
//!   call goes, then `result` (the output JSON) or `error` (the [`Failure`]).
//! - `GET /stitches`: the declared stitches and their inputs (as `stitch describe --json`).
//! - `GET /openapi.json`: an OpenAPI 3.1 description, one path per stitch.
//!
//! Every request calls the same built stitches, so throttles, circuits, caches and tokens
//! are shared by all callers for the life of the process.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use stitchapi::{Error, ErrorKind};
use tokio::sync::mpsc;

use crate::event_log::EventLog;
use crate::events::EventLine;
use crate::failure::Failure;
use crate::{CallInput, Declarations, invoke};

/// The stitches a front door serves, and where their events are logged.
#[derive(Debug)]
pub struct Front {
    /// The loaded declarations (built once, shared by every call).
    pub declarations: Declarations,
    /// The event log, when one was asked for.
    pub log: Option<EventLog>,
}

impl Front {
    /// Calls `name` with `input`, logging its events and handing each to `sink`.
    pub async fn call(
        &self,
        name: &str,
        input: &CallInput,
        mut sink: impl FnMut(&EventLine),
    ) -> Result<Value, CallFailure> {
        let stitch = self
            .declarations
            .stitch(name)
            .map_err(|message| CallFailure::UnknownStitch(Failure::input(message)))?;
        invoke::call(name, stitch, input, |line| {
            if let Some(log) = &self.log {
                log.write(&line);
            }
            sink(&line);
        })
        .await
        .map_err(CallFailure::Call)
    }
}

/// Why a front-door call produced no result.
#[derive(Debug)]
pub enum CallFailure {
    /// No stitch of that name is declared.
    UnknownStitch(Failure),
    /// The call failed.
    Call(Error),
}

impl CallFailure {
    /// The failure as JSON.
    pub fn failure(&self) -> Failure {
        match self {
            CallFailure::UnknownStitch(failure) => failure.clone(),
            CallFailure::Call(error) => Failure::from(error),
        }
    }
}

/// The HTTP status `serve` answers a failed call with:
///
/// | kind | status |
/// |---|---|
/// | `input` (missing template variable, unusable input) | 400 |
/// | `http`, `transport`, `validation` (the upstream's answer broke its schema), `auth` | 502 |
/// | `timeout` | 504 |
/// | `circuit-open` | 503 |
/// | `rate-limited` | 429 (with `Retry-After` when the upstream sent one) |
/// | `config`, `store`, `hook`, anything else | 500 |
///
/// An unknown stitch is 404; a request body that is not a call input is 400.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Input => StatusCode::BAD_REQUEST,
        ErrorKind::Http | ErrorKind::Transport | ErrorKind::Validation | ErrorKind::Auth => {
            StatusCode::BAD_GATEWAY
        }
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The front door's routes over `front`.
///
/// ```no_run
/// # async fn serve() -> std::io::Result<()> {
/// use std::sync::Arc;
/// use stitchapi_cli::Declarations;
/// use stitchapi_cli::serve::{Front, router};
///
/// let declarations = Declarations::load("stitch.toml".as_ref()).expect("a valid file");
/// let app = router(Arc::new(Front { declarations, log: None }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
pub fn router(front: Arc<Front>) -> Router {
    Router::new()
        .route("/stitches", get(list))
        .route("/stitches/{name}", post(call))
        .route("/openapi.json", get(openapi_json))
        .with_state(front)
}

async fn list(State(front): State<Arc<Front>>) -> Json<Vec<crate::declarations::StitchInputs>> {
    let declarations = &front.declarations;
    Json(
        declarations
            .stitches
            .keys()
            .filter_map(|name| declarations.inputs(name).ok())
            .collect(),
    )
}

async fn openapi_json(State(front): State<Arc<Front>>) -> Json<Value> {
    Json(openapi(&front.declarations))
}

async fn call(
    State(front): State<Arc<Front>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let input = match parse_input(&body) {
        Ok(input) => input,
        Err(failure) => return (StatusCode::BAD_REQUEST, Json(failure)).into_response(),
    };
    if let Err(message) = front.declarations.stitch(&name) {
        return (StatusCode::NOT_FOUND, Json(Failure::input(message))).into_response();
    }
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if wants_events {
        return stream_call(front, name, input).into_response();
    }
    match front.call(&name, &input, |_| {}).await {
        Ok(value) => Json(value).into_response(),
        Err(failure) => failure_response(&failure),
    }
}

fn parse_input(body: &[u8]) -> Result<CallInput, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CallInput::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        Failure::input(format!(
            "the request body is not a call input ({e}). Fix: send JSON such as \
             {{\"params\": {{\"id\": 7}}, \"query\": {{\"limit\": 5}}, \"body\": {{...}}}}"
        ))
    })
}

fn failure_response(failure: &CallFailure) -> Response {
    let status = match failure {
        CallFailure::UnknownStitch(_) => StatusCode::NOT_FOUND,
        CallFailure::Call(error) => status_of(error.kind()),
    };
    let mut response = (status, Json(failure.failure())).into_response();
    if let CallFailure::Call(error) = failure
        && let Some(wait) = error.retry_after()
        && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Aborts the call's task when the client goes away (the stream is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn stream_call(front: Arc<Front>, name: String, input: CallInput) -> impl IntoResponse {
    let (sender, receiver) = mpsc::unbounded_channel::<SseEvent>();
    let task = tokio::spawn(async move {
        let outcome = front
            .call(&name, &input, |line| {
                let _ = sender.send(sse_json("event", line));
            })
            .await;
        let last = match outcome {
            Ok(value) => sse_json("result", &value),
            Err(failure) => sse_json("error", &failure.failure()),
        };
        let _ = sender.send(last);
    });
    let events = futures_util::stream::unfold(
        (receiver, AbortOnDrop(task)),
        |(mut receiver, guard)| async move {
            let event = receiver.recv().await?;
            Some((Ok::<_, Infallible>(event), (receiver, guard)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn sse_json(name: &str, value: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_default())
}

/// The OpenAPI 3.1 description of the declared stitches: one `POST /stitches/{name}` per
/// stitch, its request body schema from its inputs, its response schema from its declared
/// output schema.
pub fn openapi(declarations: &Declarations) -> Value {
    let mut paths = Map::new();
    for name in declarations.stitches.keys() {
        let Ok(inputs) = declarations.inputs(name) else {
            continue;
        };
        paths.insert(
            format!("/stitches/{name}"),
            json!({
                "post": {
                    "operationId": name,
                    "summary": format!("{} {}", inputs.method, inputs.template),
                    "requestBody": {
                        "required": !inputs.params.is_empty(),
                        "content": {"application/json": {"schema": inputs.input_schema()}},
                    },
                    "responses": {
                        "200": {
                            "description": "The result (JSON), or with Accept: text/event-stream \
                                            the call's events then `result` or `error`",
                            "content": {
                                "application/json": {"schema": inputs.output_schema()},
                                "text/event-stream": {"schema": {"type": "string"}},
                            },
                        },
                        "default": {
                            "description": "The call failed",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Failure"}
                            }},
                        },
                    },
                }
            }),
        );
    }
    let title = declarations
        .file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stitch.toml".to_owned());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("stitch serve: {title}"),
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {"schemas": {"Failure": {
            "type": "object",
            "required": ["kind", "message"],
            "properties": {
                "kind": {"type": "string", "description": "http, timeout, validation, input, ..."},
                "message": {"type": "string"},
                "upstream_status": {"type": "integer"},
            },
        }}},
    })
}
