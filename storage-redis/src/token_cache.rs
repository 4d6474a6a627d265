//! [`RedisTokenCache`]: one gateway token for the whole cluster, refreshed by
//! one instance at a time, and never a reason for a refund to fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{IntoConnectionInfo, RedisError};
use refund_core::{now_ms, AccessToken, GatewayError, MemoryTokenCache, TokenCache, TokenSource};
use uuid::Uuid;

use crate::commands;
use crate::connection::{Connection, Unavailable};

/// First pause of an instance waiting for another one's refresh; it doubles
/// up to [`LONGEST_POLL`]. A token fetch is one HTTPS round trip, so the
/// first polls are frequent.
const FIRST_POLL: Duration = Duration::from_millis(10);
/// Longest pause between two polls of a waiting instance.
const LONGEST_POLL: Duration = Duration::from_millis(100);

/// A [`TokenCache`] on Redis, shared by every server instance (see the
/// crate docs for the protocol and the failure modes).
///
/// Cheap to share behind an `Arc`; one per process is enough, whatever the
/// number of i'mport accounts (keys) it serves.
#[derive(Debug)]
pub struct RedisTokenCache {
    connection: Connection,
    prefix: String,
    lock_ttl: Duration,
    wait_budget: Duration,
    /// Serves tokens while Redis is unreachable.
    fallback: MemoryTokenCache,
    /// One refresh per key at a time in this process, so that N local
    /// callers put one poller on Redis, not N.
    local_flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The Redis keys of one cache key.
struct Keys {
    token: String,
    lock: String,
}

impl RedisTokenCache {
    /// Prefix of every key, unless [`key_prefix`](Self::key_prefix) says otherwise.
    pub const DEFAULT_PREFIX: &'static str = "refund";
    /// Default [`lock_ttl`](Self::lock_ttl): longer than one getToken can
    /// take with the i'mport client's default timeouts (3 s connect + 15 s),
    /// so a slow i'mport does not let a second instance start a refresh.
    pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(20);
    /// Default [`wait_budget`](Self::wait_budget): a little past the lock's
    /// life, after which a waiter fetches for itself.
    pub const DEFAULT_WAIT_BUDGET: Duration = Duration::from_secs(21);
    /// Default [`call_timeout`](Self::call_timeout).
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(500);

    /// A cache on a connection manager the application already has. The
    /// manager reconnects by itself; this cache bounds each call with
    /// [`call_timeout`](Self::call_timeout) on top of the manager's settings.
    pub fn new(manager: ConnectionManager) -> Self {
        Self::on(Connection::given(manager, Self::DEFAULT_CALL_TIMEOUT))
    }

    /// A cache on the Redis at `url`: a `redis://[user:password@]host:port[/db]`
    /// string, or anything else [`redis::Client::open`] takes.
    ///
    /// Fails only for a malformed URL. An unreachable Redis is logged as a
    /// warning and retried on later calls, while tokens are fetched per
    /// instance: a server must start, and refund, even while Redis is down.
    pub async fn connect(url: impl IntoConnectionInfo) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let cache = Self::on(Connection::lazy(client, Self::DEFAULT_CALL_TIMEOUT));
        // Connecting now spares the first refund the wait, and the startup
        // log says whether Redis is reachable.
        match cache.connection.open().await {
            Ok(()) => tracing::info!("Redis token cache connected"),
            Err(error) => tracing::warn!(
                %error,
                "Redis token cache not reachable yet; tokens are fetched per instance until it is"
            ),
        }
        Ok(cache)
    }

    fn on(connection: Connection) -> Self {
        RedisTokenCache {
            connection,
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            lock_ttl: Self::DEFAULT_LOCK_TTL,
            wait_budget: Self::DEFAULT_WAIT_BUDGET,
            fallback: MemoryTokenCache::new(),
            local_flights: Mutex::default(),
        }
    }

    /// Namespace of every key this cache writes: `{prefix}:{key}` for a
    /// token and `{prefix}:lock:{key}` for its refresh lock. Instances that
    /// should share tokens use the same prefix; applications sharing a Redis
    /// use different ones.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a refresh lock lives. It should outlast a normal token fetch
    /// (one HTTPS call); if its holder dies, the others wait this long
    /// before one of them takes over.
    #[must_use]
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// How long a caller waits for another instance's refresh before
    /// fetching a token itself. Slightly above [`lock_ttl`](Self::lock_ttl)
    /// by default, so a dead holder's lock expires and is taken over
    /// within the budget.
    #[must_use]
    pub fn wait_budget(mut self, budget: Duration) -> Self {
        self.wait_budget = budget;
        self
    }

