//! Cookie sessions: a login stitch whose `Set-Cookie` seeds a session replayed on later calls.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cookie_store::CookieStore;
use http::header::SET_COOKIE;
use http::{HeaderMap, StatusCode};
use url::Url;

use super::flight::{FlightTiming, Flights};
use super::{AuthContext, AuthRequest, AuthStrategy};
use crate::error::{Error, ErrorKind};
use crate::input::Input;
use crate::runtime::{BoxFuture, MaybeSend, MaybeSync};
use crate::stitch::Stitch;
use crate::tenancy::Tenancy;

const NO_PRINCIPAL: &str = "cookie_session with tenancy 'principal' (the default) requires a bound principal: call through seam.as_principal(id), or set tenancy(App)";

/// Why a login did not produce a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginFailure {
    /// The login answered 429; `retry_after` is its `Retry-After`, if any.
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// The login answered a `refresh_on` status (401 by default).
    Unauthenticated,
    /// The login could not reach the server (no status).
    Network,
    /// Anything else, including a 2xx that set no session cookie.
    Unknown,
}

/// The result of one real login attempt, passed to [`CookieSession::on_outcome`] hooks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginOutcome {
    /// Whether a session was captured.
    pub ok: bool,
    /// The login's status, when it answered.
    pub status: Option<StatusCode>,
    /// Why it failed, when it did.
    pub failure: Option<LoginFailure>,
}

/// What the login stitch answered.
struct LoginReply {
    status: StatusCode,
    headers: HeaderMap,
    url: Url,
}

trait LoginCall: MaybeSend + MaybeSync + 'static {
    fn call(&self, input: Input) -> BoxFuture<'static, Result<LoginReply, Error>>;
}

struct StitchLogin<O>(Stitch<O>);

impl<O: MaybeSend + 'static> LoginCall for StitchLogin<O>
where
    Stitch<O>: MaybeSend + MaybeSync,
{
    fn call(&self, input: Input) -> BoxFuture<'static, Result<LoginReply, Error>> {
        let stitch = self.0.clone();
        Box::pin(async move {
            let reply = stitch.call_detailed(input).await?;
            Ok(LoginReply {
                status: reply.status,
                headers: reply.headers,
                url: reply.url,
            })
        })
    }
}

/// Decides, from a response, that the session hit a soft wall (see
/// [`CookieSession::refresh_when`]).
pub trait RefreshWhen: MaybeSend + MaybeSync + 'static {
    /// Whether to log in again.
    fn check(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool;
}

impl<F> RefreshWhen for F
where
    F: Fn(StatusCode, &HeaderMap, &[u8]) -> bool + MaybeSend + MaybeSync + 'static,
{
    fn check(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
        self(status, headers, body)
    }
}

/// Observes login outcomes (see [`CookieSession::on_outcome`]).
pub trait OutcomeHook: MaybeSend + MaybeSync + 'static {
    /// Called once per real login attempt.
    fn outcome(&self, outcome: &LoginOutcome);
}

impl<F> OutcomeHook for F
where
    F: Fn(&LoginOutcome) + MaybeSend + MaybeSync + 'static,
{
    fn outcome(&self, outcome: &LoginOutcome) {
        self(outcome)
    }
}

/// Builds the login input, given the bound principal (see [`CookieSession::login_input`]).
pub trait LoginInput: MaybeSend + MaybeSync + 'static {
    /// The input for the login call.
    fn input(&self, principal: Option<&str>) -> Input;
}

impl<F> LoginInput for F
where
    F: Fn(Option<&str>) -> Input + MaybeSend + MaybeSync + 'static,
{
    fn input(&self, principal: Option<&str>) -> Input {
        self(principal)
    }
}

/// A cookie session: see [`Auth::cookie_session`](super::Auth::cookie_session).
///
/// The login is a stitch (so it has its own retry and timeout), called with the input from
/// [`login_input`](CookieSession::login_input); it must answer 2xx and set the session cookie.
/// The cookies are kept in the vault as a serialised RFC 6265 jar under
/// `cookie:<key or name>` (or `jar:<key or *>` in jar mode) plus `\u{0}<principal>`, and
/// replayed on later calls only to the hosts and paths they were set for. A 401 (or the
/// [`refresh_when`](CookieSession::refresh_when) predicate) triggers one re-login.
///
/// Sessions are per principal by default and fail closed without one.
///
/// ```no_run
/// use stitchapi::auth::{Auth, CookieSession};
/// use stitchapi::{Input, Stitch, Tenancy};
///
/// # fn demo() -> stitchapi::Result<()> {
/// let login = Stitch::post("https://app.example.com/login").build()?;
/// let auth = Auth::cookie_session(
///     CookieSession::new(login, "session")
///         .login_input(|user: Option<&str>| Input::new().form(&serde_json::json!({"user": user})))
///         .refresh_when(|status, _headers: &http::HeaderMap, body: &[u8]| {
///             status == 200 && body.starts_with(b"<form id=\"login\"")
///         })
///         .on_outcome(|outcome: &stitchapi::auth::LoginOutcome| eprintln!("login: {:?}", outcome.failure)),
/// );
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CookieSession {
    login: Arc<dyn LoginCall>,
    cookie: Option<String>,
    key: Option<String>,
    ttl: Option<Duration>,
    tenancy: Tenancy,
    login_input: Option<Arc<dyn LoginInput>>,
    refresh_on: Vec<u16>,
    refresh_when: Option<Arc<dyn RefreshWhen>>,
    hooks: Vec<Arc<dyn OutcomeHook>>,
    timing: FlightTiming,
    flights: Arc<Flights>,
}

