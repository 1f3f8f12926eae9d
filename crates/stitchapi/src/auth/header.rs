//! Header strategies: bearer, API key (header, query, cookie), basic.

use base64::Engine as _;

use super::{AuthContext, AuthRequest, AuthStrategy, Secret};
use crate::error::Error;

/// `authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub(crate) struct Bearer {
    token: Secret,
}

impl Bearer {
    pub(crate) fn new(token: Secret) -> Self {
        Bearer { token }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl AuthStrategy for Bearer {
    fn scheme(&self) -> &'static str {
        "bearer"
    }

    async fn apply(
        &self,
        request: &mut AuthRequest<'_>,
        _cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        let token = self.token.expose()?;
        request.set_header("authorization", &format!("Bearer {token}"))
    }
}

/// `authorization: Basic base64(user:pass)`.
#[derive(Clone, Debug)]
pub(crate) struct Basic {
    user: Secret,
    pass: Secret,
}

impl Basic {
    pub(crate) fn new(user: Secret, pass: Secret) -> Self {
        Basic { user, pass }
    }
}

pub(crate) fn basic_value(user: &str, pass: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {encoded}")
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl AuthStrategy for Basic {
    fn scheme(&self) -> &'static str {
        "basic"
    }

    async fn apply(
        &self,
        request: &mut AuthRequest<'_>,
        _cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        let value = basic_value(&self.user.expose()?, &self.pass.expose()?);
        request.set_header("authorization", &value)
    }
}

/// Where an API key goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeyLocation {
    /// A request header (default name `x-api-key`).
    Header,
    /// A query parameter (default name `api_key`).
    Query,
    /// A cookie (default name `api_key`), replacing a same-named cookie, keeping the others.
    Cookie,
}

/// An API key strategy: see [`Auth::api_key`](super::Auth::api_key).
///
/// ```
/// use stitchapi::auth::{ApiKey, Auth, Secret};
///
/// let in_header = Auth::api_key(Secret::new("k")); // x-api-key: k
/// let named = Auth::api_key(ApiKey::header(Secret::new("k")).name("x-token"));
/// let in_query = Auth::api_key(ApiKey::query(Secret::new("k"))); // ?api_key=k
/// let in_cookie = Auth::api_key(ApiKey::cookie(Secret::new("k")).name("sid"));
/// assert_eq!(in_cookie.scheme(), "apiKey");
/// ```
#[derive(Clone, Debug)]
pub struct ApiKey {
    location: ApiKeyLocation,
    name: Option<String>,
    key: Secret,
}

impl ApiKey {
    /// In a header (default `x-api-key`).
    pub fn header(key: impl Into<Secret>) -> ApiKey {
        ApiKey {
            location: ApiKeyLocation::Header,
            name: None,
            key: key.into(),
        }
    }

    /// In the query (default `api_key`).
    pub fn query(key: impl Into<Secret>) -> ApiKey {
        ApiKey {
            location: ApiKeyLocation::Query,
            ..ApiKey::header(key)
        }
    }

    /// In a cookie (default `api_key`).
    pub fn cookie(key: impl Into<Secret>) -> ApiKey {
        ApiKey {
            location: ApiKeyLocation::Cookie,
            ..ApiKey::header(key)
        }
    }

    /// The header, parameter or cookie name.
    pub fn name(mut self, name: impl Into<String>) -> ApiKey {
        self.name = Some(name.into());
        self
    }

    /// Where the key goes.
    pub fn location(&self) -> ApiKeyLocation {
        self.location
    }
}

