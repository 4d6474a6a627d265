//! End to end with the i'mport sandbox: several `IamportClient`s, each with
//! its own cache (as separate server instances would have), look up a
//! payment at once. Sharing Redis, the sandbox sees one `getToken`; with
//! in-memory caches, one per client.

mod common;

use std::sync::Arc;

use iamport_sandbox::{Currency, NewPayment, Sandbox, SandboxConfig};
use refund_core::{
    IamportClient, IamportConfig, IamportCredentials, MemoryTokenCache, PaymentGateway, PaymentRef,
    TokenCache,
};
use tokio::sync::Barrier;

use common::TestRedis;

/// Simulated server instances.
const INSTANCES: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_redis_fetch_one_token() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let cluster = Cluster::start(redis_caches(&redis).await).await;

    cluster.look_up_from_each_instance().await;

    let stats = cluster.sandbox.stats();
    eprintln!(
        "{INSTANCES} instances sharing Redis: {} getToken calls ({} minted)",
        stats.get_token.requests, stats.get_token.minted
    );
    assert_eq!(stats.get_token.requests, 1);
    assert_eq!(stats.get_payment, INSTANCES as u64);
    assert_eq!(stats.unauthorized, 0);
    cluster.sandbox.stop().await;
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_with_memory_caches_fetch_one_token_each() {
    let caches = (0..INSTANCES)
        .map(|_| Arc::new(MemoryTokenCache::new()) as Arc<dyn TokenCache>)
        .collect();
    let cluster = Cluster::start(caches).await;

    cluster.look_up_from_each_instance().await;

    let stats = cluster.sandbox.stats();
    eprintln!(
        "{INSTANCES} instances with in-memory caches: {} getToken calls ({} minted)",
        stats.get_token.requests, stats.get_token.minted
    );
    assert_eq!(stats.get_token.requests, INSTANCES as u64);
    assert_eq!(stats.get_payment, INSTANCES as u64);
    cluster.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_replaced_once_for_all_instances() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let cluster = Cluster::start(redis_caches(&redis).await).await;
    cluster.look_up_from_each_instance().await;

    // Every instance's next call gets a 401 and invalidates the token; only
    // one of them may fetch the next one.
    cluster.sandbox.revoke_tokens();
    cluster.sandbox.reset_stats();
    cluster.look_up_from_each_instance().await;

    let stats = cluster.sandbox.stats();
    eprintln!(
        "{INSTANCES} instances sharing Redis after a revocation: {} getToken calls, {} refused calls",
        stats.get_token.requests, stats.unauthorized
    );
    assert_eq!(stats.get_token.requests, 1);
    assert!(stats.unauthorized >= 1);
    cluster.sandbox.stop().await;
    redis.cleanup().await;
}

/// One Redis cache per instance, each on its own connection, all under the
/// test's prefix.
async fn redis_caches(redis: &TestRedis) -> Vec<Arc<dyn TokenCache>> {
    let mut caches: Vec<Arc<dyn TokenCache>> = Vec::new();
    for _ in 0..INSTANCES {
        caches.push(Arc::new(redis.instance().await));
    }
    caches
}

/// A sandbox with one paid payment, and one i'mport client per instance.
struct Cluster {
    sandbox: Sandbox,
    clients: Vec<Arc<IamportClient>>,
    imp_uid: String,
}

impl Cluster {
    async fn start(caches: Vec<Arc<dyn TokenCache>>) -> Self {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let payment = sandbox
            .create_payment(NewPayment::new("order-1", 10_000, Currency::Krw))
            .unwrap();
        let clients = caches
            .into_iter()
            .map(|cache| {
                let credentials = IamportCredentials::new(sandbox.imp_key(), sandbox.imp_secret());
                let config = IamportConfig::new(sandbox.base_url(), credentials);
                Arc::new(IamportClient::with_token_cache(config, cache).unwrap())
            })
            .collect();
        Cluster {
            sandbox,
            clients,
            imp_uid: payment.imp_uid,
        }
    }

    /// Every client looks the payment up, all released at the same moment.
    async fn look_up_from_each_instance(&self) {
        let start = Arc::new(Barrier::new(self.clients.len()));
        let lookups: Vec<_> = self
            .clients
            .iter()
            .map(|client| {
                let (client, start) = (client.clone(), start.clone());
                let imp_uid = self.imp_uid.clone();
                tokio::spawn(async move {
                    start.wait().await;
                    client
                        .payment(PaymentRef {
                            imp_uid: &imp_uid,
                            merchant_uid: "",
                        })
                        .await
                })
            })
            .collect();
        for lookup in lookups {
            let found = lookup.await.unwrap().expect("lookup succeeds");
            assert_eq!(found.expect("payment exists").imp_uid, self.imp_uid);
        }
    }
}
