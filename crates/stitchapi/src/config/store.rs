//! The store a declared seam keeps its shared state in, as data.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::SecretConfig;
use crate::auth::Secret;
use crate::error::{Error, Result};

/// The store, as written in a file: a URL (`store = "redis://127.0.0.1:6379"`) or a table
/// with a token (`store = { url = "upstash+https://eu1.upstash.io", token = { env = "UPSTASH_TOKEN" } }`)
/// or a Redis password kept out of the URL
/// (`store = { url = "redis://cache:6379", password = { env = "REDIS_PASSWORD" } }`).
///
/// The core does not depend on the store crates: [`StoreConfig::spec`] gives a typed
/// [`StoreSpec`] that a front end (the `stitch` CLI) maps to a store. `Debug` shows the URL
/// with any password in it replaced by `<redacted>` ([`StoreConfig::redacted_url`]).
///
/// ```
/// use stitchapi::config::StoreConfig;
///
/// let store = StoreConfig::from("redis://:hunter2@cache:6379/0");
/// assert!(!format!("{store:?}").contains("hunter2"));
/// assert_eq!(store.redacted_url(), "redis://:<redacted>@cache:6379/0");
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory`, `redis://…`, `rediss://…`, `upstash+https://…`, `denokv+https://…` (or
    /// `denokv+http://…` for a local `denokv serve`), `denokv:<path>`, `cloudflare-kv:<binding>`,
    /// `cloudflare-do:<binding>`.
    pub url: String,
    /// The access token (Upstash, remote Deno KV).
    pub token: Option<SecretConfig>,
    /// The Redis password, instead of writing it into the URL (Redis only).
    pub password: Option<SecretConfig>,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.redacted_url())
            .field("token", &self.token)
            .field("password", &self.password)
            .finish()
    }
}

/// A store declaration, checked: which backend and where.
///
/// `Debug` never shows a password written in a URL.
#[derive(Clone)]
#[non_exhaustive]
pub enum StoreSpec {
    /// The in-process `MemoryStore` (the default).
    Memory,
    /// Redis over TCP (`redis://` or `rediss://`, the URL as written).
    Redis {
        /// The connection URL.
        url: String,
        /// The password given beside the URL (`password = { env = "…" }`), if any.
        password: Option<Secret>,
    },
    /// Upstash Redis over HTTPS REST.
    Upstash {
        /// The REST endpoint (`https://…`, the `upstash+` prefix removed).
        url: String,
        /// The REST token.
        token: Secret,
    },
    /// Deno KV: a remote database (`https://…`, or `http://…` for a local `denokv serve`)
    /// or a local file path.
    DenoKv {
        /// The remote URL (the `denokv+` prefix removed) or the file path.
        location: String,
        /// The access token of a remote database (`None` for a file).
        token: Option<Secret>,
    },
    /// Cloudflare Workers KV (`cloudflare-kv:<binding>`): only a Worker has the binding.
    WorkersKv {
        /// The KV namespace binding's name in the Worker's environment.
        binding: String,
    },
    /// A Cloudflare Durable Object namespace (`cloudflare-do:<binding>`): only a Worker has
    /// the binding.
    DurableObject {
        /// The Durable Object namespace binding's name in the Worker's environment.
        binding: String,
    },
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("Memory"),
            StoreSpec::Redis { url, password } => f
                .debug_struct("Redis")
                .field("url", &redact_userinfo(url))
                .field("password", password)
                .finish(),
            StoreSpec::Upstash { url, token } => f
                .debug_struct("Upstash")
                .field("url", &redact_userinfo(url))
                .field("token", token)
                .finish(),
            StoreSpec::DenoKv { location, token } => f
                .debug_struct("DenoKv")
                .field("location", &redact_userinfo(location))
                .field("token", token)
                .finish(),
            StoreSpec::WorkersKv { binding } => f
                .debug_struct("WorkersKv")
                .field("binding", binding)
                .finish(),
            StoreSpec::DurableObject { binding } => f
                .debug_struct("DurableObject")
                .field("binding", binding)
                .finish(),
        }
    }
}

/// `url` with the password of its userinfo (`scheme://user:password@host`) replaced by
/// `<redacted>`; anything else unchanged.
fn redact_userinfo(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let start = scheme_end + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let Some(at) = url[start..end].rfind('@') else {
        return Cow::Borrowed(url);
    };
    let userinfo = &url[start..start + at];
    let Some(colon) = userinfo.find(':') else {
        return Cow::Borrowed(url);
    };
    Cow::Owned(format!(
        "{}{}:<redacted>{}",
        &url[..start],
        &userinfo[..colon],
        &url[start + at..]
    ))
}

