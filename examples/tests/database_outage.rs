//! Database outage: the merchant server reaches PostgreSQL through a TCP
//! proxy this test controls. Cutting the proxy (live connections severed,
//! new ones refused) is the database going away without touching the
//! PostgreSQL server other tests share. While it is away a refund answers
//! `503 storage_unavailable` and calls no gateway; a refund whose answer
//! arrives during the outage stays pending; when the database returns,
//! work resumes and reconciliation puts every number right.
//!
//! Needs the `postgres` feature (`scripts/test` builds with
//! `--all-features`); without it the tests fail under `CI=true` and skip
//! loudly elsewhere.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{eventually, MerchantServer, SandboxProcess, TestDatabase};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A loopback TCP proxy to `upstream` that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    severed: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let (severed, _) = watch::channel(0);
        let task = tokio::spawn(Self::serve(
            listener,
            upstream,
            open.clone(),
            severed.clone(),
        ));
        Proxy {
            addr,
            open,
            severed,
            task,
        }
    }

    async fn serve(
        listener: TcpListener,
        upstream: SocketAddr,
        open: Arc<AtomicBool>,
        severed: watch::Sender<u64>,
    ) {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !open.load(Ordering::SeqCst) {
                // Accepted and closed at once: the database is gone.
                continue;
            }
            let mut cut = severed.subscribe();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.changed() => {}
                }
            });
        }
    }

    /// Severs every live connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.severed.send_modify(|generation| *generation += 1);
    }

    /// Lets connections through again.
    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh PostgreSQL database, a sandbox, a proxy and a server that
/// reaches the database through the proxy, with one paid payment.
struct Stage {
    sandbox: SandboxProcess,
    proxy: Proxy,
    server: MerchantServer,
    merchant_uid: String,
    imp_uid: String,
    database: TestDatabase,
}

impl Stage {
    async fn new() -> Option<Stage> {
        let database = TestDatabase::postgres().await?;
        let (before, rest) = database.url.split_once('@').expect("user@host in the URL");
        let (host, path) = rest.split_once('/').expect("a database in the URL");
        let upstream = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
        let proxy = Proxy::start(upstream).await;
        let proxied_url = format!("{before}@{}/{path}", proxy.addr);
        let sandbox = SandboxProcess::start().await;
        let server = MerchantServer::start(&sandbox, &proxied_url, &[]).await;
        let merchant_uid = format!("outage-{}", common::random_hex(6));
        let imp_uid = sandbox
            .create_payment(&merchant_uid, "10000", json!({}))
            .await;
        server.import(&imp_uid, &merchant_uid).await;
        Some(Stage {
            sandbox,
            proxy,
            server,
            merchant_uid,
            imp_uid,
            database,
        })
    }

    fn refund(&self, amount: i64) -> Value {
        json!({"merchant_uid": self.merchant_uid, "cancel_request_amount": amount})
    }

    async fn database_back(&self) {
        self.proxy.restore();
        eventually("the server to see the database again", || async {
            (self.server.healthz().await == 200).then_some(())
        })
        .await;
    }

    /// Nothing pending, and the server's cancel_amount is the gateway's.
    async fn assert_settled(&self, expected: i64) {
        let view = self.server.view(&self.merchant_uid).await.view();
        let gateway = self.sandbox.payment(&self.imp_uid).await;
        assert!(view.pending_refunds.is_empty(), "{view:?}");
        assert_eq!(gateway.cancel_amount(), expected);
        assert_eq!(view.cancel_amount(), expected, "{view:?}");
    }

    async fn finish(self) {
        drop(self.server);
        self.database.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_answer_503_without_a_gateway_call_while_the_database_is_down() {
    let Some(stage) = Stage::new().await else {
        return;
    };
    let answer = stage.server.cancel(&stage.refund(1000), None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    stage.proxy.cut();
    let before = stage.sandbox.stats().await;
    let refused = stage
        .server
        .cancel(&stage.refund(1000), Some("outage-1"))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (503, "storage_unavailable"),
        "{}",
        refused.text
    );
    let whole = stage
        .server
        .cancel(&json!({"merchant_uid": stage.merchant_uid}), None)
        .await;
    assert_eq!((whole.status, whole.code()), (503, "storage_unavailable"));
    let view = stage.server.view(&stage.merchant_uid).await;
    assert_eq!((view.status, view.code()), (503, "storage_unavailable"));
    assert_eq!(stage.server.healthz().await, 503);
    let after = stage.sandbox.stats().await;
    assert_eq!(after.cancel, before.cancel, "no cancel reached the gateway");
    assert_eq!(after.get_token, before.get_token);

    stage.database_back().await;
    let resumed = stage
        .server
        .cancel(&stage.refund(1000), Some("outage-1"))
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    stage.assert_settled(2000).await;
    stage.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_answered_during_the_outage_stays_pending_and_settles_after() {
    let Some(stage) = Stage::new().await else {
        return;
    };
    // i'mport commits, then holds its reply while the database goes away.
    stage
        .sandbox
        .arm(json!({"fault": "hold_after_commit", "hold_ms": 3000}))
        .await;
    let in_flight = {
        let request = stage
            .server
            .request(reqwest::Method::POST, "/payments/cancel")
            .json(&stage.refund(3000));
        tokio::spawn(request.send())
    };
    eventually("the gateway to commit the cancel", || async {
        (stage.sandbox.stats().await.cancel.committed == 1).then_some(())
    })
    .await;
    stage.proxy.cut();
    let answer = in_flight.await.unwrap().expect("an answer");
    assert_eq!(answer.status(), 202, "the outcome could not be recorded");

    stage.database_back().await;
    let synced = stage.server.sync(&stage.merchant_uid).await.view();
    assert!(synced.pending_refunds.is_empty(), "{synced:?}");
    stage.assert_settled(3000).await;
    let next = stage.server.cancel(&stage.refund(1000), None).await;
    assert_eq!(next.status, 200, "{}", next.text);
    stage.assert_settled(4000).await;
    stage.finish().await;
}
