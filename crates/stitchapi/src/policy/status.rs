//! Sets of HTTP statuses, with an optional predicate (`accept`, `retry.on`).

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

/// A set of statuses 100..=599 as a bitset: membership is one shift and mask.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StatusSet([u64; 10]);

impl StatusSet {
    pub(crate) fn from_codes(codes: impl IntoIterator<Item = u16>) -> Result<StatusSet, u16> {
        let mut set = StatusSet::default();
        for code in codes {
            if !(100..=599).contains(&code) {
                return Err(code);
            }
            set.0[usize::from(code / 64)] |= 1 << (code % 64);
        }
        Ok(set)
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

type StatusPredicate = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// Which statuses match: a list of codes, a predicate, or both.
///
/// ```
/// use stitchapi::policy::StatusMatch;
///
/// let missing_ok = StatusMatch::codes([404, 410]);
/// let any_4xx = StatusMatch::when(|status| status.is_client_error());
/// ```
#[derive(Clone, Default)]
pub struct StatusMatch {
    pub(crate) codes: Vec<u16>,
    pub(crate) predicate: Option<StatusPredicate>,
}

impl StatusMatch {
    /// Matches exactly these codes.
    pub fn codes(codes: impl IntoIterator<Item = u16>) -> Self {
        StatusMatch {
            codes: codes.into_iter().collect(),
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

impl<const N: usize> From<[u16; N]> for StatusMatch {
    fn from(codes: [u16; N]) -> Self {
        StatusMatch::codes(codes)
    }
}

impl From<Vec<u16>> for StatusMatch {
    fn from(codes: Vec<u16>) -> Self {
        StatusMatch::codes(codes)
    }
}

impl From<u16> for StatusMatch {
    fn from(code: u16) -> Self {
        StatusMatch::codes([code])
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
        let set = StatusSet::from_codes(matcher.codes.iter().copied()).map_err(|code| {
            crate::Error::config(
                field,
                format!("{code} is not an HTTP status"),
                "use codes between 100 and 599",
            )
        })?;
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
        let set = StatusSet::from_codes([429, 502, 599, 100]).unwrap();
        assert!(set.contains(StatusCode::TOO_MANY_REQUESTS));
        assert!(!set.contains(StatusCode::OK));
        assert_eq!(set.codes().collect::<Vec<_>>(), vec![100, 429, 502, 599]);
        assert_eq!(StatusSet::from_codes([700]), Err(700));
    }
}
