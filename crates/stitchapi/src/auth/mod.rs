//! Authentication strategies: values attached to a stitch or seam that put a credential on
//! each request. The caller never sees the credential.
//!
//! - [`Auth::bearer`], [`Auth::api_key`] (header, query or cookie), [`Auth::basic`];
//! - [`Auth::oauth2`]: client-credentials tokens (with the refresh-token grant when the server
//!   returns one), cached in the store's vault, refreshed early, fetched single-flight across
//!   the process and, over a fleet store with owned locks, across the fleet;
//! - [`Auth::cookie_session`]: a login stitch whose `Set-Cookie` seeds a session that is
//!   replayed on later calls, per principal by default;
//! - [`Auth::custom`]: anything implementing [`AuthStrategy`].
//!
//! Credentials are [`Secret`]s: redacted in `Debug` and `Display`, resolved per call. Tokens
//! and sessions live in the store's vault (keys under `vault:`), encrypted at rest when the
//! seam or stitch is given a [`VaultKey`].
//!
//! Values a token endpoint or a login sends are taken as hostile: `expires_in` is clamped (see
//! [`OAuth2`]), cookies scoped to a public suffix or breaking the `__Host-`/`__Secure-` rules
//! are refused (see [`CookieSession`]), and the token fetch and the login end at the call's
//! per-attempt timeout and total deadline.
//!
//! ```
//! use stitchapi::auth::{ApiKey, Auth, OAuth2, Secret};
//!
//! let bearer = Auth::bearer(Secret::env("API_TOKEN"));
//! let key = Auth::api_key(ApiKey::query(Secret::new("k-123")).name("key"));
//! let oauth = Auth::oauth2(
//!     OAuth2::client_credentials(
//!         "https://auth.example.com/token",
//!         Secret::new("client"),
//!         Secret::env("CLIENT_SECRET"),
//!     )
//!     .scope("read write"),
//! );
//! assert_eq!(oauth.scheme(), "oauth2");
//! assert!(!format!("{bearer:?} {key:?}").contains("k-123"));
//! ```

mod cookie;
mod header;
mod oauth2;
mod secret;
mod vault;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::header::{COOKIE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use crate::error::{Error, ErrorKind};
use crate::flight::{FleetFlight, FleetTiming};
use crate::runtime::{MaybeSend, MaybeSync};
use crate::store::{DynStore, Scope, keys};
use crate::tenancy::Tenancy;
use crate::time::{Clock, Timestamp};
use crate::transport::Transport;

pub use cookie::{CookieSession, LoginFailure, LoginInput, LoginOutcome, OutcomeHook, RefreshWhen};
pub use header::{ApiKey, ApiKeyLocation};
pub use oauth2::{ClientAuth, OAuth2};
pub use secret::{Secret, SecretSource};
pub(crate) use vault::SealedStore;
pub use vault::VaultKey;

/// The vault prefix (tokens and sessions live under `vault:` in the store): the tests build
/// the vault view with it.
#[cfg(test)]
pub(crate) use keys::VAULT_PREFIX;

/// Which credential a request carried, without the credential itself: a fingerprint a
/// strategy records in [`apply`](AuthStrategy::apply) with
/// [`AuthRequest::set_credential_id`] and gets back in [`refresh`](AuthStrategy::refresh), to
/// tell whether the credential in the store is still the one the server rejected. `Debug`
/// never shows it.
///
/// ```
/// use stitchapi::auth::CredentialId;
///
/// assert_eq!(CredentialId::of(b"token-1"), CredentialId::of(b"token-1"));
/// assert_ne!(CredentialId::of(b"token-1"), CredentialId::of(b"token-2"));
/// assert_eq!(format!("{:?}", CredentialId::of(b"token-1")), "CredentialId(..)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialId(u64);

impl CredentialId {
    /// The fingerprint of `credential` (a token, a stored session).
    pub fn of(credential: &[u8]) -> Self {
        CredentialId(xxhash_rust::xxh64::xxh64(credential, 0x5eed_c4ed))
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialId(..)")
    }
}

/// A way to authenticate requests. Implement it for a custom scheme and attach it with
/// [`Auth::custom`].
///
/// The engine calls [`apply`](AuthStrategy::apply) before every attempt. When a response
/// makes [`should_refresh`](AuthStrategy::should_refresh) true, it calls
/// [`refresh`](AuthStrategy::refresh) once, with the [`CredentialId`] the rejected request
/// carried, and retries the attempt once.
///
/// ```
/// use stitchapi::auth::{Auth, AuthContext, AuthRequest, AuthStrategy};
///
/// #[derive(Debug)]
/// struct Signed;
///
/// #[async_trait::async_trait]
/// impl AuthStrategy for Signed {
///     fn scheme(&self) -> &'static str {
///         "signed"
///     }
///     async fn apply(
///         &self,
///         request: &mut AuthRequest<'_>,
///         _cx: &AuthContext<'_>,
///     ) -> stitchapi::Result<()> {
///         request.set_header("x-signature", "sig")
///     }
/// }
///
/// let auth = Auth::custom(Signed);
/// assert_eq!(auth.scheme(), "signed");
/// ```
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait AuthStrategy: MaybeSend + MaybeSync + fmt::Debug + 'static {
    /// The non-secret scheme name (`"bearer"`, `"oauth2"`, ...), shown in public config.
    fn scheme(&self) -> &'static str;

