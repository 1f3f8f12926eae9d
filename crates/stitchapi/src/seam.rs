//! A seam: stitches that share a base URL, headers, defaults, transport, clock and store.

use std::fmt;
use std::sync::Arc;

use http::Method;
use serde_json::Value;
use url::Url;

use crate::cache::Fills;
use crate::error::{BuildError, Error, Result};
use crate::settings::{Settings, settings_setters};
use crate::stitch::StitchBuilder;
use crate::store::{StitchStore, keys};
use crate::template::Redacted;
use crate::throttle::{Limiter, Pool};

/// Stitches that share a base URL, headers, retry and timeout defaults, and one transport,
/// clock and store. A member's own settings win over the seam's. Cheap to clone.
///
/// ```
/// # fn demo() -> stitchapi::Result<()> {
/// use stitchapi::Seam;
///
/// #[derive(serde::Deserialize)]
/// struct User { id: u64, name: String }
///
/// let api = Seam::builder("https://api.example.com/v1")
///     .header("x-app", "demo")
///     .retry(3)
///     .timeout("10s")
///     .build()?;
/// let list_users = api.get("/users").output::<Vec<User>>().pick("data").build()?;
/// let get_user = api.get("/users/{id}").output::<User>().timeout("2s").build()?; // own timeout wins
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Seam {
    inner: Arc<SeamInner>,
    pub(crate) principal: Option<Arc<str>>,
}

struct SeamInner {
    base_url: String,
    /// Names the seam's shared state in the store (throttle bucket, cache generation).
    id: Arc<str>,
    settings: Settings,
    store: Arc<dyn StitchStore>,
    /// The seam's throttle bucket, shared by every member.
    limiter: Option<Limiter>,
    /// Cache fills in flight, shared by every member, however and whenever it was built.
    fills: Arc<Fills>,
}

impl Seam {
    /// Starts a seam over `base_url` (an absolute http(s) URL).
    pub fn builder(base_url: impl Into<String>) -> SeamBuilder {
        SeamBuilder {
            base_url: base_url.into(),
            name: None,
            settings: Settings::default(),
        }
    }

    /// Declares a member with any method. A relative `path` is appended to the base URL; an
    /// absolute URL (one that starts with a scheme and `://`, such as `https://…`) is used as
    /// is. A `://` further on, as in `/redirect?next=https://x`, leaves the path relative.
    pub fn stitch(&self, method: Method, path: impl Into<String>) -> StitchBuilder<Value> {
        StitchBuilder::new(Some(self.clone()), method, path.into())
    }

    /// Declares a GET member.
    pub fn get(&self, path: impl Into<String>) -> StitchBuilder<Value> {
        self.stitch(Method::GET, path)
    }

    /// Declares a POST member.
    pub fn post(&self, path: impl Into<String>) -> StitchBuilder<Value> {
        self.stitch(Method::POST, path)
    }

    /// Declares a PUT member.
    pub fn put(&self, path: impl Into<String>) -> StitchBuilder<Value> {
        self.stitch(Method::PUT, path)
    }

    /// Declares a PATCH member.
    pub fn patch(&self, path: impl Into<String>) -> StitchBuilder<Value> {
        self.stitch(Method::PATCH, path)
    }

    /// Declares a DELETE member.
    pub fn delete(&self, path: impl Into<String>) -> StitchBuilder<Value> {
        self.stitch(Method::DELETE, path)
    }

    /// A handle on this seam for `principal` (an end user): members declared through it keep
    /// their auth sessions and cache entries apart from other principals'; the store, clock,
    /// transport, throttle budget and in-flight coalescing stay shared, so members built per
    /// request (`seam.as_principal(who).get(..).build()` in a handler) coalesce identical
    /// calls like long-lived ones.
    ///
    /// ```
    /// let api = stitchapi::Seam::builder("https://api.example.com").build().unwrap();
    /// let me = api.as_principal("alice").get("/me").build().unwrap();
    /// assert_eq!(me.principal(), Some("alice"));
    /// ```
    pub fn as_principal(&self, principal: impl Into<Arc<str>>) -> Seam {
        Seam {
            inner: self.inner.clone(),
            principal: Some(principal.into()),
        }
    }

    /// The principal this handle is bound to, if any (as [`Stitch::principal`](crate::Stitch::principal)).
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The store every member shares.
    pub fn store(&self) -> &Arc<dyn StitchStore> {
        &self.inner.store
    }

    /// Drops every cached response of every member of this seam (one store write: the seam's
    /// cache generation moves on; entries expire by their TTL).
    pub async fn invalidate(&self) -> Result<()> {
        crate::cache::invalidate_seam(&**self.store(), Some(&keys::seam_state(self.id()))).await
    }

