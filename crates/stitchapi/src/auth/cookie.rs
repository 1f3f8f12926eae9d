//! Cookie sessions: a login stitch whose `Set-Cookie` seeds a session replayed on later calls.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cookie_store::CookieStore;
use http::{HeaderMap, StatusCode};
use url::Url;

use super::{AuthContext, AuthEvent, AuthRequest, AuthStrategy, CredentialId};
use crate::cookies;
use crate::error::{Error, ErrorKind, RedactedUrl};
use crate::flight::{self, DEFAULT_LOCK_TTL, Flights, Flown};
use crate::input::Input;
use crate::policy::StatusSpec;
use crate::runtime::{BoxFuture, MaybeSend, MaybeSync};
use crate::stitch::Stitch;
use crate::store::keys;
use crate::tenancy::Tenancy;
use crate::transport::RedirectHop;

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

/// The session as stored in the vault: when it was captured and the RFC 6265 jar.
#[derive(serde::Serialize, serde::Deserialize)]
struct SessionRecord {
    /// Milliseconds since the epoch.
    at: u64,
    /// The jar, as `cookie_store` serialises it.
    jar: serde_json::Value,
}

/// A [`SessionRecord`] read for replay: the jar stays raw JSON text.
#[derive(serde::Deserialize)]
struct StoredJar<'a> {
    #[serde(borrow)]
    jar: &'a serde_json::value::RawValue,
}

/// What the login stitch answered.
struct LoginReply {
    status: StatusCode,
    headers: HeaderMap,
    url: Url,
    /// The redirects followed on the way, each with its own `Set-Cookie`s.
    redirects: Vec<RedirectHop>,
}

impl LoginReply {
    /// The redirects that led to the answer, for errors: ` after 302 from <url>, 303 from
    /// <url>`, or nothing.
    fn chain(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        for (n, hop) in self.redirects.iter().enumerate() {
            let _ = write!(
                text,
                "{}{} from {}",
                if n == 0 { " after " } else { ", " },
                hop.status.as_u16(),
                RedactedUrl(&hop.url)
            );
        }
        text
    }
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
                redirects: reply.redirects,
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
/// [`login_input`](CookieSession::login_input); it must answer 2xx (or, when the login stitch
/// follows no redirect, the `3xx` itself) and set the session cookie. Cookies are taken from
/// every response of the login's redirect chain, each scoped to the URL that set it, as a
/// browser keeps them: the usual `302` + `Set-Cookie` + `Location: /dashboard` login works
/// as it is.
/// The cookies are kept in the vault as a serialised RFC 6265 jar under
/// `cookie:<key or name>` (or `jar:<key or *>` in jar mode) plus `\u{0}<principal>`, and
/// replayed on later calls only to the hosts and paths they were set for. A 401 (or the
/// [`refresh_when`](CookieSession::refresh_when) predicate) triggers one re-login, unless the
/// vault already holds another session than the one the server rejected. Logins are
/// single-flight in the process and, over a fleet store with owned locks, across the fleet.
///
/// Sessions are per principal by default and fail closed without one.
///
/// The login's `Set-Cookie`s are checked before they are kept (RFC 6265bis): a cookie whose
/// `Domain` is a public suffix (`com`, `co.uk`, `github.io`, a single label) is refused unless
/// that is the login's own host (then it stays host-only), so a session never reaches every
/// host under a shared suffix; `Secure` is accepted only from `https` (or loopback);
/// `__Secure-` needs `Secure`, and `__Host-` needs `Secure`, `Path=/` and no `Domain`. The
/// public suffix list is compiled in (the `psl` crate): nothing is fetched at run time. A
/// huge `Max-Age` or a far `Expires` is clamped, a negative `Max-Age` expires the cookie. The
/// login is bounded by the calling stitch's per-attempt timeout and total deadline.
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
    refresh_on: Vec<StatusSpec>,
    refresh_when: Option<Arc<dyn RefreshWhen>>,
    hooks: Vec<Arc<dyn OutcomeHook>>,
    lock_ttl: Duration,
    flights: Arc<Flights<Bytes>>,
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
            refresh_on: vec![StatusSpec::from(StatusCode::UNAUTHORIZED)],
            refresh_when: None,
            hooks: Vec::new(),
            lock_ttl: DEFAULT_LOCK_TTL,
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

