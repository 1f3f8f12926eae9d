//! One error type for every failure a stitch can report, with a semantic [`ErrorKind`].
//!
//! ```
//! # async fn demo(stitch: stitchapi::Stitch) {
//! use stitchapi::{ErrorKind, Input};
//!
//! match stitch.call(Input::new()).await {
//!     Ok(value) => println!("{value}"),
//!     Err(e) if e.kind() == ErrorKind::Http => {
//!         println!("{} after {} attempts: {:?}", e, e.attempts(), e.body_json())
//!     }
//!     Err(e) => println!("{e}"),
//! }
//! # }
//! ```
//!
//! `Display` says what failed and, for declaration errors, how to fix it. Neither `Display` nor
//! `Debug` ever prints a response body, a credential or a query value: ask for the body with
//! [`Error::body_bytes`] or [`Error::body_json`]. [`Error::url`] is redacted too: query values,
//! userinfo and the fragment are replaced by `…`. A decode error names the JSON path and the
//! expected and found types, not the value; the deserializer's full message, which may quote
//! the response, is behind [`Error::decode_detail`].
//!
//! Beyond the kind, an error says whether trying again may help ([`Error::is_retryable`]),
//! and what the store or transport reported ([`Error::store_kind`],
//! [`Error::transport_kind`]):
//!
//! ```
//! # async fn demo(stitch: stitchapi::Stitch) {
//! use stitchapi::transport::TransportErrorKind;
//!
//! if let Err(e) = stitch.call(stitchapi::Input::new()).await {
//!     if e.transport_kind() == Some(TransportErrorKind::Connect) {
//!         println!("the upstream is down: {e}");
//!     } else if e.is_retryable() {
//!         println!("transient, try again later: {e}");
//!     }
//! }
//! # }
//! ```
//!
//! `build()` fails with a [`BuildError`], which names the field, the problem and the fix as
//! data and converts into [`Error`] with `?`:
//!
//! ```
//! use stitchapi::{ErrorKind, Stitch};
//!
//! let error = Stitch::get("https://api.example.com/users")
//!     .timeout("10x")
//!     .build()
//!     .unwrap_err();
//! assert_eq!(error.field(), "timeout.total");
//! assert!(error.to_string().starts_with("timeout.total: invalid duration \"10x\""));
//!
//! fn declare() -> stitchapi::Result<stitchapi::Stitch> {
//!     Ok(Stitch::get("https://api.example.com/users").timeout("10x").build()?)
//! }
//! let error = declare().unwrap_err();
//! assert_eq!(error.kind(), ErrorKind::Config);
//! assert_eq!(error.build_error().unwrap().field(), "timeout.total");
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use url::Url;

use crate::policy::retry::DEFAULT_RETRY_ON;
use crate::store::{StoreError, StoreErrorKind};
use crate::template::Redacted;
use crate::transport::{TransportError, TransportErrorKind};

/// A boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server answered with a status that is neither 2xx nor accepted by the verdict,
    /// after every allowed retry.
    Http,
    /// The request could not be sent or its response not read (connection refused, reset,
    /// DNS, TLS, a body over the size limit).
    Transport,
    /// The total deadline or a per-attempt timeout ran out.
    Timeout,
    /// The response did not decode into the output type, or a validator rejected it.
    Validation,
    /// The call's input is unusable (a missing template parameter, an unserialisable body);
    /// nothing was sent.
    Input,
    /// A declaration is invalid; reported by `build()`.
    Config,
    /// Authentication failed or could not be attempted.
    Auth,
    /// The circuit breaker is open; nothing was sent.
    CircuitOpen,
    /// The server rate-limited the call and the stitch delegates backoff to its caller.
    RateLimited,
    /// The store failed or lacks a capability the stitch needs.
    Store,
    /// A request or response hook (`on_request`, `on_response`) failed; never retried.
    Hook,
}

/// A declaration `build()` refused: the field, the problem and the fix, as data.
///
/// `Display` prints `"<field>: <problem>. Fix: <fix>"`. It converts into [`Error`] (kind
/// [`ErrorKind::Config`]) with `?`, and [`Error::build_error`] gives it back.
///
/// ```
/// use stitchapi::Stitch;
///
/// let error = Stitch::get("https://api.example.com/users")
///     .max_response_bytes(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(error.field(), "max_response_bytes");
/// assert_eq!(error.problem(), "0 would reject every response");
/// assert_eq!(error.fix(), "use a positive limit such as 16 MiB (16777216)");
/// assert_eq!(
///     error.to_string(),
///     "max_response_bytes: 0 would reject every response. \
///      Fix: use a positive limit such as 16 MiB (16777216)"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}. Fix: {fix}")]
pub struct BuildError {
    field: String,
    problem: String,
    fix: String,
}

