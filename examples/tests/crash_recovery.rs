//! Crash recovery: a refund whose outcome the merchant server never learned
//! (its process SIGKILLed while i'mport held the reply, a 5xx or a dropped
//! connection after i'mport committed, a client timeout) is settled after a
//! restart on the same database, by a sync or by the background sweep, to
//! exactly what the gateway shows; and a refund that never reached i'mport
//! ends `failed` once it is older than the settle age. Each time the
//! payment takes the next refund normally.
//!
//! The processes are the real binaries; the database is a SQLite file that
//! outlives them. Reconciliation timings are shortened through the
//! server's tuning variables ([`common::FAST_RECONCILIATION`]) except where
//! the server must still be waiting for i'mport when it is killed.

mod common;

use common::{eventually, MerchantServer, SandboxProcess, TestDatabase, FAST_RECONCILIATION};
use serde_json::{json, Value};

/// Every payment here is 10,000 won; the refunds are 3,000 then 1,000.
const PAID: &str = "10000";
const FIRST: i64 = 3000;
const NEXT: i64 = 1000;

/// A sandbox, a server on a SQLite file, and one paid payment it knows.
struct Stage {
    sandbox: SandboxProcess,
    server: MerchantServer,
    merchant_uid: String,
    imp_uid: String,
    _database: TestDatabase,
}

impl Stage {
    async fn new(env: &[(&str, &str)]) -> Stage {
        let database = TestDatabase::sqlite();
        let sandbox = SandboxProcess::start().await;
        let server = MerchantServer::start(&sandbox, &database.url, env).await;
        let merchant_uid = format!("crash-{}", common::random_hex(6));
        let imp_uid = sandbox.create_payment(&merchant_uid, PAID, json!({})).await;
        server.import(&imp_uid, &merchant_uid).await;
        Stage {
            sandbox,
            server,
            merchant_uid,
            imp_uid,
            _database: database,
        }
    }

    fn refund(&self, amount: i64) -> Value {
        json!({"merchant_uid": self.merchant_uid, "cancel_request_amount": amount, "reason": "crash test"})
    }

    /// Waits until the gateway has committed `n` cancels in all.
    async fn gateway_committed(&self, n: u64) {
        eventually("the gateway to commit the cancel", || async {
            (self.sandbox.stats().await.cancel.committed >= n).then_some(())
        })
        .await;
    }

    /// The one pending refund's id, as the restarted server shows it.
    async fn pending_refund(&self) -> String {
        let view = self.server.view(&self.merchant_uid).await.view();
        assert_eq!(view.pending_refunds.len(), 1, "{view:?}");
        view.pending_refunds[0].id.clone()
    }

    /// Asserts that nothing is pending and that the server's cancel_amount
    /// is the gateway's and equals `expected`.
    async fn assert_settled(&self, expected: i64) {
        let view = self.server.view(&self.merchant_uid).await.view();
        let gateway = self.sandbox.payment(&self.imp_uid).await;
        assert!(view.pending_refunds.is_empty(), "{view:?}");
        assert_eq!(gateway.cancel_amount(), expected);
        assert_eq!(view.cancel_amount(), gateway.cancel_amount(), "{view:?}");
    }

    /// Waits for the background sweep (no request of ours) to settle the
    /// pending refund.
    async fn swept(&self) {
        eventually("the sweep to settle the pending refund", || async {
            let view = self.server.view(&self.merchant_uid).await.view();
            view.pending_refunds.is_empty().then_some(())
        })
        .await;
    }

