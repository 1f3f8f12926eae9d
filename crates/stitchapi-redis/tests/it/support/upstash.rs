//! A faithful Upstash REST front in front of a real redis-server, for the tests (no hosted
//! Upstash is reachable here). It implements the documented shapes the store uses:
//! - `POST /` with a JSON array command (the store sends nothing else: no `/pipeline` or
//!   `/multi-exec`, since every verb is one command or one script);
//! - `Authorization: Bearer <token>` on every route (401 `{"error": "Unauthorized"}` otherwise);
//! - replies `{"result": ...}`, or `{"error": "..."}` with status 400 for a command error;
//! - with `Upstash-Encoding: base64`, every string in a result is base64-encoded (integers,
//!   nulls and array structure stay as they are).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Value, json};

struct Front {
    token: String,
    redis: redis::aio::MultiplexedConnection,
}

/// A running front; it stops with the test's runtime.
pub struct UpstashFront {
    pub addr: SocketAddr,
    pub token: String,
}

impl UpstashFront {
    /// Starts a front for the Redis at `redis_url`.
    pub async fn start(redis_url: &str, token: &str) -> UpstashFront {
        let client = redis::Client::open(redis_url).expect("redis url");
        let redis = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis");
        let state = Arc::new(Front {
            token: token.to_owned(),
            redis,
        });
        let app = Router::new().route("/", post(single)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        UpstashFront {
            addr,
            token: token.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn authorized(front: &Front, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == format!("Bearer {}", front.token))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Unauthorized"})),
    )
        .into_response()
}

fn base64_wanted(headers: &HeaderMap) -> bool {
    headers
        .get("upstash-encoding")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("base64"))
}

/// A JSON command array as a redis command; every argument is sent as its string form.
fn to_command(command: &Value) -> Result<redis::Cmd, String> {
    let parts = command
        .as_array()
        .filter(|parts| !parts.is_empty())
        .ok_or("ERR the command must be a non-empty array")?;
    let text = |part: &Value| match part {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err("ERR command arguments must be strings or numbers".to_owned()),
    };
    let mut cmd = redis::cmd(&text(&parts[0])?);
    for part in &parts[1..] {
        cmd.arg(text(part)?);
    }
    Ok(cmd)
}

fn to_json(value: redis::Value, base64: bool) -> Value {
    let string = |bytes: Vec<u8>| {
        if base64 {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    match value {
        redis::Value::Nil => Value::Null,
        redis::Value::Int(n) => json!(n),
        redis::Value::BulkString(bytes) => string(bytes),
        redis::Value::SimpleString(s) => string(s.into_bytes()),
        redis::Value::Okay => string(b"OK".to_vec()),
        redis::Value::Array(items) | redis::Value::Set(items) => Value::Array(
            items
                .into_iter()
                .map(|item| to_json(item, base64))
                .collect(),
        ),
        redis::Value::Double(d) => json!(d),
        redis::Value::Boolean(b) => json!(if b { 1 } else { 0 }),
        other => string(format!("{other:?}").into_bytes()),
    }
}

/// A command error as Redis itself words it (`NOSCRIPT No matching script...`), which is
/// what Upstash passes on.
fn redis_error_text(error: &redis::RedisError) -> String {
    match (error.code(), error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => error.to_string(),
    }
}

async fn run(front: &Front, command: &Value, base64: bool) -> Result<Value, String> {
    let cmd = to_command(command)?;
    let mut connection = front.redis.clone();
    cmd.query_async::<redis::Value>(&mut connection)
        .await
        .map(|value| to_json(value, base64))
        .map_err(|e| redis_error_text(&e))
}

async fn single(
    State(front): State<Arc<Front>>,
    headers: HeaderMap,
    Json(command): Json<Value>,
) -> Response {
    if !authorized(&front, &headers) {
        return unauthorized();
    }
    match run(&front, &command, base64_wanted(&headers)).await {
        Ok(result) => Json(json!({ "result": result })).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response(),
    }
}