impl BuildError {
    pub(crate) fn new(field: &str, problem: impl fmt::Display, fix: impl fmt::Display) -> Self {
        BuildError {
            field: field.to_owned(),
            problem: problem.to_string(),
            fix: fix.to_string(),
        }
    }

    /// The declaration field at fault, as a dotted path (`timeout.total`, `headers.x-app`,
    /// `stitches.get_user.retry.on` in a [config](crate::config) file).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with the field's value.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// How to fix it.
    pub fn fix(&self) -> &str {
        &self.fix
    }

    /// The same error with its field under `scope` (`stitches.get_user.` + `timeout.total`).
    pub(crate) fn within(mut self, scope: &str) -> Self {
        self.field.insert_str(0, scope);
        self
    }
}

impl From<BuildError> for Error {
    fn from(error: BuildError) -> Self {
        let mut converted = Error::new(ErrorKind::Config, error.to_string());
        converted.inner.detail = Detail::Build(Box::new(error));
        converted
    }
}

/// The error of every stitchapi operation.
///
/// Cheap to clone. See the [module docs](self) for an example.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<StatusCode>,
    attempts: u32,
    url: Option<Url>,
    body: Option<Bytes>,
    retry_after: Option<Duration>,
    json_path: Option<String>,
    decode_detail: Option<String>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
    detail: Detail,
}

/// What a failure's origin said beyond its [`ErrorKind`].
#[derive(Clone)]
enum Detail {
    None,
    /// `Config`: the refused declaration.
    Build(Box<BuildError>),
    /// A store's failure.
    Store(StoreErrorKind),
    /// A transport's failure (kind `Transport`, or `Timeout` for the transport's own timer).
    Transport(TransportErrorKind),
}