impl From<Secret> for ApiKey {
    fn from(key: Secret) -> ApiKey {
        ApiKey::header(key)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl AuthStrategy for ApiKey {
    fn scheme(&self) -> &'static str {
        "apiKey"
    }

    async fn apply(
        &self,
        request: &mut AuthRequest<'_>,
        _cx: &AuthContext<'_>,
    ) -> Result<(), Error> {
        let key = self.key.expose()?;
        match self.location {
            ApiKeyLocation::Header => {
                request.set_header(self.name.as_deref().unwrap_or("x-api-key"), &key)
            }
            ApiKeyLocation::Query => {
                request.set_query_param(self.name.as_deref().unwrap_or("api_key"), &key);
                Ok(())
            }
            ApiKeyLocation::Cookie => {
                request.add_cookie(self.name.as_deref().unwrap_or("api_key"), &key)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};
    use url::Url;

    use super::super::{Auth, AuthContext};
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::MockTransport;
    use crate::time::ManualClock;

    async fn apply(
        auth: &Auth,
        url: &str,
        headers: &mut HeaderMap,
    ) -> (Url, super::super::Applied) {
        let store: crate::store::DynStore = std::sync::Arc::new(MemoryStore::new());
        let clock = ManualClock::new();
        let transport = MockTransport::new();
        let cx = AuthContext::new(&store, &store, &clock, &transport);
        let mut url = Url::parse(url).unwrap();
        let applied = auth
            .apply(&Method::GET, &mut url, headers, &cx)
            .await
            .unwrap();
        (url, applied)
    }

    #[tokio::test]
    async fn bearer_and_basic() {
        let mut headers = HeaderMap::new();
        let (_, applied) = apply(
            &Auth::bearer(Secret::new("tok")),
            "https://a.test/",
            &mut headers,
        )
        .await;
        assert_eq!(headers["authorization"], "Bearer tok");
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(
            applied.credential_headers,
            vec![http::header::AUTHORIZATION]
        );
        assert!(!applied.query_credential);

        let mut headers = HeaderMap::new();
        apply(
            &Auth::basic("Aladdin", "open sesame"),
            "https://a.test/",
            &mut headers,
        )
        .await;
        assert_eq!(
            headers["authorization"],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[tokio::test]
    async fn api_key_header_query_cookie() {
        let mut headers = HeaderMap::new();
        let (_, applied) = apply(
            &Auth::api_key(Secret::new("k1")),
            "https://a.test/",
            &mut headers,
        )
        .await;
        assert_eq!(headers["x-api-key"], "k1");
        assert_eq!(applied.credential_headers[0].as_str(), "x-api-key");

        let mut headers = HeaderMap::new();
        let (_, _) = apply(
            &Auth::api_key(ApiKey::header(Secret::new("k1")).name("X-Token")),
            "https://a.test/",
            &mut headers,
        )
        .await;
        assert_eq!(headers["x-token"], "k1");

        let mut headers = HeaderMap::new();
        let (url, applied) = apply(
            &Auth::api_key(ApiKey::query(Secret::new("a b&c"))),
            "https://a.test/x?q=1&api_key=old",
            &mut headers,
        )
        .await;
        assert_eq!(url.query(), Some("q=1&api_key=a+b%26c"));
        assert!(applied.query_credential);
        assert!(applied.credential_headers.is_empty());

        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            "theme=dark; api_key=old; lang=en".parse().unwrap(),
        );
        let auth = Auth::api_key(ApiKey::cookie(Secret::new("k2")));
        apply(&auth, "https://a.test/", &mut headers).await;
        apply(&auth, "https://a.test/", &mut headers).await;
        assert_eq!(headers["cookie"], "theme=dark; lang=en; api_key=k2");
    }

    #[tokio::test]
    async fn bad_secret_value_is_an_auth_error_without_the_value() {
        let store: crate::store::DynStore = std::sync::Arc::new(MemoryStore::new());
        let clock = ManualClock::new();
        let transport = MockTransport::new();
        let cx = AuthContext::new(&store, &store, &clock, &transport);
        let mut url = Url::parse("https://a.test/").unwrap();
        let mut headers = HeaderMap::new();
        let error = Auth::bearer(Secret::new("bad\r\nvalue"))
            .apply(&Method::GET, &mut url, &mut headers, &cx)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Auth);
        assert!(!error.to_string().contains("bad"));
    }
}
