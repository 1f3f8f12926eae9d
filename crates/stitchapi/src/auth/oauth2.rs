//! OAuth 2 client credentials, with the refresh-token grant when the server returns one.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::header::basic_value;
use super::{AuthContext, AuthEvent, AuthRequest, AuthStrategy, CredentialId, Secret};
use crate::duration::DurationSpec;
use crate::error::{Error, ErrorKind};
use crate::flight::{self, DEFAULT_LOCK_TTL, Flights, Flown};
use crate::policy::StatusSpec;
use crate::store::{StitchStoreExt, keys};
use crate::tenancy::Tenancy;
use crate::transport::TransportRequest;

const TOKEN_BODY_LIMIT: usize = 1 << 20;
const FIX: &str = "Fix: check token_url, client_id/client_secret, and scope.";
const NO_PRINCIPAL: &str = "oauth2 with tenancy 'principal' requires a bound principal: call through seam.as_principal(id), or use the default tenancy(App) to share one token across all callers";

/// How the client authenticates to the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (the default).
    #[default]
    Post,
    /// HTTP Basic `authorization` header.
    Basic,
}

/// OAuth 2 client credentials: see [`Auth::oauth2`](super::Auth::oauth2).
///
/// The token is cached in the vault under `oauth2:<key or token_url>` (with
/// `\u{0}<principal>` under principal tenancy), refreshed `skew` (30 s) before it expires
/// (at half its life, for a token that lives less than twice the skew),
/// fetched single-flight (in the process, and across the fleet over a fleet store with owned
/// locks), and fetched again once when a response has a `refresh_on` status (401), unless the
/// vault already holds another token than the one the server rejected.
///
/// The server's `expires_in` (seconds, as a number or a numeric string) is clamped to
/// `0..=`[`OAuth2::MAX_LIFETIME`] (one day): a huge value keeps a token for a day at most, and
/// zero or a negative value means the token is already expired, so it serves the calls that
/// fetched it and is never served from the vault. Without a usable `expires_in` the token is
/// kept until the server rejects it. Expiry and store TTLs are computed with saturating time
/// arithmetic: no value a token endpoint sends can panic or wrap.
///
/// The token request, like the login of a [`CookieSession`](super::CookieSession), is bounded
/// by the call's per-attempt timeout and total deadline.
///
/// ```
/// use stitchapi::auth::{Auth, ClientAuth, OAuth2, Secret};
///
/// let auth = Auth::oauth2(
///     OAuth2::client_credentials("https://auth.example.com/token", "my-client", Secret::env("CLIENT_SECRET"))
///         .scope("read")
///         .audience("https://api.example.com")
///         .client_auth(ClientAuth::Basic)
///         .skew("1m")
///         .key("example-api"),
/// );
/// assert_eq!(auth.scheme(), "oauth2");
/// ```
#[derive(Clone)]
pub struct OAuth2 {
    token_url: String,
    client_id: Secret,
    client_secret: Secret,
    scope: Option<String>,
    audience: Option<String>,
    client_auth: ClientAuth,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    refresh_on: Vec<StatusSpec>,
    skew: DurationSpec,
    key: Option<String>,
    tenancy: Tenancy,
    lock_ttl: Duration,
    flights: Arc<Flights<String>>,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("client_auth", &self.client_auth)
            .field("key", &self.key)
            .field("tenancy", &self.tenancy)
            .finish_non_exhaustive()
    }
}

/// The cached token, as stored in the vault.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRecord {
    token: String,
    /// Milliseconds since the epoch; 0 means "never refresh proactively".
    expires_at: u64,
    /// When it was fetched, in milliseconds since the epoch (0: unknown, an older record).
    #[serde(default, skip_serializing_if = "is_zero")]
    issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which token a caller can use.
#[derive(Clone, Copy)]
enum Wanted {
    /// Any fresh token.
    Fresh,
    /// A fresh token other than the one the server rejected (`None`: unknown, so a new one).
    Replacing(Option<CredentialId>),
}

