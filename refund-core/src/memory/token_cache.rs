use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::clock::now_ms;
use crate::gateway::GatewayError;
use crate::token::{AccessToken, TokenCache, TokenSource};

/// Tokens in this process's memory, refreshed one at a time per key.
#[derive(Debug, Default)]
pub struct MemoryTokenCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Debug, Default)]
struct Slot {
    token: Mutex<Option<AccessToken>>,
    /// Held while refreshing: late callers queue here, then find the new token.
    refreshing: tokio::sync::Mutex<()>,
}

impl Slot {
    fn fresh(&self) -> Option<AccessToken> {
        let token = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        token.clone().filter(|t| t.is_fresh(now_ms()))
    }
}

impl MemoryTokenCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(key.to_owned()).or_default().clone()
    }
}

#[async_trait]
impl TokenCache for MemoryTokenCache {
    async fn get_or_refresh(
        &self,
        key: &str,
        source: &dyn TokenSource,
    ) -> Result<AccessToken, GatewayError> {
        let slot = self.slot(key);
        if let Some(token) = slot.fresh() {
            return Ok(token);
        }
        let _refreshing = slot.refreshing.lock().await;
        if let Some(token) = slot.fresh() {
            return Ok(token);
        }
        let token = source.fetch_token().await?;
        *slot.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    async fn invalidate(&self, key: &str, stale: &AccessToken) {
        let slot = self.slot(key);
        let mut token = slot.token.lock().unwrap_or_else(PoisonError::into_inner);
        if token.as_ref().is_some_and(|t| t.token == stale.token) {
            *token = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::gateway::Secret;

    struct CountingSource(AtomicUsize);

    #[async_trait]
    impl TokenSource for CountingSource {
        async fn fetch_token(&self) -> Result<AccessToken, GatewayError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(AccessToken {
                token: Secret::new(format!("token-{n}")),
                use_until_ms: now_ms() + 60_000,
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refreshes_once_for_concurrent_callers() {
        let cache = Arc::new(MemoryTokenCache::new());
        let source = Arc::new(CountingSource(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, source) = (cache.clone(), source.clone());
                tokio::spawn(async move { cache.get_or_refresh("k", &*source).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().token.expose(), "token-0");
        }
        assert_eq!(source.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidate_spares_a_newer_token() {
        let cache = MemoryTokenCache::new();
        let source = CountingSource(AtomicUsize::new(0));
        let first = cache.get_or_refresh("k", &source).await.unwrap();
        cache.invalidate("k", &first).await;
        let second = cache.get_or_refresh("k", &source).await.unwrap();
        assert_eq!(second.token.expose(), "token-1");
        // A late invalidation of the first token must not drop the second.
        cache.invalidate("k", &first).await;
        let still = cache.get_or_refresh("k", &source).await.unwrap();
        assert_eq!(still, second);
        assert_eq!(source.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn expired_tokens_are_refreshed() {
        let cache = MemoryTokenCache::new();
        let source = CountingSource(AtomicUsize::new(0));
        let key = "k";
        cache.get_or_refresh(key, &source).await.unwrap();
        *cache.slot(key).token.lock().unwrap() = Some(AccessToken {
            token: Secret::new("old"),
            use_until_ms: now_ms() - 1,
        });
        let token = cache.get_or_refresh(key, &source).await.unwrap();
        assert_eq!(token.token.expose(), "token-1");
    }
}