    /// Statuses that trigger one re-login (default `[401]`): [`StatusCode`]s or `u16`s.
    pub fn refresh_on<S: Into<StatusSpec>>(
        mut self,
        statuses: impl IntoIterator<Item = S>,
    ) -> Self {
        self.refresh_on = statuses.into_iter().map(Into::into).collect();
        self
    }

    /// The first declared `refresh_on` code that is not an HTTP status, for `build()`.
    pub(crate) fn invalid_refresh_on(&self) -> Option<(&'static str, StatusSpec)> {
        self.refresh_on
            .iter()
            .find(|status| !status.is_valid())
            .map(|status| ("auth.cookie_session.refresh_on", *status))
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

    /// The TTL of the fleet login lock (default 5 s, at least 100 ms): how long a process
    /// that died while logging in blocks the others. A live one renews it; the others wait for
    /// its session within their call's timeout.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    fn vault_key(&self, cx: &AuthContext<'_>) -> Result<String, Error> {
        let base = keys::cookie_session(self.cookie.as_deref(), self.key.as_deref());
        cx.scoped_key(base, self.tenancy, NO_PRINCIPAL)
    }

    /// The stored session, single-flight logging in when there is none, or (`replacing`)
    /// when it is still the one the server rejected (`Some(None)`: unknown, so log in).
    async fn session(
        &self,
        cx: &AuthContext<'_>,
        key: &str,
        replacing: Option<Option<CredentialId>>,
    ) -> Result<Bytes, Error> {
        let done = || async {
            let stored = cx.vault.get(key).await?;
            Ok(stored.filter(|session| match replacing {
                None => true,
                Some(rejected) => rejected.is_some_and(|id| CredentialId::of(session) != id),
            }))
        };
        let (session, flown) = self
            .flights
            // The call's deadline bounds this whole call already (`AuthContext::within`).
            .run(key, None, || async {
                let fleet = cx.fleet_flight(key, self.lock_ttl);
                // Another caller may have logged in since this one looked (under a fleet
                // lock, the flight looks again itself once it holds the lock).
                let look_first = fleet.is_none();
                let login = || async {
                    if look_first && let Some(session) = done().await? {
                        return Ok(session);
                    }
                    self.login(cx, key).await
                };
                flight::lead(fleet, done, login).await
            })
            .await?;
        if matches!(
            flown,
            Some(Flown::FleetFilled | Flown::Led { waited: true })
        ) {
            cx.emit(AuthEvent::WaitedForLogin);
        }
        Ok(session)
    }