    /// Whose credential this is. The engine passes a principal only when the call was made
    /// through `seam.as_principal(id)`.
    fn tenancy(&self) -> Tenancy {
        Tenancy::App
    }

    /// Puts the credential on `request`. Use [`AuthRequest::set_header`],
    /// [`AuthRequest::set_query_param`] and [`AuthRequest::add_cookie`] so the engine knows
    /// which parts carry a credential (it drops them on a cross-origin redirect).
    async fn apply(&self, request: &mut AuthRequest<'_>, cx: &AuthContext<'_>)
    -> Result<(), Error>;

    /// Whether a response means the credential is stale (for example a 401).
    fn should_refresh(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
        let _ = (status, headers, body);
        false
    }

    /// Renews the credential after [`should_refresh`](AuthStrategy::should_refresh) said so.
    /// `rejected` is what `apply` recorded for the rejected request; skip the renewal only
    /// when the stored credential is no longer that one (another caller renewed it already).
    async fn refresh(
        &self,
        rejected: Option<CredentialId>,
        cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        let _ = (rejected, cx);
        Ok(())
    }
}

/// The request a strategy authenticates: method, URL and headers, plus a record of which
/// header names and whether the query received a credential. The engine builds it and hands
/// it to [`AuthStrategy::apply`]; a strategy never constructs one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
/// use std::sync::Arc;
/// use http::Method;
/// use stitchapi::auth::{Auth, AuthContext, AuthRequest, AuthStrategy};
/// use stitchapi::testing::{MockResponse, MockTransport};
/// use stitchapi::{Input, Stitch};
///
/// #[derive(Debug)]
/// struct QueryKey;
///
/// #[async_trait::async_trait]
/// impl AuthStrategy for QueryKey {
///     fn scheme(&self) -> &'static str {
///         "query-key"
///     }
///     async fn apply(&self, request: &mut AuthRequest<'_>, _cx: &AuthContext<'_>) -> stitchapi::Result<()> {
///         assert_eq!(request.method(), Method::GET);
///         request.set_query_param("key", "k-1");
///         assert!(request.has_query_credential());
///         Ok(())
///     }
/// }
///
/// let mock = MockTransport::new();
/// mock.route(Method::GET, "/x", [MockResponse::status(200)]);
/// let stitch = Stitch::get("https://api.example.com/x?page=2")
///     .auth(Auth::custom(QueryKey))
///     .transport(Arc::new(mock.clone()))
///     .build()?;
/// stitch.call(Input::new()).await?;
/// assert_eq!(mock.requests()[0].uri.query(), Some("page=2&key=k-1"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AuthRequest<'a> {
    method: &'a Method,
    url: &'a mut Url,
    headers: &'a mut HeaderMap,
    credential_headers: Vec<HeaderName>,
    query_credential: bool,
    credential: Option<CredentialId>,
}

