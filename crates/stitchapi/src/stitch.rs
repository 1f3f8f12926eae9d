//! A stitch: one HTTP endpoint, declared once, called like an async function.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::cache::{CacheIds, ResponseCache};
use crate::error::{BuildError, Error, Result};
use crate::event::{Emitter, EventStream};
use crate::input::Input;
use crate::output::{Output, OutputKind, OutputValidator, Pick};
use crate::pipeline;
use crate::policy::status::StatusRule;
use crate::reply::Reply;
use crate::runtime::MaybeSend;
use crate::seam::Seam;
use crate::settings::{DEFAULT_MAX_RESPONSE_BYTES, Settings, settings_setters};
use crate::spec::{FixedOrigin, Spec};
use crate::store::{DynStore, PrefixedStore, Scope, keys};
use crate::template::{Redacted, UrlTemplate, scheme_prefix_len, userinfo_end};
use crate::throttle::{Pool, Throttle};

/// A declared endpoint, ready to call. Cheap to clone; clones share everything.
///
/// `O` is the output type: any `DeserializeOwned` type (default [`serde_json::Value`]),
/// `String` for `.text()`, or [`Bytes`] for `.bytes()`.
///
/// ```
/// # async fn demo() -> stitchapi::Result<()> {
/// use stitchapi::{Backoff, Input, Retry, Stitch, Timeout};
///
/// #[derive(serde::Deserialize)]
/// struct User { id: u64, name: String }
///
/// let get_user = Stitch::get("https://api.example.com/users/{id}")
///     .output::<User>()
///     .retry(Retry::attempts(3).on([429, 502, 503, 504]).backoff(Backoff::ExpoJitter))
///     .timeout(Timeout::total("10s").each("4s"))
///     .build()?;
/// let user: User = get_user.call(Input::new().param("id", 7)).await?;
/// # Ok(()) }
/// ```
pub struct Stitch<O = Value> {
    pub(crate) inner: Arc<StitchInner<O>>,
    /// The principal (end user) calls are made for: sessions and cache entries are kept apart
    /// per principal.
    principal: Option<Arc<str>>,
}

impl<O> Clone for Stitch<O> {
    fn clone(&self) -> Self {
        Stitch {
            inner: self.inner.clone(),
            principal: self.principal.clone(),
        }
    }
}

pub(crate) struct StitchInner<O> {
    pub spec: Spec,
    pub output: Output<O>,
    /// The declaration the stitch was built from, with its runtime (store, clock, transport)
    /// filled in, for [`Stitch::with`].
    pub declared: StitchBuilder<O>,
}