    /// Closes the seam's store (the memory store clears itself).
    pub async fn close(&self) -> Result<()> {
        self.store().close().await.map_err(Error::from)
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The seam's id (its `name`, else its base URL).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn limiter(&self) -> Option<&Limiter> {
        self.inner.limiter.as_ref()
    }

    pub(crate) fn fills(&self) -> &Arc<Fills> {
        &self.inner.fills
    }

    /// `base` + `/` + `path`, with exactly one slash between them.
    pub(crate) fn join(&self, path: &str) -> String {
        let base = self.inner.base_url.trim_end_matches('/');
        if path.is_empty() {
            base.to_owned()
        } else if path.starts_with(['?', '{', '#']) {
            format!("{base}{path}")
        } else {
            format!("{base}/{}", path.trim_start_matches('/'))
        }
    }
}

impl fmt::Debug for Seam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seam")
            .field("base_url", &Redacted::url(&self.inner.base_url).to_string())
            .finish_non_exhaustive()
    }
}

/// Declares a [`Seam`]; [`build`](SeamBuilder::build) checks every option.
pub struct SeamBuilder {
    base_url: String,
    name: Option<String>,
    pub(crate) settings: Settings,
}

impl SeamBuilder {
    settings_setters!();

    /// Names the seam. The name keys its shared state in the store (the throttle bucket
    /// `seam:<name>`, the cache generation), so every process of a fleet that declares the
    /// seam with the same name shares them. Default: the base URL.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks every option and builds the seam, with one clock, store and transport that
    /// every member will share; a refused option is a [`BuildError`] naming the field, the
    /// problem and the fix (`?` turns it into an [`Error`]).
    pub fn build(self) -> Result<Seam, BuildError> {
        self.checked().map_err(Error::into_build_error)
    }

    fn checked(mut self) -> Result<Seam> {
        let parsed = Url::parse(&self.base_url).map_err(|e| {
            Error::config(
                "base_url",
                format!(
                    "\"{}\" is not an absolute URL ({e})",
                    Redacted::url(&self.base_url)
                ),
                "write it in full, e.g. \"https://api.example.com/v1\"",
            )
        })?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::config(
                "base_url",
                "the URL has credentials before its host (user:password@), which would show wherever the URL is written",
                "remove them and authenticate with .auth(Auth::basic(user, password)), or another Auth",
            ));
        }
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::config(
                "base_url",
                format!("the scheme {:?} is not HTTP", parsed.scheme()),
                "use an http:// or https:// URL",
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::config(
                "base_url",
                "a base URL cannot carry a query or fragment",
                "put default query parameters in the member templates (\"/users?limit=10\")",
            ));
        }
        // Check the shared options now, so a bad seam fails here rather than in every member.
        self.settings.header_map()?;
        if let Some(auth) = &self.settings.auth {
            auth.check()?;
        }
        if let Some(retry) = &self.settings.retry {
            retry.resolve("retry")?;
        }
        if let Some(timeout) = &self.settings.timeout {
            timeout.resolve("timeout")?;
        }
        if let Some(accept) = &self.settings.accept {
            crate::policy::status::StatusRule::resolve(accept, "accept")?;
        }
        if let Some(idempotency) = &self.settings.idempotency {
            idempotency.resolve("idempotency")?;
        }
        let declared = crate::stitch::Declared::of(&self.settings)?;
        let runtime = self.settings.runtime()?;
        let id: Arc<str> = Arc::from(self.name.clone().unwrap_or_else(|| self.base_url.clone()));
        declared.report_local_coordination(&id, &runtime.store);
        let limiter = match &self.settings.throttle {
            Some(throttle) => {
                let key = match throttle.pool_kind() {
                    Pool::Host => host_key(&parsed),
                    Pool::Stitch => keys::seam_state(&id),
                };
                throttle.build(&key, runtime.store.clone(), runtime.clock.clone())?
            }
            None => None,
        };
        self.settings.transport = Some(runtime.transport);
        self.settings.clock = Some(runtime.clock);
        self.settings.store = Some(runtime.store.clone());
        Ok(Seam {
            principal: None,
            inner: Arc::new(SeamInner {
                base_url: self.base_url,
                id,
                settings: self.settings,
                store: runtime.store,
                limiter,
                fills: Arc::default(),
            }),
        })
    }
}

impl fmt::Debug for SeamBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeamBuilder")
            .field("base_url", &Redacted::url(&self.base_url).to_string())
            .finish_non_exhaustive()
    }
}

/// The throttle key of a host pool: the host, with its port when it is not the default.
pub(crate) fn host_key(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => url.as_str().to_owned(),
    }
}
