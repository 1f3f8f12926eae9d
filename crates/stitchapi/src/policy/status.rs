//! HTTP statuses as declared ([`StatusSpec`]: a [`StatusCode`] or a `u16`), and sets of them
//! with an optional predicate ([`StatusMatch`]: `accept`, `retry.on`).

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

/// A set of statuses 100..=599 as a bitset: membership is one shift and mask.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StatusSet([u64; 10]);

impl StatusSet {
    fn insert(&mut self, status: StatusCode) {
        let code = status.as_u16();
        self.0[usize::from(code / 64)] |= 1 << (code % 64);
    }

    pub(crate) fn contains(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        code < 640 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    pub(crate) fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (100..=599).filter(|code| self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0)
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.codes()).finish()
    }
}

/// A status as declared: an [`http::StatusCode`], or a `u16` checked by `build()`.
///
/// Every option that takes statuses (`Retry::on`, `accept`, `Throttle::on`, the auth
/// `refresh_on` options) takes `impl Into<StatusSpec>` items, so both spellings work; a code
/// outside 100..=599 fails `build()` with an error naming the field.
///
/// ```
/// use http::StatusCode;
/// use stitchapi::Retry;
///
/// let typed = Retry::attempts(3).on([StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE]);
/// let numeric = Retry::attempts(3).on([429, 503]);
/// # let _ = (typed, numeric);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusSpec(u16);

impl StatusSpec {
    /// The code as written.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether the code is an HTTP status (100..=599).
    pub(crate) fn is_valid(self) -> bool {
        (100..=599).contains(&self.0)
    }

    /// The status, or a config error naming `field` when the code is not 100..=599.
    pub(crate) fn check(self, field: &str) -> Result<StatusCode, crate::Error> {
        match StatusCode::from_u16(self.0) {
            Ok(status) if self.is_valid() => Ok(status),
            _ => Err(crate::Error::config(
                field,
                format!("{} is not an HTTP status", self.0),
                "use codes between 100 and 599, e.g. 429 or StatusCode::TOO_MANY_REQUESTS",
            )),
        }
    }
}

impl From<u16> for StatusSpec {
    fn from(code: u16) -> Self {
        StatusSpec(code)
    }
}

impl From<StatusCode> for StatusSpec {
    fn from(status: StatusCode) -> Self {
        StatusSpec(status.as_u16())
    }
}

impl From<&StatusCode> for StatusSpec {
    fn from(status: &StatusCode) -> Self {
        StatusSpec(status.as_u16())
    }
}

impl PartialEq<StatusCode> for StatusSpec {
    fn eq(&self, status: &StatusCode) -> bool {
        self.0 == status.as_u16()
    }
}

impl fmt::Debug for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Checks every status, naming `field` for the first invalid one.
pub(crate) fn check_all(statuses: &[StatusSpec], field: &str) -> Result<StatusSet, crate::Error> {
    let mut set = StatusSet::default();
    for status in statuses {
        set.insert(status.check(field)?);
    }
    Ok(set)
}

type StatusPredicate = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// Which statuses match: a list of codes, a predicate, or both.
///
/// ```
/// use http::StatusCode;
/// use stitchapi::policy::StatusMatch;
///
/// let missing_ok = StatusMatch::codes([StatusCode::NOT_FOUND, StatusCode::GONE]);
/// let same = StatusMatch::codes([404, 410]);
/// let any_4xx = StatusMatch::when(|status| status.is_client_error());
/// # let _ = (missing_ok, same, any_4xx);
/// ```
#[derive(Clone, Default)]
pub struct StatusMatch {
    pub(crate) codes: Vec<StatusSpec>,
    pub(crate) predicate: Option<StatusPredicate>,
}

impl StatusMatch {
    /// Matches exactly these codes ([`StatusCode`]s or `u16`s).
    pub fn codes<S: Into<StatusSpec>>(codes: impl IntoIterator<Item = S>) -> Self {
        StatusMatch {
            codes: codes.into_iter().map(Into::into).collect(),
            predicate: None,
        }
    }

    /// Matches the statuses for which `predicate` is true.
    pub fn when(predicate: impl Fn(StatusCode) -> bool + Send + Sync + 'static) -> Self {
        StatusMatch {
            codes: Vec::new(),
            predicate: Some(Arc::new(predicate)),
        }
    }
}

impl<S: Into<StatusSpec>, const N: usize> From<[S; N]> for StatusMatch {
    fn from(codes: [S; N]) -> Self {
        StatusMatch::codes(codes)
    }
}

impl<S: Into<StatusSpec>> From<Vec<S>> for StatusMatch {
    fn from(codes: Vec<S>) -> Self {
        StatusMatch::codes(codes)
    }
}

impl From<u16> for StatusMatch {
    fn from(code: u16) -> Self {
        StatusMatch::codes([code])
    }
}

impl From<StatusCode> for StatusMatch {
    fn from(status: StatusCode) -> Self {
        StatusMatch::codes([status])
    }
}

impl fmt::Debug for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StatusMatch");
        d.field("codes", &self.codes);
        if self.predicate.is_some() {
            d.field("predicate", &"<fn>");
        }
        d.finish()
    }
}

/// A validated [`StatusMatch`].
#[derive(Clone, Default)]
pub(crate) struct StatusRule {
    set: StatusSet,
    predicate: Option<StatusPredicate>,
}

impl StatusRule {
    pub(crate) fn resolve(matcher: &StatusMatch, field: &str) -> Result<StatusRule, crate::Error> {
        let set = check_all(&matcher.codes, field)?;
        Ok(StatusRule {
            set,
            predicate: matcher.predicate.clone(),
        })
    }

    pub(crate) fn from_set(set: StatusSet) -> StatusRule {
        StatusRule {
            set,
            predicate: None,
        }
    }

    pub(crate) fn matches(&self, status: StatusCode) -> bool {
        self.set.contains(status) || self.predicate.as_ref().is_some_and(|p| p(status))
    }
}

impl fmt::Debug for StatusRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.set)?;
        if self.predicate.is_some() {
            f.write_str(" + <fn>")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_membership() {
        let codes = [429, 502, 599, 100].map(StatusSpec::from);
        let set = check_all(&codes, "retry.on").unwrap();
        assert!(set.contains(StatusCode::TOO_MANY_REQUESTS));
        assert!(!set.contains(StatusCode::OK));
        assert_eq!(set.codes().collect::<Vec<_>>(), vec![100, 429, 502, 599]);
        assert!(check_all(&[StatusSpec::from(700)], "retry.on").is_err());
    }

    #[test]
    fn specs_from_codes_and_numbers_and_their_errors() {
        assert_eq!(
            StatusSpec::from(StatusCode::NOT_FOUND),
            StatusSpec::from(404)
        );
        assert_eq!(StatusSpec::from(429), StatusCode::TOO_MANY_REQUESTS);
        let set = check_all(&[StatusCode::GONE.into(), 404.into()], "accept").unwrap();
        assert!(set.contains(StatusCode::GONE) && set.contains(StatusCode::NOT_FOUND));
        for bad in [0, 99, 600, 999, 1000] {
            let e = check_all(&[StatusSpec::from(bad)], "accept").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "accept: {bad} is not an HTTP status. Fix: use codes between 100 and 599, \
                     e.g. 429 or StatusCode::TOO_MANY_REQUESTS"
                )
            );
        }
        let typed = StatusMatch::from([StatusCode::NOT_FOUND]);
        let numeric = StatusMatch::from([404]);
        assert_eq!(typed.codes, numeric.codes);
    }
}
