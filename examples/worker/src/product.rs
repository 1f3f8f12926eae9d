//! The edge product document's two examples in Rust, as the crate README shows them (the
//! README quotes this file; `tests/it/product.rs` in stitchapi-cloudflare runs both).
//! `api.example.com` is the `UPSTREAM` binding here, so the tests can script it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stitchapi::{
    Auth, Backoff, Cache, CookieSession, Input, Retry, Seam, Stitch, Tenancy, Timeout,
};
use stitchapi_cloudflare::{WorkerTransport, WorkersKvStore};
use worker::{Env, Request, Response, Result};

#[derive(Debug, Deserialize, Serialize)]
pub struct User {
    id: u64,
    name: String,
    email: String,
}

fn failed(error: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(error.to_string())
}

fn id_of(req: &Request) -> Result<String> {
    Ok(req
        .url()?
        .query_pairs()
        .find(|(name, _)| name == "id")
        .map_or_else(|| "1".to_owned(), |(_, id)| id.into_owned()))
}

/// The bare Worker: one stitch, called from the fetch handler (`GET /edge/users?id=…`).
pub async fn bare(req: Request, env: Env) -> Result<Response> {
    let api = env.var("UPSTREAM")?.to_string(); // https://api.example.com
    let get_user = Stitch::get(format!("{api}/users/{{id}}"))
        .output::<User>()
        .retry(
            Retry::attempts(3)
                .on([429, 502, 503, 504].map(|s| http::StatusCode::from_u16(s).unwrap()))
                .backoff(Backoff::ExpoJitter),
        )
        .timeout(Timeout::total(Duration::from_secs(10)).each(Duration::from_secs(4)))
        .transport(Arc::new(WorkerTransport::new()))
        .build()
        .map_err(failed)?;
    let user = get_user
        .call(Input::new().param("id", id_of(&req)?))
        .await
        .map_err(failed)?;
    Response::from_json(&user)
}

/// The same Worker with its state in Workers KV: `.store(..)` on the seam, a cookie session
/// and a 5-minute cache (`GET /edge/kv/users?id=…`).
pub async fn with_kv(req: Request, env: Env) -> Result<Response> {
    let api = Seam::builder(env.var("UPSTREAM")?.to_string())
        .store(Arc::new(WorkersKvStore::new(env.kv("MY_KV")?)))
        .transport(Arc::new(WorkerTransport::new()))
        .build()
        .map_err(failed)?;
    // The login stitch: its Set-Cookie seeds the session.
    let login = api.post("/auth/login").build().map_err(failed)?;
    let get_user = api
        .get("/users/{id}")
        .output::<User>()
        .auth(Auth::cookie_session(
            CookieSession::new(login, "session").tenancy(Tenancy::App),
        ))
        .cache(Cache::ttl("5m").tenancy(Tenancy::App))
        .build()
        .map_err(failed)?;
    let user = get_user
        .call(Input::new().param("id", id_of(&req)?))
        .await
        .map_err(failed)?;
    Response::from_json(&user)
}