/// The result type of stitchapi operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                attempts: 0,
                url: None,
                body: None,
                retry_after: None,
                json_path: None,
                decode_detail: None,
                source: None,
                detail: Detail::None,
            }),
        }
    }

    /// A declaration error naming the field, the problem and the fix:
    /// `"<field>: <problem>. Fix: <fix>"` (a [`BuildError`] inside).
    pub(crate) fn config(field: &str, problem: impl fmt::Display, fix: impl fmt::Display) -> Self {
        BuildError::new(field, problem, fix).into()
    }

    /// The [`BuildError`] a `build()` reports: every declaration check below a builder
    /// returns `Error::config`, and the builder hands out its structured part.
    ///
    /// Only `Config` errors reach a builder's boundary (its checks make no call), so the
    /// fallback, which keeps the message whole as the problem, is never taken in practice.
    pub(crate) fn into_build_error(self) -> BuildError {
        match self.inner.detail {
            Detail::Build(build) => *build,
            _ => BuildError::new(
                "declaration",
                self.inner.message,
                "report this as a stitchapi bug: a declaration check failed with a non-declaration error",
            ),
        }
    }

    /// A transport failure the engine itself detected (a redirect it refused to follow).
    pub(crate) fn transport(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        let mut error = Error::new(ErrorKind::Transport, message);
        error.inner.detail = Detail::Transport(kind);
        error
    }

    /// An `Auth` error, for code outside the crate that authenticates: an
    /// [`AuthStrategy`](crate::auth::AuthStrategy) or a
    /// [`SecretSource`](crate::auth::SecretSource). The message says what failed and must not
    /// contain the credential. Every other error is made by stitchapi itself, or converted from
    /// a [`StoreError`] or [`TransportError`] with `?`.
    ///
    /// ```
    /// use stitchapi::auth::Secret;
    /// use stitchapi::{Error, ErrorKind};
    ///
    /// let key = Secret::from_fn(|| Err::<String, _>(Error::auth("the key file is missing")));
    /// let error = key.expose().unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Auth);
    /// assert_eq!(error.to_string(), "the key file is missing");
    /// ```
    pub fn auth(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Auth, message)
    }

    /// An input error (nothing was sent).
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Input, message)
    }

    /// `the <which> hook #<n> failed on attempt <attempt>: <error>`, with the hook's error as
    /// the source.
    pub(crate) fn hook(which: &str, n: usize, attempt: u32, error: BoxError) -> Self {
        Error::new(
            ErrorKind::Hook,
            format!("the {which} hook #{n} failed on attempt {attempt}: {error}"),
        )
        .with_source(error)
    }

    /// `HTTP <status>`, with the failing response's status, body and URL.
    pub(crate) fn http(status: StatusCode, url: Url, body: Bytes) -> Self {
        Error::new(ErrorKind::Http, format!("HTTP {}", status.as_u16()))
            .with_status(status)
            .with_url(url)
            .with_body(body)
    }

    /// `timed out after <N>ms`.
    pub(crate) fn timeout(after: Duration) -> Self {
        Error::new(
            ErrorKind::Timeout,
            format!("timed out after {}ms", after.as_millis()),
        )
    }

    /// `rate limited (HTTP <status>)`: the server asked the caller to back off and the stitch
    /// delegates that to its caller (never retried).
    pub(crate) fn rate_limited(
        status: StatusCode,
        url: Url,
        body: Bytes,
        retry_after: Option<Duration>,
    ) -> Self {
        Error::new(
            ErrorKind::RateLimited,
            format!("rate limited (HTTP {})", status.as_u16()),
        )
        .with_status(status)
        .with_url(url)
        .with_body(body)
        .with_retry_after(retry_after)
    }

    /// A decode or validator failure at `json_path` (`$` is the picked root).
    pub(crate) fn validation(json_path: Option<String>, message: impl fmt::Display) -> Self {
        let text = match &json_path {
            Some(path) => format!("{path}: {message}"),
            None => message.to_string(),
        };
        let mut error = Error::new(ErrorKind::Validation, text);
        error.inner.json_path = json_path;
        error
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The status of the failing response, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// How many attempts were made (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// The final URL (after redirects) of the failing request, if one was sent, redacted:
    /// each query value and the fragment read `…` (`?api_key=…&page=…`, percent-encoded in
    /// [`Url::as_str`], as written by [`Url::query_pairs`]) and userinfo is removed. The
    /// scheme, host, port, path and query keys are as sent.
    ///
    /// ```
    /// # async fn demo(stitch: stitchapi::Stitch) {
    /// if let Err(error) = stitch.call(stitchapi::Input::new()).await {
    ///     if let Some(url) = error.url() {
    ///         println!("{} failed at {}", error, url.path());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn url(&self) -> Option<&Url> {
        self.inner.url.as_ref()
    }

    /// The raw body of the failing response.
    pub fn body_bytes(&self) -> Option<&Bytes> {
        self.inner.body.as_ref()
    }

    /// The body of the failing response parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.inner.body.as_ref()?).ok()
    }

    /// How long the server asked the caller to wait (`Retry-After`), for `RateLimited` errors.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// For `Validation` errors: the JSON path that failed, as `$.data[3].email`.
    pub fn json_path(&self) -> Option<&str> {
        self.inner.json_path.as_deref()
    }

    /// For `Validation` errors from decoding: the deserializer's full message, which may quote
    /// values of the response (`invalid type: string "abc", expected u64 at line 1 column 12`).
    ///
    /// `Display` keeps only the JSON path and the expected and found types
    /// (`$.expires: invalid type: string, expected u64`), so logging an error never copies
    /// response data; ask for this detail where showing the response is acceptable.
    ///
    /// ```
    /// # async fn demo(stitch: stitchapi::Stitch) {
    /// if let Err(error) = stitch.call(stitchapi::Input::new()).await {
    ///     eprintln!("{error}"); // never quotes the body
    ///     if let Some(detail) = error.decode_detail() {
    ///         eprintln!("decode detail (may contain response data): {detail}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn decode_detail(&self) -> Option<&str> {
        self.inner.decode_detail.as_deref()
    }

    /// The message without kind, status or URL: what `Display` prints.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Is this a timeout (total or per attempt)?
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// May the same call succeed if tried again later? True exactly for the failures the
    /// engine retries itself (when the method and the retry policy allow it), and for
    /// `RateLimited`, which asks the caller to come back after [`Error::retry_after`]:
    ///
    /// - [`ErrorKind::Timeout`]: the total deadline, a per-attempt limit or the transport's
    ///   own timer ran out;
    /// - [`ErrorKind::Transport`], except a response body over the size limit
    ///   ([`TransportErrorKind::BodyTooLarge`]) and a redirect the engine refused to follow
    ///   ([`TransportErrorKind::Redirect`]), which the same request meets again;
    /// - [`ErrorKind::Http`] with a status retried by default: 429, 502, 503 or 504
    ///   ([`DEFAULT_RETRY_ON`]), whatever the stitch's
    ///   own `retry.on` list;
    /// - [`ErrorKind::RateLimited`].
    ///
    /// Everything else is false: other statuses, `Validation`, `Input`, `Config`, `Auth`,
    /// `CircuitOpen` (wait for the cooldown instead) and `Store`.
    ///
    /// ```
    /// # async fn demo(stitch: stitchapi::Stitch) {
    /// if let Err(error) = stitch.call(stitchapi::Input::new()).await {
    ///     if error.is_retryable() {
    ///         // requeue the job
    ///     }
    /// }
    /// # }
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Timeout | ErrorKind::RateLimited => true,
            ErrorKind::Transport => !matches!(
                self.transport_kind(),
                Some(TransportErrorKind::BodyTooLarge | TransportErrorKind::Redirect)
            ),
            ErrorKind::Http => self
                .inner
                .status
                .is_some_and(|status| DEFAULT_RETRY_ON.contains(&status.as_u16())),
            _ => false,
        }
    }

    /// For a failure a store reported (kind [`ErrorKind::Store`]): what went wrong in it.
    /// `None` for every other error, and for `Store` errors the engine raises itself (a
    /// cache entry over the store's value size limit).
    ///
    /// ```
    /// # async fn demo(stitch: stitchapi::Stitch) {
    /// use stitchapi::store::StoreErrorKind;
    ///
    /// if let Err(error) = stitch.call(stitchapi::Input::new()).await {
    ///     if error.store_kind() == Some(StoreErrorKind::Unavailable) {
    ///         eprintln!("the store is down: {error}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn store_kind(&self) -> Option<StoreErrorKind> {
        match self.inner.detail {
            Detail::Store(kind) => Some(kind),
            _ => None,
        }
    }

    /// For a failure to send the request or read its response: what went wrong in the
    /// transport. Set on [`ErrorKind::Transport`] errors, and on [`ErrorKind::Timeout`] errors
    /// from the transport's own timer ([`TransportErrorKind::Timeout`]); `None` for every
    /// other error, including timeouts of the stitch's own limits. A failure another process
    /// met on a shared cache fill has no transport kind.
    ///
    /// ```
    /// # async fn demo(stitch: stitchapi::Stitch) {
    /// use stitchapi::transport::TransportErrorKind;
    ///
    /// if let Err(error) = stitch.call(stitchapi::Input::new()).await {
    ///     if error.transport_kind() == Some(TransportErrorKind::Connect) {
    ///         eprintln!("could not connect: {error}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn transport_kind(&self) -> Option<TransportErrorKind> {
        match self.inner.detail {
            Detail::Transport(kind) => Some(kind),
            _ => None,
        }
    }

    /// For a `Config` error: the declaration that was refused, naming the field, the problem
    /// and the fix (what `build()` returns, after `?` turned it into an [`Error`]).
    ///
    /// ```
    /// fn declare() -> stitchapi::Result<stitchapi::Stitch> {
    ///     Ok(stitchapi::Stitch::get("https://api.example.com/").retry(0).build()?)
    /// }
    /// let error = declare().unwrap_err();
    /// assert_eq!(error.build_error().unwrap().field(), "retry.attempts");
    /// ```
    pub fn build_error(&self) -> Option<&BuildError> {
        match &self.inner.detail {
            Detail::Build(build) => Some(build),
            _ => None,
        }
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.inner.status = Some(status);
        self
    }

    pub(crate) fn with_url(mut self, url: Url) -> Self {
        self.inner.url = Some(redact_url(&url));
        self
    }

    pub(crate) fn with_body(mut self, body: Bytes) -> Self {
        self.inner.body = Some(body);
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.inner.attempts = attempts;
        self
    }

    pub(crate) fn with_decode_detail(mut self, detail: String) -> Self {
        self.inner.decode_detail = Some(detail);
        self
    }

    pub(crate) fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.inner.retry_after = wait;
        self
    }

    /// Attaches the underlying cause.
    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(Arc::from(source.into()));
        self
    }

    /// Replaces the URL when it is `secret` (a URL with a credential in its query) by `clean`.
    pub(crate) fn scrub_url(mut self, secret: &Url, clean: &Url) -> Self {
        if self.inner.url.as_ref() == Some(&redact_url(secret)) {
            self.inner.url = Some(redact_url(clean));
        }
        self
    }

    /// Fills in the URL and attempt count where they are not known yet.
    pub(crate) fn in_call(mut self, url: &Url, attempts: u32) -> Self {
        if self.inner.url.is_none() {
            self.inner.url = Some(redact_url(url));
        }
        if self.inner.attempts == 0 {
            self.inner.attempts = attempts;
        }
        self
    }
}

