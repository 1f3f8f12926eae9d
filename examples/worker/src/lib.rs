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
mod product;

#[cfg(target_arch = "wasm32")]
mod worker_main {
    use std::sync::Arc;
    use std::time::Duration;

    use serde::{Deserialize, Serialize};
    use stitchapi::store::{DynStore, StitchStore};
    use stitchapi::testing::{ConformanceOptions, store_conformance};
    use stitchapi::{
        Auth, Backoff, Cache, CookieSession, Input, OAuth2, Retry, Secret, Stitch, Tenancy, Timeout,
    };
    use stitchapi_cloudflare::{DurableObjectStore, WorkerTransport, WorkersKvStore};
    use stitchapi_redis::UpstashStore;
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

    /// The store a route names: `kv` (the `KV` namespace) or `do` (the `STITCH_STORE`
    /// Durable Object namespace) or `upstash` (the Upstash store).
    // On wasm32 the Upstash store holds a transport and a clock that are not `Send`, as the
    // core's own wasm32 types; a Worker's isolate is single-threaded.
    #[allow(clippy::arc_with_non_send_sync)]
    fn store(env: &Env, which: &str) -> Result<DynStore> {
        Ok(match which {
            "kv" => Arc::new(WorkersKvStore::new(env.kv("KV")?)),
            "do" => Arc::new(DurableObjectStore::new(env.durable_object("STITCH_STORE")?)),
            "upstash" => Arc::new(upstash(env)?),
            other => return Err(worker::Error::RustError(format!("no store {other:?}"))),
        })
    }

    /// The Upstash store at the `UPSTASH_URL` binding with the `UPSTASH_TOKEN` secret, its
    /// commands sent through the Workers fetch.
    fn upstash(env: &Env) -> Result<UpstashStore> {
        let url = env.var("UPSTASH_URL")?.to_string();
        let token = env.secret("UPSTASH_TOKEN")?.to_string();
        Ok(UpstashStore::new(&url, token)
            .map_err(|e| worker::Error::RustError(e.to_string()))?
            .with_transport(Arc::new(WorkerTransport::new())))
    }

    /// `GET /conformance/{kv|do}`: the store conformance kit against that store, in workerd,
    /// rule by rule: `{"store","passed":[…],"violations":[{"rule","detail"}],"skipped":[[rule,capability]]}`.
    async fn conformance(env: &Env, which: &str) -> Result<Response> {
        let store = store(env, which)?;
        let started = millis_now();
        // On KV every expiry rule waits out the 60 s TTL floor: run its rules at once. The
        // Durable Object store's take 1.5 s one by one, and at once its short-TTL rules would
        // queue behind the Worker's six concurrent subrequests and see their entries expire.
        // Each Durable Object verb is a subrequest of a few milliseconds (tens under load):
        // the expiry rules write with a 500 ms TTL, not the kit's 60 ms, so a rule's two
        // round trips always fit inside its window.
        let options = match which {
            "kv" => ConformanceOptions::new().with_rules_at_once(),
            _ => ConformanceOptions::new().with_ttl(Duration::from_millis(500)),
        };
        let report = store_conformance(&*store, options).await;
        Response::from_json(&serde_json::json!({
            "store": store.name(),
            "passed": report.passed,
            "violations": report.violations.iter().map(|v| serde_json::json!({"rule": v.rule, "detail": v.detail})).collect::<Vec<_>>(),
            "skipped": report.skipped,
            "elapsed_ms": millis_now() - started,
        }))
    }

    /// `GET /throttle/{kv|do}/{id}`: `{UPSTREAM}/users/{id}` through a stitch throttled at
    /// `"10/s"` over that store; a build error (the KV store cannot count) answers
    /// `500 {"ok":false,"build_error":…}`.
    async fn throttled(env: &Env, which: &str, id: &str) -> Result<Response> {
        let upstream = env.var("UPSTREAM")?.to_string();
        let built = Stitch::get(format!("{}/users/{{id}}", upstream.trim_end_matches('/')))
            .name("throttled-user")
            .output::<User>()
            .throttle("10/s")
            .timeout(Timeout::total(Duration::from_secs(20)))
            .store(store(env, which)?)
            .transport(Arc::new(WorkerTransport::new()))
            .build();
        let stitch = match built {
            Ok(stitch) => stitch,
            Err(error) => {
                return Ok(Response::from_json(&serde_json::json!({
                    "ok": false,
                    "build_error": error.to_string(),
                }))?
                .with_status(500));
            }
        };
        answer(stitch.call_detailed(Input::new().param("id", id)).await)
    }

    /// `GET /cached/users/{id}`: `{UPSTREAM}/users/{id}` through a stitch cached for 5
    /// minutes in Workers KV; the answer says whether it came from the cache.
    async fn cached(env: &Env, id: &str) -> Result<Response> {
        let upstream = env.var("UPSTREAM")?.to_string();
        let stitch = Stitch::get(format!("{}/users/{{id}}", upstream.trim_end_matches('/')))
            .name("cached-user")
            .output::<User>()
            .cache(Cache::ttl("5m"))
            .store(store(env, "kv")?)
            .transport(Arc::new(WorkerTransport::new()))
            .build()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        answer(stitch.call_detailed(Input::new().param("id", id)).await)
    }

