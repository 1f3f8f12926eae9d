//! [`WorkerTransport`]: the stitchapi transport over the Workers `fetch`.

use bytes::{Bytes, BytesMut};
use stitchapi::transport::{Transport, TransportError, TransportErrorKind, TransportRequest};
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;

/// The stitchapi [`Transport`] over the Workers `fetch`.
///
/// - Redirects are never followed (`redirect: "manual"`): the engine follows them itself, so
///   it forwards only safe headers on a cross-origin hop.
/// - The request's [`body_limit`](TransportRequest::body_limit) is enforced while streaming the
///   response: a declared `Content-Length` over it fails at once, and reading stops (and the
///   body is cancelled) as soon as the limit is passed.
/// - Dropping the future returned by [`send`](Transport::send) aborts the `fetch` through an
///   `AbortController`, so a per-attempt timeout really ends the attempt.
///
/// Errors never contain the URL (which may carry an API key in its query).
#[derive(Clone, Debug, Default)]
pub struct WorkerTransport {
    _private: (),
}

impl WorkerTransport {
    /// A transport over the Worker's global `fetch`.
    pub fn new() -> Self {
        WorkerTransport { _private: () }
    }
}

/// Aborts the `fetch` when dropped before [`disarm`](AbortOnDrop::disarm).
struct AbortOnDrop(Option<web_sys::AbortController>);

impl AbortOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take() {
            controller.abort();
        }
    }
}

/// The message of a JavaScript error (or whatever was thrown), without any URL in it.
fn js_message(value: &JsValue) -> String {
    let text = value
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "unknown JavaScript error".to_owned());
    // workerd's messages may quote the URL; keep only what precedes a scheme.
    match text.find("://") {
        Some(at) => {
            let cut = text[..at].rfind(char::is_whitespace).map_or(0, |i| i + 1);
            format!("{}<url>", &text[..cut])
        }
        None => text,
    }
}

fn error(kind: TransportErrorKind, what: &str, value: &JsValue) -> TransportError {
    TransportError::new(kind, format!("{what}: {}", js_message(value)))
}

/// Which kind a rejected `fetch` is: workerd reports refused and lost connections as
/// `TypeError`s whose message says so.
fn fetch_failure_kind(value: &JsValue) -> TransportErrorKind {
    let message = js_message(value).to_ascii_lowercase();
    if [
        "connect",
        "refused",
        "dns",
        "lookup",
        "unreachable",
        "network",
    ]
    .iter()
    .any(|needle| message.contains(needle))
    {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Other
    }
}

fn build_request(request: &TransportRequest) -> Result<web_sys::Request, TransportError> {
    let request_error =
        |what: &str, value: JsValue| error(TransportErrorKind::Request, what, &value);
    let headers = web_sys::Headers::new().map_err(|e| request_error("creating headers", e))?;
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .append(name.as_str(), &value)
            .map_err(|e| request_error("invalid header", e))?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(request.method.as_str());
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if !request.body.is_empty() {
        let body = js_sys::Uint8Array::from(request.body.as_ref());
        init.set_body(&body);
    }
    web_sys::Request::new_with_str_and_init(request.url.as_str(), &init)
        .map_err(|e| request_error("building the request", e))
}

fn response_headers(response: &web_sys::Response) -> Result<http::HeaderMap, TransportError> {
    let mut headers = http::HeaderMap::new();
    let entries = js_sys::try_iter(&response.headers())
        .map_err(|e| error(TransportErrorKind::Other, "reading headers", &e))?
        .ok_or_else(|| {
            TransportError::new(TransportErrorKind::Other, "headers are not iterable")
        })?;
    for entry in entries {
        let entry = entry.map_err(|e| error(TransportErrorKind::Other, "reading headers", &e))?;
        let pair: js_sys::Array = entry.unchecked_into();
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            continue;
        };
        // A header the http crate cannot represent is skipped, as a browser would.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    Ok(headers)
}

/// Reads the whole body, failing as soon as it passes `limit`.
async fn read_body(
    response: &web_sys::Response,
    limit: Option<usize>,
) -> Result<Bytes, TransportError> {
    let Some(stream) = response.body() else {
        return Ok(Bytes::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let body_error = |value: JsValue| error(TransportErrorKind::Body, "reading the body", &value);
    let mut body = BytesMut::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(body_error)?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done")).map_err(body_error)?;
        if done.is_truthy() {
            break;
        }
        let value =
            js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).map_err(body_error)?;
        let bytes: js_sys::Uint8Array = value.unchecked_into();
        if let Some(limit) = limit
            && body.len() + bytes.length() as usize > limit
        {
            // Stop the download; the rejection of cancel() does not matter.
            let _ = reader.cancel();
            return Err(TransportError::body_too_large(limit));
        }
        let start = body.len();
        body.resize(start + bytes.length() as usize, 0);
        bytes.copy_to(&mut body[start..]);
    }
    Ok(body.freeze())
}

#[async_trait::async_trait(?Send)]
impl Transport for WorkerTransport {
    async fn send(
        &self,
        request: TransportRequest,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let limit = request.body_limit;
        let js_request = build_request(&request)?;
        let controller = web_sys::AbortController::new().map_err(|e| {
            error(
                TransportErrorKind::Request,
                "creating an AbortController",
                &e,
            )
        })?;
        let signal = controller.signal();
        let mut guard = AbortOnDrop(Some(controller));
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let init = web_sys::RequestInit::new();
        init.set_signal(Some(&signal));
        let promise = global.fetch_with_request_and_init(&js_request, &init);
        let response = JsFuture::from(promise)
            .await
            .map_err(|e| error(fetch_failure_kind(&e), "fetch failed", &e))?;
        let response: web_sys::Response = response.dyn_into().map_err(|e| {
            error(
                TransportErrorKind::Other,
                "fetch did not return a Response",
                &e,
            )
        })?;
        let headers = response_headers(&response)?;
        if let Some(limit) = limit
            && let Some(length) = headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok())
            && length > limit as u64
        {
            return Err(TransportError::body_too_large(limit));
        }
        let body = read_body(&response, limit).await?;
        guard.disarm();
        let mut builder = http::Response::builder().status(response.status());
        if let Some(slot) = builder.headers_mut() {
            *slot = headers;
        }
        builder
            .body(body)
            .map_err(|e| TransportError::new(TransportErrorKind::Body, e.to_string()))
    }
}
