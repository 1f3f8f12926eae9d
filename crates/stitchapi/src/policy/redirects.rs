//! How many redirects a request follows.

/// How many redirects one attempt follows (default: [`Redirects::limit`]`(20)`).
///
/// The engine follows redirects itself, so that a cross-origin hop forwards only
/// [safe headers](crate::headers) and never a credential. With [`Redirects::none`] a `3xx`
/// answer is the call's answer (it counts as success, like a 2xx), which a form login that
/// must see its `302` needs; over a limit, the call fails with a
/// [`Redirect`](crate::transport::TransportErrorKind::Redirect) transport error.
///
/// ```
/// use stitchapi::policy::Redirects;
/// use stitchapi::Stitch;
///
/// # fn demo() -> stitchapi::Result<()> {
/// let login = Stitch::post("https://app.example.com/login")
///     .redirects(Redirects::none())
///     .build()?;
/// let search = Stitch::get("https://api.example.com/search").redirects(Redirects::limit(3)).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Redirects {
    limit: usize,
}

impl Redirects {
    /// The default: at most 20 redirects per attempt, as browsers and reqwest allow.
    pub const DEFAULT: Redirects = Redirects { limit: 20 };

    /// Follows no redirect: a `3xx` answer is returned as it is.
    pub const fn none() -> Redirects {
        Redirects { limit: 0 }
    }

    /// Follows at most `limit` redirects per attempt (`0` is [`Redirects::none`]).
    pub const fn limit(limit: usize) -> Redirects {
        Redirects { limit }
    }

    /// The most redirects followed per attempt.
    pub const fn max(self) -> usize {
        self.limit
    }

    /// Whether redirects are followed at all.
    pub const fn follows(self) -> bool {
        self.limit > 0
    }
}

impl Default for Redirects {
    fn default() -> Self {
        Redirects::DEFAULT
    }
}

/// Config files: `redirects = false` (none), `true` (the default limit) or a limit such as
/// `redirects = 5`.
impl<'de> serde::Deserialize<'de> for Redirects {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Redirects;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or the most redirects to follow (such as 5)")
            }

            fn visit_bool<E: serde::de::Error>(self, follow: bool) -> Result<Redirects, E> {
                Ok(if follow {
                    Redirects::DEFAULT
                } else {
                    Redirects::none()
                })
            }

            fn visit_u64<E: serde::de::Error>(self, limit: u64) -> Result<Redirects, E> {
                usize::try_from(limit)
                    .map(Redirects::limit)
                    .map_err(|_| E::custom("the redirect limit is too large"))
            }

            fn visit_i64<E: serde::de::Error>(self, limit: i64) -> Result<Redirects, E> {
                u64::try_from(limit)
                    .map_err(|_| {
                        E::custom(
                            "the redirect limit cannot be negative (use false to follow none)",
                        )
                    })
                    .and_then(|limit| self.visit_u64(limit))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl serde::Serialize for Redirects {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.limit as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::Redirects;

    #[test]
    fn config_files_say_a_bool_or_a_limit() {
        let parse = |text: &str| {
            toml::from_str::<toml::Value>(&format!("r = {text}"))
                .unwrap()
                .get("r")
                .cloned()
                .unwrap()
                .try_into::<Redirects>()
        };
        assert_eq!(parse("false").unwrap(), Redirects::none());
        assert_eq!(parse("true").unwrap(), Redirects::DEFAULT);
        assert_eq!(parse("3").unwrap(), Redirects::limit(3));
        let negative = parse("-1").unwrap_err().to_string();
        assert!(negative.contains("cannot be negative"), "{negative}");
        assert!(parse("\"5\"").is_err());
    }
}
