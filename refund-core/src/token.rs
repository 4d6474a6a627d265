//! Where the gateway's access token lives between calls.

use async_trait::async_trait;

use crate::gateway::{GatewayError, Secret};

/// An access token and when we stop using it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The token (redacted in `Debug`).
    pub token: Secret,
    /// Local unix milliseconds after which the token is not used any more:
    /// the gateway's lifetime (`expired_at - now`, which cancels clock skew)
    /// minus a safety margin, added to our clock when it was issued.
    pub use_until_ms: i64,
}

impl AccessToken {
    /// True while the token may still be used at `now_ms`.
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.use_until_ms
    }
}

/// Something that can fetch a new token from the gateway.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// Asks the gateway for a token.
    async fn fetch_token(&self) -> Result<AccessToken, GatewayError>;
}

/// A cache of gateway access tokens, shared by every refund of an instance
/// (in memory) or of a whole cluster (Redis).
///
/// # Contract
/// - [`get_or_refresh`](Self::get_or_refresh) returns a fresh token for
///   `key`, calling `source` only when none is cached or it is no longer
///   fresh. At most one refresh per key runs at a time among the cache's
///   users; the others wait for it and use its token.
/// - [`invalidate`](Self::invalidate) drops the cached token only if it is
///   still `stale` (compare-and-delete), so a fresh token fetched meanwhile
///   by someone else survives.
/// - A cache that cannot reach its backend degrades to calling `source`
///   directly: refunds never fail because of the cache.
#[async_trait]
pub trait TokenCache: Send + Sync + 'static {
    /// A fresh token for `key`, refreshed through `source` if needed.
    async fn get_or_refresh(
        &self,
        key: &str,
        source: &dyn TokenSource,
    ) -> Result<AccessToken, GatewayError>;

    /// Forgets `stale` under `key` if it is still the cached token.
    async fn invalidate(&self, key: &str, stale: &AccessToken);
}