/// The `stitch.call` span of one call; the engine fills in the empty fields.
fn call_span(spec: &Spec) -> tracing::Span {
    tracing::info_span!(
        "stitch.call",
        stitch = %spec.name,
        method = %spec.method,
        url = tracing::field::Empty,
        status = tracing::field::Empty,
        attempts = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

impl Stitch<Value> {
    /// Declares an endpoint with any method; [`get`](Stitch::get), [`post`](Stitch::post)
    /// and the others are shortcuts. `url` is an RFC 6570 template
    /// (`https://api.example.com/users/{id}{?fields}`).
    ///
    /// ```
    /// use http::Method;
    ///
    /// let search = stitchapi::Stitch::builder(Method::from_bytes(b"QUERY").unwrap(), "https://api.example.com/search")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(search.method().as_str(), "QUERY");
    /// ```
    pub fn builder(method: Method, url: impl Into<String>) -> StitchBuilder<Value> {
        StitchBuilder::new(None, method, url.into())
    }

    /// Declares a GET endpoint.
    pub fn get(url: impl Into<String>) -> StitchBuilder<Value> {
        Stitch::builder(Method::GET, url)
    }

    /// Declares a POST endpoint.
    pub fn post(url: impl Into<String>) -> StitchBuilder<Value> {
        Stitch::builder(Method::POST, url)
    }

    /// Declares a PUT endpoint.
    pub fn put(url: impl Into<String>) -> StitchBuilder<Value> {
        Stitch::builder(Method::PUT, url)
    }

    /// Declares a PATCH endpoint.
    pub fn patch(url: impl Into<String>) -> StitchBuilder<Value> {
        Stitch::builder(Method::PATCH, url)
    }

    /// Declares a DELETE endpoint.
    pub fn delete(url: impl Into<String>) -> StitchBuilder<Value> {
        Stitch::builder(Method::DELETE, url)
    }
}

impl<O: MaybeSend + 'static> Stitch<O> {
    /// Calls the endpoint and returns the decoded output.
    pub async fn call(&self, input: Input) -> Result<O> {
        self.call_detailed(input).await.map(|reply| reply.data)
    }

    /// Calls the endpoint with a `Serialize` struct or map: fields named like template
    /// variables fill the template, the others go to the query.
    pub async fn call_with<T: Serialize + ?Sized>(&self, input: &T) -> Result<O> {
        self.call(Input::from_fields(input)).await
    }

    /// Calls the endpoint and returns the output with its status, headers, final URL,
    /// attempt count and where it was served from ([`Reply::served`]).
    pub async fn call_detailed(&self, input: Input) -> Result<Reply<O>> {
        let spec = &self.inner.spec;
        let span = call_span(spec);
        // Not boxed: a call without cache, auth, throttle or breaker allocates no future of its
        // own (what those add is boxed where it runs), and a large allocation per call costs
        // more than moving the future.
        let emitter = Emitter::silent();
        let call = pipeline::run(
            &self.inner.spec,
            &self.inner.output,
            self.principal.as_deref(),
            input,
            &emitter,
            &span,
        );
        // A span no subscriber wants is not entered: the wrapper would only move the future
        // and poll through a no-op.
        if span.is_disabled() {
            call.await
        } else {
            call.instrument(span.clone()).await
        }
    }

    /// Calls the endpoint and streams its events: start, typed progress
    /// ([`Step`](crate::Step): request, retry with its reason and delay, throttle, auth,
    /// cache, circuit), result (with [`Served`](crate::Served)) or error, done. Dropping the stream cancels
    /// the call. See the [`event`](crate::event) module for an example.
    pub fn stream(&self, input: Input) -> EventStream<O> {
        let inner = self.inner.clone();
        let principal = self.principal.clone();
        EventStream::new(move |emitter| {
            Box::pin(async move {
                let clock = inner.spec.runtime.clock.clone();
                let started = clock.now();
                let span = call_span(&inner.spec);
                let outcome = pipeline::run(
                    &inner.spec,
                    &inner.output,
                    principal.as_deref(),
                    input,
                    &emitter,
                    &span,
                )
                .instrument(span.clone())
                .await;
                (outcome, clock.now().saturating_duration_since(started))
            })
        })
    }
}

impl<O> Stitch<O> {
    /// Drops the cached response a call with `input` would hit (for this stitch's principal).
    /// A stitch without a cache has nothing to drop.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
    /// use stitchapi::{Input, Stitch};
    ///
    /// let stitch = Stitch::get("https://api.example.com/users/{id}").cache("5m").build()?;
    /// stitch.invalidate(Input::new().param("id", 7)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, input: Input) -> Result<()> {
        let spec = &self.inner.spec;
        let Some(cache) = &spec.cache else {
            return Ok(());
        };
        let (outgoing, keyed) = pipeline::prepare(spec, input)?;
        let key = pipeline::cache_key(spec, cache, &outgoing, keyed, self.principal.as_deref());
        match key {
            Ok(key) => cache.invalidate(&key).await,
            Err(_) => Ok(()),
        }
    }

    /// Drops every cached response of this stitch (every principal, every input) by moving
    /// its cache generation on: one store write, no key scan.
    pub async fn invalidate_all(&self) -> Result<()> {
        match &self.inner.spec.cache {
            Some(cache) => cache.invalidate_stitch().await,
            None => Ok(()),
        }
    }

    /// The same stitch, called on behalf of `principal` (an end user): auth sessions and cache
    /// entries are kept apart per principal; the throttle budget stays shared. Cheap.
    ///
    /// ```
    /// let stitch = stitchapi::Stitch::get("https://api.example.com/me").build().unwrap();
    /// let for_alice = stitch.as_principal("alice");
    /// assert_eq!(for_alice.principal(), Some("alice"));
    /// ```
    pub fn as_principal(&self, principal: impl Into<Arc<str>>) -> Stitch<O> {
        Stitch {
            inner: self.inner.clone(),
            principal: Some(principal.into()),
        }
    }

    /// The principal calls are made for, if one is bound.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Builds the request a call with `input` would send first, without sending it: the
    /// template expanded, the query merged, headers, body and idempotency key set. Useful to
    /// inspect a declaration; fails like the call would on bad input. Header values that are
    /// not [safe](crate::headers) are marked sensitive, so `Debug` of the request hides them.
    ///
    /// ```
    /// use stitchapi::{Input, Stitch};
    ///
    /// let stitch = Stitch::get("https://api.example.com/users/{id}?fields=all").build().unwrap();
    /// let request = stitch
    ///     .to_request(Input::new().param("id", "a/b").query("fields", "name").header("x-api-key", "k-s3cret"))
    ///     .unwrap();
    /// assert_eq!(request.uri(), "https://api.example.com/users/a%2Fb?fields=name");
    /// assert!(!format!("{request:?}").contains("k-s3cret"));
    /// ```
    pub fn to_request(&self, input: Input) -> Result<http::Request<Bytes>> {
        let (outgoing, _) = pipeline::prepare(&self.inner.spec, input)?;
        let mut request = http::Request::new(outgoing.body);
        *request.method_mut() = outgoing.method;
        *request.uri_mut() = crate::transport::redirect::uri_of(&outgoing.url)?;
        *request.headers_mut() = outgoing.headers;
        Ok(request)
    }

    /// The stitch's name: its `name(...)`, else `"<METHOD> <url template>"` with the
    /// template [redacted](UrlTemplate#display-is-redacted) (`GET
    /// https://api.example.com/items?api_key=…{&page}`).
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.inner.spec.method
    }

    /// The URL template.
    pub fn template(&self) -> &UrlTemplate {
        &self.inner.spec.template
    }

    /// The store this stitch keeps its state in.
    pub fn store(&self) -> &Arc<dyn crate::store::StitchStore> {
        &self.inner.spec.runtime.store
    }
}

