//! Credentials as data: where a secret comes from, and the auth strategies that use them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::StitchConfig;
use crate::auth::{ApiKey, Auth, CookieSession, OAuth2, Secret};
use crate::error::{Error, Result};
use crate::input::Input;
use crate::seam::Seam;

/// Where a credential comes from: `{ env = "API_TOKEN" }` (read on every call; a variable that
/// is not set when the file is built is an error naming the field and the variable),
/// `{ file = "/run/secrets/token" }` (read once, when the file is built, trailing newline
/// dropped), or an inline string (allowed, never shown: `Debug` prints `<redacted>`).
///
/// ```
/// use stitchapi::config::SecretConfig;
///
/// let secret: SecretConfig = toml::from_str::<toml::Table>(r#"s = { env = "API_TOKEN" }"#)
///     .unwrap()["s"].clone().try_into().unwrap();
/// assert_eq!(secret, SecretConfig::Env { env: "API_TOKEN".into() });
/// let inline = SecretConfig::Inline("t0ken".into());
/// assert!(!format!("{inline:?}").contains("t0ken"));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a secret: { env = \"VARIABLE\" }, { file = \"path\" } or a string"
)]
pub enum SecretConfig {
    /// An environment variable, read on every call.
    Env {
        /// The variable's name.
        env: String,
    },
    /// A file, read once when the declaration is built.
    File {
        /// The file's path.
        file: String,
    },
    /// The value itself (prefer `env` in files that are shared).
    Inline(String),
}

impl fmt::Debug for SecretConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretConfig::Env { env } => write!(f, "SecretConfig(env {env})"),
            SecretConfig::File { file } => write!(f, "SecretConfig(file {file})"),
            SecretConfig::Inline(_) => f.write_str("SecretConfig(<redacted>)"),
        }
    }
}

impl SecretConfig {
    /// The [`Secret`], checked now: a missing environment variable or an unreadable file is
    /// a `Config` error naming `field` (the value itself is never in the error).
    pub fn resolve(&self, field: &str) -> Result<Secret> {
        match self {
            SecretConfig::Env { env } => match std::env::var(env) {
                Ok(value) if !value.is_empty() => Ok(Secret::env(env.clone())),
                Ok(_) => Err(Error::config(
                    field,
                    format!("the environment variable {env} is empty"),
                    format!("set {env} to the credential"),
                )),
                Err(_) => Err(Error::config(
                    field,
                    format!("the environment variable {env} is not set"),
                    format!("set {env} to the credential (export {env}=...)"),
                )),
            },
            SecretConfig::File { file } => match std::fs::read_to_string(file) {
                Ok(text) => Ok(Secret::new(text.trim_end_matches(['\r', '\n']))),
                Err(e) => Err(Error::config(
                    field,
                    format!("the secret file {file:?} cannot be read ({e})"),
                    "point file at a readable file holding the credential",
                )),
            },
            SecretConfig::Inline(value) => Ok(Secret::new(value.clone())),
        }
    }
}

/// Where an API key goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyIn {
    /// A header (default name `x-api-key`).
    #[default]
    Header,
    /// A query parameter (default name `api_key`).
    Query,
    /// A cookie (default name `api_key`).
    Cookie,
}

