//! Credentials that never show up in `Debug`, `Display` or errors.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::runtime::{MaybeSend, MaybeSync};

/// Produces a secret value on demand (see [`Secret::from_fn`]).
pub trait SecretSource: MaybeSend + MaybeSync + 'static {
    /// Returns the secret, or an `Auth` error that does not contain it.
    fn resolve(&self) -> Result<String, Error>;
}

impl<F> SecretSource for F
where
    F: Fn() -> Result<String, Error> + MaybeSend + MaybeSync + 'static,
{
    fn resolve(&self) -> Result<String, Error> {
        self()
    }
}

#[derive(Clone)]
enum Source {
    Value(Arc<str>),
    Env(Arc<str>),
    Fn(Arc<dyn SecretSource>),
}

/// A credential: a fixed value, an environment variable read on every call, or a function.
///
/// `Debug` and `Display` print `Secret(<redacted>)` (an env secret shows its variable name,
/// never its value).
///
/// ```
/// use stitchapi::auth::Secret;
///
/// let fixed = Secret::new("t0ken");
/// assert_eq!(format!("{fixed} {fixed:?}"), "<redacted> Secret(<redacted>)");
/// assert_eq!(fixed.expose().unwrap(), "t0ken");
///
/// let missing = Secret::env("STITCHAPI_DOC_SURELY_UNSET");
/// let error = missing.expose().unwrap_err();
/// assert!(error.to_string().contains("STITCHAPI_DOC_SURELY_UNSET"));
/// ```
#[derive(Clone)]
pub struct Secret(Source);

impl Secret {
    /// A fixed value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Source::Value(Arc::from(value.into())))
    }

    /// The environment variable `name`, read on every call. A missing or empty variable is an
    /// `Auth` error naming it.
    pub fn env(name: impl Into<String>) -> Secret {
        Secret(Source::Env(Arc::from(name.into())))
    }

    /// A function called on every call (for a vault client, a rotating file...).
    pub fn from_fn(source: impl SecretSource) -> Secret {
        Secret(Source::Fn(Arc::new(source)))
    }

    /// The secret's value. Keep it out of logs.
    pub fn expose(&self) -> Result<String, Error> {
        match &self.0 {
            Source::Value(value) => Ok(value.to_string()),
            Source::Env(name) => match std::env::var(&**name) {
                Ok(value) if !value.is_empty() => Ok(value),
                Ok(_) => Err(Error::new(
                    ErrorKind::Auth,
                    format!(
                        "missing secret: environment variable {name} is empty. Fix: set {name} to the credential"
                    ),
                )),
                Err(_) => Err(Error::new(
                    ErrorKind::Auth,
                    format!(
                        "missing secret: environment variable {name} is not set. Fix: set {name} to the credential"
                    ),
                )),
            },
            Source::Fn(source) => source.resolve(),
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Env(name) => write!(f, "Secret(env {name})"),
            _ => f.write_str("Secret(<redacted>)"),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_everywhere() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        let from_fn = Secret::from_fn(|| Ok::<_, Error>("fn-secret".to_owned()));
        assert!(!format!("{from_fn:?}{from_fn}").contains("fn-secret"));
        assert_eq!(from_fn.expose().unwrap(), "fn-secret");
    }

    #[test]
    fn env_is_read_per_call_and_names_the_variable() {
        let name = "STITCHAPI_AUTH_TEST_SECRET_ENV";
        let secret = Secret::env(name);
        let error = secret.expose().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Auth);
        assert!(error.to_string().contains(name), "{error}");
        assert!(format!("{secret:?}").contains(name));
        // A variable that is set: read on every call (unsafe set_var is forbidden here).
        let path = Secret::env("PATH");
        assert_eq!(path.expose().unwrap(), std::env::var("PATH").unwrap());
    }
}