impl<O: 'static> Stitch<O> {
    /// A copy of this stitch with some options overridden: `edit` gets the declaration the
    /// stitch was built from and returns it changed; the result is checked and built as
    /// [`StitchBuilder::build`] does. The original is unchanged.
    ///
    /// What the copy shares with the original: the seam (its throttle bucket, its in-flight
    /// cache fills and its shared options), the store, the clock, the transport and the bound
    /// principal, unless `edit` replaces them. Everything built per stitch is the copy's own:
    /// the in-process state of a throttle, circuit breaker or cache the stitch declares itself
    /// is new, and what lives in the store is shared, since it is keyed by the stitch's name
    /// (give the copy its own [`name`](StitchBuilder::name) to keep it apart). Hooks and
    /// validators declared on the original stay; `edit` can add more.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stitchapi::Stitch;
    ///
    /// let report = Stitch::get("https://api.example.com/report").retry(2).build()?;
    /// let patient = report.with(|b| b.retry(5).timeout(Duration::from_secs(60)))?;
    /// # Ok::<(), stitchapi::BuildError>(())
    /// ```
    pub fn with(
        &self,
        edit: impl FnOnce(StitchBuilder<O>) -> StitchBuilder<O>,
    ) -> Result<Stitch<O>, BuildError> {
        let copy = edit(self.inner.declared.clone()).build()?;
        Ok(Stitch {
            inner: copy.inner,
            principal: self.principal.clone(),
        })
    }
}

impl<O> fmt::Debug for Stitch<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = &self.inner.spec;
        f.debug_struct("Stitch")
            .field("name", &spec.name)
            .field("method", &spec.method)
            .field("template", &spec.template.to_string())
            .field("retry", &spec.retry)
            .field("timeout", &spec.timeout)
            .finish_non_exhaustive()
    }
}

/// Declares a [`Stitch`]. Every option is checked by [`build`](StitchBuilder::build), which
/// names the field and the fix when something is wrong.
pub struct StitchBuilder<O = Value> {
    seam: Option<Seam>,
    name: Option<String>,
    method: Method,
    url: String,
    pub(crate) settings: Settings,
    output: Output<O>,
    pick: Option<String>,
    sensitive: bool,
    /// Template variables whose empty value is meant ([`StitchBuilder::allow_empty`]).
    allow_empty: Vec<String>,
}

impl<O> Clone for StitchBuilder<O> {
    fn clone(&self) -> Self {
        StitchBuilder {
            seam: self.seam.clone(),
            name: self.name.clone(),
            method: self.method.clone(),
            url: self.url.clone(),
            settings: self.settings.clone(),
            output: self.output.clone(),
            pick: self.pick.clone(),
            sensitive: self.sensitive,
            allow_empty: self.allow_empty.clone(),
        }
    }
}

