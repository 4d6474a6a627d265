//! The cache's connection to Redis: every call bounded by a timeout, and
//! Redis left alone for a moment after a failure, so an outage costs a
//! refund at most one timeout instead of one per call.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult};
use tokio::sync::OnceCell;

/// How long Redis is bypassed after a failed call before it is tried again.
/// Short, because the fallback (a per-instance token) works but loses the
/// cluster-wide sharing; long enough that a dead Redis is not probed by
/// every refund.
const OUTAGE_PAUSE: Duration = Duration::from_secs(1);

/// Where the connection comes from.
enum Manager {
    /// The caller's own manager, already connected.
    Given(ConnectionManager),
    /// Opened on first use (and after a failed open, on a later use), so a
    /// server starts even while Redis is down.
    Lazy {
        client: redis::Client,
        opened: OnceCell<ConnectionManager>,
    },
}

/// Why a Redis call gave no answer.
#[derive(Debug)]
pub(crate) enum Unavailable {
    /// Redis failed recently; it is not asked again until the pause ends.
    Paused,
    /// No answer within the call timeout.
    TimedOut,
    /// Redis (or the way to it) answered with an error.
    Failed(RedisError),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Paused => f.write_str("paused after a recent failure"),
            Unavailable::TimedOut => f.write_str("no answer within the call timeout"),
            // Redis errors name the failure (refused, auth, script error),
            // never our arguments, so they carry no token.
            Unavailable::Failed(error) => write!(f, "{error}"),
        }
    }
}

/// A Redis connection that never blocks a caller longer than its timeout.
pub(crate) struct Connection {
    manager: Manager,
    call_timeout: Duration,
    paused_until: Mutex<Option<Instant>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Uses a manager the caller already opened.
    pub(crate) fn given(manager: ConnectionManager, call_timeout: Duration) -> Self {
        Self::with(Manager::Given(manager), call_timeout)
    }

    /// Opens a manager for `client` on first use.
    pub(crate) fn lazy(client: redis::Client, call_timeout: Duration) -> Self {
        let opened = OnceCell::new();
        Self::with(Manager::Lazy { client, opened }, call_timeout)
    }

    fn with(manager: Manager, call_timeout: Duration) -> Self {
        Connection {
            manager,
            call_timeout,
            paused_until: Mutex::new(None),
        }
    }

    pub(crate) fn set_call_timeout(&mut self, timeout: Duration) {
        self.call_timeout = timeout;
    }

    /// Runs one Redis operation within the call timeout. A failure is logged
    /// and pauses Redis use, so an outage is logged once per pause, not once
    /// per refund.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.is_paused() {
            return Err(Unavailable::Paused);
        }
        let result = self
            .bounded(async { op(self.manager().await?).await })
            .await;
        if let Err(error) = &result {
            self.pause();
            tracing::warn!(
                %error,
                pause_ms = OUTAGE_PAUSE.as_millis(),
                "Redis token cache unavailable; tokens are fetched per instance until it answers again"
            );
        }
        result
    }

    /// Opens the connection now rather than on first use. A failure is
    /// only reported: it does not pause Redis use, so the next call tries
    /// again with the settings in force then.
    pub(crate) async fn open(&self) -> Result<(), Unavailable> {
        self.bounded(self.manager()).await.map(drop)
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Unavailable::Failed(error)),
            Err(_elapsed) => Err(Unavailable::TimedOut),
        }
    }

    async fn manager(&self) -> RedisResult<ConnectionManager> {
        match &self.manager {
            Manager::Given(manager) => Ok(manager.clone()),
            Manager::Lazy { client, opened } => {
                // No retries inside the open: the outage pause paces them.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.call_timeout)
                    .set_number_of_retries(0);
                let open = || ConnectionManager::new_with_config(client.clone(), config);
                opened.get_or_try_init(open).await.cloned()
            }
        }
    }

    fn is_paused(&self) -> bool {
        let paused_until = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        paused_until.is_some_and(|until| Instant::now() < until)
    }

    fn pause(&self) {
        let mut paused_until = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *paused_until = Some(Instant::now() + OUTAGE_PAUSE);
    }
}