    /// The longest one Redis call may take (including opening the
    /// connection). A call that fails or times out makes this instance
    /// fetch tokens itself for a second, then try Redis again.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.connection.set_call_timeout(timeout);
        self
    }

    fn keys(&self, key: &str) -> Keys {
        Keys {
            token: format!("{}:{key}", self.prefix),
            lock: format!("{}:lock:{key}", self.prefix),
        }
    }

    fn local_flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .local_flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        flights.entry(key.to_owned()).or_default().clone()
    }

    async fn read_fresh(&self, keys: &Keys) -> Result<Option<AccessToken>, Unavailable> {
        let token = self
            .connection
            .run(|redis| commands::read_token(redis, &keys.token))
            .await?;
        Ok(token.filter(|token| token.is_fresh(now_ms())))
    }

    /// Refreshes the token cluster-wide: whoever takes the Redis lock
    /// fetches, the others poll until its token appears. `Err` means Redis
    /// could not be used and the caller falls back.
    async fn refresh(
        &self,
        keys: &Keys,
        source: &dyn TokenSource,
    ) -> Result<Result<AccessToken, GatewayError>, Unavailable> {
        let owner = Uuid::new_v4().to_string();
        let deadline = Instant::now() + self.wait_budget;
        let mut pause = FIRST_POLL;
        loop {
            if let Some(token) = self.read_fresh(keys).await? {
                return Ok(Ok(token));
            }
            let locked = self
                .connection
                .run(|redis| commands::try_lock(redis, &keys.lock, &owner, self.lock_ttl))
                .await?;
            if locked {
                // The previous holder may have stored its token and released
                // the lock between our read and our lock: look again first.
                let outcome = match self.read_fresh(keys).await {
                    Ok(Some(token)) => Ok(Ok(token)),
                    Ok(None) => Ok(self.fetch_and_store(keys, source).await),
                    Err(unavailable) => Err(unavailable),
                };
                // If this fails the lock expires by itself.
                let _ = self
                    .connection
                    .run(|redis| commands::release_lock(redis, &keys.lock, &owner))
                    .await;
                return outcome;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    wait_ms = self.wait_budget.as_millis(),
                    "another instance's token refresh outlasted the wait budget; fetching one here"
                );
                return Ok(self.fetch_and_store(keys, source).await);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }

    /// Fetches a token and stores it for its remaining lifetime. A failed
    /// store only costs the other instances a fetch of their own, so the
    /// token is returned anyway.
    async fn fetch_and_store(
        &self,
        keys: &Keys,
        source: &dyn TokenSource,
    ) -> Result<AccessToken, GatewayError> {
        let token = source.fetch_token().await?;
        let ttl_ms = token.use_until_ms.saturating_sub(now_ms());
        if ttl_ms > 0 {
            let _ = self
                .connection
                .run(|redis| commands::store_token(redis, &keys.token, &token, ttl_ms))
                .await;
        }
        Ok(token)
    }
}

#[async_trait]
impl TokenCache for RedisTokenCache {
    async fn get_or_refresh(
        &self,
        key: &str,
        source: &dyn TokenSource,
    ) -> Result<AccessToken, GatewayError> {
        let keys = self.keys(key);
        let shared = async {
            if let Some(token) = self.read_fresh(&keys).await? {
                return Ok(Ok(token));
            }
            let flight = self.local_flight(key);
            let _turn = flight.lock().await;
            self.refresh(&keys, source).await
        };
        match shared.await {
            Ok(result) => result,
            Err(_unavailable) => self.fallback.get_or_refresh(key, source).await,
        }
    }

    async fn invalidate(&self, key: &str, stale: &AccessToken) {
        self.fallback.invalidate(key, stale).await;
        let keys = self.keys(key);
        // If Redis is unreachable the stale token stays there until it
        // expires; whoever uses it gets a 401 and invalidates it again.
        let _ = self
            .connection
            .run(|redis| commands::delete_if_token(redis, &keys.token, &stale.token))
            .await;
    }
}