    /// `GET /shared/cached/users/{id}` and `GET /shared/throttle/{id}`: `{UPSTREAM}/users/{id}`
    /// through a stitch on the Upstash store (`UPSTASH_URL`, `UPSTASH_TOKEN`), declared exactly
    /// as a native process declares it (same name, same URL, same policy), so both share its
    /// state in Redis: `shared-cached-user` is cached for 5 minutes, `shared-throttled-user`
    /// is throttled at `"10/s"`.
    async fn shared(env: &Env, what: &str, id: &str) -> Result<Response> {
        let upstream = env.var("UPSTREAM")?.to_string();
        let builder = Stitch::get(format!("{}/users/{{id}}", upstream.trim_end_matches('/')));
        let builder = match what {
            "cached" => builder
                .name("shared-cached-user")
                .output::<User>()
                .cache(Cache::ttl("5m")),
            _ => builder
                .name("shared-throttled-user")
                .output::<User>()
                .throttle("10/s")
                .timeout(Timeout::total(Duration::from_secs(20))),
        };
        let stitch = builder
            .store(store(env, "upstash")?)
            .transport(Arc::new(WorkerTransport::new()))
            .build()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        answer(stitch.call_detailed(Input::new().param("id", id)).await)
    }

    /// `GET /session/users/{id}`: `{UPSTREAM}/users/{id}` with a cookie session kept in
    /// Workers KV: `POST {UPSTREAM}/login` sets the `session` cookie, once for every request
    /// (one session for the app); a 401 triggers one re-login.
    async fn with_session(env: &Env, id: &str) -> Result<Response> {
        let upstream = env.var("UPSTREAM")?.to_string();
        let upstream = upstream.trim_end_matches('/');
        let transport = Arc::new(WorkerTransport::new());
        let login = Stitch::post(format!("{upstream}/login"))
            .transport(transport.clone())
            .build()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let stitch = Stitch::get(format!("{upstream}/users/{{id}}"))
            .name("session-user")
            .output::<User>()
            .auth(Auth::cookie_session(
                CookieSession::new(login, "session").tenancy(Tenancy::App),
            ))
            .store(store(env, "kv")?)
            .transport(transport)
            .build()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        answer(stitch.call_detailed(Input::new().param("id", id)).await)
    }

    /// `GET /oauth/users/{id}`: `{UPSTREAM}/users/{id}` with an OAuth2 client-credentials
    /// token from `POST {UPSTREAM}/token`, kept in Workers KV.
    async fn with_oauth(env: &Env, id: &str) -> Result<Response> {
        let upstream = env.var("UPSTREAM")?.to_string();
        let upstream = upstream.trim_end_matches('/');
        let stitch = Stitch::get(format!("{upstream}/users/{{id}}"))
            .name("oauth-user")
            .output::<User>()
            .auth(Auth::oauth2(OAuth2::client_credentials(
                format!("{upstream}/token"),
                "edge-client",
                "edge-secret",
            )))
            .store(store(env, "kv")?)
            .transport(Arc::new(WorkerTransport::new()))
            .build()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        answer(stitch.call_detailed(Input::new().param("id", id)).await)
    }

    /// A call's outcome as JSON: `200 {"ok":true,"user","attempts","from_cache"}` or
    /// `502 {"ok":false,"kind","status","message"}`.
    fn answer(outcome: stitchapi::Result<stitchapi::Reply<User>>) -> Result<Response> {
        match outcome {
            Ok(reply) => Response::from_json(&serde_json::json!({
                "ok": true,
                "user": reply.data,
                "attempts": reply.attempts,
                "from_cache": reply.served.is_from_cache(),
            })),
            Err(error) => Ok(Response::from_json(&serde_json::json!({
                "ok": false,
                "kind": error.kind(),
                "status": error.status().map(|status| status.as_u16()),
                "message": error.to_string(),
            }))?
            .with_status(502)),
        }
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let path = req.path();
        match path.as_str() {
            "/edge/users" => return crate::product::bare(req, env).await,
            "/edge/kv/users" => return crate::product::with_kv(req, env).await,
            _ => {}
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            ["conformance", which] => return conformance(&env, which).await,
            ["throttle", which, id] => return throttled(&env, which, id).await,
            ["cached", "users", id] => return cached(&env, id).await,
            ["shared", "cached", "users", id] => return shared(&env, "cached", id).await,
            ["shared", "throttle", id] => return shared(&env, "throttle", id).await,
            ["session", "users", id] => return with_session(&env, id).await,
            ["oauth", "users", id] => return with_oauth(&env, id).await,
            _ => {}
        }
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
