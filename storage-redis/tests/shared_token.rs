//! The cache against a real Redis: storage and TTL, cluster-wide single
//! flight across separate instances, compare-and-delete invalidation, and
//! lock takeover. Each test works under its own random key prefix.

mod common;

use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, SetExpiry, SetOptions};
use refund_core::{now_ms, AccessToken, Secret, TokenCache};

use common::{call_concurrently, CountingSource, TestRedis, KEY, TOKEN_LIFETIME_MS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_the_token_until_its_use_until_with_a_matching_ttl() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let cache = redis.instance().await;
    let source = CountingSource::new(Duration::ZERO);

    let before = now_ms();
    let token = cache.get_or_refresh(KEY, &source).await.unwrap();
    let pttl = redis.pttl(&redis.token_key(KEY)).await;
    let after = now_ms();

    // PX = use_until_ms - (the moment of storing), which lies between
    // `before` and `after`; PTTL only counts down from there.
    assert!(pttl <= token.use_until_ms - before, "pttl {pttl} too long");
    assert!(
        pttl >= token.use_until_ms - after - 1,
        "pttl {pttl} too short"
    );
    assert!(pttl <= TOKEN_LIFETIME_MS);

    let stored: (String, i64) = redis
        .admin
        .clone()
        .hget(redis.token_key(KEY), &["token", "use_until_ms"])
        .await
        .unwrap();
    assert_eq!(stored, ("token-0".to_owned(), token.use_until_ms));
    assert!(!redis.exists(&redis.lock_key(KEY)).await, "lock released");

    // Another instance reads the same token with the same expiry.
    let other = redis.instance().await;
    assert_eq!(other.get_or_refresh(KEY, &source).await.unwrap(), token);
    assert_eq!(source.fetches(), 1);
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_on_five_instances_fetch_one_token() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let mut instances = Vec::new();
    for _ in 0..5 {
        instances.push(Arc::new(redis.instance().await));
    }
    // A slow gateway, so every caller arrives while the first fetch runs.
    let source = Arc::new(CountingSource::new(Duration::from_millis(300)));

    let tokens = call_concurrently(&instances, 10, &source).await;

    assert_eq!(tokens.len(), 50);
    assert_eq!(source.fetches(), 1, "one fetch for the whole cluster");
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert_eq!(tokens[0].token.expose(), "token-0");
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_stay_single_when_the_gateway_answers_at_once() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(Arc::new(redis.instance().await));
    }
    // An instant fetch leaves the most room for a caller to miss the
    // token in Redis and then find the lock free again.
    let source = Arc::new(CountingSource::new(Duration::ZERO));

    for round in 1..=30 {
        let () = redis.admin.clone().del(redis.token_key(KEY)).await.unwrap();
        let tokens = call_concurrently(&instances, 4, &source).await;
        assert_eq!(source.fetches(), round, "one fetch per expiry");
        assert!(tokens.iter().all(|t| t == &tokens[0]));
    }
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_a_stale_token_spares_the_fresh_one() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let (a, b) = (redis.instance().await, redis.instance().await);
    let source = CountingSource::new(Duration::ZERO);

    let first = a.get_or_refresh(KEY, &source).await.unwrap();
    // Instance B hits a 401 with it: the token is dropped and refreshed.
    b.invalidate(KEY, &first).await;
    assert!(!redis.exists(&redis.token_key(KEY)).await);
    let second = b.get_or_refresh(KEY, &source).await.unwrap();
    assert_eq!(second.token.expose(), "token-1");

    // Instance A's late invalidation of the first token changes nothing.
    a.invalidate(KEY, &first).await;
    assert_eq!(a.get_or_refresh(KEY, &source).await.unwrap(), second);
    assert_eq!(source.fetches(), 2);
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_past_their_use_until_are_refreshed() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let cache = redis.instance().await;
    let source = CountingSource::new(Duration::ZERO);
    // Still in Redis (TTL left) but no longer to be used.
    let key = redis.token_key(KEY);
    let use_until_ms = (now_ms() - 1).to_string();
    let () = redis::pipe()
        .hset_multiple(&key, &[("token", "old"), ("use_until_ms", &use_until_ms)])
        .pexpire(&key, TOKEN_LIFETIME_MS)
        .exec_async(&mut redis.admin.clone())
        .await
        .unwrap();

    let token = cache.get_or_refresh(KEY, &source).await.unwrap();

    assert_eq!(token.token.expose(), "token-0");
    assert_eq!(source.fetches(), 1);
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lock_holder_is_replaced_once_its_lock_expires() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    // An instance took the lock and died before storing a token.
    lock_as_someone_else(&redis, Duration::from_millis(300)).await;
    let cache = redis.instance().await;
    let source = CountingSource::new(Duration::ZERO);

    let token = cache.get_or_refresh(KEY, &source).await.unwrap();

    assert_eq!(token.token.expose(), "token-0");
    assert_eq!(source.fetches(), 1);
    assert!(redis.exists(&redis.token_key(KEY)).await, "token stored");
    assert!(!redis.exists(&redis.lock_key(KEY)).await, "no lock left");
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_refresh_elsewhere_is_bypassed_after_the_wait_budget() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    lock_as_someone_else(&redis, Duration::from_secs(60)).await;
    let cache = redis
        .instance()
        .await
        .wait_budget(Duration::from_millis(200));
    let source = CountingSource::new(Duration::ZERO);

    let token = cache.get_or_refresh(KEY, &source).await.unwrap();

    assert_eq!(token.token.expose(), "token-0");
    assert!(redis.exists(&redis.token_key(KEY)).await, "token stored");
    let owner: String = redis.admin.clone().get(redis.lock_key(KEY)).await.unwrap();
    assert_eq!(owner, "someone-else", "another owner's lock is left alone");
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lock_expired_leaves_the_new_owners_lock_alone() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let cache = redis.instance().await;
    let source = LockStealingSource {
        redis: &redis,
        inner: CountingSource::new(Duration::ZERO),
    };

    let token = cache.get_or_refresh(KEY, &source).await.unwrap();

    assert_eq!(token.token.expose(), "token-0");
    let owner: String = redis.admin.clone().get(redis.lock_key(KEY)).await.unwrap();
    assert_eq!(owner, "someone-else");
    redis.cleanup().await;
}

