//! Calling a declared stitch by name with a JSON input, its events handed to a sink as
//! [`EventLine`]s.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stitchapi::{Error, Event, Input, Stitch};

use crate::events::{EventKind, EventLine, now_ms};

/// A call's input as JSON: `{"params": {"id": 7}, "query": {"limit": 5}, "body": {...}}`
/// (every part optional). `stitch run` builds it from `--param`, `--query` and `--json`.
///
/// ```
/// let input: stitchapi_cli::CallInput =
///     serde_json::from_str(r#"{"params": {"id": 7}, "query": {"limit": 5}}"#).unwrap();
/// assert_eq!(input.params["id"], 7);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallInput {
    /// Template variables (`{id}` in the path).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Query parameters.
    #[serde(default)]
    pub query: Map<String, Value>,
    /// The JSON body.
    #[serde(default)]
    pub body: Option<Value>,
}

impl CallInput {
    /// The core's [`Input`].
    pub fn to_input(&self) -> Input {
        let mut input = Input::new();
        for (name, value) in &self.params {
            input = input.param(name.clone(), value.clone());
        }
        for (name, value) in &self.query {
            input = input.query(name.clone(), value.clone());
        }
        if let Some(body) = &self.body {
            input = input.json(body);
        }
        input
    }
}

/// A fresh call id: the process id and a counter (`"4f1c-1"`), unique within a log written
/// by concurrent processes.
pub fn call_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Calls `stitch` (named `name`) with `input`, handing each event to `sink` as it happens;
/// returns the output or the error.
pub async fn call(
    name: &str,
    stitch: &Stitch<Value>,
    input: &CallInput,
    mut sink: impl FnMut(EventLine),
) -> Result<Value, Error> {
    let call = call_id();
    let mut events = stitch.stream(input.to_input());
    let mut outcome = None;
    while let Some(event) = events.next().await {
        if let Some(mut kind) = EventKind::of(&event) {
            if let EventKind::Start { template, .. } = &mut kind {
                *template = stitch.template().as_str().to_owned();
            }
            sink(EventLine {
                ts_ms: now_ms(),
                call: call.clone(),
                stitch: name.to_owned(),
                kind,
            });
        }
        match event {
            Event::Result { data, .. } => outcome = Some(Ok(data)),
            Event::Error { error } => outcome = Some(Err(error)),
            _ => {}
        }
    }
    // The core's stream always ends with a result or an error, then `done`.
    outcome.expect("an event stream ends with a result or an error")
}
