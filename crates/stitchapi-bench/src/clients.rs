//! The clients under comparison, each configured with the same policy: up to 3 attempts on
//! 503 (and the other transient statuses each library retries by default) with a fixed 1 ms
//! wait, a 4 s timeout per attempt and a 10 s total timeout, and the body decoded into
//! [`User`] with serde. Bare reqwest has the per-attempt timeout only and no retry.

use std::fmt;
use std::time::Duration;

use reqwest_middleware::ClientWithMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{Jitter, RetryTransientMiddleware};
use stitchapi::{Backoff, Input, Retry, Stitch, Timeout};
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

use crate::User;

/// The timeout of one attempt.
pub const EACH: Duration = Duration::from_secs(4);
/// The timeout of a whole call, retries included.
pub const TOTAL: Duration = Duration::from_secs(10);
/// The wait before a retry.
pub const RETRY_WAIT: Duration = Duration::from_millis(1);
/// Attempts in total (one call plus two retries).
pub const ATTEMPTS: u32 = 3;

/// One of the clients under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A stitch: retry, total and per-attempt timeouts, typed output.
    Stitchapi,
    /// reqwest 0.13 alone: per-request timeout, `bytes()` then `serde_json::from_slice`.
    Reqwest,
    /// reqwest-middleware 0.5 with reqwest-retry 0.9's `RetryTransientMiddleware`.
    Middleware,
    /// tower 0.5: `Retry` around `Timeout` around `reqwest::Client`, under a total timeout.
    Tower,
}

impl Peer {
    /// Every peer, stitchapi first, bare reqwest second.
    pub const ALL: [Peer; 4] = [
        Peer::Stitchapi,
        Peer::Reqwest,
        Peer::Middleware,
        Peer::Tower,
    ];

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Stitchapi => "stitchapi",
            Peer::Reqwest => "reqwest",
            Peer::Middleware => "reqwest-middleware+retry",
            Peer::Tower => "tower (retry+timeout)",
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// tower's retry policy: up to [`ATTEMPTS`] on a 5xx or an error, [`RETRY_WAIT`] apart.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    retries_left: u32,
}

impl tower::retry::Policy<reqwest::Request, reqwest::Response, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut reqwest::Request,
        result: &mut Result<reqwest::Response, BoxError>,
    ) -> Option<Self::Future> {
        let transient = match result {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        if transient && self.retries_left > 0 {
            self.retries_left -= 1;
            Some(tokio::time::sleep(RETRY_WAIT))
        } else {
            None
        }
    }

    fn clone_request(&mut self, request: &reqwest::Request) -> Option<reqwest::Request> {
        request.try_clone()
    }
}

/// The tower stack: retries of a timed attempt over reqwest (the total timeout wraps the
/// call and its body read, as for reqwest-middleware).
pub type TowerStack = tower::retry::Retry<RetryPolicy, tower::timeout::Timeout<reqwest::Client>>;

/// The four clients, calling `{base}/{route}/{key}`.
pub struct Clients {
    prefix: String,
    stitch: Stitch<User>,
    reqwest: reqwest::Client,
    middleware: ClientWithMiddleware,
    tower: TowerStack,
}

impl fmt::Debug for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Clients {
    /// The clients for `GET {base}/{route}/{key}`; each has its own connection pool.
    pub fn new(base: &str, route: &str) -> Clients {
        let prefix = format!("{base}/{route}/");
        let stitch = Stitch::get(format!("{prefix}{{key}}"))
            .output::<User>()
            .retry(
                Retry::attempts(ATTEMPTS)
                    .on([503u16])
                    .backoff(Backoff::Fixed)
                    .base(RETRY_WAIT),
            )
            .timeout(Timeout::total(TOTAL).each(EACH))
            .build()
            .expect("a valid stitch");
        let middleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(RetryTransientMiddleware::new_with_policy(
                ExponentialBackoff::builder()
                    .retry_bounds(RETRY_WAIT, RETRY_WAIT)
                    .jitter(Jitter::None)
                    .build_with_max_retries(ATTEMPTS - 1),
            ))
            .build();
        let tower = ServiceBuilder::new()
            .retry(RetryPolicy {
                retries_left: ATTEMPTS - 1,
            })
            .timeout(EACH)
            .service(reqwest::Client::new());
        Clients {
            prefix,
            stitch,
            reqwest: reqwest::Client::new(),
            middleware,
            tower,
        }
    }

    /// One call through `peer` for `key`: the decoded user, or why it failed.
    pub async fn call(&self, peer: Peer, key: &str) -> Result<User, String> {
        match peer {
            Peer::Stitchapi => self
                .stitch
                .call(Input::new().param("key", key))
                .await
                .map_err(|e| e.to_string()),
            Peer::Reqwest => {
                let response = self
                    .reqwest
                    .get(format!("{}{key}", self.prefix))
                    .timeout(EACH)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| e.to_string())?;
                decode(response).await
            }
            Peer::Middleware => {
                let call = async {
                    let response = self
                        .middleware
                        .get(format!("{}{key}", self.prefix))
                        .timeout(EACH)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?
                        .error_for_status()
                        .map_err(|e| e.to_string())?;
                    decode(response).await
                };
                tokio::time::timeout(TOTAL, call)
                    .await
                    .map_err(|_| "total timeout".to_owned())?
            }
            Peer::Tower => {
                let url = format!("{}{key}", self.prefix);
                let request = reqwest::Request::new(
                    reqwest::Method::GET,
                    url.parse().map_err(|e: url::ParseError| e.to_string())?,
                );
                // The total timeout wraps the retries; the body is read inside it too.
                let call = async {
                    let response = self
                        .tower
                        .clone()
                        .oneshot(request)
                        .await
                        .map_err(|e| e.to_string())?
                        .error_for_status()
                        .map_err(|e| e.to_string())?;
                    decode(response).await
                };
                tokio::time::timeout(TOTAL, call)
                    .await
                    .map_err(|_| "total timeout".to_owned())?
            }
        }
    }
}

async fn decode(response: reqwest::Response) -> Result<User, String> {
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}