/// Authentication, as data: `auth = { type = "bearer", token = { env = "API_TOKEN" } }`.
///
/// Types: `bearer` (`token`), `api_key` (`key`, `in = "header" | "query" | "cookie"`,
/// `name`), `basic` (`user`, `password`), `oauth2` (client credentials: `token_url`,
/// `client_id`, `client_secret`, `scope`, `audience`), `cookie_session` (a `login` stitch
/// whose `Set-Cookie` seeds the session, called with the JSON `body` whose values are secrets;
/// `cookie` names the session cookie, or every cookie is kept).
///
/// ```
/// use stitchapi::config::SeamConfig;
///
/// let config: SeamConfig = toml::from_str(r#"
///     base_url = "https://api.example.com"
///     auth = { type = "oauth2", token_url = "https://auth.example.com/token", client_id = "app", client_secret = { env = "CLIENT_SECRET" } }
///     [stitches.me]
///     path = "/me"
/// "#).unwrap();
/// // Building checks that CLIENT_SECRET is set; the value is read on every call.
/// assert!(config.shared.auth.is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: SecretConfig,
    },
    /// A key in a header, the query or a cookie.
    ApiKey {
        /// The key.
        key: SecretConfig,
        /// Where it goes (default `header`).
        #[serde(default, rename = "in")]
        location: ApiKeyIn,
        /// The header, parameter or cookie name.
        name: Option<String>,
    },
    /// HTTP Basic.
    Basic {
        /// The user name.
        user: SecretConfig,
        /// The password.
        password: SecretConfig,
    },
    /// OAuth2 client credentials.
    Oauth2 {
        /// The token endpoint.
        token_url: String,
        /// The client id.
        client_id: SecretConfig,
        /// The client secret.
        client_secret: SecretConfig,
        /// Scopes, space-separated.
        scope: Option<String>,
        /// The audience parameter some providers need.
        audience: Option<String>,
    },
    /// A cookie session opened by a login call.
    CookieSession {
        /// The login endpoint (a stitch: `path` on the seam, `method = "POST"`).
        login: Box<StitchConfig>,
        /// The session cookie's name (default: keep every cookie the login sets).
        cookie: Option<String>,
        /// The login's JSON body: field names to secrets.
        #[serde(default)]
        body: std::collections::BTreeMap<String, SecretConfig>,
    },
}

impl AuthConfig {
    /// The strategy, with every secret checked (`field` prefixes the error's field).
    pub(crate) fn build(&self, field: &str, seam: Option<&Seam>) -> Result<Auth> {
        let at = |name: &str| format!("{field}.{name}");
        Ok(match self {
            AuthConfig::Bearer { token } => Auth::bearer(token.resolve(&at("token"))?),
            AuthConfig::ApiKey {
                key,
                location,
                name,
            } => {
                let key = key.resolve(&at("key"))?;
                let mut key = match location {
                    ApiKeyIn::Header => ApiKey::header(key),
                    ApiKeyIn::Query => ApiKey::query(key),
                    ApiKeyIn::Cookie => ApiKey::cookie(key),
                };
                if let Some(name) = name {
                    key = key.name(name.clone());
                }
                Auth::api_key(key)
            }
            AuthConfig::Basic { user, password } => Auth::basic(
                user.resolve(&at("user"))?,
                password.resolve(&at("password"))?,
            ),
            AuthConfig::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            } => {
                let mut oauth = OAuth2::client_credentials(
                    token_url.clone(),
                    client_id.resolve(&at("client_id"))?,
                    client_secret.resolve(&at("client_secret"))?,
                );
                if let Some(scope) = scope {
                    oauth = oauth.scope(scope.clone());
                }
                if let Some(audience) = audience {
                    oauth = oauth.audience(audience.clone());
                }
                Auth::oauth2(oauth)
            }
            AuthConfig::CookieSession {
                login,
                cookie,
                body,
            } => {
                let stitch = login
                    .builder(seam, Some("login"))
                    .and_then(|b| b.build().map_err(Error::from))
                    .map_err(|e| match e.build_error() {
                        Some(build) => Error::from(build.clone().within(&at("login."))),
                        None => e,
                    })?;
                let mut fields = Vec::with_capacity(body.len());
                for (name, secret) in body {
                    fields.push((name.clone(), secret.resolve(&at(&format!("body.{name}")))?));
                }
                let session = match cookie {
                    Some(cookie) => CookieSession::new(stitch, cookie.clone()),
                    None => CookieSession::jar(stitch),
                };
                Auth::cookie_session(session.login_input(move |_: Option<&str>| {
                    // Checked at build; a variable unset since then sends an empty value and
                    // the login's answer says so.
                    let body: Map<String, Value> = fields
                        .iter()
                        .map(|(name, secret)| {
                            (
                                name.clone(),
                                Value::from(secret.expose().unwrap_or_default()),
                            )
                        })
                        .collect();
                    Input::new().json(&body)
                }))
            }
        })
    }
}
