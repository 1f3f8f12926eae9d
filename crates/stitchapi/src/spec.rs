//! A stitch's declaration once validated: what the engine reads on every call (the leaf the
//! engine, events and builders share, so none of them imports another for it).

use std::sync::Arc;

use http::{HeaderMap, Method};
use url::Url;

use crate::auth::Auth;
use crate::cache::ResponseCache;
use crate::circuit::Breaker;
use crate::policy::idempotency::IdempotencyPolicy;
use crate::policy::retry::RetryPolicy;
use crate::policy::status::StatusRule;
use crate::policy::timeout::TimeoutPolicy;
use crate::query::ArrayFormat;
use crate::settings::Runtime;
use crate::store::DynStore;
use crate::template::{UrlTemplate, scheme_prefix_len};
use crate::throttle::{Limiter, Throttle};

/// Everything about a stitch except its output type, validated.
pub(crate) struct Spec {
    pub name: Arc<str>,
    pub method: Method,
    pub template: UrlTemplate,
    pub origin: Option<FixedOrigin>,
    pub headers: HeaderMap,
    pub retry: RetryPolicy,
    pub timeout: TimeoutPolicy,
    pub accept: StatusRule,
    pub idempotency: Option<IdempotencyPolicy>,
    pub retry_non_idempotent: bool,
    pub max_response_bytes: usize,
    pub redirects: crate::policy::Redirects,
    pub array_format: ArrayFormat,
    pub runtime: Runtime,
    /// Throttle gates in order: the seam's bucket, then the stitch's own.
    pub limiters: Vec<Limiter>,
    /// Delegate mode: statuses that turn into `RateLimited` errors, never retried.
    pub delegate: Option<Throttle>,
    pub breaker: Option<Breaker>,
    pub auth: Option<Auth>,
    /// The store with every key under `vault:`, where auth keeps tokens and sessions.
    pub vault: DynStore,
    pub cache: Option<ResponseCache>,
    /// Request and response hooks, the seam's first.
    pub hooks: crate::policy::hooks::Hooks,
}

/// The origin a template fixes in its literal text; expansion may never change it.
#[derive(Clone, Debug)]
pub(crate) struct FixedOrigin {
    /// The literal origin (it has a host).
    url: Url,
    /// Set when the literal text spells `scheme://authority/`: expansion then only writes the
    /// path and query, and the call need not parse the origin again.
    pub(crate) parsed: Option<ParsedOrigin>,
}

/// The pre-parsed origin of a template whose literal text names it up to the first `/`.
#[derive(Clone, Debug)]
pub(crate) struct ParsedOrigin {
    /// Length of `scheme://authority` in every expansion.
    pub len: usize,
    /// The origin as a URL with the path `/`.
    pub url: Url,
}

impl FixedOrigin {
    /// The origin fixed by `template`, when its literal prefix names the whole authority
    /// (ended by `/`, `?` or `#`, or followed by a path, query or fragment expression).
    pub(crate) fn of(template: &str) -> Option<FixedOrigin> {
        let literal_end = template.find('{').unwrap_or(template.len());
        let literal = &template[..literal_end];
        let after_scheme = scheme_prefix_len(literal, false)?;
        let authority_end = literal[after_scheme..]
            .find(['/', '?', '#'])
            .map(|offset| after_scheme + offset);
        let authority_closed = authority_end.is_some()
            || template[literal_end..]
                .strip_prefix('{')
                .and_then(|expr| expr.chars().next())
                .is_some_and(|op| matches!(op, '/' | '?' | '&' | '#' | '+' | ';'));
        if !authority_closed {
            return None;
        }
        let url = Url::parse(literal).ok()?;
        let parsed = authority_end
            .filter(|end| literal.as_bytes().get(*end) == Some(&b'/'))
            .and_then(|end| {
                let url = Url::parse(&format!("{}/", &literal[..end])).ok()?;
                // The origin must convert to a URI, as every expansion's URL will.
                url[..url::Position::BeforePath].parse::<http::Uri>().ok()?;
                Some(ParsedOrigin { len: end, url })
            });
        url.host_str()?;
        Some(FixedOrigin { url, parsed })
    }

    pub(crate) fn matches(&self, url: &Url) -> bool {
        crate::transport::redirect::same_origin(&self.url, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_origin_detection() {
        assert!(FixedOrigin::of("https://api.example.com/users/{id}").is_some());
        assert!(FixedOrigin::of("https://api.example.com{+path}").is_some());
        assert!(FixedOrigin::of("https://api.example.com{/seg}").is_some());
        assert!(FixedOrigin::of("https://api.{region}.example.com/x").is_none());
        assert!(FixedOrigin::of("{+base}/users").is_none());
        let origin = FixedOrigin::of("https://api.example.com:8443/").unwrap();
        assert!(origin.matches(&Url::parse("https://api.example.com:8443/a").unwrap()));
        assert!(!origin.matches(&Url::parse("https://evil.com:8443/a").unwrap()));
    }
}
