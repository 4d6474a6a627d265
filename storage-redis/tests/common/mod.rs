//! Shared test helpers: a real Redis with a fresh key prefix per test, and a
//! token source that counts its fetches.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use refund_core::testkit::services::{Scratch, REDIS};
use refund_core::{now_ms, AccessToken, GatewayError, Secret, TokenCache, TokenSource};
use storage_redis::RedisTokenCache;
use tokio::sync::Barrier;

/// The cache key the i'mport client uses, for an imp_key of this test.
pub const KEY: &str = "iamport:token:imp_test";

/// Every test's keys start with a scratch name of its own:
/// `storage_redis_<unix seconds>_<random>:`. The cache writes every key with
/// an expiry, so a crashed run's keys go away by themselves.
const SCRATCH: Scratch = Scratch::new("storage_redis_");

/// One test's corner of a real Redis: every key it writes starts with a
/// random prefix, and [`TestRedis::cleanup`] removes them.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
    /// The test's own connection, for looking at (and tampering with) keys.
    pub admin: ConnectionManager,
}

impl TestRedis {
    /// Connects to the test Redis ([`REDIS`]). Without one, fails under
    /// `CI=true` and otherwise returns `None` after saying loudly that the
    /// test is skipped.
    pub async fn start() -> Option<Self> {
        let admin = REDIS
            .connect(|url| async move { connect(&url).await })
            .await?;
        Some(TestRedis {
            url: REDIS.url(),
            prefix: SCRATCH.name(),
            admin,
        })
    }

    /// A cache on its own connection, as a separate server instance would
    /// have, with this test's prefix and call timeouts generous enough that
    /// a loaded machine never looks like a Redis outage.
    pub async fn instance(&self) -> RedisTokenCache {
        RedisTokenCache::connect(self.url.as_str())
            .await
            .expect("valid URL")
            .key_prefix(&self.prefix)
            .call_timeout(Duration::from_secs(10))
    }

    pub fn token_key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    pub fn lock_key(&self, key: &str) -> String {
        format!("{}:lock:{key}", self.prefix)
    }

    pub async fn pttl(&self, key: &str) -> i64 {
        self.admin.clone().pttl(key).await.expect("PTTL")
    }

    pub async fn exists(&self, key: &str) -> bool {
        self.admin.clone().exists(key).await.expect("EXISTS")
    }

    /// Deletes every key under this test's prefix.
    pub async fn cleanup(self) {
        let mut admin = self.admin.clone();
        let keys: Vec<String> = {
            let mut iter = admin
                .scan_match::<_, String>(format!("{}:*", self.prefix))
                .await
                .expect("SCAN");
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key);
            }
            keys
        };
        if !keys.is_empty() {
            let () = admin.del(keys).await.expect("DEL");
        }
    }
}

async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    // One attempt: a missing Redis should be reported at once.
    let config = ConnectionManagerConfig::new().set_number_of_retries(0);
    let mut manager = client.get_connection_manager_with_config(config).await?;
    redis::cmd("PING").query_async::<()>(&mut manager).await?;
    Ok(manager)
}

/// A token source that counts its fetches and takes `delay` for each, like
/// a slow gateway; tokens are `token-0`, `token-1`, ... valid for a minute.
pub struct CountingSource {
    fetches: AtomicUsize,
    delay: Duration,
    failing: bool,
}

impl CountingSource {
    pub fn new(delay: Duration) -> Self {
        CountingSource {
            fetches: AtomicUsize::new(0),
            delay,
            failing: false,
        }
    }

    /// A source whose gateway refuses every fetch.
    pub fn failing() -> Self {
        CountingSource {
            failing: true,
            ..Self::new(Duration::ZERO)
        }
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// How long tokens from [`CountingSource`] stay usable.
pub const TOKEN_LIFETIME_MS: i64 = 60_000;

#[async_trait]
impl TokenSource for CountingSource {
    async fn fetch_token(&self) -> Result<AccessToken, GatewayError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.failing {
            return Err(GatewayError::Rejected {
                code: Some("-1".into()),
                message: "wrong imp_key".to_owned(),
            });
        }
        Ok(AccessToken {
            token: Secret::new(format!("token-{n}")),
            use_until_ms: now_ms() + TOKEN_LIFETIME_MS,
        })
    }
}

/// Calls `get_or_refresh` from `callers_each` tasks on every cache, all
/// released at once, and returns every token they got.
pub async fn call_concurrently(
    caches: &[Arc<RedisTokenCache>],
    callers_each: usize,
    source: &Arc<CountingSource>,
) -> Vec<AccessToken> {
    let start = Arc::new(Barrier::new(caches.len() * callers_each));
    let tasks: Vec<_> = caches
        .iter()
        .flat_map(|cache| std::iter::repeat_n(cache, callers_each))
        .map(|cache| {
            let (cache, source, start) = (cache.clone(), source.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                cache.get_or_refresh(KEY, &*source).await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.expect("task").expect("a token"));
    }
    tokens
}

/// A TCP proxy to the test Redis that can stop passing bytes on, like a
/// Redis that hangs (or a network that drops packets), or cut every open
/// connection, like a Redis restart.
pub struct FaultyProxy {
    pub connection_info: redis::ConnectionInfo,
    stalled: tokio::sync::watch::Sender<bool>,
    cuts: tokio::sync::watch::Sender<u64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    pub async fn start(redis_url: &str) -> Self {
        use redis::{ConnectionAddr, IntoConnectionInfo};

        let upstream = redis_url.into_connection_info().expect("valid REDIS_URL");
        let ConnectionAddr::Tcp(host, port) = &upstream.addr else {
            panic!("the proxy only forwards plain TCP Redis URLs");
        };
        let upstream_addr = format!("{host}:{port}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let (stalled, stalled_rx) = tokio::sync::watch::channel(false);
        let (cuts, cuts_rx) = tokio::sync::watch::channel(0);
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream_addr).await else {
                    continue;
                };
                // Only cuts made from now on end this connection.
                let mut cuts = cuts_rx.clone();
                cuts.borrow_and_update();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let faults = (stalled_rx.clone(), cuts);
                tokio::spawn(pump(client_read, server_write, faults.clone()));
                tokio::spawn(pump(server_read, client_write, faults));
            }
        });
        let connection_info = redis::ConnectionInfo {
            addr: ConnectionAddr::Tcp(local.ip().to_string(), local.port()),
            redis: upstream.redis,
        };
        FaultyProxy {
            connection_info,
            stalled,
            cuts,
            accepting,
        }
    }

    /// Holds every byte from now on, in both directions.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Delivers what was held, and passes bytes on again.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    /// Closes every open connection; new ones are accepted as before.
    pub fn cut(&self) {
        self.cuts.send_modify(|cuts| *cuts += 1);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Copies one direction of a proxied connection until either side closes
/// it or the proxy cuts it.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    (mut stalled, mut cuts): (
        tokio::sync::watch::Receiver<bool>,
        tokio::sync::watch::Receiver<u64>,
    ),
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(n @ 1..) => n,
                _ => return,
            },
            _ = cuts.changed() => return,
        };
        if stalled.wait_for(|stalled| !stalled).await.is_err()
            || to.write_all(&buffer[..n]).await.is_err()
        {
            return;
        }
    }
}