impl<'a> AuthRequest<'a> {
    /// Wraps the parts of a request about to be sent.
    pub(crate) fn new(method: &'a Method, url: &'a mut Url, headers: &'a mut HeaderMap) -> Self {
        AuthRequest {
            method,
            url,
            headers,
            credential_headers: Vec::new(),
            query_credential: false,
            credential: None,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request URL.
    pub fn url(&self) -> &Url {
        self.url
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// Sets a credential header (replacing any value), marked sensitive, and records its name.
    /// Fails with an `Auth` error when the name or value is not a valid header (the value is
    /// never quoted in the error).
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
            Error::new(
                ErrorKind::Auth,
                format!("auth header name {name:?} is not a valid header name. Fix: use a token such as x-api-key"),
            )
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            Error::new(
                ErrorKind::Auth,
                format!("the credential for header {name} is not a valid header value (control characters or non-ASCII). Fix: check the secret"),
            )
        })?;
        value.set_sensitive(true);
        self.headers.insert(name.clone(), value);
        self.record_header(name);
        Ok(())
    }

    /// Sets a query parameter carrying a credential, replacing any same-named parameter, and
    /// marks the query as credential-bearing.
    pub fn set_query_param(&mut self, name: &str, value: &str) {
        let kept: Vec<(String, String)> = self
            .url
            .query_pairs()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut pairs = self.url.query_pairs_mut();
            pairs.clear();
            for (k, v) in &kept {
                pairs.append_pair(k, v);
            }
            pairs.append_pair(name, value);
        }
        self.query_credential = true;
    }

    /// Adds `name=value` to the `cookie` header, replacing a cookie of the same name and
    /// keeping the others.
    pub fn add_cookie(&mut self, name: &str, value: &str) -> Result<(), Error> {
        crate::cookies::add_to_request(self.headers, name, value).map_err(|_| {
            Error::new(
                ErrorKind::Auth,
                format!("the value of cookie {name:?} is not a valid header value. Fix: check the secret or the session cookie"),
            )
        })?;
        self.record_header(COOKIE);
        Ok(())
    }

    fn record_header(&mut self, name: HeaderName) {
        if !self.credential_headers.contains(&name) {
            self.credential_headers.push(name);
        }
    }

    /// The names of the headers that received a credential.
    pub fn credential_headers(&self) -> &[HeaderName] {
        &self.credential_headers
    }

    /// Whether a credential was put in the query.
    pub fn has_query_credential(&self) -> bool {
        self.query_credential
    }

    /// Records which credential this request carries, for a later
    /// [`refresh`](AuthStrategy::refresh).
    pub fn set_credential_id(&mut self, id: CredentialId) {
        self.credential = Some(id);
    }

    /// What the engine needs after `apply`: the credential header names, the query flag and
    /// the credential's id.
    pub(crate) fn into_applied(self) -> Applied {
        Applied {
            credential_headers: self.credential_headers,
            query_credential: self.query_credential,
            credential: self.credential,
        }
    }
}

/// What a strategy added to a request: see [`AuthRequest::into_applied`]. The redirect layer
/// drops `credential_headers` on a cross-origin hop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Header names that carry a credential.
    pub(crate) credential_headers: Vec<HeaderName>,
    /// Whether the query carries a credential.
    pub(crate) query_credential: bool,
    /// Which credential the request carries, when the strategy recorded it.
    pub(crate) credential: Option<CredentialId>,
}

