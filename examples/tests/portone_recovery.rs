//! Crash recovery on PortOne V2, with the real binaries: a refund whose
//! outcome the server never learned (SIGKILLed while PortOne held the
//! reply) is settled after a restart; an asynchronous (`REQUESTED`) cancel
//! survives restarts and any number of sweeps as pending, never judged not
//! applied while PortOne is still working on it, and settles when PortOne
//! completes it.

mod common;

use std::time::Duration;

use common::{eventually, MerchantServer, SandboxProcess, TestDatabase, FAST_RECONCILIATION};
use serde_json::{json, Value};

struct Stage {
    sandbox: SandboxProcess,
    server: MerchantServer,
    payment_id: String,
    _database: TestDatabase,
}

impl Stage {
    async fn new(env: &[(&str, &str)]) -> Stage {
        let database = TestDatabase::sqlite();
        let sandbox = SandboxProcess::start_portone().await;
        let server = MerchantServer::start_portone(&sandbox, &database.url, env).await;
        let payment_id = format!("v2-crash-{}", common::random_hex(6));
        let transaction_id = sandbox.create_portone_payment(&payment_id, 10_000).await;
        let answer = server.portone_webhook(&payment_id, &transaction_id).await;
        assert_eq!(answer.status, 200, "webhook: {}", answer.text);
        assert_eq!(server.view(&payment_id).await.status, 200);
        Stage {
            sandbox,
            server,
            payment_id,
            _database: database,
        }
    }

    fn refund(&self, amount: i64) -> Value {
        json!({"merchant_uid": self.payment_id, "cancel_request_amount": amount})
    }

    async fn pending_refunds(&self) -> usize {
        self.server
            .view(&self.payment_id)
            .await
            .view()
            .pending_refunds
            .len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_refund_committed_while_the_server_is_killed_is_settled_after_restart() {
    let mut stage = Stage::new(&[]).await;
    stage
        .sandbox
        .arm(json!({"fault": "hold_after_commit", "hold_ms": 60_000}))
        .await;
    let body = stage.refund(3000);
    let request = stage.server.cancel(&body, Some("v2-crash"));
    let waiting = async {
        eventually("PortOne to commit the cancel", || async {
            (stage.sandbox.stats().await.cancel.committed >= 1).then_some(())
        })
        .await;
    };
    // The server dies while PortOne holds the reply.
    tokio::select! {
        answer = request => panic!("the held cancel was answered: {}", answer.text),
        () = waiting => {}
    }
    stage.server.kill();
    stage.server.restart().await;
    assert_eq!(stage.pending_refunds().await, 1);
    let synced = stage.server.sync(&stage.payment_id).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    assert_eq!(stage.pending_refunds().await, 0);
    assert_eq!(
        stage.sandbox.portone_cancelled(&stage.payment_id).await,
        3000
    );
    // Its key replays the success; the next refund goes through.
    let replay = stage
        .server
        .cancel(&stage.refund(3000), Some("v2-crash"))
        .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.view().refund.unwrap().status, "succeeded");
    let next = stage.server.cancel(&stage.refund(1000), None).await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(
        stage.sandbox.portone_cancelled(&stage.payment_id).await,
        4000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_v2_cancel_stays_pending_through_restarts_and_sweeps() {
    // Settle age 0 and a sweep every 200 ms: anything the sweep could
    // judge, it judges at once.
    let mut stage = Stage::new(&FAST_RECONCILIATION).await;
    stage.sandbox.arm(json!({"fault": "requested"})).await;
    let accepted = stage
        .server
        .cancel(&stage.refund(3000), Some("v2-async"))
        .await;
    assert_eq!(
        (accepted.status, accepted.code()),
        (202, "refund_pending"),
        "{}",
        accepted.text
    );
    stage.server.kill();
    stage.server.restart().await;
    // Many sweeps later, PortOne still processing it: still pending, nothing
    // sent again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(stage.pending_refunds().await, 1);
    let synced = stage.server.sync(&stage.payment_id).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    assert_eq!(stage.pending_refunds().await, 1);
    let blocked = stage.server.cancel(&stage.refund(1000), None).await;
    assert_eq!(blocked.code(), "refund_in_progress", "{}", blocked.text);
    assert_eq!(stage.sandbox.stats().await.cancel.attempted, 1);
    // PortOne completes it: the sweep credits it, and its key replays that.
    stage.sandbox.complete_requested(true).await;
    eventually("the sweep to settle the refund", || async {
        (stage.pending_refunds().await == 0).then_some(())
    })
    .await;
    let replay = stage
        .server
        .cancel(&stage.refund(3000), Some("v2-async"))
        .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.view().refund.unwrap().status, "succeeded");
    assert_eq!(
        stage.sandbox.portone_cancelled(&stage.payment_id).await,
        3000
    );
    assert_eq!(stage.sandbox.stats().await.cancel.attempted, 1);
}
