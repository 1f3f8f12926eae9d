//! What a worker is asked to do, and what it reports back: both JSON.

use serde::{Deserialize, Serialize};
use stitchapi::Secret;

/// The environment variable a Deno KV worker reads its access token from (as Deno does).
pub const DENO_KV_TOKEN_ENV: &str = "DENO_KV_ACCESS_TOKEN";

/// The shared store a fleet's workers build their seams on.
///
/// A plan travels to its worker on the command line, where any local user may read it, so a
/// credential is never part of it: a Deno KV access token is handed to the worker process in
/// its environment ([`DENO_KV_TOKEN_ENV`]) by [`Worker::spawn`](super::Worker::spawn).
///
/// ```
/// use stitchapi_examples::fleet::StorePlan;
///
/// let redis = StorePlan::redis("redis://127.0.0.1:6379/0");
/// let deno_kv = StorePlan::deno_kv("http://127.0.0.1:4512", "the-access-token");
/// let json = serde_json::to_string(&deno_kv).unwrap();
/// assert!(!json.contains("the-access-token"), "{json}");
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorePlan {
    /// A `RedisStore` on `url` (`redis://host:port/db`).
    Redis {
        /// The Redis URL.
        url: String,
    },
    /// A `DenoKvStore` over KV Connect at `url` (`denokv serve`, Deno Deploy).
    DenoKv {
        /// The KV Connect URL.
        url: String,
        /// The access token: never serialised; the parent puts it in the worker's
        /// environment, the worker reads it from there.
        #[serde(skip)]
        token: Option<Secret>,
    },
}

impl StorePlan {
    /// The Redis at `url`.
    pub fn redis(url: impl Into<String>) -> StorePlan {
        StorePlan::Redis { url: url.into() }
    }

    /// The Deno KV database at `url` with its access `token`.
    pub fn deno_kv(url: impl Into<String>, token: impl Into<Secret>) -> StorePlan {
        StorePlan::DenoKv {
            url: url.into(),
            token: Some(token.into()),
        }
    }

    /// The environment a worker on this store needs: the Deno KV access token, if any.
    pub(crate) fn environment(&self) -> Result<Vec<(&'static str, String)>, stitchapi::Error> {
        match self {
            StorePlan::DenoKv {
                token: Some(token), ..
            } => Ok(vec![(DENO_KV_TOKEN_ENV, token.expose()?)]),
            _ => Ok(Vec::new()),
        }
    }
}

/// One worker's declaration and workload.
///
/// The seam is `upstream` with header `x-worker: <id>`, the shared `store`, no retries (so
/// every request the upstream sees is one call), and the options set here; every call is
/// `GET <path>`.
///
/// ```
/// use stitchapi_examples::fleet::{StorePlan, WorkerPlan};
///
/// let redis = StorePlan::redis("redis://127.0.0.1:6379/0");
/// let plan = WorkerPlan::new("w1", redis, "http://127.0.0.1:8080", "/hit")
///     .with_rate("20/s")
///     .with_run_for_ms(3_000);
/// assert_eq!(plan.callers, 1);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerPlan {
    /// Names the worker in the upstream's records (`x-worker`).
    pub id: String,
    /// The shared store.
    pub store: StorePlan,
    /// Take `now` from Redis `TIME` inside the scripts (Redis only: a Deno KV store has no
    /// server time, and a worker asked for it there fails to start).
    #[serde(default)]
    pub server_time: bool,
    /// Shifts this worker's clock (milliseconds, either way), as a badly synced host would.
    #[serde(default)]
    pub clock_skew_ms: i64,
    /// The upstream's base URL.
    pub upstream: String,
    /// The path every call asks for.
    pub path: String,
    /// The seam's throttle rate (`"20/s"`).
    #[serde(default)]
    pub rate: Option<String>,
    /// The seam's concurrency cap.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// The concurrency lease (`"2s"`).
    #[serde(default)]
    pub lease: Option<String>,
    /// Fail open (fall back to the in-process limiter) when the store fails.
    #[serde(default)]
    pub fail_open: bool,
    /// The total timeout of a call (`"2s"`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// How the worker authenticates.
    #[serde(default)]
    pub auth: Option<AuthPlan>,
    /// Cache responses for a minute with fleet-wide coalescing.
    #[serde(default)]
    pub cache: bool,
    /// A circuit breaker: consecutive failures and cooldown.
    #[serde(default)]
    pub circuit: Option<(u32, String)>,
    /// The TTL of the fleet locks (cache fill, token fetch, login) in milliseconds; the
    /// library's default (5 s) when `None`.
    #[serde(default)]
    pub lock_ms: Option<u64>,
    /// Concurrent call loops.
    pub callers: usize,
    /// Calls per loop; unbounded when `None` (then `run_for_ms` or `stop` ends the run).
    #[serde(default)]
    pub calls: Option<usize>,
    /// Stop this long after `go`.
    #[serde(default)]
    pub run_for_ms: Option<u64>,
    /// Pause between two calls of one loop.
    #[serde(default)]
    pub pause_ms: u64,
}

