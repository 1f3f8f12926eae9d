//! A fleet of worker processes sharing one store (Redis or Deno KV) and one upstream: the
//! pieces behind the `fleet` example, the fleet tests and the fleet benchmark.
//!
//! - [`WorkerPlan`]: what one worker declares (rate, concurrency, auth, cache, circuit, ...) and
//!   how it calls (callers, calls, duration), passed to the process as JSON;
//! - [`StorePlan`]: the store the workers share: a
//!   [`RedisStore`](stitchapi_redis::RedisStore) or a
//!   [`DenoKvStore`](stitchapi_deno_kv::DenoKvStore) over KV Connect;
//! - [`run_worker`]: the worker itself (the `fleet-worker` binary): builds its seam on that
//!   store, waits for `go` on stdin, calls, prints one JSON
//!   [`Report`] per line;
//! - [`Worker`]: a handle on a running worker process, from the parent's side, and
//!   [`start_fleet`] / [`finish_fleet`] for N of them;
//! - [`FleetUpstream`]: a loopback API that records when each request arrived, from which
//!   worker, and how many were in flight.

mod plan;
mod process;
mod upstream;
mod worker;

pub use plan::{AuthPlan, CallReport, DENO_KV_TOKEN_ENV, Report, StorePlan, WorkerPlan};
pub use process::{Worker, finish_fleet, start_fleet};
pub use upstream::{Arrival, FleetUpstream};
pub use worker::run_worker;