    /// The next refund goes through as usual: 200, and i'mport agrees.
    async fn next_refund_works(&self, refunded_before: i64) {
        let answer = self.server.cancel(&self.refund(NEXT), None).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.view().refund.unwrap().status, "succeeded");
        self.assert_settled(refunded_before + NEXT).await;
    }

    /// Asks for the first refund again under its key: the stored outcome
    /// comes back, with no gateway call.
    async fn replay(&self, key: &str) -> common::Answer {
        let before = self.sandbox.stats().await.cancel;
        let answer = self.server.cancel(&self.refund(FIRST), Some(key)).await;
        assert_eq!(
            self.sandbox.stats().await.cancel,
            before,
            "a replay calls no gateway"
        );
        answer
    }

    /// A fault hits the first refund, whose answer must be 202 pending;
    /// then the server is SIGKILLed and started again on the same database.
    async fn pending_then_crash(&mut self, fault: Value, key: &str) -> String {
        self.sandbox.arm(fault).await;
        let answer = self.server.cancel(&self.refund(FIRST), Some(key)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (202, "refund_pending"),
            "{}",
            answer.text
        );
        let id = answer.json["refund"]["id"].as_str().unwrap().to_owned();
        self.server.kill();
        // Whether the sweep has settled it yet depends on timing; the
        // replay of its key later shows the journal kept it either way.
        self.server.restart().await;
        id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_committed_while_the_server_is_killed_is_settled_by_sync_after_restart() {
    // Default client timeouts (15 s): the server is still waiting for the
    // held reply when it dies.
    let mut stage = Stage::new(&[]).await;
    stage
        .sandbox
        .arm(json!({"fault": "hold_after_commit", "hold_ms": 60_000}))
        .await;
    let request = stage
        .server
        .request(reqwest::Method::POST, "/payments/cancel")
        .header("Idempotency-Key", "crash-held")
        .json(&stage.refund(FIRST));
    let in_flight = tokio::spawn(request.send());
    stage.gateway_committed(1).await;
    stage.server.kill();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the client got no answer from the killed server"
    );

    stage.server.restart().await;
    let id = stage.pending_refund().await;
    let synced = stage.server.sync(&stage.merchant_uid).await.view();
    assert!(synced.pending_refunds.is_empty(), "{synced:?}");
    stage.assert_settled(FIRST).await;
    let replayed = stage.replay("crash-held").await.view().refund.unwrap();
    assert_eq!((replayed.id, replayed.status.as_str()), (id, "succeeded"));
    stage.next_refund_works(FIRST).await;
}

/// A refund applied at i'mport whose answer never came (the connection
/// dropped after commit), then a crash: the sweep settles it. (An answered
/// 5xx no longer leaves anything pending: the cancel path looks the payment
/// up at once; see refund-core's workflow tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_refund_applied_before_a_crash_is_settled_by_the_sweep() {
    let mut stage = Stage::new(&FAST_RECONCILIATION).await;
    let id = stage
        .pending_then_crash(json!({"fault": "drop_after_commit"}), "crash-5xx")
        .await;
    stage.swept().await;
    stage.assert_settled(FIRST).await;
    let replayed = stage.replay("crash-5xx").await.view().refund.unwrap();
    assert_eq!((replayed.id, replayed.status.as_str()), (id, "succeeded"));
    stage.next_refund_works(FIRST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_timeout_after_commit_is_settled_by_sync_after_a_crash() {
    let mut stage = Stage::new(&FAST_RECONCILIATION).await;
    // Held well past the 2 s client timeout.
    let fault = json!({"fault": "hold_after_commit", "hold_ms": 6_000});
    let id = stage.pending_then_crash(fault, "crash-timeout").await;
    let synced = stage.server.sync(&stage.merchant_uid).await.view();
    assert!(synced.pending_refunds.is_empty(), "{synced:?}");
    stage.assert_settled(FIRST).await;
    let replayed = stage.replay("crash-timeout").await.view().refund.unwrap();
    assert_eq!((replayed.id, replayed.status.as_str()), (id, "succeeded"));
    stage.next_refund_works(FIRST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_after_commit_is_settled_by_sync_after_a_crash() {
    let mut stage = Stage::new(&FAST_RECONCILIATION).await;
    let fault = json!({"fault": "drop_after_commit"});
    let id = stage.pending_then_crash(fault, "crash-drop").await;
    let synced = stage.server.sync(&stage.merchant_uid).await.view();
    assert!(synced.pending_refunds.is_empty(), "{synced:?}");
    stage.assert_settled(FIRST).await;
    let replayed = stage.replay("crash-drop").await.view().refund.unwrap();
    assert_eq!((replayed.id, replayed.status.as_str()), (id, "succeeded"));
    stage.next_refund_works(FIRST).await;
}

/// A refund that never reached i'mport (the connection dropped before
/// commit), then a crash: once past its in-flight bound the sweep settles it
/// as not applied. Nothing moved, so its key is not spent: the same request
/// with the same key runs that refund again, and it refunds once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_that_never_reached_the_gateway_fails_after_the_settle_age() {
    let mut stage = Stage::new(&FAST_RECONCILIATION).await;
    let first = stage
        .pending_then_crash(json!({"fault": "drop_before_commit"}), "crash-never")
        .await;
    stage.swept().await;
    stage.assert_settled(0).await;
    let retried = stage
        .server
        .cancel(&stage.refund(FIRST), Some("crash-never"))
        .await;
    let refund = retried.view().refund.unwrap();
    assert_eq!(refund.id, first, "the retry runs the same journal row");
    assert_eq!(refund.status, "succeeded");
    stage.assert_settled(FIRST).await;
    // Now the key is spent: a replay calls no gateway.
    let replayed = stage.replay("crash-never").await.view().refund.unwrap();
    assert_eq!(replayed.id, refund.id);
}