    async fn login(&self, cx: &AuthContext<'_>, key: &str) -> Result<Bytes, Error> {
        cx.emit(AuthEvent::LoggingIn);
        let input = match &self.login_input {
            Some(f) => f.input(cx.principal),
            None => Input::new(),
        };
        let result = self.login.call(input).await;
        let (outcome, session) = match result {
            // A 3xx is an answer only from a login that follows no redirect: it set the
            // session itself.
            Ok(reply) if reply.status.is_success() || reply.status.is_redirection() => match self.capture(&reply, cx.clock.now().as_millis()) {
                Ok(jar) => (
                    LoginOutcome { ok: true, status: Some(reply.status), failure: None },
                    Ok(jar),
                ),
                Err(refused) => (
                    LoginOutcome { ok: false, status: Some(reply.status), failure: Some(LoginFailure::Unknown) },
                    Err(Error::new(
                        ErrorKind::Auth,
                        format!(
                            "cookie_session login answered HTTP {} from {}{} but set no {} cookie{}. Fix: check the login input and the cookie name",
                            reply.status.as_u16(),
                            RedactedUrl(&reply.url),
                            reply.chain(),
                            self.cookie.as_deref().map_or("session".to_owned(), |n| format!("{n:?}")),
                            refused.map_or(String::new(), |why| format!(" (one was refused: {why})")),
                        ),
                    )
                    .with_status(reply.status)
                    .with_url(reply.url.clone())),
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
            Some(s) if self.refresh_on.contains(&StatusSpec::from(s)) => {
                LoginFailure::Unauthenticated
            }
            Some(_) => LoginFailure::Unknown,
            None => LoginFailure::Network,
        }
    }

    /// The serialised jar of the login's admitted cookies (see [`admit`]), or, when the session
    /// cookie is missing, why a cookie of that name was refused, if one was.
    fn capture(&self, reply: &LoginReply, now: u64) -> Result<Bytes, Option<&'static str>> {
        let mut jar = CookieStore::new();
        let mut refused = None;
        // Every response of the redirect chain, each scoped to the URL that sent it, as a
        // browser keeps them.
        let responses = reply
            .redirects
            .iter()
            .map(|hop| (&hop.headers, &hop.url))
            .chain([(&reply.headers, &reply.url)]);
        for (headers, url) in responses {
            cookies::keep(&mut jar, headers, url, |name, why| {
                tracing::debug!(cookie = %name, reason = why, "refused a Set-Cookie of the login");
                if self.cookie.as_deref().is_none_or(|wanted| wanted == name) {
                    refused = Some(why);
                }
            });
        }
        let mut cookies = jar.iter_unexpired();
        let captured = match &self.cookie {
            Some(name) => cookies.any(|c| c.name() == name),
            None => cookies.next().is_some(),
        };
        if !captured {
            return Err(refused);
        }
        let mut out = Vec::new();
        cookie_store::serde::json::save_incl_expired_and_nonpersistent(&jar, &mut out)
            .map_err(|_| None)?;
        let record = SessionRecord {
            at: now,
            jar: serde_json::from_slice(&out).map_err(|_| None)?,
        };
        serde_json::to_vec(&record)
            .map(Bytes::from)
            .map_err(|_| None)
    }

    fn replay(&self, record: &[u8], request: &mut AuthRequest<'_>) -> Result<(), Error> {
        let invalid = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::Auth,
                format!(
                    "the stored cookie session does not load ({e}). Fix: clear the vault entry or log in again"
                ),
            )
        };
        // The jar is handed to `cookie_store` as the raw text it was stored as: parsed once.
        let stored: StoredJar<'_> = serde_json::from_slice(record).map_err(|e| invalid(&e))?;
        let jar = cookie_store::serde::json::load(stored.jar.get().as_bytes())
            .map_err(|e| invalid(&e))?;
        let url = request.url().clone();
        let pairs: Vec<(String, String)> = cookies::to_send(&jar, &url)
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
        request.set_credential_id(CredentialId::of(&jar));
        self.replay(&jar, request)
    }

    fn should_refresh(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
        self.refresh_on.contains(&StatusSpec::from(status))
            || self
                .refresh_when
                .as_ref()
                .is_some_and(|p| p.check(status, headers, body))
    }

    async fn refresh(
        &self,
        rejected: Option<CredentialId>,
        cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        let key = self.vault_key(cx)?;
        cx.within(self.session(cx, &key, Some(rejected)))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use http::Method;
    use serde_json::json;

    use super::super::{Auth, VAULT_PREFIX};
    use super::*;
    use crate::Retry;
    use crate::store::{DynStore, MemoryStore, PrefixedStore};
    use crate::testing::{MockResponse, MockTransport};
    use crate::time::ManualClock;

    struct Env {
        store: DynStore,
        vault: DynStore,
        clock: Arc<ManualClock>,
        mock: MockTransport,
    }

    impl Env {
        fn new() -> Env {
            let clock = Arc::new(ManualClock::new());
            clock.advance(Duration::from_secs(1_000));
            let store: DynStore = Arc::new(MemoryStore::with_clock(clock.clone()));
            Env {
                vault: Arc::new(PrefixedStore::new(store.clone(), VAULT_PREFIX)),
                store,
                clock,
                mock: MockTransport::new(),
            }
        }
        fn cx(&self) -> AuthContext<'_> {
            AuthContext::new(&self.vault, &self.store, &*self.clock, &self.mock)
        }
        fn login(&self) -> Stitch<String> {
            Stitch::post("https://a.test/login")
                .text()
                .transport(Arc::new(self.mock.clone()))
                .retry(Retry::attempts(1))
                .build()
                .unwrap()
        }
        fn logins(&self) -> usize {
            self.mock
                .requests()
                .iter()
                .filter(|r| r.uri.path() == "/login")
                .count()
        }
    }

    fn set_cookie(value: &str) -> MockResponse {
        MockResponse::status(200).header("set-cookie", value)
    }

    async fn cookie_for(
        auth: &Auth,
        cx: &AuthContext<'_>,
        url: &str,
    ) -> Result<Option<String>, Error> {
        let mut url = Url::parse(url).unwrap();
        let mut headers = HeaderMap::new();
        let applied = auth.apply(&Method::GET, &mut url, &mut headers, cx).await?;
        let cookie = headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(cookie.is_some(), !applied.credential_headers.is_empty());
        Ok(cookie)
    }

    #[tokio::test]
    async fn a_stored_session_that_does_not_load_is_a_clear_auth_error() {
        let env = Env::new();
        let session = CookieSession::new(env.login(), "session");
        let cx = env.cx().with_principal(Some("alice"));
        let key = session.vault_key(&cx).unwrap();
        for stored in [&br#"{"at":1,"jar":42}"#[..], b"not json"] {
            env.vault
                .set(&key, Some(Bytes::copy_from_slice(stored)), None)
                .await
                .unwrap();
            let auth = Auth::cookie_session(session.clone());
            let error = cookie_for(&auth, &cx, "https://a.test/api")
                .await
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Auth);
            assert!(
                error
                    .to_string()
                    .contains("the stored cookie session does not load"),
                "{error}"
            );
        }
        assert_eq!(env.logins(), 0);
    }

    #[tokio::test]
    async fn logs_in_once_and_replays_the_cookie() {
        let env = Env::new();
        env.mock.route(
            Method::POST,
            "/login",
            [set_cookie("session=abc; Path=/; HttpOnly").header("set-cookie", "other=x; Path=/")],
        );
        let auth = Auth::cookie_session(CookieSession::new(env.login(), "session"));
        let cx = env.cx().with_principal(Some("alice"));
        assert_eq!(
            cookie_for(&auth, &cx, "https://a.test/api")
                .await
                .unwrap()
                .as_deref(),
            Some("session=abc")
        );
        assert_eq!(
            cookie_for(&auth, &cx, "https://a.test/api/2")
                .await
                .unwrap()
                .as_deref(),
            Some("session=abc")
        );
        assert_eq!(env.logins(), 1);
        assert!(
            env.store
                .get("vault:cookie:session\u{0}alice")
                .await
                .unwrap()
                .is_some()
        );
        assert!(!format!("{auth:?}").contains("abc"));
    }

    #[tokio::test]
    async fn jar_mode_replays_every_cookie_only_where_it_was_set() {
        let env = Env::new();
        env.mock.route(
            Method::POST,
            "/login",
            [set_cookie("a=1; Path=/").header("set-cookie", "b=2; Path=/api")],
        );
        let auth = Auth::cookie_session(CookieSession::jar(env.login()).tenancy(Tenancy::App));
        let cx = env.cx();
        let api = cookie_for(&auth, &cx, "https://a.test/api/x")
            .await
            .unwrap()
            .unwrap();
        assert!(api == "a=1; b=2" || api == "b=2; a=1", "{api}");
        assert_eq!(
            cookie_for(&auth, &cx, "https://a.test/other")
                .await
                .unwrap()
                .as_deref(),
            Some("a=1")
        );
        // Host B never receives host A's cookies.
        assert_eq!(
            cookie_for(&auth, &cx, "https://b.test/api/x")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            cookie_for(&auth, &cx, "https://evil.a.test.b.test/")
                .await
                .unwrap(),
            None
        );
        assert_eq!(env.logins(), 1);
        assert!(env.store.get("vault:jar:*").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn existing_cookies_are_kept() {
        let env = Env::new();
        env.mock
            .route(Method::POST, "/login", [set_cookie("session=abc")]);
        let auth =
            Auth::cookie_session(CookieSession::new(env.login(), "session").tenancy(Tenancy::App));
        let mut url = Url::parse("https://a.test/").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "theme=dark".parse().unwrap());
        auth.apply(&Method::GET, &mut url, &mut headers, &env.cx())
            .await
            .unwrap();
        assert_eq!(headers["cookie"], "theme=dark; session=abc");
    }

    #[tokio::test]
    async fn relogin_once_on_401_and_on_a_soft_wall() {
        let env = Env::new();
        env.mock.route(
            Method::POST,
            "/login",
            [set_cookie("session=one"), set_cookie("session=two")],
        );
        let auth = Auth::cookie_session(
            CookieSession::new(env.login(), "session")
                .tenancy(Tenancy::App)
                .refresh_when(|status: StatusCode, _: &HeaderMap, body: &[u8]| {
                    status == StatusCode::OK && body.starts_with(b"<form id=login")
                }),
        );
        let cx = env.cx();
        assert_eq!(
            cookie_for(&auth, &cx, "https://a.test/")
                .await
                .unwrap()
                .as_deref(),
            Some("session=one")
        );
        let none = HeaderMap::new();
        assert!(auth.should_refresh(StatusCode::UNAUTHORIZED, &none, b""));
        assert!(auth.should_refresh(StatusCode::OK, &none, b"<form id=login>"));
        assert!(!auth.should_refresh(StatusCode::OK, &none, b"{\"ok\":true}"));
        assert!(!auth.should_refresh(StatusCode::FORBIDDEN, &none, b""));
        let stored = env.vault.get("cookie:session").await.unwrap().unwrap();
        let rejected = Some(CredentialId::of(&stored));
        let results =
            futures_util::future::join_all((0..5).map(|_| auth.refresh(rejected, &cx))).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(
            cookie_for(&auth, &cx, "https://a.test/")
                .await
                .unwrap()
                .as_deref(),
            Some("session=two")
        );
        assert_eq!(env.logins(), 2);
    }

    #[tokio::test]
    async fn concurrent_cold_callers_share_one_login() {
        let env = Env::new();
        env.mock
            .route(Method::POST, "/login", [set_cookie("session=abc")]);
        let auth =
            Auth::cookie_session(CookieSession::new(env.login(), "session").tenancy(Tenancy::App));
        let cx = env.cx();
        let results = futures_util::future::join_all(
            (0..10).map(|_| cookie_for(&auth, &cx, "https://a.test/")),
        )
        .await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().ok().and_then(|c| c.as_deref()) == Some("session=abc"))
        );
        assert_eq!(env.logins(), 1);
    }

    #[tokio::test]
    async fn principals_get_separate_sessions_and_none_fails_closed() {
        let env = Env::new();
        env.mock.route(
            Method::POST,
            "/login",
            [
                set_cookie("session=for-first"),
                set_cookie("session=for-second"),
            ],
        );
        let auth =
            Auth::cookie_session(CookieSession::new(env.login(), "session").login_input(
                |principal: Option<&str>| Input::new().form(&json!({"user": principal})),
            ));
        assert_eq!(auth.tenancy(), Tenancy::Principal);
        let error = cookie_for(&auth, &env.cx(), "https://a.test/")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Auth);
        assert_eq!(error.to_string(), NO_PRINCIPAL);
        assert_eq!(env.logins(), 0);

        let alice = env.cx().with_principal(Some("alice"));
        let bob = env.cx().with_principal(Some("bob"));
        assert_eq!(
            cookie_for(&auth, &alice, "https://a.test/")
                .await
                .unwrap()
                .as_deref(),
            Some("session=for-first")
        );
        assert_eq!(
            cookie_for(&auth, &bob, "https://a.test/")
                .await
                .unwrap()
                .as_deref(),
            Some("session=for-second")
        );
        assert_eq!(
            cookie_for(&auth, &alice, "https://a.test/")
                .await
                .unwrap()
                .as_deref(),
            Some("session=for-first")
        );
        let bodies: Vec<_> = env
            .mock
            .requests()
            .iter()
            .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
            .collect();
        assert_eq!(bodies, ["user=alice", "user=bob"]);
    }

    #[tokio::test]
    async fn outcome_hooks_fire_once_per_real_login() {
        let env = Env::new();
        env.mock.route(
            Method::POST,
            "/login",
            [
                MockResponse::status(429).header("retry-after", "7"),
                MockResponse::status(401),
                MockResponse::status(200),
                MockResponse::fail(crate::transport::TransportErrorKind::Connect, "refused"),
                set_cookie("session=ok"),
            ],
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let auth = Auth::cookie_session(
            CookieSession::new(env.login(), "session")
                .tenancy(Tenancy::App)
                .on_outcome({
                    let seen = seen.clone();
                    let calls = calls.clone();
                    move |outcome: &LoginOutcome| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        seen.lock().unwrap().push(outcome.clone());
                    }
                }),
        );
        let cx = env.cx();
        for _ in 0..4 {
            assert!(cookie_for(&auth, &cx, "https://a.test/").await.is_err());
        }
        assert_eq!(
            cookie_for(&auth, &cx, "https://a.test/")
                .await
                .unwrap()
                .as_deref(),
            Some("session=ok")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(env.logins(), 5);
        let failures: Vec<_> = seen.lock().unwrap().iter().map(|o| o.failure).collect();
        assert_eq!(
            failures,
            [
                Some(LoginFailure::RateLimited {
                    retry_after: Some(Duration::from_secs(7))
                }),
                Some(LoginFailure::Unauthenticated),
                Some(LoginFailure::Unknown),
                Some(LoginFailure::Network),
                None,
            ]
        );
        assert!(seen.lock().unwrap()[4].ok);
    }
}

