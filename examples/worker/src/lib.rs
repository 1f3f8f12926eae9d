//! A Cloudflare Worker that calls a stitch: the edge product document's first example, and
//! the fixture the `stitchapi-cloudflare` tests run in workerd.
//!
//! `GET /users/{id}` calls `{UPSTREAM}/users/{id}` through a stitch with retry on 503 and
//! expo-jitter backoff, a total and a per-attempt timeout, a bearer token (the `API_TOKEN`
//! binding) and a typed output, over `stitchapi_cloudflare::WorkerTransport`.
//! It answers `200 {"ok":true,"user":…,"attempts":…,"url":…,"redirects":[…]}` (the URLs of the
//! redirects the engine followed) or, when the call fails,
//! `502 {"ok":false,"kind":…,"status":…,"attempts":…,"url":…,"path":…,"message":…}`.
//! Both carry `elapsed_ms`, the call's duration measured in the Worker.
//!
//! Build with `WASM_BINDGEN_BIN=$HOME/.cargo/bin/wasm-bindgen worker-build --release`
//! (see `scripts/edge-tools`); on native targets this crate is empty.

#[cfg(target_arch = "wasm32")]
mod worker_main {
    use std::sync::Arc;
    use std::time::Duration;

    use serde::{Deserialize, Serialize};
    use stitchapi::{Auth, Backoff, Input, Retry, Secret, Stitch, Timeout};
    use stitchapi_cloudflare::WorkerTransport;
    use worker::{Context, Env, Request, Response, Result, event};

    /// The upstream's user, validated on the way in.
    #[derive(Debug, Deserialize, Serialize)]
    struct User {
        id: u64,
        name: String,
        email: String,
    }

    fn millis_now() -> f64 {
        worker::js_sys::Date::now()
    }

    fn get_user(env: &Env) -> Result<Stitch<User>> {
        let upstream = env.var("UPSTREAM")?.to_string();
        let token = env.secret("API_TOKEN")?.to_string();
        Stitch::get(format!("{}/users/{{id}}", upstream.trim_end_matches('/')))
            .output::<User>()
            .retry(
                Retry::attempts(3)
                    .on([http::StatusCode::SERVICE_UNAVAILABLE])
                    .backoff(Backoff::ExpoJitter)
                    .base(Duration::from_millis(100)),
            )
            .timeout(Timeout::total(Duration::from_secs(5)).each(Duration::from_millis(500)))
            .auth(Auth::bearer(Secret::new(token)))
            .transport(Arc::new(WorkerTransport::new()))
            .build()
            .map_err(|e| worker::Error::RustError(e.to_string()))
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let path = req.path();
        let Some(id) = path.strip_prefix("/users/") else {
            return Response::error("not found", 404);
        };
        let stitch = get_user(&env)?;
        let started = millis_now();
        let outcome = stitch.call_detailed(Input::new().param("id", id)).await;
        let elapsed_ms = millis_now() - started;
        match outcome {
            Ok(reply) => Response::from_json(&serde_json::json!({
                "ok": true,
                "user": reply.data,
                "attempts": reply.attempts,
                "url": reply.url.to_string(),
                "redirects": reply.redirects.iter().map(|hop| hop.url.to_string()).collect::<Vec<_>>(),
                "elapsed_ms": elapsed_ms,
            })),
            Err(error) => Ok(Response::from_json(&serde_json::json!({
                "ok": false,
                "kind": error.kind(),
                "status": error.status().map(|status| status.as_u16()),
                "attempts": error.attempts(),
                "url": error.url().map(|url| url.to_string()),
                "path": error.json_path(),
                "message": error.to_string(),
                "elapsed_ms": elapsed_ms,
            }))?
            .with_status(502)),
        }
    }
}