/// What an auth strategy did, reported as a progress step. It never carries a secret.
///
/// ```
/// use stitchapi::auth::AuthEvent;
///
/// assert_eq!(AuthEvent::TokenRequested.to_string(), "requesting an oauth2 token");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthEvent {
    /// A new OAuth2 token is requested (client credentials grant).
    TokenRequested,
    /// The OAuth2 token is renewed with the `refresh_token` grant.
    TokenRefreshing,
    /// The `refresh_token` grant failed with an error of this kind; a new token is requested
    /// with the client credentials grant instead.
    RefreshGrantFailed(ErrorKind),
    /// Another process was fetching the token; this call waited for it.
    WaitedForToken,
    /// The cookie session logs in.
    LoggingIn,
    /// Another process was logging in; this call waited for its session.
    WaitedForLogin,
    /// The upstream rejected the credential as stale; the engine renews it and redoes the
    /// attempt (once per call).
    CredentialRefresh,
    /// A step of a strategy outside this crate: its scheme and what it did.
    Custom {
        /// The strategy's scheme.
        scheme: &'static str,
        /// What it did, as a short phrase.
        what: &'static str,
    },
}

impl fmt::Display for AuthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthEvent::TokenRequested => f.write_str("requesting an oauth2 token"),
            AuthEvent::TokenRefreshing => {
                f.write_str("refreshing the oauth2 token with the refresh_token grant")
            }
            AuthEvent::RefreshGrantFailed(kind) => write!(
                f,
                "refresh_token grant failed ({kind:?}); falling back to client_credentials"
            ),
            AuthEvent::WaitedForToken => f.write_str("waited for another process's token fetch"),
            AuthEvent::LoggingIn => f.write_str("logging in"),
            AuthEvent::WaitedForLogin => f.write_str("waited for another process's login"),
            AuthEvent::CredentialRefresh => f.write_str("refresh"),
            AuthEvent::Custom { scheme, what } => write!(f, "{scheme}: {what}"),
        }
    }
}

/// Receives [`AuthEvent`]s (the engine turns them into `info` progress events).
pub(crate) trait AuthEvents: MaybeSend + MaybeSync {
    /// Called for every event.
    fn event(&self, event: &AuthEvent);
}

impl<F> AuthEvents for F
where
    F: Fn(&AuthEvent) + MaybeSend + MaybeSync,
{
    fn event(&self, event: &AuthEvent) {
        self(event)
    }
}

/// What a strategy may use while authenticating one call: the engine builds it for each
/// attempt and hands it to [`AuthStrategy::apply`] and [`AuthStrategy::refresh`]. A strategy
/// reads its fields, reports steps with [`emit`](AuthContext::emit) and bounds its own work
/// with [`within`](AuthContext::within); it never constructs one.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct AuthContext<'a> {
    /// The vault: the store with every key under `vault:`.
    pub vault: &'a DynStore,
    /// The store itself (for capabilities; state belongs in the vault).
    pub store: &'a DynStore,
    /// The stitch's clock: all time and waiting goes through it.
    pub clock: &'a dyn Clock,
    /// The stitch's transport (used for token requests).
    pub transport: &'a dyn Transport,
    /// The bound principal (`seam.as_principal(id)`), never taken from call input.
    pub principal: Option<&'a str>,
    /// The call's total deadline, if any: auth work (token fetch, login, waiting) ends there.
    pub deadline: Option<Timestamp>,
    /// The call's per-attempt timeout, if any: each run of auth work through
    /// [`within`](AuthContext::within) (an `apply`, a `refresh`) ends after it, as a request
    /// attempt does.
    pub attempt_timeout: Option<std::time::Duration>,
    /// Where progress events go (through [`emit`](AuthContext::emit)).
    pub(crate) events: Option<&'a dyn AuthEvents>,
}

