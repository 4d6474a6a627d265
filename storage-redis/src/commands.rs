//! The Redis commands behind the cache. Every step that decides something is
//! one atomic Redis operation: `SET NX PX` for the lock, `MULTI` for storing,
//! and Lua scripts for the two compare-and-delete steps.
//!
//! Layout: a token is a hash `{token, use_until_ms}` (so every instance
//! reads the same expiry) whose Redis TTL ends when the token stops being
//! used; the lock is a plain string holding its owner's random id.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, ExistenceCheck, RedisResult, Script, SetExpiry, SetOptions};
use refund_core::{AccessToken, Secret};

const TOKEN_FIELD: &str = "token";
const USE_UNTIL_FIELD: &str = "use_until_ms";

/// Deletes the lock only if we still own it: after our lock expired,
/// another instance may hold it, and its lock is not ours to drop.
static RELEASE_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
              return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// Deletes the token only if it is still the stale one: a fresh token
/// stored meanwhile by another instance must survive a late invalidation.
static DELETE_IF_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
              return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// The token stored under `key`, whatever its freshness.
pub(crate) async fn read_token(
    mut redis: ConnectionManager,
    key: &str,
) -> RedisResult<Option<AccessToken>> {
    let (token, use_until_ms): (Option<String>, Option<i64>) =
        redis.hget(key, &[TOKEN_FIELD, USE_UNTIL_FIELD]).await?;
    Ok(token
        .zip(use_until_ms)
        .map(|(token, use_until_ms)| AccessToken {
            token: Secret::new(token),
            use_until_ms,
        }))
}

/// Stores `token` under `key`, expiring after `ttl_ms`.
pub(crate) async fn store_token(
    mut redis: ConnectionManager,
    key: &str,
    token: &AccessToken,
    ttl_ms: i64,
) -> RedisResult<()> {
    let use_until_ms = token.use_until_ms.to_string();
    redis::pipe()
        .atomic()
        .hset_multiple(
            key,
            &[
                (TOKEN_FIELD, token.token.expose()),
                (USE_UNTIL_FIELD, use_until_ms.as_str()),
            ],
        )
        .ignore()
        .pexpire(key, ttl_ms)
        .ignore()
        .exec_async(&mut redis)
        .await
}

/// Takes the lock for `owner` unless someone holds it; true if taken.
pub(crate) async fn try_lock(
    mut redis: ConnectionManager,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> RedisResult<bool> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let options = SetOptions::default()
        .conditional_set(ExistenceCheck::NX)
        .with_expiration(SetExpiry::PX(ttl_ms));
    let reply: Option<String> = redis.set_options(key, owner, options).await?;
    Ok(reply.is_some())
}

/// Releases the lock if `owner` still holds it.
pub(crate) async fn release_lock(
    mut redis: ConnectionManager,
    key: &str,
    owner: &str,
) -> RedisResult<()> {
    RELEASE_LOCK
        .key(key)
        .arg(owner)
        .invoke_async(&mut redis)
        .await
}

/// Deletes the token under `key` if it is still `stale`.
pub(crate) async fn delete_if_token(
    mut redis: ConnectionManager,
    key: &str,
    stale: &Secret,
) -> RedisResult<()> {
    DELETE_IF_TOKEN
        .key(key)
        .arg(stale.expose())
        .invoke_async(&mut redis)
        .await
}