/// A fetch so slow that the lock expired meanwhile and another instance
/// took it: the lock key now holds someone else's id when the fetch ends.
struct LockStealingSource<'a> {
    redis: &'a TestRedis,
    inner: CountingSource,
}

#[async_trait::async_trait]
impl refund_core::TokenSource for LockStealingSource<'_> {
    async fn fetch_token(&self) -> Result<AccessToken, refund_core::GatewayError> {
        lock_as_someone_else(self.redis, Duration::from_secs(60)).await;
        self.inner.fetch_token().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_releases_the_lock_and_reports_the_error() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let cache = redis.instance().await;

    let failed = cache.get_or_refresh(KEY, &CountingSource::failing()).await;

    assert!(failed.is_err());
    assert!(!redis.exists(&redis.lock_key(KEY)).await, "lock released");
    assert!(!redis.exists(&redis.token_key(KEY)).await);
    // The next caller fetches at once instead of waiting for the lock.
    let source = CountingSource::new(Duration::ZERO);
    let token = cache.get_or_refresh(KEY, &source).await.unwrap();
    assert_eq!(token.token.expose(), "token-0");
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_applications_apart() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let other_prefix = format!("{}:other-app", redis.prefix);
    let ours = redis.instance().await;
    let theirs = redis.instance().await.key_prefix(&other_prefix);
    let source = CountingSource::new(Duration::ZERO);

    let mine = ours.get_or_refresh(KEY, &source).await.unwrap();
    let their = theirs.get_or_refresh(KEY, &source).await.unwrap();

    assert_ne!(mine, their);
    assert!(redis.exists(&format!("{other_prefix}:{KEY}")).await);
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_already_past_use_until_are_not_stored() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let cache = redis.instance().await;
    let stale_source = StaleSource;

    let token = cache.get_or_refresh(KEY, &stale_source).await.unwrap();

    assert_eq!(token.token.expose(), "born-stale");
    assert!(!redis.exists(&redis.token_key(KEY)).await);
    redis.cleanup().await;
}

/// A gateway whose tokens are unusable on arrival (a margin longer than
/// their lifetime): handed to the caller, never stored.
struct StaleSource;

#[async_trait::async_trait]
impl refund_core::TokenSource for StaleSource {
    async fn fetch_token(&self) -> Result<AccessToken, refund_core::GatewayError> {
        Ok(AccessToken {
            token: Secret::new("born-stale"),
            use_until_ms: now_ms() - 1,
        })
    }
}

/// Takes the refresh lock of [`KEY`] as another instance would.
async fn lock_as_someone_else(redis: &TestRedis, ttl: Duration) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap();
    let options = SetOptions::default().with_expiration(SetExpiry::PX(ttl_ms));
    let () = redis
        .admin
        .clone()
        .set_options(redis.lock_key(KEY), "someone-else", options)
        .await
        .unwrap();
}
