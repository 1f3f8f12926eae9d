//! # stitchapi
//!
//! Declare an HTTP endpoint once (URL template, method, typed output, retry, timeouts,
//! idempotency, accepted statuses) and call it as a typed, validated, retrying, time-bounded
//! async function. Endpoints that share a base URL and defaults form a [`Seam`]; every piece
//! of mutable state lives behind one [`StitchStore`], in memory by default.
//!
//! ## Declaring and calling
//!
//! A [`Stitch`] is built from a method and an [RFC 6570](template) URL template. Every option
//! is checked by `build()`, which names the field and the fix when something is wrong.
//!
//! ```no_run
//! use std::time::Duration;
//! use http::StatusCode;
//! use stitchapi::{Backoff, Input, Retry, Stitch, Timeout};
//!
//! #[derive(serde::Deserialize)]
//! struct User { id: u64, name: String, email: String }
//!
//! #[derive(serde::Serialize)]
//! struct GetUser { id: u64, expand: Option<String> }
//!
//! # async fn demo() -> stitchapi::Result<()> {
//! let get_user = Stitch::get("https://api.example.com/users/{id}")
//!     .output::<User>()
//!     .retry(
//!         Retry::attempts(3)
//!             .on([StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE])
//!             .backoff(Backoff::ExpoJitter),
//!     )
//!     .timeout(Timeout::total(Duration::from_secs(10)).each(Duration::from_secs(4)))
//!     .build()?;
//!
//! let user = get_user.call(Input::new().param("id", 7)).await?;
//! // Or from a struct: fields fill the template, the rest go to the query.
//! let user = get_user.call_with(&GetUser { id: 7, expand: None }).await?;
//! # Ok(()) }
//! ```
//!
//! Values are typed: times are [`Duration`](std::time::Duration)s, statuses
//! [`StatusCode`](http::StatusCode)s (or `u16`s, [`policy::StatusSpec`]), rates
//! [`throttle::Rate`]s, and headers anything that converts into a
//! [`HeaderName`](http::header::HeaderName) and [`HeaderValue`](http::header::HeaderValue).
//! The string forms of config files and of the TypeScript library are accepted too (`"10s"`,
//! `"1m30s"`, `"10/s"`), but a bare integer is never a duration: `.circuit(5, 30)` does not
//! compile (see [`duration`]).
//!
//! [`Input`] carries template parameters, query parameters (overriding literal `?a=1`
//! defaults in the template; lists as `tag=a&tag=b`, see [`ArrayFormat`]), headers, and a
//! JSON, form or raw body, encoded once so every retry resends the same bytes.
//!
//! Path parameters are always percent-encoded: `../admin`, `a/b`, `x?y#z`, `@evil.com` or a
//! value with CR/LF can never change the host, the path shape or the headers; a dot-segment
//! (`..`, also behind `%2F` or `%5C`) is refused, and so is any expansion that would move the
//! request to another origin. A missing parameter, or an empty value in the path (which would
//! turn `DELETE /users/{id}` into `DELETE /users/`) unless the declaration says
//! `allow_empty("id")`, is an [`ErrorKind::Input`] error before anything is sent.
//!
//! ## Output
//!
//! The output is any `DeserializeOwned` type (default [`serde_json::Value`]), with an optional
//! `pick("data.items")` dot-path and validators for rules serde cannot express; `.text()` and
//! `.bytes()` return the raw body. A decode failure is a [`ErrorKind::Validation`] error that
//! names the JSON path and keeps the status, URL and body:
//!
//! ```text
//! $.data[3].email: invalid type: null, expected a string
//! ```
//!
//! ## Resilience
//!
//! - **Retry** ([`Retry`]): total attempts, the statuses to retry (default 429, 502, 503,
//!   504), a [`Backoff`] curve (`expo-jitter` by default, base 100 ms, max 10 s; also
//!   `fixed`, `expo`, `decorrelated-jitter`). `Retry-After` is honoured (seconds or an
//!   HTTP-date) up to `max_retry_after` (60 s by default: a longer one fails the call at once
//!   with the upstream's answer), and never slept past the total deadline: a wait that would
//!   cross it fails at once with a timeout error.
//! - **Only safe retries of failures**: transport errors and per-attempt timeouts are retried
//!   only for idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS, TRACE, QUERY), or when the stitch
//!   carries an idempotency key or opts in with `retry_non_idempotent(true)`. A blind POST
//!   retry could duplicate a write. A failure the same request would meet again (a body over
//!   the size limit, a redirect loop) is not retried: the engine retries exactly the failures
//!   [`Error::is_retryable`] calls retryable.
//! - **Idempotency keys** ([`Idempotency`]): `idempotency(Idempotency::new())` adds a UUID v4
//!   `Idempotency-Key` to writes, stable across the retries of one call.
//! - **Timeouts** ([`Timeout`]): `total` bounds the whole call (30 s unless declared;
//!   `Timeout::none()` lifts it); `each` bounds one attempt (effectively `min(each, time
//!   left)`), its token fetch or login included. A timed-out attempt is cancelled: its request
//!   future is dropped and the connection closed.
//! - **Verdict**: `accept([StatusCode::NOT_FOUND])` (or `[404]`, or a predicate, [`StatusMatch`]) turns a non-2xx status
//!   into a result; a status both retried and accepted is retried, then accepted on the last
//!   attempt.
//! - **Redirects** are followed by the engine (up to 20, or
//!   [`redirects(Redirects::limit(n))`](policy::Redirects); `Redirects::none()` returns the
//!   `3xx` as the answer). On a cross-origin hop (scheme, host or port differs) only the
//!   [safe headers](headers) are forwarded: `x-api-key`, a session cookie or any custom token
//!   header never reaches another origin. A cookie a redirect sets is sent on the chain's
//!   later hops where it matches (host and path, as RFC 6265 scopes it), as a browser does,
//!   and forgotten when the call ends. [`Reply::url`] is the final URL and
//!   [`Reply::redirects`] the hops on the way; an error's [`Error::url`] is the last URL sent
//!   (after "too many redirects", the message names the next one).
//! - **Compressed responses** (feature `compression`, on by default; or one of `gzip`,
//!   `brotli`, `zstd`, `deflate`): the reqwest transport sends `Accept-Encoding` and decodes
//!   the body; `max_response_bytes` counts the *decoded* bytes while they stream, so a
//!   compression bomb stops at the limit (a 1 GiB gzip bomb with a 4 MiB limit grows peak
//!   memory by about 5 MiB). The cache stores decoded bodies, so its keys never depend on
//!   the encoding negotiated. On wasm32, `fetch` negotiates and decodes.
//!
//! ## Extension points
//!
//! - **A retry classifier** ([`Retry::classify`], [`policy::RetryClassifier`]) sees each
//!   attempt's response (status, headers, body) or send error and returns
//!   [`RetryDecision`](policy::RetryDecision) `Retry`, `Fail` or `Succeed`, or `None` to leave
//!   the decision to the status lists. It decides what is worth retrying, never how far: a
//!   retry stays within `attempts`, the total deadline and the `Retry-After` cap, and a failed
//!   send of a blind POST is still not retried. `Succeed` returns a non-2xx as the reply, as
//!   `accept` does; `Retry` with no retry left fails with the response.
//! - **Per-attempt hooks**: `on_request` ([`policy::RequestHook`]) edits each attempt's
//!   request (sign it, add a trace header) before the auth strategy adds its credential, so it
//!   never sees one it did not add, and its changes last for that attempt only; `on_response`
//!   ([`policy::ResponseHook`]) observes each attempt's response before the retry decision.
//!   Declared on seams (inherited, run first) and stitches, several in order; a hook's error
//!   fails the call as [`ErrorKind::Hook`], never retried. A stitch without hooks pays
//!   nothing for them.
//! - **[`Stitch::with`]**: a copy of a stitch with some options overridden, sharing the seam,
//!   store, clock, transport and principal.
//!
//! ```
//! use std::time::Duration;
//! use stitchapi::policy::{AttemptOutcome, AttemptRequest, AttemptResponse, RetryDecision};
//! use stitchapi::{Retry, Stitch};
//!
//! let job = Stitch::get("https://api.example.com/jobs/{id}")
//!     .retry(Retry::attempts(10).classify(|outcome: &AttemptOutcome<'_>| match outcome {
//!         AttemptOutcome::Response(r) if r.body().starts_with(br#"{"status":"pending""#) => {
//!             Some(RetryDecision::Retry)
//!         }
//!         _ => None,
//!     }))
//!     .on_request(|request: &mut AttemptRequest<'_>| {
//!         request.headers_mut().insert("x-trace-id", "t-42".parse()?);
//!         Ok(())
//!     })
//!     .on_response(|response: &AttemptResponse<'_>| {
//!         tracing::info!(status = %response.status(), attempt = response.attempt(), "job");
//!         Ok(())
//!     })
//!     .build()?;
//! let patient = job.with(|b| b.timeout(Duration::from_secs(120)))?;
//! # Ok::<(), stitchapi::BuildError>(())
//! ```
//!
//! ## Seams
//!
//! ```no_run
//! use stitchapi::{Input, Seam};
//!
//! #[derive(serde::Deserialize)]
//! struct User { id: u64 }
//!
//! # async fn demo() -> stitchapi::Result<()> {
//! let api = Seam::builder("https://api.example.com").header("x-app", "demo").retry(3).build()?;
//! let list_users = api.get("/users").output::<Vec<User>>().pick("data").build()?;
//! let users = list_users.call(Input::new()).await?;
//! # Ok(()) }
//! ```
//!
//! A seam shares its base URL, headers, retry/timeout defaults, transport, clock and store
//! with its members; a member's own settings win. Relative member paths are appended to the
//! base URL; an absolute URL is used as is.
//!
//! ## Throttle
//!
//! A [`Rate`](throttle::Rate) (`Rate::per_second(n)`, `Rate::new(n, per)`, or `"10/s"`,
//! `"120/m"`, `"100/15m"`) is its spacing: one grant every `per / n`. With
//! the memory store the limiter is in-process (a FIFO concurrency queue and a pacing cell);
//! with a shared store it is fleet-wide (exact pacing through the store's `reserve` cell,
//! concurrency through `lease`/`release`), and so is a host pool on any store. A seam's
//! throttle is one bucket its members share, and a member's own throttle can only tighten it.
//! Waits never pass `timeout.total`: a caller whose grant would come later is refused at once
//! and costs the callers after it nothing. A call cancelled while it waits gives back what it
//! took: its concurrency slot (also a fleet lease still in flight when it was cancelled) and,
//! in the process, its pacing turn; on a fleet store a cancelled caller's turn stays spent,
//! which costs the callers after it at most that caller's deadline. A store that cannot
//! enforce the throttle is refused at build time.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
//! use std::sync::Arc;
//! use http::Method;
//! use stitchapi::testing::{ManualClock, MockResponse, MockTransport};
//! use std::num::NonZeroU32;
//! use stitchapi::throttle::{Rate, Throttle};
//! use stitchapi::time::Clock;
//! use stitchapi::{Input, Seam};
//!
//! let mock = MockTransport::new();
//! mock.route(Method::GET, "/items", [MockResponse::status(200)]);
//! let clock = Arc::new(ManualClock::auto_advance());
//! let api = Seam::builder("https://api.example.com")
//!     .throttle(Throttle::new(Rate::per_second(NonZeroU32::new(10).unwrap())).with_concurrency(4))
//!     .transport(Arc::new(mock))
//!     .clock(clock.clone())
//!     .build()?;
//! let items = api.get("/items").build()?;
//! let start = clock.now();
//! for _ in 0..3 {
//!     items.call(Input::new()).await?;
//! }
//! assert_eq!(clock.now().saturating_duration_since(start).as_millis(), 200);
//! # Ok(()) }
//! ```
//!
//! `Throttle::delegate()` does not throttle: a 429 becomes a [`ErrorKind::RateLimited`] error
//! carrying [`Error::retry_after`], for callers that schedule their own work.
//!
//! Public in [`throttle`]: what a user declares ([`Throttle`](throttle::Throttle), `Rate`, `Pool`,
//! `StoreFailure`) and [`gcra::step`](throttle::gcra::step), which a store's `reserve` mirrors; the
//! limiter that enforces it is crate-private, free to change.
//!
//! ## Circuit breaker
//!
//! `circuit(failures, cooldown)`: after `failures` consecutive service failures (transport
//! errors, timeouts, 5xx, 429 of requests that were sent; a call that ends before its request
//! goes out, on its own deadline in the throttle say, counts for nothing) calls fail fast with [`ErrorKind::CircuitOpen`] without touching
//! the network; after the cooldown exactly one trial call at a time (fleet-wide with a shared
//! store) decides whether it closes. Failures are counted with the store's atomic increment,
//! so concurrent failures across a fleet all count.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
//! use std::sync::Arc;
//! use http::Method;
//! use stitchapi::testing::{MockResponse, MockTransport};
//! use stitchapi::{ErrorKind, Input, Stitch};
//!
//! let mock = MockTransport::new();
//! mock.route(Method::GET, "/down", [MockResponse::status(503)]);
//! let down = Stitch::get("https://api.example.com/down")
//!     .circuit(2, std::time::Duration::from_secs(30))
//!     .transport(Arc::new(mock.clone()))
//!     .build()?;
//! for _ in 0..2 {
//!     down.call(Input::new()).await.unwrap_err();
//! }
//! assert_eq!(down.call(Input::new()).await.unwrap_err().kind(), ErrorKind::CircuitOpen);
//! assert_eq!(mock.request_count(), 2);
//! # Ok(()) }
//! ```
//!
//! Public in [`circuit`]: the [`Circuit`](circuit::Circuit) declaration (settings, config files);
//! the breaker that enforces it is crate-private, free to change.
//!
//! ## Response cache
//!
//! `cache("5m")` (or [`Cache`]) keeps successful, validated responses in the store, keyed by
//! the resolved request (method, normalised URL, body, principal, `vary` headers, and a digest
//! of every header that is not [safe](headers), so two users whose tokens differ never share
//! an entry, whatever header carries them). A response's own `Vary` is learned: each variant
//! (each language, say) is stored and served apart, and `Vary: *` is not stored. Identical
//! concurrent misses make one request, across every member of a seam however it was built;
//! with `Coalesce::Fleet`, one request for the whole fleet, and when it fails the callers
//! waiting on it fail with it rather than fetch one after another. Invalidate one input, a
//! stitch or a whole seam without scans.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
//! use std::sync::Arc;
//! use http::Method;
//! use stitchapi::testing::{MockResponse, MockTransport};
//! use stitchapi::{Input, Stitch};
//!
//! let mock = MockTransport::new();
//! mock.route(Method::GET, "/prices", [MockResponse::json(200, &serde_json::json!({"eur": 1.08}))]);
//! let prices = Stitch::get("https://api.example.com/prices")
//!     .cache("5m")
//!     .transport(Arc::new(mock.clone()))
//!     .build()?;
//! prices.call(Input::new()).await?;
//! prices.call(Input::new()).await?; // served from the store
//! assert_eq!(mock.request_count(), 1);
//! prices.invalidate_all().await?;
//! prices.call(Input::new()).await?;
//! assert_eq!(mock.request_count(), 2);
//! # Ok(()) }
//! ```
//!
//! ## Auth
//!
//! Strategies are values attached to a stitch or seam ([`Auth`]): bearer, API key (header,
//! query or cookie), basic, OAuth2 client credentials (token cached in the store's vault,
//! refreshed early, fetched once per process and per fleet, renewed once on 401 unless another
//! caller already replaced the rejected token), and cookie sessions seeded by a login stitch.
//! Credentials are [`Secret`]s: never in `Debug`, errors or traces. `seam.as_principal("alice")`
//! keeps sessions and cache entries apart per end user, and `vault_key(..)` encrypts the vault
//! at rest (see [Security model](#security-model)).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
//! use std::sync::Arc;
//! use http::Method;
//! use stitchapi::testing::{MockResponse, MockTransport};
//! use stitchapi::{Auth, Input, OAuth2, Seam};
//!
//! let mock = MockTransport::new();
//! mock.route(Method::POST, "/oauth/token", [MockResponse::json(
//!     200,
//!     &serde_json::json!({"access_token": "t1", "expires_in": 3600}),
//! )]);
//! mock.route(Method::GET, "/reports", [MockResponse::status(200)]);
//! let api = Seam::builder("https://api.example.com")
//!     .auth(Auth::oauth2(OAuth2::client_credentials(
//!         "https://api.example.com/oauth/token",
//!         "demo",
//!         stitchapi::Secret::new("s3cret"),
//!     )))
//!     .transport(Arc::new(mock.clone()))
//!     .build()?;
//! let reports = api.get("/reports").build()?;
//! reports.call(Input::new()).await?;
//! reports.call(Input::new()).await?;
//! let requests = mock.requests();
//! assert_eq!(requests.iter().filter(|r| r.uri.path() == "/oauth/token").count(), 1);
//! assert_eq!(requests.last().unwrap().headers["authorization"], "Bearer t1");
//! # Ok(()) }
//! ```
//!
//! ## Errors
//!
//! One [`Error`] with a [`kind`](Error::kind) ([`ErrorKind`]), [`status`](Error::status),
//! [`attempts`](Error::attempts), [`url`](Error::url) and the failing body
//! ([`body_json`](Error::body_json), [`body_bytes`](Error::body_bytes)). Messages follow
//! the reference texts (`HTTP 503`, `timed out after 400ms`). `Debug` and `Display` never print
//! a body, a header value, a query value or a value from a response (a decode error names the
//! JSON path and the types; [`Error::decode_detail`] has the deserializer's full message).
//! [`Error::is_retryable`] says whether trying again later may help; [`Error::store_kind`] and
//! [`Error::transport_kind`] say what a store or the transport reported. `build()` fails with a
//! [`BuildError`] carrying the field, the problem and the fix as data; `?` turns it into an
//! [`Error`] of kind [`ErrorKind::Config`], and [`Error::build_error`] gives it back.
//! Constructors are crate-private: errors come from stitchapi, or from a store or transport
//! through `From<StoreError>` and `From<TransportError>`.
//!
//! ## Security model
//!
//! What the engine guarantees whatever the declarations, the inputs or the network send it,
//! each proven by a regression test through whole calls:
//!
//! - **Headers that cross origins.** One list, [`headers::SAFE_HEADERS`] (content
//!   negotiation, body description, cache directives, `user-agent`), decides redirects, cache
//!   keys and redaction alike. A cross-origin redirect forwards only those; every other header,
//!   however it was set, is dropped for the rest of the chain.
//! - **What enters a cache key.** Method, normalised URL, canonical body, the principal, the
//!   `vary` headers and a digest of every header that is not safe (minus the ones named in
//!   [`Cache::ignore_headers`], which may not name a credential header, and the generated
//!   idempotency key). Values are hashed (xxh64, not a secret: a low-entropy value could be
//!   guessed from a key by whoever can list the store), never stored in clear.
//! - **What is redacted.** Userinfo in a URL is refused at build time (use `Auth::basic`); query
//!   values, userinfo and fragments read `…` wherever a URL or template is displayed (names,
//!   `Debug`, errors, [`Error::url`], events, spans); header values other than safe ones read
//!   `<redacted>` in `Debug`; secrets are [`Secret`]s; decode errors never quote the response.
//! - **Cookies.** A login's cookies follow RFC 6265bis storage rules: a `Domain` that is a
//!   public suffix (the list is compiled in, no fetch at run time) is refused, `Secure` is only
//!   taken from https or loopback, and the `__Secure-` and `__Host-` prefixes are enforced.
//! - **Secrets at rest.** With `vault_key(VaultKey)`, tokens, refresh tokens and cookie jars
//!   are sealed with XChaCha20-Poly1305 (random nonce, bound to their name in the vault): a
//!   shared store hands out no session, and an entry that does not open is fetched or logged in
//!   again, never read as plaintext. Without a key the vault is plaintext JSON (and an entry
//!   sealed by another process reads as absent).
//! - **Remote values.** OAuth2 `expires_in` is clamped to one day (zero or negative: the token
//!   is already expired; a short-lived token is refreshed at half its life), store TTLs to 100 years, `Retry-After` is parsed saturating and
//!   honoured up to `max_retry_after`, and time arithmetic on remote values saturates: no value
//!   can panic, wrap into the past or park a call.
//! - **Defaults that bound every call.** A 30 s total timeout ([`policy::DEFAULT_TOTAL_TIMEOUT`])
//!   covering attempts, backoff, throttle waits, token fetches and logins; `Retry-After` up to
//!   60 s ([`policy::DEFAULT_MAX_RETRY_AFTER`]); backoff bounds of at most an hour. Each can be
//!   changed, and `Debug` of a stitch shows them.
//! - **Inputs.** See [Declaring and calling](#declaring-and-calling): no value changes the
//!   origin or the path shape, an empty path value is refused, and a response body is exactly
//!   one JSON document (trailing content is a validation error).
//! - **Cancellation.** A cancelled call releases what it holds or may hold: a concurrency slot
//!   or fleet lease, an owned fleet lock (also while the store is still answering), a pacing
//!   turn in the process.
//!
//! The parsers that take untrusted input (URL templates and their expansion, durations,
//! rates, `Retry-After`, `Set-Cookie` through the session, config files) are fuzzed by bounded
//! property tests in the test suite.
//!
//! ## The store
//!
//! [`StitchStore`] is the one seam for mutable state: `get`, `set` (with `None` deleting),
//! `increment` (whose TTL is set only by the increment that creates the counter), and the
//! optional `reserve` (GCRA pacing cell with a latest acceptable grant), `lease`/`release`
//! (fleet-wide semaphore) and `create`/`renew_if`/`delete_if` (the conditional writes owned
//! locks are built on), each declared through [`Capabilities`](store::Capabilities), which
//! claim nothing until a backend turns them on. [`MemoryStore`] is the default; the [`store`]
//! module docs are the written contract, which the `testing` feature's conformance kit checks
//! rule by rule.
//!
//! ## Watching a call
//!
//! Each call is a `tracing` span `stitch.call` (fields `stitch`, `method`, `url` with its query
//! values, userinfo and fragment redacted, `status`, `attempts`, `error`) with a child span `stitch.attempt` per attempt
//! (`attempt`, `status`, `wait_ms`, `reason`). [`Stitch::stream`] yields typed [`Event`]s:
//! start, progress, result or error, done. Each [`Progress`] says what happened as a [`Step`]
//! (a request sent, a retry with its [`RetryReason`](event::RetryReason) and delay, a throttle
//! wait, an auth step, a cache hit or miss, a circuit transition), and prints as a short line.
//! [`Reply::served`] says whether a response came from the network, the cache, the fleet or an
//! identical call in flight ([`Served`]).
//!
//! ## Declarations as data
//!
//! Every option has a serde form ([`config`]), so a seam and its stitches can be declared in
//! TOML or JSON. Durations are strings such as `"10s"`, `"250ms"`, `"1.5m"` (or, in a file, a
//! number of milliseconds); an invalid value is an error naming the field, never a silent
//! default.
//!
//! ## Testing
//!
//! With the `testing` feature, the `testing` module provides the store conformance kit, a
//! scripted `MockTransport`, a fleet-scoped memory store, a store with latency (races a
//! zero-latency store hides show up on it) and re-exports [`time::ManualClock`], so retries,
//! backoff and deadlines are checked in virtual time.
//!
//! ## Runtimes and the edge
//!
//! Time comes from an injected [`Clock`](time::Clock): tokio timers on native targets,
//! JavaScript timers on `wasm32`, virtual time in tests. The transport is a trait from a
//! [`TransportRequest`](transport::TransportRequest) (its URL already parsed) to an
//! `http::Response<Bytes>`; [`ReqwestTransport`](transport) (rustls) is the default. The crate builds for `wasm32-unknown-unknown`, where futures are not `Send`
//! ([`runtime`]).
//!
//! ## Public modules
//!
//! The common types are re-exported at the root. Each public module is public for the people
//! named here; everything else (the limiter, the breaker, the cache and flight engines, the
//! pipeline, how an `AuthContext` or `AuthRequest` is built) is crate-private, free to change.
//!
//! | module | public for |
//! |---|---|
//! | [`auth`] | users (strategies, [`Secret`], `VaultKey`) and auth-strategy authors ([`AuthStrategy`], the `AuthRequest` and `AuthContext` it receives, `CredentialId`, `AuthEvent`) |
//! | [`cache`] | users: the [`Cache`] declaration, [`Coalesce`] and their defaults |
//! | [`circuit`] | users and config files: the [`Circuit`](circuit::Circuit) declaration |
//! | [`config`] | config-file users: the serde form of a seam and its stitches |
//! | [`duration`] | users: [`DurationSpec`](duration::DurationSpec), what every time option takes, and its string grammar |
//! | [`error`] | users ([`Error`], [`ErrorKind`], [`BuildError`]) and store/transport authors (`BoxError` sources) |
//! | [`event`] | users: the typed events of [`Stitch::stream`] |
//! | [`headers`] | users and transport authors: the safe-header list that decides redirects, cache keys and redaction |
//! | [`policy`] | users: [`Retry`], [`Timeout`], [`Idempotency`], status matching and the defaults |
//! | [`runtime`] | every implementor: the `MaybeSend`/`MaybeSync` bounds of the public traits and the `BoxFuture` of `Clock::sleep` |
//! | [`store`] | store authors (the [`StitchStore`] contract, capabilities, errors, `normalize_ttl`) and users ([`MemoryStore`], `PrefixedStore`) |
//! | [`template`] | users: the RFC 6570 template a stitch is declared with ([`Stitch::template`]) |
//! | `testing` (feature) | store authors (the conformance kit) and users' tests (`MockTransport`, `ManualClock`) |
//! | [`throttle`] | users ([`Throttle`](throttle::Throttle), [`Rate`](throttle::Rate)) and store authors ([`gcra::step`](throttle::gcra::step), which `reserve` mirrors) |
//! | [`time`] | users (an injected [`Clock`](time::Clock)) and store authors ([`Timestamp`](time::Timestamp), [`timeout`](time::timeout)) |
//! | [`transport`] | transport authors (the [`Transport`](transport::Transport) contract and its errors) and users ([`ReqwestTransport`](transport::ReqwestTransport)) |
//!
//! ## Performance
//!
//! Measured on a 2-core machine, release build, loopback hyper server in the same process
//! (`cargo bench -p stitchapi`; each run compares against the peer in the same process):
//!
//! | benchmark | stitchapi | peer | ratio |
//! |---|---|---|---|
//! | GET + typed decode, retry + total and per-attempt timeouts, sequential, p50 (`overhead`) | 49.2–108.6 µs | bare reqwest 45.1–108.2 µs | 1.00–1.13 (before issue 13, interleaved in the same session: 1.04–1.20; the machine was shared and loaded, so the ratio moves ±5% from run to run) |
//! | same, throughput at 32 / 128 concurrent calls | 32.8–70.1 k/s / 25.1–66.3 k/s | bare reqwest 33.3–74.3 k/s / 25.6–72.1 k/s | 0.93–0.95 / 0.92–0.99 (before issue 13: 0.81–0.85 / 0.75–0.81) |
//! | heap allocations per uncached call, at 1, 32 and 128 concurrent calls (`allocations`) | 54, 17.4 KB, none over 1 KB that bare reqwest does not make | bare reqwest 55, 17.6 KB | before issue 13: 65, 34.2 KB, three more over 1 KB (the largest 10.9 KB) |
//! | template expansion, 3 parameters (`request_build`) | 89–91 ns | before issue 10: 94–95 ns | 0.95 |
//! | cache hit on the memory store, typed decode included (`cached_call`) | 2.7 µs | uncached loopback call 61–102 µs | 23–38x faster |
//! | cache: 1,000 concurrent identical misses, 1 ms fetch (`cache`) | 1 upstream fetch, all served in 2.4–6.7 ms | | |
//! | throttle cost per call on the memory store, no wait: a throttled call minus the same call unthrottled (`throttle`) | 287 ns | governor `check()` 9.8 ns | 29x governor, under the 1 µs budget |
//! | pacing at `"200/s"`, whole calls (`stitchapi-bench` `peers`) | rate error −0.004%, gap stdev 77 µs | governor `until_ready`: −2.7%, 116 µs | |
//! | input + expansion + URL + headers (`Stitch::to_request`) | 0.73–0.76 µs (before issue 10: 0.78–0.80 µs) | budget 2 µs | 0.37 |
//! | 1 MiB compressible JSON, fetched, decoded and deserialised (`compressed`) | gzip 5.84 ms, br 5.52 ms, zstd 5.52 ms, identity 5.22 ms | bare reqwest, same decoders: 5.74, 5.50, 5.48, 5.24 ms | 1.017, 1.003, 1.008, 0.996 |
//!
//! On this machine the sequential ratio moves by up to ±8% from run to run, more than the
//! difference between builds of the engine, so compare runs made back to back. An uncached
//! call without auth, throttle or breaker allocates no future of its own and no copy the
//! transport does not use (the request goes to reqwest as its parsed URL). What separates it
//! from bare reqwest is about 2 µs of CPU per call (`hotloop` under `perf`; profiles in
//! `crates/stitchapi-bench/profiles/`): moving the call's future between layers and the retry
//! and timeout layers themselves; input, template expansion and the per-attempt copies come to
//! under 2% of the call. Against reqwest-middleware, tower and http-cache-reqwest side by side:
//! `cargo bench -p stitchapi-bench --bench peers` (the README's "Performance" section).
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `reqwest` | yes | the default transport |
//! | `rustls` | yes | TLS for reqwest on native targets |
//! | `compression` | yes | `gzip`, `brotli`, `zstd` and `deflate` below: compressed responses asked for and decoded (native; on wasm32 `fetch` decodes) |
//! | `gzip`, `brotli`, `zstd`, `deflate` | via `compression` | one decoder each, for builds that want fewer |
//! | `testing` | no | conformance kit, `MockTransport`, `FleetStore`, `LatencyStore`, `ManualClock` re-export |
#![cfg_attr(docsrs, feature(doc_cfg))]
// On wasm32 there is one thread and the shared trait objects are `?Send` by design.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

