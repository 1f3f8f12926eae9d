//! Per-attempt hooks: `on_request` before each send, `on_response` after each answer.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use url::Url;

use super::classifier::AttemptResponse;
use crate::error::BoxError;
use crate::runtime::{MaybeSend, MaybeSync};

/// The request one attempt is about to send, as an [`on_request`](RequestHook) hook sees it:
/// the declared request (template expanded, query, declared and input headers, body,
/// idempotency key), before the auth strategy adds its credential.
#[derive(Debug)]
pub struct AttemptRequest<'a> {
    pub(crate) method: &'a Method,
    pub(crate) url: &'a Url,
    pub(crate) headers: &'a mut HeaderMap,
    pub(crate) body: &'a Bytes,
    pub(crate) attempt: u32,
}

impl AttemptRequest<'_> {
    /// The method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The URL (a credential the auth strategy puts in the query is not in it yet).
    pub fn url(&self) -> &Url {
        self.url
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The headers, to add, replace or remove some for this attempt only. Added values that
    /// are not [safe](crate::headers) are marked sensitive, so `Debug` of a request hides them.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        self.body
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Runs before every attempt's send (declared with `on_request` on a seam or stitch): signs
/// the request, adds a trace header, rewrites headers. It sees the attempt's request before
/// the auth strategy adds its credential, so it never sees a credential it did not add; its
/// changes apply to that attempt only (a retry starts again from the declared request and runs
/// the hook again). A closure taking `&mut AttemptRequest` is one.
///
/// ```
/// use stitchapi::Stitch;
/// use stitchapi::policy::AttemptRequest;
///
/// let stitch = Stitch::post("https://api.example.com/orders")
///     .on_request(|request: &mut AttemptRequest<'_>| {
///         let signature = format!("len={}", request.body().len()); // sign it for real here
///         request.headers_mut().insert("x-signature", signature.parse()?);
///         Ok(())
///     })
///     .build()?;
/// # Ok::<(), stitchapi::BuildError>(())
/// ```
pub trait RequestHook: MaybeSend + MaybeSync + 'static {
    /// Edits the attempt's request. An error (any error: `Err("no signing key".into())`) fails
    /// the call with an [`ErrorKind::Hook`](crate::ErrorKind::Hook) error carrying its
    /// message; it is never retried.
    fn on_request(&self, request: &mut AttemptRequest<'_>) -> Result<(), BoxError>;
}

impl<F> RequestHook for F
where
    F: Fn(&mut AttemptRequest<'_>) -> Result<(), BoxError> + MaybeSend + MaybeSync + 'static,
{
    fn on_request(&self, request: &mut AttemptRequest<'_>) -> Result<(), BoxError> {
        self(request)
    }
}

/// Runs after every attempt that got an answer (declared with `on_response` on a seam or
/// stitch), before the retry decision: for logging, metrics, checking a response signature. It
/// sees every attempt's response, the retried ones too. A closure taking `&AttemptResponse`
/// is one.
///
/// ```
/// use stitchapi::Stitch;
/// use stitchapi::policy::AttemptResponse;
///
/// let stitch = Stitch::get("https://api.example.com/prices")
///     .on_response(|response: &AttemptResponse<'_>| {
///         println!("attempt {}: {} from {}", response.attempt(), response.status(), response.url());
///         Ok(())
///     })
///     .build()?;
/// # Ok::<(), stitchapi::BuildError>(())
/// ```
pub trait ResponseHook: MaybeSend + MaybeSync + 'static {
    /// Observes the attempt's response. An error fails the call with an
    /// [`ErrorKind::Hook`](crate::ErrorKind::Hook) error, never retried.
    fn on_response(&self, response: &AttemptResponse<'_>) -> Result<(), BoxError>;
}

impl<F> ResponseHook for F
where
    F: Fn(&AttemptResponse<'_>) -> Result<(), BoxError> + MaybeSend + MaybeSync + 'static,
{
    fn on_response(&self, response: &AttemptResponse<'_>) -> Result<(), BoxError> {
        self(response)
    }
}

/// The hooks of a seam or stitch, in declaration order (a seam's first, then its member's).
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub request: Vec<Arc<dyn RequestHook>>,
    pub response: Vec<Arc<dyn ResponseHook>>,
}

impl Hooks {
    /// `parent`'s hooks, then `self`'s.
    pub(crate) fn after(self, parent: &Hooks) -> Hooks {
        if parent.request.is_empty() && parent.response.is_empty() {
            return self;
        }
        let mut request = parent.request.clone();
        request.extend(self.request);
        let mut response = parent.response.clone();
        response.extend(self.response);
        Hooks { request, response }
    }
}