/// Set-Cookie handling against hostile values: the RFC 6265bis storage rules, and a bounded
/// property-based fuzz target over arbitrary header values and attributes.
#[cfg(test)]
mod hostile_cookies {
    use std::sync::Arc;

    use http::{HeaderValue, Method};
    use proptest::prelude::*;

    use cookie_store::CookieDomain;
    use http::header::SET_COOKIE;

    use super::*;
    use crate::Retry;
    use crate::cookies::is_public_suffix;
    use crate::testing::MockTransport;

    fn session(cookie: Option<&str>) -> CookieSession {
        let login = Stitch::post("https://app.example.com/login")
            .text()
            .transport(Arc::new(MockTransport::new()))
            .retry(Retry::attempts(1))
            .build()
            .unwrap();
        match cookie {
            Some(name) => CookieSession::new(login, name),
            None => CookieSession::jar(login),
        }
    }

    fn reply(url: &str, set_cookies: &[HeaderValue]) -> LoginReply {
        let mut headers = HeaderMap::new();
        for value in set_cookies {
            headers.append(SET_COOKIE, value.clone());
        }
        LoginReply {
            status: StatusCode::OK,
            headers,
            url: Url::parse(url).unwrap(),
            redirects: Vec::new(),
        }
    }

    /// The `cookie` header the session sends to `url`, if any.
    fn replayed(session: &CookieSession, record: &[u8], url: &str) -> Option<String> {
        let method = Method::GET;
        let mut url = Url::parse(url).unwrap();
        let mut headers = HeaderMap::new();
        let mut request = AuthRequest::new(&method, &mut url, &mut headers);
        session.replay(record, &mut request).unwrap();
        headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// What one `Set-Cookie` from `login` leads to: `None` when refused, else the cookie
    /// header a request to `probe` gets.
    fn outcome(login: &str, set_cookie: &str, probe: &str) -> Option<Option<String>> {
        let session = session(None);
        let reply = reply(login, &[HeaderValue::from_str(set_cookie).unwrap()]);
        let record = session.capture(&reply, 0).ok()?;
        Some(replayed(&session, &record, probe))
    }

    #[test]
    fn public_suffix_domains_are_refused_unless_they_are_the_host() {
        let login = "https://app.example.com/login";
        for domain in [
            "com",
            ".com",
            "COM",
            "com.",
            "co.uk",
            "github.io",
            "test",
            "localhost",
        ] {
            assert_eq!(
                outcome(
                    login,
                    &format!("sid=1; Domain={domain}; Path=/"),
                    "https://other.com/"
                ),
                None,
                "Domain={domain}"
            );
        }
        assert_eq!(
            outcome(
                login,
                "sid=1; Domain=example.com; Path=/",
                "https://api.example.com/"
            ),
            Some(Some("sid=1".to_owned()))
        );
        // A public suffix that is the host itself: kept, host-only.
        let io = "https://github.io/login";
        assert_eq!(
            outcome(io, "sid=1; Domain=github.io; Path=/", "https://github.io/x"),
            Some(Some("sid=1".to_owned()))
        );
        assert_eq!(
            outcome(
                io,
                "sid=1; Domain=github.io; Path=/",
                "https://evil.github.io/x"
            ),
            Some(None)
        );
        // `Domain=` is ignored (host-only); a Domain that is no host name is refused.
        assert_eq!(
            outcome(login, "sid=1; Domain=; Path=/", "https://app.example.com/"),
            Some(Some("sid=1".to_owned()))
        );
        assert_eq!(
            outcome(login, "sid=1; Domain=exa mple.com", "https://x/"),
            None
        );
    }

    #[test]
    fn secure_and_the_cookie_prefixes_follow_rfc_6265bis() {
        let https = "https://app.example.com/login";
        let http = "http://app.example.com/login";
        let to = "https://app.example.com/";
        let sent = |v: &str| Some(Some(v.to_owned()));
        assert_eq!(outcome(https, "a=1; Secure", to), sent("a=1"));
        assert_eq!(outcome(http, "a=1; Secure", to), None, "Secure over http");
        assert_eq!(
            outcome(
                "http://127.0.0.1:9/login",
                "a=1; Secure",
                "http://127.0.0.1:9/"
            ),
            sent("a=1"),
            "loopback is a secure origin"
        );
        assert_eq!(
            outcome(https, "__Secure-a=1; Secure", to),
            sent("__Secure-a=1")
        );
        assert_eq!(outcome(https, "__Secure-a=1", to), None);
        assert_eq!(outcome(https, "__secure-a=1", to), None, "any case");
        assert_eq!(outcome(http, "__Secure-a=1; Secure", to), None);
        assert_eq!(
            outcome(https, "__Host-a=1; Secure; Path=/", to),
            sent("__Host-a=1")
        );
        assert_eq!(outcome(https, "__Host-a=1; Secure", to), None, "no Path");
        assert_eq!(outcome(https, "__Host-a=1; Secure; Path=/x", to), None);
        assert_eq!(outcome(https, "__Host-a=1; Path=/", to), None, "no Secure");
        assert_eq!(
            outcome(
                https,
                "__Host-a=1; Secure; Path=/; Domain=app.example.com",
                to
            ),
            None
        );
        assert_eq!(outcome(https, "__HOST-a=1; Secure; Path=/x", to), None);
    }

    #[test]
    fn extreme_lifetimes_neither_panic_nor_overflow() {
        let login = "https://app.example.com/login";
        let to = "https://app.example.com/";
        for kept in [
            "a=1; Max-Age=9223372036854775807",
            "a=1; Max-Age=99999999999999999999999999",
            "a=1; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
            "a=1; Max-Age=nonsense",
        ] {
            assert_eq!(
                outcome(login, kept, to),
                Some(Some("a=1".to_owned())),
                "{kept}"
            );
        }
        for expired in [
            "a=1; Max-Age=0",
            "a=1; Max-Age=-1",
            "a=1; Max-Age=-9223372036854775808",
            "a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            assert_eq!(outcome(login, expired, to), None, "{expired}");
        }
    }

    #[test]
    fn a_stored_jar_with_a_public_suffix_cookie_is_not_replayed_there() {
        // A jar written before public suffixes were refused.
        let session = session(None);
        let mut jar = CookieStore::new();
        let url = Url::parse("https://app.example.com/login").unwrap();
        jar.parse("old=1; Domain=com; Path=/", &url).unwrap();
        jar.parse("mine=1; Path=/", &url).unwrap();
        let mut out = Vec::new();
        cookie_store::serde::json::save_incl_expired_and_nonpersistent(&jar, &mut out).unwrap();
        let record = serde_json::to_vec(&SessionRecord {
            at: 0,
            jar: serde_json::from_slice(&out).unwrap(),
        })
        .unwrap();
        assert_eq!(replayed(&session, &record, "https://other.com/"), None);
        assert_eq!(
            replayed(&session, &record, "https://app.example.com/").as_deref(),
            Some("mine=1")
        );
    }

    const LOGINS: &[&str] = &[
        "https://app.example.com/a/login",
        "http://app.example.com/login",
        "https://x.github.io/login",
        "https://shop.example.co.uk/login",
        "http://127.0.0.1:8080/login",
        "http://localhost/login",
    ];

    const PROBES: &[&str] = &[
        "https://app.example.com/a/b",
        "http://app.example.com/",
        "https://api.example.com/",
        "https://example.com/",
        "https://other.com/",
        "https://app.example.com.evil.com/",
        "https://x.github.io/",
        "https://evil.github.io/",
        "https://github.io/",
        "https://shop.example.co.uk/login",
        "https://other.co.uk/",
        "https://co.uk/",
        "http://127.0.0.1:8080/",
        "http://127.0.0.2/",
        "http://localhost/",
    ];

    /// The site of a URL: its registrable domain, or its host when it has none (an IP,
    /// `localhost`, a public suffix).
    fn site(url: &str) -> String {
        let url = Url::parse(url).unwrap();
        let host = url.host_str().unwrap().to_owned();
        psl::domain_str(&host).map_or(host.clone(), str::to_owned)
    }

    fn attribute() -> impl Strategy<Value = String> {
        let domains = prop::sample::select(vec![
            "com",
            ".com",
            "COM",
            "com.",
            "co.uk",
            "github.io",
            "x.github.io",
            "example.com",
            ".example.com",
            "Example.COM",
            "app.example.com",
            "example.co.uk",
            "other.com",
            "127.0.0.1",
            "localhost",
            "",
            ".",
            "test",
            "xn--",
            "exa mple.com",
            "%2e",
            "..",
        ]);
        let paths = prop::sample::select(vec![
            "", "/", "//", "/a/../b", "%2f", "/\u{e9}", "a", "/login/", "/a", "/a/b/",
        ]);
        let expires = prop::sample::select(vec![
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Wed, 31 Dec 99999 23:59:59 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Tue, 01 Jan 2999 00:00:00 GMT",
            "garbage",
            "",
        ]);
        let max_ages = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            prop::sample::select(vec![
                "9223372036854775807",
                "-9223372036854775808",
                "99999999999999999999999999",
                "-0",
                "1e300",
                "",
                "0",
            ])
            .prop_map(str::to_owned),
        ];
        prop_oneof![
            domains.prop_map(|d| format!("Domain={d}")),
            paths.prop_map(|p| format!("Path={p}")),
            max_ages.prop_map(|m| format!("Max-Age={m}")),
            expires.prop_map(|e| format!("Expires={e}")),
            Just("Secure".to_owned()),
            Just("HttpOnly".to_owned()),
            Just("SameSite=None".to_owned()),
            "[ -:<-~]{0,12}",
        ]
    }

