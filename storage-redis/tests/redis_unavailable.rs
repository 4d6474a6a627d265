//! Without a working Redis the cache still hands out tokens, fetched from
//! the source: refunds never fail because of the cache. The last tests need
//! a Redis server, which they break through a proxy.

mod common;

use std::time::Duration;

use refund_core::TokenCache;
use storage_redis::RedisTokenCache;
use tokio::net::TcpListener;

use common::{CountingSource, FaultyProxy, TestRedis, KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_falls_back_to_the_source() {
    // Nothing listens on port 1: every connection is refused at once.
    let cache = RedisTokenCache::connect("redis://127.0.0.1:1")
        .await
        .expect("an unreachable Redis is not an error");
    let source = CountingSource::new(Duration::ZERO);

    let first = cache.get_or_refresh(KEY, &source).await.unwrap();
    let again = cache.get_or_refresh(KEY, &source).await.unwrap();
    assert_eq!(first.token.expose(), "token-0");
    assert_eq!(again, first, "kept in process while Redis is down");

    cache.invalidate(KEY, &first).await;
    let refreshed = cache.get_or_refresh(KEY, &source).await.unwrap();
    assert_eq!(refreshed.token.expose(), "token-1");
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_costs_one_call_timeout() {
    // Accepts connections and never replies, like a hung Redis.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let cache = RedisTokenCache::connect(url.as_str())
        .await
        .expect("a hung Redis is not an error")
        .call_timeout(Duration::from_millis(200));
    let source = CountingSource::new(Duration::ZERO);

    let token = cache.get_or_refresh(KEY, &source).await.unwrap();
    cache.invalidate(KEY, &token).await;

    assert_eq!(token.token.expose(), "token-0");
    assert_eq!(source.fetches(), 1);
    silent.abort();
}

#[tokio::test]
async fn a_malformed_url_is_refused() {
    assert!(RedisTokenCache::connect("not a url").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stalls_mid_way_is_bypassed_then_used_again() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let proxy = FaultyProxy::start(&redis.url).await;
    let manager = redis::Client::open(proxy.connection_info.clone())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let cache = RedisTokenCache::new(manager)
        .key_prefix(&redis.prefix)
        .call_timeout(Duration::from_millis(300));
    let source = CountingSource::new(Duration::ZERO);
    let shared = cache.get_or_refresh(KEY, &source).await.unwrap();

    proxy.stall();
    let local = cache.get_or_refresh(KEY, &source).await.unwrap();
    assert_eq!(local.token.expose(), "token-1", "fetched without Redis");
    assert_eq!(source.fetches(), 2);

    // Once Redis answers again (after the outage pause), its token is used.
    proxy.resume();
    let mut attempts = 0;
    while cache.get_or_refresh(KEY, &source).await.unwrap() != shared {
        attempts += 1;
        assert!(attempts < 200, "the cache never went back to Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(source.fetches(), 2, "the fallback token served meanwhile");
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazily_opened_connection_comes_back_after_a_cut() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let proxy = FaultyProxy::start(&redis.url).await;
    let cache = RedisTokenCache::connect(proxy.connection_info.clone())
        .await
        .unwrap()
        .key_prefix(&redis.prefix)
        .call_timeout(Duration::from_secs(10));
    let source = CountingSource::new(Duration::ZERO);
    let shared = cache.get_or_refresh(KEY, &source).await.unwrap();

    // As if Redis restarted: the connection drops, the data stays.
    proxy.cut();
    let mut attempts = 0;
    loop {
        let token = cache.get_or_refresh(KEY, &source).await.unwrap();
        if token == shared {
            break;
        }
        attempts += 1;
        assert!(attempts < 200, "the cache never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // At most one token fetched while the connection was down.
    assert!(source.fetches() <= 2);
    redis.cleanup().await;
}
