//! What a call returns besides its output: [`Reply`] and where it was [`Served`] from.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use url::Url;

/// The result of a call with its metadata: see [`Stitch::call_detailed`](crate::Stitch::call_detailed).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Reply<O> {
    /// The decoded output.
    pub data: O,
    /// The final status.
    pub status: StatusCode,
    /// The final response's headers.
    pub headers: HeaderMap,
    /// The final URL, after redirects.
    pub url: Url,
    /// The redirects followed on the way to `url`, in order (empty when there were none, and
    /// for a response served from the cache).
    pub redirects: Vec<crate::transport::RedirectHop>,
    /// Requests this call sent (0 when it was served without one: see [`served`](Self::served)).
    pub attempts: u32,
    /// Time from start to finish, on the stitch's clock.
    pub elapsed: Duration,
    /// Where the response came from.
    pub served: Served,
}

/// Where a [`Reply`]'s response came from.
///
/// ```
/// # async fn demo(prices: stitchapi::Stitch) -> stitchapi::Result<()> {
/// use stitchapi::{Input, Served};
///
/// let reply = prices.call_detailed(Input::new()).await?;
/// if reply.served.is_from_cache() {
///     println!("cached answer, {} requests sent", reply.attempts); // 0
/// }
/// assert_eq!(reply.served == Served::Network, reply.attempts > 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Served {
    /// This call sent the request(s) (a call without a cache, a cache miss, a bypass).
    Network,
    /// A stored response: the cache hit.
    CacheHit,
    /// Another process fetched it for the fleet; this call read the entry it stored.
    FleetFilled,
    /// An identical call in flight in this process fetched it; this call shared the result.
    Coalesced,
}

impl Served {
    /// Whether the response was read from the cache's store ([`CacheHit`](Served::CacheHit)
    /// or [`FleetFilled`](Served::FleetFilled)).
    pub fn is_from_cache(self) -> bool {
        matches!(self, Served::CacheHit | Served::FleetFilled)
    }
}
