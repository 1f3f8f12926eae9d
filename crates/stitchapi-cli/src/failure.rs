//! A failed call as JSON, the form `serve` and `mcp` answer with:
//! `{"kind": "http", "message": "...", "upstream_status": 503}`.

use serde::{Deserialize, Serialize};
use stitchapi::Error;

use crate::events::kind_name;

/// A failed call: its kind (`http`, `timeout`, `validation`, `input`, ...), the error's
/// message (never a secret, never the URL) and the upstream's status when it answered.
///
/// ```
/// let failure = stitchapi_cli::Failure::input("no stitch named \"x\"");
/// assert_eq!(
///     serde_json::to_string(&failure).unwrap(),
///     r#"{"kind":"input","message":"no stitch named \"x\""}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error kind, kebab-case (`circuit-open`).
    pub kind: String,
    /// What went wrong.
    pub message: String,
    /// The upstream's final status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
}

impl Failure {
    /// An unusable input (unknown stitch, a request that is not a call input).
    pub fn input(message: impl Into<String>) -> Failure {
        Failure {
            kind: "input".to_owned(),
            message: message.into(),
            upstream_status: None,
        }
    }
}

impl From<&Error> for Failure {
    fn from(error: &Error) -> Failure {
        Failure {
            kind: kind_name(error.kind()),
            message: error.to_string(),
            upstream_status: error.status().map(|s| s.as_u16()),
        }
    }
}