impl OAuth2 {
    /// The longest a token is kept, whatever `expires_in` the server sent: one day.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

    /// The client-credentials grant against `token_url`.
    pub fn client_credentials(
        token_url: impl Into<String>,
        client_id: impl Into<Secret>,
        client_secret: impl Into<Secret>,
    ) -> OAuth2 {
        OAuth2 {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: None,
            audience: None,
            client_auth: ClientAuth::Post,
            params: Vec::new(),
            headers: Vec::new(),
            refresh_on: vec![StatusSpec::from(StatusCode::UNAUTHORIZED)],
            skew: DurationSpec::from(Duration::from_secs(30)),
            key: None,
            tenancy: Tenancy::App,
            lock_ttl: DEFAULT_LOCK_TTL,
            flights: Arc::default(),
        }
    }

    /// The `scope` form field.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `audience` form field.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Client authentication: [`ClientAuth::Post`] (default) or [`ClientAuth::Basic`].
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// An extra form field. It may override `grant_type`, `scope` and `audience`, never the
    /// client credentials.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// An extra header on the token request (it cannot replace the Basic header).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Statuses that force one refresh and a retry (default `[401]`): [`StatusCode`]s or `u16`s.
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
            .map(|status| ("auth.oauth2.refresh_on", *status))
    }

    /// How long before expiry the token is refreshed (default 30 s; at most half the token's
    /// life).
    pub fn skew(mut self, skew: impl Into<DurationSpec>) -> Self {
        self.skew = skew.into();
        self
    }

    /// The vault namespace (default: the token URL). Strategies with the same key over the
    /// same store share one token.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// [`Tenancy::App`] (default: one token for everyone) or [`Tenancy::Principal`].
    pub fn tenancy(mut self, tenancy: Tenancy) -> Self {
        self.tenancy = tenancy;
        self
    }

    /// The TTL of the fleet token-fetch lock (default 5 s, at least 100 ms): how long a
    /// process that died while fetching blocks the others. A live fetcher renews it; the
    /// others wait for its token within their call's timeout.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    fn vault_key(&self, cx: &AuthContext<'_>) -> Result<String, Error> {
        let base = keys::oauth2_token(self.key.as_deref().unwrap_or(&self.token_url));
        cx.scoped_key(base, self.tenancy, NO_PRINCIPAL)
    }

    fn is_fresh(&self, record: &TokenRecord, cx: &AuthContext<'_>) -> Result<bool, Error> {
        if record.expires_at == 0 {
            return Ok(true);
        }
        let mut skew = self.skew.resolve("auth.oauth2.skew")?;
        if record.issued_at != 0 {
            // A token that lives less than twice the skew is refreshed at half its life, not
            // on every call.
            let lifetime =
                Duration::from_millis(record.expires_at.saturating_sub(record.issued_at));
            skew = skew.min(lifetime / 2);
        }
        Ok((cx.clock.now() + skew).as_millis() < record.expires_at)
    }

    /// A token from the vault that `wanted` accepts.
    async fn stored(
        &self,
        cx: &AuthContext<'_>,
        key: &str,
        wanted: Wanted,
    ) -> Result<Option<String>, Error> {
        let Some(record) = cx.vault.get_json::<TokenRecord>(key).await? else {
            return Ok(None);
        };
        let usable = self.is_fresh(&record, cx)?
            && match wanted {
                Wanted::Fresh => true,
                Wanted::Replacing(rejected) => {
                    rejected.is_some_and(|id| CredentialId::of(record.token.as_bytes()) != id)
                }
            };
        Ok(usable.then_some(record.token))
    }

    /// A token `wanted` accepts, from the vault or fetched single-flight.
    async fn token(
        &self,
        cx: &AuthContext<'_>,
        key: &str,
        wanted: Wanted,
    ) -> Result<String, Error> {
        let done = || self.stored(cx, key, wanted);
        let (token, flown) = self
            .flights
            // The call's deadline bounds this whole call already (`AuthContext::within`).
            .run(key, None, || async {
                let fleet = cx.fleet_flight(key, self.lock_ttl);
                // Another caller may have fetched since this one looked (under a fleet lock,
                // the flight looks again itself once it holds the lock).
                let look_first = fleet.is_none();
                let fetch = || async {
                    if look_first && let Some(token) = done().await? {
                        return Ok(token);
                    }
                    self.fetch_and_store(cx, key).await
                };
                flight::lead(fleet, done, fetch).await
            })
            .await?;
        if matches!(
            flown,
            Some(Flown::FleetFilled | Flown::Led { waited: true })
        ) {
            cx.emit(AuthEvent::WaitedForToken);
        }
        Ok(token)
    }

    async fn fetch_and_store(&self, cx: &AuthContext<'_>, key: &str) -> Result<String, Error> {
        let previous = cx.vault.get_json::<TokenRecord>(key).await.ok().flatten();
        let previous_refresh = previous.and_then(|r| r.refresh_token);
        let mut response = None;
        if let Some(refresh_token) = &previous_refresh {
            cx.emit(AuthEvent::TokenRefreshing);
            let form = vec![
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("refresh_token".to_owned(), refresh_token.clone()),
            ];
            match self.request(cx, form).await {
                Ok(r) => response = Some(r),
                Err(e) => cx.emit(AuthEvent::RefreshGrantFailed(e.kind())),
            }
        }
        let response = match response {
            Some(r) => r,
            None => {
                cx.emit(AuthEvent::TokenRequested);
                self.request(cx, self.client_credentials_form()).await?
            }
        };
        // 0 is "no expiry known"; an expiry at the epoch itself is pushed past it.
        let issued_at = cx.clock.now().as_millis();
        let expires_at = response
            .lifetime
            .map_or(0, |lifetime| (cx.clock.now() + lifetime).as_millis().max(1));
        let refresh_token = response.refresh_token.or(previous_refresh);
        // A refresh token is kept until it is used; a bare token lives as long as it is valid.
        let ttl = match refresh_token {
            None => response.lifetime,
            Some(_) => None,
        };
        let record = TokenRecord {
            token: response.access_token,
            expires_at,
            issued_at: if expires_at == 0 { 0 } else { issued_at },
            refresh_token,
        };
        // An already-expired bare token is not worth a write (a zero TTL means "keep").
        if ttl != Some(Duration::ZERO) {
            cx.vault.set_json(key, &record, ttl).await?;
        }
        Ok(record.token)
    }

    fn client_credentials_form(&self) -> Vec<(String, String)> {
        let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
        if let Some(scope) = &self.scope {
            form.push(("scope".to_owned(), scope.clone()));
        }
        if let Some(audience) = &self.audience {
            form.push(("audience".to_owned(), audience.clone()));
        }
        for (name, value) in &self.params {
            if name == "client_id" || name == "client_secret" {
                continue;
            }
            form.retain(|(n, _)| n != name);
            form.push((name.clone(), value.clone()));
        }
        form
    }

    async fn request(
        &self,
        cx: &AuthContext<'_>,
        mut form: Vec<(String, String)>,
    ) -> Result<TokenResponse, Error> {
        let url = url::Url::parse(&self.token_url).map_err(|e| {
            Error::config(
                "auth.oauth2.token_url",
                format!(
                    "\"{}\" is not a URL ({e})",
                    crate::template::Redacted::url(&self.token_url)
                ),
                "use an absolute https:// URL",
            )
        })?;
        let id = self.client_id.expose()?;
        let secret = self.client_secret.expose()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                http::header::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        match self.client_auth {
            ClientAuth::Post => {
                form.push(("client_id".to_owned(), id));
                form.push(("client_secret".to_owned(), secret));
            }
            ClientAuth::Basic => {
                let mut value =
                    http::HeaderValue::from_str(&basic_value(&id, &secret)).map_err(|_| {
                        Error::new(
                            ErrorKind::Auth,
                            format!(
                                "oauth2 client credentials are not valid in a Basic header. {FIX}"
                            ),
                        )
                    })?;
                value.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, value);
            }
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let request = TransportRequest::new(Method::POST, url)
            .with_headers(headers)
            .with_body(body)
            .with_body_limit(TOKEN_BODY_LIMIT);
        let response = cx.transport.send(request).await.map_err(|e| {
            Error::new(
                ErrorKind::Auth,
                format!("oauth2 token request failed: {e}. {FIX}"),
            )
            .with_source(e)
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "oauth2 token request failed: HTTP {}. {FIX}",
                    status.as_u16()
                ),
            )
            .with_status(status));
        }
        parse_token_response(response.body())
    }
}