impl From<&str> for StoreConfig {
    fn from(url: &str) -> Self {
        StoreConfig {
            url: url.to_owned(),
            token: None,
            password: None,
        }
    }
}

impl StoreConfig {
    /// The URL with any password in it replaced by `<redacted>`: the form to print or log.
    pub fn redacted_url(&self) -> Cow<'_, str> {
        redact_userinfo(&self.url)
    }

    /// The typed store declaration; an unknown scheme, a missing token or a misplaced
    /// password is a `Config` error on the field `store` (or `store.token`,
    /// `store.password`).
    ///
    /// ```
    /// use stitchapi::config::{StoreConfig, StoreSpec};
    ///
    /// let spec = StoreConfig::from("redis://127.0.0.1:6379/0").spec().unwrap();
    /// assert!(matches!(spec, StoreSpec::Redis { url, password: None } if url == "redis://127.0.0.1:6379/0"));
    /// assert!(StoreConfig::from("mongodb://db").spec().is_err());
    /// ```
    pub fn spec(&self) -> Result<StoreSpec> {
        let url = self.url.trim();
        let token = |what: &str| -> Result<Secret> {
            match &self.token {
                Some(token) => token.resolve("store.token"),
                None => Err(Error::config(
                    "store.token",
                    format!("{what} needs an access token"),
                    "add token = { env = \"VARIABLE\" } to the store table",
                )),
            }
        };
        let is_redis = url.starts_with("redis://") || url.starts_with("rediss://");
        if self.password.is_some() && !is_redis {
            return Err(Error::config(
                "store.password",
                "only a Redis store (redis://, rediss://) takes a password",
                "remove password (Upstash and remote Deno KV stores take token = { env = \"…\" })",
            ));
        }
        if url.eq_ignore_ascii_case("memory") {
            return Ok(StoreSpec::Memory);
        }
        if is_redis {
            let password = match &self.password {
                Some(_) if redact_userinfo(url) != url => {
                    return Err(Error::config(
                        "store.password",
                        "the URL already holds a password",
                        "keep the password in one place: remove it from the URL (preferred) or drop password",
                    ));
                }
                Some(password) => Some(password.resolve("store.password")?),
                None => None,
            };
            return Ok(StoreSpec::Redis {
                url: url.to_owned(),
                password,
            });
        }
        if let Some(rest) = url.strip_prefix("upstash+") {
            return Ok(StoreSpec::Upstash {
                url: rest.to_owned(),
                token: token("an Upstash store")?,
            });
        }
        if let Some(rest) = url.strip_prefix("denokv+") {
            return Ok(StoreSpec::DenoKv {
                location: rest.to_owned(),
                token: Some(token("a remote Deno KV store")?),
            });
        }
        if let Some(path) = url.strip_prefix("denokv:") {
            if path.is_empty() {
                return Err(Error::config(
                    "store",
                    "the Deno KV store has no file path",
                    "write \"denokv:<path of the SQLite file>\", e.g. \"denokv:./kv.sqlite\"",
                ));
            }
            return Ok(StoreSpec::DenoKv {
                location: path.to_owned(),
                token: None,
            });
        }
        let binding = |rest: &str| -> Result<String> {
            if rest.is_empty() {
                return Err(Error::config(
                    "store",
                    "the Cloudflare store names no binding",
                    "write the binding's name after the colon: \"cloudflare-kv:STITCH_KV\"",
                ));
            }
            Ok(rest.to_owned())
        };
        if let Some(rest) = url.strip_prefix("cloudflare-kv:") {
            return Ok(StoreSpec::WorkersKv {
                binding: binding(rest)?,
            });
        }
        if let Some(rest) = url.strip_prefix("cloudflare-do:") {
            return Ok(StoreSpec::DurableObject {
                binding: binding(rest)?,
            });
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(Error::config(
            "store",
            format!("the store scheme {scheme:?} is not known"),
            "use \"memory\", \"redis://host:port\", \"rediss://host:port\", \
             { url = \"upstash+https://…\", token = { env = \"…\" } }, \
             { url = \"denokv+https://…\", token = { env = \"…\" } }, \"denokv:<path>\", \
             \"cloudflare-kv:<binding>\" or \"cloudflare-do:<binding>\"",
        ))
    }
}

pub(super) fn store_shorthand<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<StoreConfig>, D::Error> {
    super::shorthand_or_table(d, "a store URL or { url, token, password }", |v| match v {
        super::ShortValue::Text(url) => Ok(StoreConfig::from(url.as_str())),
        _ => Err(
            "store must be a URL (\"redis://host:6379\") or { url, token, password }".to_owned(),
        ),
    })
}