/// A URL for display (traces, `Debug`): query values, userinfo and the fragment read `…`
/// (see [`Redacted`]).
pub(crate) struct RedactedUrl<'a>(pub &'a Url);

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted::url(self.0.as_str()).fmt(f)
    }
}

/// `url` with each query value and the fragment replaced by `…` and its userinfo removed:
/// what [`Error::url`] and events hand out.
pub(crate) fn redact_url(url: &Url) -> Url {
    let mut redacted = Url::parse(&Redacted::url(url.as_str()).to_string()).unwrap_or_else(|_| {
        let mut bare = url.clone();
        bare.set_query(None);
        bare.set_fragment(None);
        bare
    });
    // Userinfo reads `…@` in text; a URL without it says the same more plainly.
    let _ = redacted.set_username("");
    let _ = redacted.set_password(None);
    redacted
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(status) = self.inner.status {
            d.field("status", &status.as_u16());
        }
        d.field("attempts", &self.inner.attempts);
        if let Some(url) = &self.inner.url {
            d.field("url", &format_args!("{}", RedactedUrl(url)));
        }
        if let Some(body) = &self.inner.body {
            d.field("body", &format_args!("<{} bytes>", body.len()));
        }
        if let Some(wait) = self.inner.retry_after {
            d.field("retry_after", &wait);
        }
        if self.inner.decode_detail.is_some() {
            d.field(
                "decode_detail",
                &format_args!("<withheld: Error::decode_detail()>"),
            );
        }
        d.finish()
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        let mut converted = Error::new(ErrorKind::Store, error.to_string());
        converted.inner.detail = Detail::Store(error.kind());
        converted.with_source(error)
    }
}