impl std::fmt::Debug for CookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSession")
            .field("cookie", &self.cookie.as_deref().unwrap_or("*"))
            .field("key", &self.key)
            .field("tenancy", &self.tenancy)
            .field("refresh_on", &self.refresh_on)
            .finish_non_exhaustive()
    }
}

impl CookieSession {
    /// A session carried by the cookie `cookie`, set by `login`.
    pub fn new<O>(login: Stitch<O>, cookie: impl Into<String>) -> CookieSession
    where
        O: MaybeSend + 'static,
        Stitch<O>: MaybeSend + MaybeSync,
    {
        CookieSession::build(Arc::new(StitchLogin(login)), Some(cookie.into()))
    }

    /// A session carried by every cookie `login` sets (jar mode).
    pub fn jar<O>(login: Stitch<O>) -> CookieSession
    where
        O: MaybeSend + 'static,
        Stitch<O>: MaybeSend + MaybeSync,
    {
        CookieSession::build(Arc::new(StitchLogin(login)), None)
    }

    fn build(login: Arc<dyn LoginCall>, cookie: Option<String>) -> CookieSession {
        CookieSession {
            login,
            cookie,
            key: None,
            ttl: None,
            tenancy: Tenancy::Principal,
            login_input: None,
            refresh_on: vec![401],
            refresh_when: None,
            hooks: Vec::new(),
            timing: FlightTiming::default(),
            flights: Arc::default(),
        }
    }

    /// The input for the login call, from the bound principal (default: empty input).
    pub fn login_input(mut self, input: impl LoginInput) -> Self {
        self.login_input = Some(Arc::new(input));
        self
    }

    /// The vault namespace (default: the cookie name, or `*` in jar mode).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// How long a session is kept in the vault (default: until a refresh status).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// [`Tenancy::Principal`] (default, failing closed without a principal) or
    /// [`Tenancy::App`] (one session for every caller).
    pub fn tenancy(mut self, tenancy: Tenancy) -> Self {
        self.tenancy = tenancy;
        self
    }

    /// Statuses that trigger one re-login (default `[401]`).
    pub fn refresh_on(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.refresh_on = statuses.into_iter().collect();
        self
    }

    /// A soft-wall predicate: a response that makes it true triggers one re-login (for
    /// example a 200 that is really the login page).
    pub fn refresh_when(mut self, predicate: impl RefreshWhen) -> Self {
        self.refresh_when = Some(Arc::new(predicate));
        self
    }