// Why each public module is public: the "Public modules" table in the crate docs above.
pub mod auth;
pub mod cache;
pub mod circuit;
pub mod config;
mod cookies;
pub mod duration;
pub mod error;
pub mod event;
mod flight;
pub mod headers;
mod input;
mod output;
mod pipeline;
pub mod policy;
mod query;
mod reply;
pub mod runtime;
mod seam;
mod settings;
mod spec;
mod stitch;
pub mod store;
pub mod template;
mod tenancy;
#[cfg(test)]
mod test_stores;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;
pub mod time;
pub mod transport;

pub use auth::{Auth, AuthStrategy, CookieSession, OAuth2, Secret};
pub use cache::{Cache, Coalesce};
pub use error::{BuildError, Error, ErrorKind, Result};
pub use event::{Event, EventStream, Phase, Progress, Step};
pub use input::Input;
pub use output::OutputValidator;
pub use policy::{Backoff, Idempotency, Retry, StatusMatch, Timeout};
pub use query::ArrayFormat;
pub use reply::{Reply, Served};
pub use seam::{Seam, SeamBuilder};
pub use settings::DEFAULT_MAX_RESPONSE_BYTES;
pub use stitch::{Stitch, StitchBuilder};
pub use store::{MemoryStore, StitchStore, StitchStoreExt};
pub use tenancy::Tenancy;

/// The repository README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