impl StitchBuilder<Value> {
    pub(crate) fn new(seam: Option<Seam>, method: Method, url: String) -> Self {
        StitchBuilder {
            seam,
            name: None,
            method,
            url,
            settings: Settings::default(),
            output: Output::json(),
            pick: None,
            sensitive: false,
            allow_empty: Vec::new(),
        }
    }
}

impl<O: 'static> StitchBuilder<O> {
    settings_setters!();

    /// Names the stitch (in traces, events and store keys). Default: `"<METHOD> <url>"`, with
    /// the URL redacted (see [`Stitch::name`]).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Decodes the JSON response into `T` (default `serde_json::Value`). Validators added
    /// before are dropped, since they were for the old type.
    pub fn output<T: DeserializeOwned + 'static>(self) -> StitchBuilder<T> {
        self.with_output(Output::json())
    }

    /// Returns the body as text.
    pub fn text(self) -> StitchBuilder<String> {
        self.with_output(Output::text())
    }

    /// Returns the body as bytes.
    pub fn bytes(self) -> StitchBuilder<Bytes> {
        self.with_output(Output::bytes())
    }

    pub(crate) fn with_output<T>(self, output: Output<T>) -> StitchBuilder<T> {
        StitchBuilder {
            seam: self.seam,
            name: self.name,
            method: self.method,
            url: self.url,
            settings: self.settings,
            output,
            pick: self.pick,
            sensitive: self.sensitive,
            allow_empty: self.allow_empty,
        }
    }

    /// Allows an empty value for the template variable `name` in the path, where it is
    /// otherwise an `Input` error because it changes the endpoint (`DELETE /users/{id}` with
    /// `id = ""` would be `DELETE /users/`). Query variables (`{?q}`, `?q={q}`) and `{;x}`
    /// take empty values without it. `build` fails if `name` is not a template variable.
    ///
    /// ```
    /// use stitchapi::{Input, Stitch};
    ///
    /// let list = Stitch::get("https://api.example.com/files/{+prefix}")
    ///     .allow_empty("prefix")
    ///     .build()?;
    /// let request = list.to_request(Input::new().param("prefix", ""))?;
    /// assert_eq!(request.uri(), "https://api.example.com/files/");
    /// # Ok::<(), stitchapi::Error>(())
    /// ```
    pub fn allow_empty(mut self, name: impl Into<String>) -> Self {
        self.allow_empty.push(name.into());
        self
    }

    /// Marks the endpoint's responses as sensitive: never cached, never shared between
    /// concurrent calls.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Descends into the response JSON before decoding: `"data"`, `"data.items"`,
    /// `"results.0"`.
    pub fn pick(mut self, path: impl Into<String>) -> Self {
        self.pick = Some(path.into());
        self
    }

    /// Adds a validator for rules serde cannot express; a rejection is a `Validation` error.
    pub fn validate(mut self, validator: impl OutputValidator<O>) -> Self {
        self.output.add_validator(Arc::new(validator));
        self
    }

    /// Checks every option and builds the stitch; a refused option is a [`BuildError`]
    /// naming the field, the problem and the fix (`?` turns it into an [`Error`]).
    pub fn build(self) -> Result<Stitch<O>, BuildError> {
        self.checked().map_err(Error::into_build_error)
    }

    fn checked(self) -> Result<Stitch<O>> {
        // Kept for `Stitch::with`; its runtime is filled in below, once resolved.
        let mut declared = self.clone();
        // What this member declares itself (a seam reports what it declares when it is built).
        let own = Declared::of(&self.settings)?;
        let settings = match &self.seam {
            Some(seam) => self.settings.inherit(seam.settings()),
            None => self.settings,
        };
        let scheme_len = scheme_prefix_len(&self.url, true);
        let url = match &self.seam {
            Some(seam) if scheme_len.is_none() => seam.join(&self.url),
            _ => self.url.clone(),
        };
        let scheme_len = scheme_len.or_else(|| scheme_prefix_len(&url, true));
        if scheme_len.is_none() && !url.starts_with('{') {
            return Err(Error::config(
                "url",
                format!("\"{}\" is not an absolute URL", Redacted::template(&url)),
                "write the full URL (https://api.example.com/...), or declare the stitch on a seam with a base URL",
            ));
        }
        if userinfo_end(&url, true).is_some() {
            return Err(Error::config(
                "url",
                "the URL has credentials before its host (user:password@), which would show wherever the URL is written",
                "remove them and authenticate with .auth(Auth::basic(user, password)), or another Auth",
            ));
        }
        let mut template = UrlTemplate::parse(&url).map_err(|e| {
            Error::config(
                "url",
                e,
                "fix the template: variables look like {id}, {+path}, {?q,page}",
            )
        })?;
        for name in &self.allow_empty {
            if !template.variables().any(|variable| variable == name) {
                let known = template.variables().collect::<Vec<_>>().join(", ");
                return Err(Error::config(
                    "allow_empty",
                    format!("`{name}` is not a variable of the URL template"),
                    if known.is_empty() {
                        "the template has no variables; remove allow_empty".to_owned()
                    } else {
                        format!("name one of its variables: {known}")
                    },
                ));
            }
            template = template.allow_empty(name);
        }
        if let Some(scheme_len) = scheme_len {
            let scheme = &url[..scheme_len - 3];
            if !scheme.contains('{')
                && !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
            {
                return Err(Error::config(
                    "url",
                    format!("the scheme {scheme:?} is not HTTP"),
                    "use an http:// or https:// URL",
                ));
            }
        }
        let output_kind = self.output.kind;
        let mut output = self.output;
        if let Some(path) = &self.pick {
            if output_kind != OutputKind::Json {
                return Err(Error::config(
                    "pick",
                    "pick applies to JSON output only",
                    "remove pick, or decode JSON with .output::<T>()",
                ));
            }
            output.pick = Some(Pick::parse(path)?);
        }
        let mut headers = settings.header_map()?;
        if let Some(auth) = &settings.auth {
            auth.check()?;
        }
        if output_kind == OutputKind::Json && !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        crate::headers::mark_sensitive(&mut headers);
        let retry = settings
            .retry
            .clone()
            .unwrap_or_default()
            .resolve("retry")?;
        let timeout = settings
            .timeout
            .clone()
            .unwrap_or_default()
            .resolve("timeout")?;
        let accept = match &settings.accept {
            Some(accept) => StatusRule::resolve(accept, "accept")?,
            None => StatusRule::default(),
        };
        let idempotency = match &settings.idempotency {
            Some(idempotency) => Some(idempotency.resolve("idempotency")?),
            None => None,
        };
        let max_response_bytes = settings
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if max_response_bytes == 0 {
            return Err(Error::config(
                "max_response_bytes",
                "0 would reject every response",
                "use a positive limit such as 16 MiB (16777216)",
            ));
        }
        let runtime = settings.runtime()?;
        // A copy made with `Stitch::with` shares the store, clock and transport.
        declared.settings.store = Some(runtime.store.clone());
        declared.settings.clock = Some(runtime.clock.clone());
        declared.settings.transport = Some(runtime.transport.clone());
        let name: Arc<str> = match &self.name {
            Some(name) if name.trim().is_empty() => {
                return Err(Error::config(
                    "name",
                    "the name is empty",
                    "give the stitch a name or leave it unset",
                ));
            }
            Some(name) => Arc::from(name.as_str()),
            None => Arc::from(format!("{} {}", self.method, Redacted::template(&url))),
        };
        // What keys the stitch's state in the store (circuit, throttle, cache): its name, and
        // when redaction hid part of the default name, a hash of the whole template, so two
        // stitches that differ only in a query value keep their own state.
        let state_id = match &self.name {
            None if Redacted::template(&url).to_string() != url => format!(
                "{name} #{:016x}",
                xxhash_rust::xxh64::xxh64(url.as_bytes(), 0)
            ),
            _ => name.to_string(),
        };
        let origin = FixedOrigin::of(&url);
        let throttle_key = |throttle: &Throttle| -> Result<String> {
            match throttle.pool_kind() {
                Pool::Stitch => Ok(state_id.clone()),
                Pool::Host => origin
                    .as_ref()
                    .and_then(|origin| origin.parsed.as_ref())
                    .map(|parsed| crate::seam::host_key(&parsed.url))
                    .ok_or_else(|| {
                        Error::config(
                            "throttle.pool",
                            "a host pool needs the URL's host written out in the template",
                            "write the host literally (https://api.example.com/...), or use the default per-stitch pool",
                        )
                    }),
            }
        };
        let mut limiters = Vec::new();
        let mut delegate = None;
        if let Some(seam) = &self.seam {
            limiters.extend(seam.limiter().cloned());
            delegate = seam
                .settings()
                .throttle
                .clone()
                .filter(Throttle::is_delegate);
        }
        if let Some(throttle) = &settings.throttle {
            let key = throttle_key(throttle)?;
            match throttle.build(&key, runtime.store.clone(), runtime.clock.clone())? {
                Some(limiter) => limiters.push(limiter),
                None => delegate = Some(throttle.clone()),
            }
        }
        let breaker = match &settings.circuit {
            Some(circuit) => {
                Some(circuit.build(&state_id, runtime.store.clone(), runtime.clock.clone())?)
            }
            None => None,
        };
        let vault: DynStore = Arc::new(crate::auth::SealedStore::new(
            Arc::new(PrefixedStore::new(
                runtime.store.clone(),
                keys::VAULT_PREFIX,
            )),
            settings.vault_key.clone(),
        ));
        own.report_local_coordination(&name, &runtime.store);
        let cache = match &settings.cache {
            Some(cache) if !self.sensitive => Some(ResponseCache::new(
                cache.resolve("cache")?,
                runtime.store.clone(),
                runtime.clock.clone(),
                CacheIds {
                    stitch_id: state_id.clone(),
                    seam_id: self.seam.as_ref().map(|seam| keys::seam_state(seam.id())),
                },
                self.seam
                    .as_ref()
                    .map_or_else(Arc::default, |seam| seam.fills().clone()),
            )),
            _ => None,
        };
        let spec = Spec {
            name,
            method: self.method,
            origin,
            template,
            headers,
            retry,
            timeout,
            accept,
            idempotency,
            retry_non_idempotent: settings.retry_non_idempotent.unwrap_or(false),
            max_response_bytes,
            redirects: settings.redirects.unwrap_or_default(),
            array_format: settings.array_format.unwrap_or_default(),
            runtime,
            limiters,
            delegate,
            breaker,
            auth: settings.auth.clone(),
            vault,
            cache,
            hooks: settings.hooks.clone(),
        };
        Ok(Stitch {
            principal: self.seam.as_ref().and_then(|seam| seam.principal.clone()),
            inner: Arc::new(StitchInner {
                spec,
                output,
                declared,
            }),
        })
    }
}