    /// A hook called once per real login attempt (never per waiting caller).
    pub fn on_outcome(mut self, hook: impl OutcomeHook) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// The fleet login lock's TTL, also the longest another process waits (default 10 s).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.timing.lock_ttl = ttl;
        self
    }

    fn vault_key(&self, cx: &AuthContext<'_>) -> Result<String, Error> {
        let base = match (&self.cookie, &self.key) {
            (Some(name), key) => format!("cookie:{}", key.as_deref().unwrap_or(name)),
            (None, key) => format!("jar:{}", key.as_deref().unwrap_or("*")),
        };
        cx.scoped_key(base, self.tenancy, NO_PRINCIPAL)
    }

    /// The stored session, single-flight logging in when there is none (or it is `stale`).
    async fn session(
        &self,
        cx: &AuthContext<'_>,
        key: &str,
        stale: Option<Bytes>,
    ) -> Result<Bytes, Error> {
        let done = || async {
            match cx.vault.get(key).await? {
                Some(bytes) if Some(&bytes) != stale.as_ref() => Ok(Some(bytes)),
                _ => Ok(None),
            }
        };
        self.flights
            .run(cx, "cookie", key, self.timing, done, || self.login(cx, key))
            .await
    }

    async fn login(&self, cx: &AuthContext<'_>, key: &str) -> Result<Bytes, Error> {
        cx.emit("cookie", "login", "logging in");
        let input = match &self.login_input {
            Some(f) => f.input(cx.principal),
            None => Input::new(),
        };
        let result = self.login.call(input).await;
        let (outcome, session) = match result {
            Ok(reply) if reply.status.is_success() => match self.capture(&reply) {
                Some(jar) => (
                    LoginOutcome { ok: true, status: Some(reply.status), failure: None },
                    Ok(jar),
                ),
                None => (
                    LoginOutcome { ok: false, status: Some(reply.status), failure: Some(LoginFailure::Unknown) },
                    Err(Error::new(
                        ErrorKind::Auth,
                        format!(
                            "cookie_session login answered HTTP {} but set no {} cookie. Fix: check the login input and the cookie name",
                            reply.status.as_u16(),
                            self.cookie.as_deref().map_or("session".to_owned(), |n| format!("{n:?}"))
                        ),
                    )
                    .with_status(reply.status)),
                ),
            },
            Ok(reply) => (
                LoginOutcome { ok: false, status: Some(reply.status), failure: Some(self.classify(Some(reply.status), None)) },
                Err(Error::new(
                    ErrorKind::Auth,
                    format!("cookie_session login failed: HTTP {}. Fix: check the login input and credentials", reply.status.as_u16()),
                )
                .with_status(reply.status)),
            ),
            Err(error) => (
                LoginOutcome {
                    ok: false,
                    status: error.status(),
                    failure: Some(self.classify(error.status(), error.retry_after())),
                },
                Err(error),
            ),
        };
        for hook in &self.hooks {
            hook.outcome(&outcome);
        }
        let jar = session?;
        cx.vault.set(key, Some(jar.clone()), self.ttl).await?;
        Ok(jar)
    }

    fn classify(&self, status: Option<StatusCode>, retry_after: Option<Duration>) -> LoginFailure {
        match status {
            Some(StatusCode::TOO_MANY_REQUESTS) => LoginFailure::RateLimited { retry_after },
            Some(s) if self.refresh_on.contains(&s.as_u16()) => LoginFailure::Unauthenticated,
            Some(_) => LoginFailure::Unknown,
            None => LoginFailure::Network,
        }
    }

    /// The serialised jar of the login's cookies, or `None` when the session cookie is missing.
    fn capture(&self, reply: &LoginReply) -> Option<Bytes> {
        let mut jar = CookieStore::new();
        for value in reply.headers.get_all(SET_COOKIE) {
            if let Ok(text) = value.to_str() {
                let _ = jar.parse(text, &reply.url);
            }
        }
        let mut cookies = jar.iter_unexpired();
        let captured = match &self.cookie {
            Some(name) => cookies.any(|c| c.name() == name),
            None => cookies.next().is_some(),
        };
        if !captured {
            return None;
        }
        let mut out = Vec::new();
        cookie_store::serde::json::save_incl_expired_and_nonpersistent(&jar, &mut out).ok()?;
        Some(Bytes::from(out))
    }

    fn replay(&self, jar: &[u8], request: &mut AuthRequest<'_>) -> Result<(), Error> {
        let jar = cookie_store::serde::json::load(jar).map_err(|e| {
            Error::new(ErrorKind::Auth, format!("the stored cookie session does not load ({e}). Fix: clear the vault entry or log in again"))
        })?;
        let url = request.url().clone();
        let pairs: Vec<(String, String)> = jar
            .get_request_values(&url)
            .filter(|(name, _)| self.cookie.as_deref().is_none_or(|wanted| wanted == *name))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        for (name, value) in pairs {
            request.add_cookie(&name, &value)?;
        }
        Ok(())
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl AuthStrategy for CookieSession {
    fn scheme(&self) -> &'static str {
        "cookie"
    }

    fn tenancy(&self) -> Tenancy {
        self.tenancy
    }

    async fn apply(
        &self,
        request: &mut AuthRequest<'_>,
        cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        let key = self.vault_key(cx)?;
        let jar = cx
            .within(async {
                match cx.vault.get(&key).await? {
                    Some(jar) => Ok(jar),
                    None => self.session(cx, &key, None).await,
                }
            })
            .await?;
        self.replay(&jar, request)
    }

    fn should_refresh(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
        self.refresh_on.contains(&status.as_u16())
            || self
                .refresh_when
                .as_ref()
                .is_some_and(|p| p.check(status, headers, body))
    }

    async fn refresh(&self, cx: &AuthContext<'_>) -> Result<(), Error> {
        let key = self.vault_key(cx)?;
        cx.within(async {
            let stale = cx.vault.get(&key).await?;
            self.session(cx, &key, stale).await.map(drop)
        })
        .await
    }
}