struct TokenResponse {
    access_token: String,
    /// `expires_in`, clamped: see [`lifetime`].
    lifetime: Option<Duration>,
    refresh_token: Option<String>,
}

/// The token's lifetime from `expires_in` (seconds, a number or a numeric string), clamped to
/// `0..=MAX_LIFETIME`: zero or negative means already expired. `None` when it is absent or not
/// a number.
fn lifetime(expires_in: Option<&serde_json::Value>) -> Option<Duration> {
    let seconds = match expires_in? {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if seconds.is_nan() {
        return None;
    }
    let max = OAuth2::MAX_LIFETIME;
    Some(Duration::try_from_secs_f64(seconds.clamp(0.0, max.as_secs_f64())).unwrap_or(max))
}

fn parse_token_response(body: &[u8]) -> Result<TokenResponse, Error> {
    let missing = || {
        Error::new(
            ErrorKind::Auth,
            "oauth2 token response missing access_token. Fix: check that token_url is the OAuth 2 token endpoint and that it answers JSON",
        )
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| missing())?;
    let access_token = value
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(missing)?
        .to_owned();
    let lifetime = lifetime(value.get("expires_in"));
    let refresh_token = value
        .get("refresh_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok(TokenResponse {
        access_token,
        lifetime,
        refresh_token,
    })
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl AuthStrategy for OAuth2 {
    fn scheme(&self) -> &'static str {
        "oauth2"
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
        let token = cx
            .within(async {
                if let Some(token) = self.stored(cx, &key, Wanted::Fresh).await? {
                    return Ok(token);
                }
                self.token(cx, &key, Wanted::Fresh).await
            })
            .await?;
        request.set_credential_id(CredentialId::of(token.as_bytes()));
        request.set_header("authorization", &format!("Bearer {token}"))
    }

    fn should_refresh(&self, status: StatusCode, _headers: &HeaderMap, _body: &[u8]) -> bool {
        self.refresh_on.contains(&StatusSpec::from(status))
    }

    async fn refresh(
        &self,
        rejected: Option<CredentialId>,
        cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        let key = self.vault_key(cx)?;
        cx.within(self.token(cx, &key, Wanted::Replacing(rejected)))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, Method};
    use serde_json::json;
    use url::Url;

    use super::super::test_support::SlowTransport;
    use super::super::{Auth, AuthContext, VAULT_PREFIX};
    use super::*;
    use crate::store::{DynStore, MemoryStore, PrefixedStore, StitchStore};
    use crate::testing::FleetStore;
    use crate::testing::{MockResponse, MockTransport};
    use crate::time::{Clock, ManualClock, SystemClock};

    fn token(access: &str, expires_in: u64) -> MockResponse {
        MockResponse::json(
            200,
            &json!({"access_token": access, "token_type": "bearer", "expires_in": expires_in}),
        )
    }

    fn oauth(key: &str) -> Auth {
        Auth::oauth2(
            OAuth2::client_credentials("https://auth.test/token", "cid", Secret::new("csecret"))
                .scope("read")
                .key(key),
        )
    }

    async fn bearer(auth: &Auth, cx: &AuthContext<'_>) -> Result<String, Error> {
        let mut url = Url::parse("https://api.test/x").unwrap();
        let mut headers = HeaderMap::new();
        auth.apply(&Method::GET, &mut url, &mut headers, cx).await?;
        Ok(headers["authorization"].to_str().unwrap().to_owned())
    }

    struct Env {
        store: DynStore,
        vault: DynStore,
        clock: Arc<dyn Clock>,
        mock: MockTransport,
        slow: SlowTransport,
    }

    impl Env {
        fn new(store: impl StitchStore, clock: Arc<dyn Clock>, mock: MockTransport) -> Self {
            let store: DynStore = Arc::new(store);
            Env {
                vault: Arc::new(PrefixedStore::new(store.clone(), VAULT_PREFIX)),
                store,
                clock,
                slow: SlowTransport(mock.clone()),
                mock,
            }
        }
        fn cx(&self) -> AuthContext<'_> {
            AuthContext::new(&self.vault, &self.store, &*self.clock, &self.mock)
        }
        /// A context whose token requests take 100 ms (tokio time).
        fn slow_cx(&self) -> AuthContext<'_> {
            AuthContext::new(&self.vault, &self.store, &*self.clock, &self.slow)
        }
    }

    fn manual() -> (Env, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryStore::with_clock(clock.clone());
        (Env::new(store, clock.clone(), MockTransport::new()), clock)
    }

    #[test]
    fn expires_in_is_clamped_to_a_lifetime() {
        let max = OAuth2::MAX_LIFETIME;
        let of = |value: serde_json::Value| lifetime(Some(&value));
        assert_eq!(of(json!(3600)), Some(Duration::from_secs(3600)));
        assert_eq!(of(json!(1.5)), Some(Duration::from_millis(1500)));
        assert_eq!(of(json!(" 60 ")), Some(Duration::from_secs(60)));
        for huge in [json!(1e300), json!(u64::MAX), json!("inf"), json!("1e400")] {
            assert_eq!(of(huge.clone()), Some(max), "{huge}");
        }
        for expired in [
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!("-5"),
            json!("-inf"),
        ] {
            assert_eq!(of(expired.clone()), Some(Duration::ZERO), "{expired}");
        }
        for unusable in [
            json!("NaN"),
            json!("soon"),
            json!(null),
            json!([1]),
            json!(true),
        ] {
            assert_eq!(of(unusable.clone()), None, "{unusable}");
        }
        assert_eq!(lifetime(None), None);
    }

    #[tokio::test]
    async fn an_extreme_skew_refreshes_at_half_life_without_overflow() {
        let (env, clock) = manual();
        env.mock.route(
            Method::POST,
            "/token",
            [token("t1", 3600), token("t2", 3600)],
        );
        let auth = Auth::oauth2(
            OAuth2::client_credentials("https://auth.test/token", "cid", "s")
                .key("k")
                .skew(Duration::MAX),
        );
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t1");
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t1");
        clock.advance(Duration::from_secs(1800));
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t2");
    }

    #[tokio::test]
    async fn token_is_fetched_once_cached_and_reused() {
        let (env, _clock) = manual();
        env.mock.route(Method::POST, "/token", [token("t1", 3600)]);
        let auth = oauth("k");
        let events = std::sync::Mutex::new(Vec::new());
        let sink = |event: &AuthEvent| events.lock().unwrap().push(*event);
        let cx = env.cx().with_events(Some(&sink));
        assert_eq!(bearer(&auth, &cx).await.unwrap(), "Bearer t1");
        assert_eq!(bearer(&auth, &cx).await.unwrap(), "Bearer t1");
        assert_eq!(env.mock.request_count(), 1);
        let events = events.lock().unwrap().clone();
        assert_eq!(events.len(), 1);
        assert_eq!(events, [AuthEvent::TokenRequested]);
        assert!(
            !format!("{events:?}").contains("csecret") && !format!("{events:?}").contains("t1")
        );
        let request = &env.mock.requests()[0];
        assert_eq!(request.headers["accept"], "application/json");
        assert_eq!(
            request.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        let body = std::str::from_utf8(&request.body).unwrap();
        assert_eq!(
            body,
            "grant_type=client_credentials&scope=read&client_id=cid&client_secret=csecret"
        );
        // Stored in the vault under the documented key.
        assert!(env.store.get("vault:oauth2:k").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn refreshed_early_by_the_skew_in_virtual_time() {
        let (env, clock) = manual();
        env.mock
            .route(Method::POST, "/token", [token("t1", 100), token("t2", 100)]);
        let auth = oauth("k");
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t1");
        clock.advance(Duration::from_secs(69));
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t1");
        clock.advance(Duration::from_secs(2)); // 71 s: inside the 30 s skew
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t2");
        assert_eq!(env.mock.request_count(), 2);
    }

    #[tokio::test]
    async fn a_token_shorter_lived_than_twice_the_skew_is_refreshed_at_half_its_life() {
        let (env, clock) = manual();
        // 20 s of life under the default 30 s skew: refreshed after 10 s, not on every call.
        env.mock
            .route(Method::POST, "/token", [token("t1", 20), token("t2", 20)]);
        let auth = oauth("k");
        for _ in 0..3 {
            assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t1");
            clock.advance(Duration::from_secs(3));
        }
        assert_eq!(env.mock.request_count(), 1);
        clock.advance(Duration::from_secs(2)); // 11 s
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t2");
        assert_eq!(env.mock.request_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn twenty_concurrent_cold_callers_share_one_post() {
        let env = Env::new(
            MemoryStore::new(),
            Arc::new(SystemClock::new()),
            MockTransport::new(),
        );
        env.mock.route(Method::POST, "/token", [token("t1", 3600)]);
        let auth = oauth("k");
        let cx = env.slow_cx();
        let results = futures_util::future::join_all((0..20).map(|_| bearer(&auth, &cx))).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_deref().ok() == Some("Bearer t1"))
        );
        assert_eq!(env.mock.request_count(), 1);
    }

    /// A fleet store that counts the reads of each key.
    #[derive(Debug)]
    struct CountingReads {
        inner: FleetStore,
        reads: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    }

    #[async_trait::async_trait]
    impl StitchStore for CountingReads {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn capabilities(&self) -> crate::store::Capabilities {
            self.inner.capabilities()
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, crate::store::StoreError> {
            *self
                .reads
                .lock()
                .unwrap()
                .entry(key.to_owned())
                .or_default() += 1;
            self.inner.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Option<Bytes>,
            ttl: Option<Duration>,
        ) -> Result<(), crate::store::StoreError> {
            self.inner.set(key, value, ttl).await
        }
        async fn increment(
            &self,
            key: &str,
            ttl: Option<Duration>,
        ) -> Result<i64, crate::store::StoreError> {
            self.inner.increment(key, ttl).await
        }
        async fn create(
            &self,
            key: &str,
            value: Bytes,
            ttl: Option<Duration>,
        ) -> Result<bool, crate::store::StoreError> {
            self.inner.create(key, value, ttl).await
        }
        async fn renew_if(
            &self,
            key: &str,
            expected: &[u8],
            ttl: Duration,
        ) -> Result<bool, crate::store::StoreError> {
            self.inner.renew_if(key, expected, ttl).await
        }
        async fn delete_if(
            &self,
            key: &str,
            expected: &[u8],
        ) -> Result<bool, crate::store::StoreError> {
            self.inner.delete_if(key, expected).await
        }
    }

    #[tokio::test]
    async fn a_cold_fetch_under_the_fleet_lock_reads_the_vault_three_times() {
        let clock = Arc::new(ManualClock::new());
        let store = Arc::new(CountingReads {
            inner: FleetStore::new((*clock).clone()),
            reads: Default::default(),
        });
        let env = Env::new(store.clone(), clock, MockTransport::new());
        env.mock.route(Method::POST, "/token", [token("t1", 3600)]);
        assert_eq!(bearer(&oauth("k"), &env.cx()).await.unwrap(), "Bearer t1");
        // The look before the flight, the look once the lock is held, and the previous
        // record's refresh token: never a fourth, redundant look.
        assert_eq!(store.reads.lock().unwrap()["vault:oauth2:k"], 3);
        assert!(
            env.store
                .get("vault:lock:oauth2:k")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn three_processes_on_a_fleet_store_share_one_post() {
        let shared = FleetStore::new(crate::time::SystemClock::new());
        let mock = MockTransport::new();
        mock.route(Method::POST, "/token", [token("t1", 3600)]);
        let envs: Vec<_> = (0..3)
            .map(|_| Env::new(shared.clone(), Arc::new(SystemClock::new()), mock.clone()))
            .collect();
        let auths: Vec<_> = (0..3).map(|_| oauth("shared")).collect();
        let cxs: Vec<_> = envs.iter().map(|e| e.slow_cx()).collect();
        let results =
            futures_util::future::join_all((0..30).map(|i| bearer(&auths[i % 3], &cxs[i % 3])))
                .await;
        assert!(
            results
                .iter()
                .all(|r| r.as_deref().ok() == Some("Bearer t1")),
            "{results:?}"
        );
        assert_eq!(mock.request_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn separate_stores_fetch_separately() {
        let mock = MockTransport::new();
        mock.route(Method::POST, "/token", [token("t1", 3600)]);
        let envs: Vec<_> = (0..3)
            .map(|_| {
                Env::new(
                    FleetStore::new(crate::time::SystemClock::new()),
                    Arc::new(SystemClock::new()),
                    mock.clone(),
                )
            })
            .collect();
        let auths: Vec<_> = (0..3).map(|_| oauth("shared")).collect();
        let cxs: Vec<_> = envs.iter().map(|e| e.slow_cx()).collect();
        futures_util::future::join_all((0..3).map(|i| bearer(&auths[i], &cxs[i]))).await;
        assert_eq!(mock.request_count(), 3);
    }

    #[tokio::test]
    async fn forced_refresh_once_on_401_even_with_concurrent_refreshers() {
        let (env, clock) = manual();
        env.mock.route(
            Method::POST,
            "/token",
            [token("t1", 3600), token("t2", 3600)],
        );
        let auth = oauth("k");
        let cx = env.cx();
        assert_eq!(bearer(&auth, &cx).await.unwrap(), "Bearer t1");
        assert!(auth.should_refresh(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b""));
        assert!(!auth.should_refresh(StatusCode::FORBIDDEN, &HeaderMap::new(), b""));
        // Five callers saw t1 rejected at once, the instant it was fetched: one new token.
        let rejected = Some(CredentialId::of(b"t1"));
        let refreshed =
            futures_util::future::join_all((0..5).map(|_| auth.refresh(rejected, &cx))).await;
        assert!(refreshed.iter().all(Result::is_ok));
        assert_eq!(bearer(&auth, &cx).await.unwrap(), "Bearer t2");
        assert_eq!(env.mock.request_count(), 2);
        // A caller whose rejection of t1 arrives late finds t2 and fetches nothing.
        clock.advance(Duration::from_secs(5));
        auth.refresh(rejected, &cx).await.unwrap();
        assert_eq!(env.mock.request_count(), 2);
        // Without a credential id, a refresh always fetches.
        auth.refresh(None, &cx).await.unwrap();
        assert_eq!(env.mock.request_count(), 3);

        let custom = Auth::oauth2(
            OAuth2::client_credentials("https://auth.test/token", "cid", "s")
                .refresh_on([401, 403]),
        );
        assert!(custom.should_refresh(StatusCode::FORBIDDEN, &HeaderMap::new(), b""));
    }

    #[tokio::test]
    async fn token_endpoint_failure_is_an_auth_error_with_the_status() {
        let (env, _clock) = manual();
        env.mock.route(
            Method::POST,
            "/token",
            [
                MockResponse::json(400, &json!({"error": "invalid_client"})),
                token("t1", 60),
            ],
        );
        let auth = oauth("k");
        let error = bearer(&auth, &env.cx()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Auth);
        assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            error.to_string(),
            "oauth2 token request failed: HTTP 400. Fix: check token_url, client_id/client_secret, and scope."
        );
        assert!(!format!("{error:?}").contains("csecret"));
        // The failure does not stick.
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t1");

        let (env, _clock) = manual();
        env.mock.route(
            Method::POST,
            "/token",
            [MockResponse::json(200, &json!({"nope": 1}))],
        );
        let error = bearer(&auth, &env.cx()).await.unwrap_err();
        assert!(
            error.to_string().contains("missing access_token"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn refresh_token_grant_is_used_when_the_server_returned_one() {
        let (env, clock) = manual();
        env.mock.route(
            Method::POST,
            "/token",
            [
                MockResponse::json(
                    200,
                    &json!({"access_token": "t1", "expires_in": 60, "refresh_token": "r1"}),
                ),
                MockResponse::json(200, &json!({"access_token": "t2", "expires_in": 60})),
            ],
        );
        let auth = oauth("k");
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t1");
        clock.advance(Duration::from_secs(61));
        assert_eq!(bearer(&auth, &env.cx()).await.unwrap(), "Bearer t2");
        let requests = env.mock.requests();
        let body = std::str::from_utf8(&requests[1].body).unwrap();
        assert!(
            body.starts_with("grant_type=refresh_token&refresh_token=r1&client_id=cid"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn basic_client_auth_and_params() {
        let (env, _clock) = manual();
        env.mock.route(Method::POST, "/token", [token("t1", 60)]);
        let auth = Auth::oauth2(
            OAuth2::client_credentials("https://auth.test/token", "cid", "csecret")
                .client_auth(ClientAuth::Basic)
                .audience("api")
                .param("grant_type", "custom")
                .param("client_secret", "ignored")
                .header("X-Tenant", "t"),
        );
        bearer(&auth, &env.cx()).await.unwrap();
        let request = &env.mock.requests()[0];
        assert_eq!(
            request.headers["authorization"],
            super::basic_value("cid", "csecret")
        );
        assert_eq!(request.headers["x-tenant"], "t");
        assert_eq!(
            std::str::from_utf8(&request.body).unwrap(),
            "audience=api&grant_type=custom"
        );
        // Default key: the token URL.
        assert!(
            env.store
                .get("vault:oauth2:https://auth.test/token")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn principal_tenancy_separates_and_fails_closed() {
        let (env, _clock) = manual();
        env.mock
            .route(Method::POST, "/token", [token("ta", 60), token("tb", 60)]);
        let auth = Auth::oauth2(
            OAuth2::client_credentials("https://auth.test/token", "cid", "s")
                .key("k")
                .tenancy(Tenancy::Principal),
        );
        let error = bearer(&auth, &env.cx()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Auth);
        assert!(error.to_string().contains("requires a bound principal"));
        assert_eq!(env.mock.request_count(), 0);
        let alice = env.cx().with_principal(Some("alice"));
        let bob = env.cx().with_principal(Some("bob"));
        assert_eq!(bearer(&auth, &alice).await.unwrap(), "Bearer ta");
        assert_eq!(bearer(&auth, &bob).await.unwrap(), "Bearer tb");
        assert_eq!(bearer(&auth, &alice).await.unwrap(), "Bearer ta");
        assert!(
            env.store
                .get("vault:oauth2:k\u{0}alice")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(auth.tenancy(), Tenancy::Principal);
        assert_eq!(oauth("x").tenancy(), Tenancy::App);
    }

    #[tokio::test]
    async fn the_deadline_bounds_the_token_request() {
        let (env, clock) = manual();
        env.mock
            .route(Method::POST, "/token", [MockResponse::hang()]);
        let auth = oauth("k");
        let cx = env
            .cx()
            .with_deadline(Some(clock.now() + Duration::from_secs(2)));
        let call = bearer(&auth, &cx);
        futures_util::pin_mut!(call);
        assert!(
            futures_util::future::poll_immediate(&mut call)
                .await
                .is_none()
        );
        clock.advance(Duration::from_secs(2));
        let error = call.await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
    }
}
