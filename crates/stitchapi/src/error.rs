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

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use url::Url;

use crate::template::Redacted;

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
}

/// The result type of stitchapi operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
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
            }),
        }
    }

    /// A declaration error naming the field, the problem and the fix:
    /// `"<field>: <problem>. Fix: <fix>"`.
    pub fn config(field: &str, problem: impl fmt::Display, fix: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Config, format!("{field}: {problem}. Fix: {fix}"))
    }

    /// An input error (nothing was sent).
    pub fn input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Input, message)
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
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
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