impl fmt::Debug for AuthContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthContext")
            .field("store", &self.store.name())
            .field("principal", &self.principal)
            .field("deadline", &self.deadline)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl<'a> AuthContext<'a> {
    /// A context with no principal, no deadline and no event sink.
    pub(crate) fn new(
        vault: &'a DynStore,
        store: &'a DynStore,
        clock: &'a dyn Clock,
        transport: &'a dyn Transport,
    ) -> Self {
        AuthContext {
            vault,
            store,
            clock,
            transport,
            principal: None,
            deadline: None,
            attempt_timeout: None,
            events: None,
        }
    }

    /// Binds a principal.
    pub(crate) fn with_principal(mut self, principal: Option<&'a str>) -> Self {
        self.principal = principal;
        self
    }

    /// Sets the deadline.
    pub(crate) fn with_deadline(mut self, deadline: Option<Timestamp>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the per-attempt timeout.
    pub(crate) fn with_attempt_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Sets the event sink.
    pub(crate) fn with_events(mut self, events: Option<&'a dyn AuthEvents>) -> Self {
        self.events = events;
        self
    }

    /// Reports an event (ignored without a sink).
    pub fn emit(&self, event: AuthEvent) {
        if let Some(events) = self.events {
            events.event(&event);
        }
    }

    /// Runs `future` for at most the per-attempt timeout, and not past the call's deadline;
    /// past either, a `Timeout` error. Each run starts its own per-attempt budget.
    ///
    /// A strategy whose signing service never answers, on a stitch whose attempts last at
    /// most a second:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> stitchapi::Result<()> {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use stitchapi::auth::{Auth, AuthContext, AuthRequest, AuthStrategy};
    /// use stitchapi::testing::{ManualClock, MockTransport};
    /// use stitchapi::{ErrorKind, Input, Retry, Stitch, Timeout};
    ///
    /// #[derive(Debug)]
    /// struct Silent;
    ///
    /// #[async_trait::async_trait]
    /// impl AuthStrategy for Silent {
    ///     fn scheme(&self) -> &'static str {
    ///         "silent"
    ///     }
    ///     async fn apply(&self, _: &mut AuthRequest<'_>, cx: &AuthContext<'_>) -> stitchapi::Result<()> {
    ///         cx.within(std::future::pending::<stitchapi::Result<()>>()).await
    ///     }
    /// }
    ///
    /// let stitch = Stitch::get("https://api.example.com/x")
    ///     .auth(Auth::custom(Silent))
    ///     .timeout(Timeout::per_attempt(Duration::from_secs(1)))
    ///     .retry(Retry::none())
    ///     .clock(Arc::new(ManualClock::auto_advance()))
    ///     .transport(Arc::new(MockTransport::new()))
    ///     .build()?;
    /// let error = stitch.call(Input::new()).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Timeout);
    /// assert_eq!(error.to_string(), "timed out after 1000ms");
    /// # Ok(()) }
    /// ```
    pub async fn within<T>(
        &self,
        future: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let left = self
            .deadline
            .map(|deadline| deadline.saturating_duration_since(self.clock.now()));
        let limit = match (left, self.attempt_timeout) {
            (Some(left), Some(each)) => left.min(each),
            (Some(limit), None) | (None, Some(limit)) => limit,
            (None, None) => return future.await,
        };
        if limit.is_zero() {
            return Err(Error::timeout(limit));
        }
        crate::time::timeout(self.clock, limit, future)
            .await
            .unwrap_or_else(|| Err(Error::timeout(limit)))
    }

    /// The vault key for `base`, with `\u{0}<principal>` appended under principal tenancy.
    /// Under principal tenancy with no principal this fails closed with `fail_message`.
    pub(crate) fn scoped_key(
        &self,
        base: String,
        tenancy: Tenancy,
        fail_message: &str,
    ) -> Result<String, Error> {
        match tenancy {
            Tenancy::App => Ok(base),
            Tenancy::Principal => match self.principal {
                Some(principal) => Ok(keys::for_principal(&base, principal)),
                None => Err(Error::new(ErrorKind::Auth, fail_message)),
            },
        }
    }

    /// The fleet side of the single-flight of the vault entry `vault_key`: its owned lock,
    /// when the store is shared by a fleet and has owned locks (otherwise the flight stays in
    /// this process).
    pub(crate) fn fleet_flight(
        &self,
        vault_key: &str,
        lock_ttl: std::time::Duration,
    ) -> Option<FleetFlight<'a>> {
        let caps = self.store.capabilities();
        (caps.scope == Scope::Fleet && caps.owned_locks()).then(|| FleetFlight {
            store: self.vault.clone(),
            lock_key: keys::vault_lock(vault_key),
            timing: FleetTiming {
                lock_ttl,
                ..FleetTiming::default()
            },
            clock: self.clock,
            deadline: self.deadline,
        })
    }
}