/// How a worker authenticates to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthPlan {
    /// OAuth2 client credentials against `POST /oauth/token`.
    OAuth2,
    /// A cookie session seeded by `POST /login`, for principal `fleet-user`.
    Cookie,
}

impl WorkerPlan {
    /// One caller, unbounded calls, no throttle, auth, cache or circuit.
    pub fn new(
        id: impl Into<String>,
        store: StorePlan,
        upstream: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        WorkerPlan {
            id: id.into(),
            store,
            server_time: false,
            clock_skew_ms: 0,
            upstream: upstream.into(),
            path: path.into(),
            rate: None,
            concurrency: None,
            lease: None,
            fail_open: false,
            timeout: None,
            auth: None,
            cache: false,
            circuit: None,
            lock_ms: None,
            callers: 1,
            calls: None,
            run_for_ms: None,
            pause_ms: 0,
        }
    }

    /// The same plan under another worker id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Takes `now` from Redis `TIME`.
    pub fn with_server_time(mut self, server_time: bool) -> Self {
        self.server_time = server_time;
        self
    }

    /// Runs the worker on a clock `ms` ahead (or behind, when negative) of the host's.
    pub fn with_clock_skew_ms(mut self, ms: i64) -> Self {
        self.clock_skew_ms = ms;
        self
    }

    /// Throttles the seam to `rate`.
    pub fn with_rate(mut self, rate: impl Into<String>) -> Self {
        self.rate = Some(rate.into());
        self
    }

    /// Caps the seam's concurrency, with a lease (`"2s"`).
    pub fn with_concurrency(mut self, limit: u32, lease: impl Into<String>) -> Self {
        self.concurrency = Some(limit);
        self.lease = Some(lease.into());
        self
    }

    /// Falls back to the in-process limiter when the store fails.
    pub fn with_fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Bounds every call (`"2s"`).
    pub fn with_timeout(mut self, total: impl Into<String>) -> Self {
        self.timeout = Some(total.into());
        self
    }

    /// Authenticates every call.
    pub fn with_auth(mut self, auth: AuthPlan) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Caches responses with fleet-wide coalescing.
    pub fn with_cache(mut self) -> Self {
        self.cache = true;
        self
    }

    /// Adds a circuit breaker.
    pub fn with_circuit(mut self, failures: u32, cooldown: impl Into<String>) -> Self {
        self.circuit = Some((failures, cooldown.into()));
        self
    }

    /// Sets the TTL of the fleet locks (cache fill, token fetch, login).
    pub fn with_lock_ms(mut self, ms: u64) -> Self {
        self.lock_ms = Some(ms);
        self
    }

    /// Runs `callers` concurrent loops.
    pub fn with_callers(mut self, callers: usize) -> Self {
        self.callers = callers;
        self
    }

    /// Makes `calls` calls per loop.
    pub fn with_calls(mut self, calls: usize) -> Self {
        self.calls = Some(calls);
        self
    }

    /// Stops `ms` after `go`.
    pub fn with_run_for_ms(mut self, ms: u64) -> Self {
        self.run_for_ms = Some(ms);
        self
    }

    /// Pauses `ms` between two calls of one loop.
    pub fn with_pause_ms(mut self, ms: u64) -> Self {
        self.pause_ms = ms;
        self
    }
}

/// One line of a worker's output.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// The seam is built; the worker waits for `go`.
    Ready,
    /// One call finished.
    Call(CallReport),
    /// The run is over; the process exits next.
    Done,
}

/// How one call went.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CallReport {
    /// Which loop made it.
    pub caller: usize,
    /// Whether it succeeded.
    pub ok: bool,
    /// The final status, when there was one.
    pub status: Option<u16>,
    /// Requests sent (0 when served without one).
    pub attempts: u32,
    /// Where a successful call's response came from (`"Network"`, `"CacheHit"`,
    /// `"FleetFilled"`, `"Coalesced"`: [`stitchapi::Served`] as `Debug`).
    pub served: Option<String>,
    /// Time from start to finish, measured by the worker.
    pub elapsed_ms: f64,
    /// The error's kind (`"Store"`, `"CircuitOpen"`, ...), when it failed.
    pub kind: Option<String>,
    /// The error's message, when it failed.
    pub error: Option<String>,
    /// The cache's progress details (`"miss"`, `"hit (fleet filled)"`, ...).
    pub cache: Vec<String>,
    /// The throttle's progress details (`"store failed ..."` when it fell back).
    pub throttle: Vec<String>,
}