impl From<TransportError> for Error {
    fn from(error: TransportError) -> Self {
        let kind = error.kind();
        let mut converted = Error::new(
            match kind {
                TransportErrorKind::Timeout => ErrorKind::Timeout,
                _ => ErrorKind::Transport,
            },
            error.to_string(),
        );
        converted.inner.detail = Detail::Transport(kind);
        converted.with_source(error)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_body_or_query() {
        let url = Url::parse("https://api.example.com/users?api_key=SECRET").unwrap();
        let error = Error::http(
            StatusCode::SERVICE_UNAVAILABLE,
            url,
            Bytes::from_static(b"{\"token\":\"SECRET\"}"),
        )
        .with_attempts(3);
        assert_eq!(error.to_string(), "HTTP 503");
        let debug = format!("{error:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("api.example.com/users?api_key=…"), "{debug}");
        assert!(!error.url().unwrap().as_str().contains("SECRET"));
        assert_eq!(
            error.url().unwrap().query_pairs().collect::<Vec<_>>(),
            [("api_key".into(), "…".into())]
        );
        assert_eq!(error.attempts(), 3);
        assert_eq!(error.body_json().unwrap()["token"], "SECRET");
    }

    #[test]
    fn build_errors_carry_field_problem_and_fix_and_print_as_before() {
        let build = BuildError::new(
            "timeout.total",
            "invalid duration \"10x\": unknown unit",
            "write a number with a unit: \"10s\"",
        );
        assert_eq!(build.field(), "timeout.total");
        assert_eq!(build.problem(), "invalid duration \"10x\": unknown unit");
        assert_eq!(build.fix(), "write a number with a unit: \"10s\"");
        let text = "timeout.total: invalid duration \"10x\": unknown unit. \
                    Fix: write a number with a unit: \"10s\"";
        assert_eq!(build.to_string(), text);

        // Into `Error` and back, losslessly; `?` does the first step.
        fn declare(build: BuildError) -> Result<()> {
            Err(build)?
        }
        let error = declare(build.clone()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert_eq!(error.to_string(), text);
        assert_eq!(error.message(), text);
        assert_eq!(error.build_error(), Some(&build));
        assert!(!error.is_retryable());
        assert_eq!(error.clone().into_build_error(), build);

        // A scope prefixes the field only.
        let scoped = build.within("stitches.get_user.");
        assert_eq!(scoped.field(), "stitches.get_user.timeout.total");
        assert_eq!(scoped.to_string(), format!("stitches.get_user.{text}"));

        // Other errors have no build error; the fallback keeps their message whole.
        let input = Error::input("no value for {id}");
        assert_eq!(input.build_error(), None);
        let fallback = input.into_build_error();
        assert_eq!(fallback.problem(), "no value for {id}");
    }

    #[test]
    fn retryable_is_what_the_engine_retries() {
        let url = Url::parse("https://api.example.com/").unwrap();
        let http = |code: u16| {
            Error::http(
                StatusCode::from_u16(code).unwrap(),
                url.clone(),
                Bytes::new(),
            )
        };
        for code in [429, 502, 503, 504] {
            assert!(http(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 404, 409, 500, 501, 505] {
            assert!(!http(code).is_retryable(), "{code}");
        }
        assert!(Error::timeout(Duration::from_secs(1)).is_retryable());
        assert!(
            Error::rate_limited(
                StatusCode::TOO_MANY_REQUESTS,
                url.clone(),
                Bytes::new(),
                None
            )
            .is_retryable()
        );
        for kind in [
            TransportErrorKind::Connect,
            TransportErrorKind::Timeout,
            TransportErrorKind::Request,
            TransportErrorKind::Body,
            TransportErrorKind::Other,
        ] {
            let error = Error::from(TransportError::new(kind, "failed"));
            assert!(error.is_retryable(), "{kind:?}");
        }
        assert!(!Error::from(TransportError::body_too_large(10)).is_retryable());
        assert!(
            !Error::transport(TransportErrorKind::Redirect, "too many redirects").is_retryable()
        );
        let store = StoreError::new("redis", "get", StoreErrorKind::Unavailable, "down");
        assert!(!Error::from(store).is_retryable());
        assert!(!Error::input("bad").is_retryable());
        assert!(!Error::validation(Some("$".into()), "invalid type").is_retryable());
        assert!(!Error::new(ErrorKind::Auth, "refused").is_retryable());
        assert!(!Error::new(ErrorKind::CircuitOpen, "circuit open").is_retryable());
    }

    #[test]
    fn store_and_transport_kinds_survive_the_conversion() {
        let store = StoreError::new("redis", "increment", StoreErrorKind::Timeout, "slow");
        let error = Error::from(store).with_attempts(1);
        assert_eq!(error.kind(), ErrorKind::Store);
        assert_eq!(error.store_kind(), Some(StoreErrorKind::Timeout));
        assert_eq!(error.transport_kind(), None);
        assert_eq!(error.to_string(), "redis store: increment failed: slow");
        assert!(StdError::source(&error).unwrap().is::<StoreError>());

        let timer = Error::from(TransportError::new(
            TransportErrorKind::Timeout,
            "timed out",
        ));
        assert_eq!(timer.kind(), ErrorKind::Timeout);
        assert_eq!(timer.transport_kind(), Some(TransportErrorKind::Timeout));
        assert_eq!(timer.store_kind(), None);
        let connect = Error::from(TransportError::new(TransportErrorKind::Connect, "refused"))
            .in_call(&Url::parse("https://api.example.com/").unwrap(), 2);
        assert_eq!(connect.kind(), ErrorKind::Transport);
        assert_eq!(connect.transport_kind(), Some(TransportErrorKind::Connect));
        assert_eq!(connect.to_string(), "refused");
        assert_eq!(
            Error::timeout(Duration::from_secs(1)).transport_kind(),
            None
        );
    }

    #[test]
    fn config_errors_name_field_and_fix() {
        let error = Error::config(
            "timeout.total",
            "invalid duration \"ten\"",
            "use e.g. \"10s\"",
        );
        assert_eq!(error.kind(), ErrorKind::Config);
        assert_eq!(
            error.to_string(),
            "timeout.total: invalid duration \"ten\". Fix: use e.g. \"10s\""
        );
    }
}
