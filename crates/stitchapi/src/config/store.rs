//! The store a declared seam keeps its shared state in, as data.

use serde::{Deserialize, Serialize};

use super::SecretConfig;
use crate::auth::Secret;
use crate::error::{Error, Result};

/// The store, as written in a file: a URL (`store = "redis://127.0.0.1:6379"`) or a table
/// with a token (`store = { url = "upstash+https://eu1.upstash.io", token = { env = "UPSTASH_TOKEN" } }`).
///
/// The core does not depend on the store crates: [`StoreConfig::spec`] gives a typed
/// [`StoreSpec`] that a front end (the `stitch` CLI) maps to a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory`, `redis://…`, `rediss://…`, `upstash+https://…`, `denokv+https://…`,
    /// `denokv:<path>`.
    pub url: String,
    /// The access token (Upstash, remote Deno KV).
    pub token: Option<SecretConfig>,
}

/// A store declaration, checked: which backend and where.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StoreSpec {
    /// The in-process `MemoryStore` (the default).
    Memory,
    /// Redis over TCP (`redis://` or `rediss://`, the URL as written).
    Redis {
        /// The connection URL.
        url: String,
    },
    /// Upstash Redis over HTTPS REST.
    Upstash {
        /// The REST endpoint (`https://…`, the `upstash+` prefix removed).
        url: String,
        /// The REST token.
        token: Secret,
    },
    /// Deno KV: a remote database (`https://…`) or a local file path.
    DenoKv {
        /// The remote URL (`https://…`, the `denokv+` prefix removed) or the file path.
        location: String,
        /// The access token of a remote database.
        token: Option<Secret>,
    },
}

impl From<&str> for StoreConfig {
    fn from(url: &str) -> Self {
        StoreConfig {
            url: url.to_owned(),
            token: None,
        }
    }
}

impl StoreConfig {
    /// The typed store declaration; an unknown scheme or a missing token is a `Config` error
    /// on the field `store`.
    ///
    /// ```
    /// use stitchapi::config::{StoreConfig, StoreSpec};
    ///
    /// let spec = StoreConfig::from("redis://127.0.0.1:6379/0").spec().unwrap();
    /// assert!(matches!(spec, StoreSpec::Redis { url } if url == "redis://127.0.0.1:6379/0"));
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
        if url.eq_ignore_ascii_case("memory") {
            return Ok(StoreSpec::Memory);
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return Ok(StoreSpec::Redis {
                url: url.to_owned(),
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
            return Ok(StoreSpec::DenoKv {
                location: path.to_owned(),
                token: None,
            });
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(Error::config(
            "store",
            format!("the store scheme {scheme:?} is not known"),
            "use \"memory\", \"redis://host:port\", \"rediss://host:port\", \
             { url = \"upstash+https://…\", token = { env = \"…\" } }, \
             { url = \"denokv+https://…\", token = { env = \"…\" } } or \"denokv:<path>\"",
        ))
    }
}

pub(super) fn store_shorthand<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<StoreConfig>, D::Error> {
    super::shorthand_or_table(d, "a store URL or { url, token }", |v| match v {
        super::ShortValue::Text(url) => Ok(StoreConfig::from(url.as_str())),
        _ => Err("store must be a URL (\"redis://host:6379\") or { url, token }".to_owned()),
    })
}