/// An authentication strategy, ready to attach to a stitch or seam. Cheap to clone.
///
/// ```
/// use stitchapi::auth::{Auth, Secret};
///
/// let auth = Auth::basic("alice", Secret::new("s3cret"));
/// assert_eq!(auth.scheme(), "basic");
/// assert!(!format!("{auth:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct Auth {
    strategy: Arc<dyn AuthStrategy>,
    /// A declared status that is not an HTTP status, with its field: reported by `build()`.
    invalid_status: Option<(&'static str, crate::policy::StatusSpec)>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.strategy, f)
    }
}

impl Auth {
    /// `authorization: Bearer <token>`.
    pub fn bearer(token: impl Into<Secret>) -> Auth {
        Auth::custom(header::Bearer::new(token.into()))
    }

    /// An API key in a header (default `x-api-key`), the query (default `api_key`) or a
    /// cookie (default `api_key`). A bare [`Secret`] means the header.
    pub fn api_key(key: impl Into<ApiKey>) -> Auth {
        Auth::custom(key.into())
    }

    /// `authorization: Basic base64(user:pass)`.
    pub fn basic(user: impl Into<Secret>, pass: impl Into<Secret>) -> Auth {
        Auth::custom(header::Basic::new(user.into(), pass.into()))
    }

    /// OAuth 2 client credentials (see [`OAuth2`]).
    pub fn oauth2(config: OAuth2) -> Auth {
        let invalid_status = config.invalid_refresh_on();
        Auth {
            invalid_status,
            ..Auth::custom(config)
        }
    }

    /// A cookie session established by a login stitch (see [`CookieSession`]).
    pub fn cookie_session(session: CookieSession) -> Auth {
        let invalid_status = session.invalid_refresh_on();
        Auth {
            invalid_status,
            ..Auth::custom(session)
        }
    }

    /// Any strategy.
    pub fn custom(strategy: impl AuthStrategy) -> Auth {
        Auth {
            strategy: Arc::new(strategy),
            invalid_status: None,
        }
    }

    /// Checks the declaration at `build()`: a `refresh_on` code that is not an HTTP status is
    /// a config error naming the field.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.invalid_status {
            Some((field, status)) => status.check(field).map(drop),
            None => Ok(()),
        }
    }

    /// The strategy's scheme name.
    pub fn scheme(&self) -> &'static str {
        self.strategy.scheme()
    }

    /// The strategy's tenancy.
    pub fn tenancy(&self) -> Tenancy {
        self.strategy.tenancy()
    }

    /// Applies the credential to the request parts and reports what was added. This is what
    /// the engine calls before each attempt.
    pub(crate) async fn apply(
        &self,
        method: &Method,
        url: &mut Url,
        headers: &mut HeaderMap,
        cx: &AuthContext<'_>,
    ) -> Result<Applied, Error> {
        let mut request = AuthRequest::new(method, url, headers);
        self.strategy.apply(&mut request, cx).await?;
        Ok(request.into_applied())
    }

    /// See [`AuthStrategy::should_refresh`].
    pub(crate) fn should_refresh(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> bool {
        self.strategy.should_refresh(status, headers, body)
    }

    /// See [`AuthStrategy::refresh`].
    pub(crate) async fn refresh(
        &self,
        rejected: Option<CredentialId>,
        cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        self.strategy.refresh(rejected, cx).await
    }
}

#[cfg(all(test, feature = "reqwest", not(target_arch = "wasm32")))]
mod loopback_tests;

#[cfg(test)]
pub(crate) mod test_support {
    use std::time::Duration;

    use bytes::Bytes;

    /// A transport that answers after 100 ms of tokio time, so that concurrent callers overlap
    /// (run under `start_paused`).
    #[derive(Debug, Clone)]
    pub struct SlowTransport(pub crate::testing::MockTransport);

    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    impl crate::transport::Transport for SlowTransport {
        async fn send(
            &self,
            request: crate::transport::TransportRequest,
        ) -> Result<http::Response<Bytes>, crate::transport::TransportError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.send(request).await
        }
    }
}