    fn set_cookie() -> impl Strategy<Value = HeaderValue> {
        let name = prop_oneof![
            prop::sample::select(vec![
                "sid",
                "__Host-sid",
                "__Secure-sid",
                "__host-x",
                "__SECURE-y",
                "",
                " ",
                "=",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z_-]{1,8}",
        ];
        let structured = (
            name,
            "[ -:<-~]{0,12}",
            prop::collection::vec(attribute(), 0..6),
        )
            .prop_map(|(name, value, attributes)| {
                let mut text = format!("{name}={value}");
                for attribute in attributes {
                    text.push_str("; ");
                    text.push_str(&attribute);
                }
                HeaderValue::from_str(&text).unwrap()
            });
        // Anything a header value may hold, obs-text (non-UTF-8) included.
        let raw = prop::collection::vec(prop_oneof![Just(b'\t'), 32u8..127, 128u8..=255], 0..64)
            .prop_map(|bytes| HeaderValue::from_bytes(&bytes).unwrap());
        prop_oneof![4 => structured, 1 => raw]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Never a panic; never a stored cookie scoped to a public suffix; never a cookie sent
        /// to another site than the login's; a `__Host-` cookie only ever to the login's host.
        #[test]
        fn set_cookie_values_never_panic_nor_cross_sites(
            login in prop::sample::select(LOGINS),
            values in prop::collection::vec(set_cookie(), 1..5),
            named in any::<bool>(),
        ) {
            let session = session(named.then_some("sid"));
            let Ok(record) = session.capture(&reply(login, &values), 0) else {
                return Ok(());
            };
            let stored: StoredJar<'_> = serde_json::from_slice(&record).unwrap();
            let jar = cookie_store::serde::json::load(stored.jar.get().as_bytes()).unwrap();
            let login_host = Url::parse(login).unwrap().host_str().unwrap().to_owned();
            for cookie in jar.iter_any() {
                if let CookieDomain::Suffix(domain) = &cookie.domain {
                    prop_assert!(!is_public_suffix(domain), "stored for {domain}");
                }
            }
            for probe in PROBES {
                let Some(header) = replayed(&session, &record, probe) else {
                    continue;
                };
                prop_assert_eq!(site(probe), site(login), "{} reached {}", header, probe);
                let probe_host = Url::parse(probe).unwrap().host_str().unwrap().to_owned();
                for pair in header.split("; ") {
                    if pair.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("__Host-")) {
                        prop_assert_eq!(&probe_host, &login_host, "{}", pair);
                    }
                }
            }
        }
    }
}