/// The options a seam or stitch declares itself whose fleet-wide coordination needs owned
/// locks.
pub(crate) struct Declared {
    auth: bool,
    fleet_cache: bool,
    circuit: bool,
}

impl Declared {
    pub(crate) fn of(settings: &Settings) -> Result<Declared> {
        let fleet_cache = match &settings.cache {
            Some(cache) => cache.resolve("cache")?.coalesce == crate::Coalesce::Fleet,
            None => false,
        };
        Ok(Declared {
            auth: settings.auth.is_some(),
            fleet_cache,
            circuit: settings.circuit.is_some(),
        })
    }

    /// Over a fleet store without owned locks, token refreshes, logins, cache fills and the
    /// circuit's half-open trial are coordinated within each process only: said once, as a
    /// `warn` trace, where the option is declared (not by every member that inherits it).
    pub(crate) fn report_local_coordination(&self, owner: &str, store: &DynStore) {
        let caps = store.capabilities();
        if caps.scope != Scope::Fleet || caps.owned_locks() {
            return;
        }
        let mut local = Vec::new();
        if self.auth {
            local.push("token refreshes and logins are single-flight");
        }
        if self.fleet_cache {
            local.push("identical cache misses coalesce (cache.coalesce = \"fleet\")");
        }
        if self.circuit {
            local.push("the circuit's half-open trial is exclusive");
        }
        if local.is_empty() {
            return;
        }
        tracing::warn!(
            owner,
            store = store.name(),
            "the {} store has no owned locks (conditional writes on a strongly consistent store): {} within each process only, not across the fleet",
            store.name(),
            local.join("; ")
        );
    }
}

impl<O> fmt::Debug for StitchBuilder<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StitchBuilder")
            .field("method", &self.method)
            .field("url", &Redacted::template(&self.url).to_string())
            .finish_non_exhaustive()
    }
}
