//! The refund protocol end to end: `RefundService` over the in-memory store
//! and the real i'mport client, against the sandbox over real HTTP, with the
//! sandbox's fault injection standing in for a misbehaving gateway.

use std::sync::Arc;
use std::time::Duration;

use iamport_sandbox::{
    AdminCancel, Currency as SandboxCurrency, Fault, FaultTarget, NewPayment, Sandbox,
    SandboxConfig, DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET,
};
use refund_core::{
    Amount, CancelOutcome, CancelRequest, IamportClient, IamportConfig, IamportCredentials,
    MemoryPaymentStore, PaymentGateway, PaymentStore, RefundError, RefundService, RefundStatus,
    StoreError,
};

/// Client timeouts short enough that "the refund can no longer be in
/// flight" arrives within a test, long enough for a loaded machine.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

struct Harness {
    sandbox: Sandbox,
    store: Arc<MemoryPaymentStore>,
    gateway: Arc<IamportClient>,
    service: Arc<RefundService>,
}

impl Harness {
    async fn start() -> Harness {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let config = IamportConfig::new(
            sandbox.base_url(),
            IamportCredentials::new(DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET),
        )
        .connect_timeout(CONNECT_TIMEOUT)
        .request_timeout(REQUEST_TIMEOUT);
        Harness::with_gateway(sandbox, config)
    }

    fn with_gateway(sandbox: Sandbox, config: IamportConfig) -> Harness {
        let store = Arc::new(MemoryPaymentStore::new());
        let gateway = Arc::new(IamportClient::new(config).unwrap());
        // Settle as soon as a refund can no longer be on the wire.
        let service = Arc::new(
            RefundService::new(store.clone(), gateway.clone())
                .settle_after(gateway.max_in_flight()),
        );
        Harness {
            sandbox,
            store,
            gateway,
            service,
        }
    }

    /// A paid payment at the sandbox, recorded locally as a webhook would.
    async fn seed(&self, payment: NewPayment) -> (String, String) {
        let created = self.sandbox.create_payment(payment).unwrap();
        self.service
            .refresh(&created.imp_uid)
            .await
            .unwrap()
            .unwrap();
        (created.merchant_uid, created.imp_uid)
    }

    async fn seed_krw(&self, amount: i64) -> (String, String) {
        self.seed(NewPayment::new(unique(), amount, SandboxCurrency::Krw))
            .await
    }

    async fn cancel(&self, json: &str, key: Option<&str>) -> Result<CancelOutcome, RefundError> {
        let request: CancelRequest = serde_json::from_str(json).unwrap();
        self.service.cancel(request, key).await
    }

    /// Waits until refunds begun so far can no longer be in flight.
    async fn wait_until_settleable(&self) {
        tokio::time::sleep(self.gateway.max_in_flight() + Duration::from_millis(100)).await;
    }

    /// A refund made outside our server, as from i'mport's admin console.
    fn console_refund(&self, imp_uid: &str, amount: Option<i64>, reason: Option<&str>) {
        let cancel = AdminCancel {
            amount,
            reason: reason.map(str::to_owned),
        };
        self.sandbox.admin_cancel(imp_uid, cancel).unwrap();
    }

    fn cancels_attempted(&self) -> u64 {
        self.sandbox.stats().cancel.attempted
    }

    /// Local and gateway totals agree.
    async fn assert_in_sync(&self, merchant_uid: &str) -> i64 {
        let local = self.store.payment(merchant_uid).await.unwrap().unwrap();
        let remote = self.sandbox.payment_by_merchant_uid(merchant_uid).unwrap();
        assert_eq!(local.payment.cancel_amount.minor(), remote.cancel_amount);
        assert_eq!(
            local.payment.cancel_history.len(),
            remote.cancel_history.len()
        );
        remote.cancel_amount
    }
}

fn unique() -> String {
    refund_core::testkit::unique("ORD")
}

fn body(merchant_uid: &str, amount: Option<&str>) -> String {
    match amount {
        Some(amount) => format!(
            r#"{{"merchant_uid":"{merchant_uid}","cancel_request_amount":{amount},"reason":"test"}}"#
        ),
        None => format!(r#"{{"merchant_uid":"{merchant_uid}","reason":"test"}}"#),
    }
}

fn refunded(outcome: Result<CancelOutcome, RefundError>) -> refund_core::PaymentView {
    match outcome {
        Ok(CancelOutcome::Refunded(view)) => view,
        other => panic!("expected a refund, got {other:?}"),
    }
}

fn pending(outcome: Result<CancelOutcome, RefundError>) -> refund_core::RefundView {
    match outcome {
        Ok(CancelOutcome::Pending(refund)) => refund,
        other => panic!("expected a pending refund, got {other:?}"),
    }
}

fn json(value: &serde_json::value::RawValue) -> String {
    value.get().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_then_full_refund() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    let view = refunded(h.cancel(&body(&merchant_uid, Some("3000")), None).await);
    assert_eq!(json(&view.cancel_amount), "3000");
    assert_eq!(json(&view.cancelable_amount), "7000");
    assert_eq!(view.status, "paid");
    assert_eq!(
        view.refund.as_ref().unwrap().status,
        RefundStatus::Succeeded
    );
    // No amount: the whole remaining balance, sent explicitly.
    let view = refunded(h.cancel(&body(&merchant_uid, None), None).await);
    assert_eq!(json(&view.cancel_amount), "10000");
    assert_eq!(view.status, "cancelled");
    assert_eq!(view.cancel_history.len(), 2);
    assert_eq!(json(&view.cancel_history[1].amount), "7000");
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 10_000);
    assert_eq!(h.sandbox.stats().cancel.committed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_left_and_over_refunds_never_reach_the_gateway() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(5_000).await;
    let err = h
        .cancel(&body(&merchant_uid, Some("5001")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "amount_exceeds_cancelable");
    assert_eq!(h.cancels_attempted(), 0);
    refunded(h.cancel(&body(&merchant_uid, None), None).await);
    let err = h
        .cancel(&body(&merchant_uid, Some("1")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "already_refunded");
    assert_eq!(h.cancels_attempted(), 1);
    let err = h
        .cancel(&body(&unique(), Some("1")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "payment_not_found");
    let err = h
        .cancel(&body(&merchant_uid, Some("0.5")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request", "KRW has no decimals");
    assert_eq!(h.cancels_attempted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usd_amounts_are_exact() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h
        .seed(NewPayment::new(unique(), 1005, SandboxCurrency::Usd))
        .await;
    let view = refunded(h.cancel(&body(&merchant_uid, Some("0.01")), None).await);
    assert_eq!(json(&view.cancel_amount), "0.01");
    assert_eq!(json(&view.cancelable_amount), "10.04");
    let err = h
        .cancel(&body(&merchant_uid, Some("0.001")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request");
    let view = refunded(h.cancel(&body(&merchant_uid, Some("10.04")), None).await);
    assert_eq!(json(&view.cancel_amount), "10.05");
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_resyncs_and_reports_out_of_sync() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    // Refunded in the admin console: our copy is now stale.
    h.console_refund(&imp_uid, Some(2_000), Some("console"));
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "payment_out_of_sync");
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 2_000);
    assert_eq!(
        h.sandbox.stats().cancel.committed,
        0,
        "the stale checksum must stop it"
    );
    let view = refunded(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    assert_eq!(json(&view.cancel_amount), "3000");
    let journal = h.store.refunds_of(&merchant_uid).await.unwrap();
    assert_eq!(journal[1].status, RefundStatus::Failed);
    assert!(journal[1].gateway_code.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refreshed_once_mid_flight() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    assert_eq!(h.sandbox.stats().get_token.minted, 1);
    h.sandbox.revoke_tokens();
    refunded(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    let stats = h.sandbox.stats();
    assert_eq!(stats.get_token.minted, 2);
    assert_eq!(stats.cancel.committed, 1);
    assert_eq!(stats.unauthorized, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_5xx_stays_pending_until_a_sync_settles_it() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    let refund = pending(h.cancel(&body(&merchant_uid, Some("4000")), None).await);
    let view = h.service.view(&merchant_uid).await.unwrap();
    assert_eq!(view.pending_refunds.len(), 1);
    assert_eq!(
        json(&view.cancel_amount),
        "0",
        "not applied locally until reconciled"
    );
    // A new refund waits for the pending one (no gateway call).
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress");
    assert_eq!(h.cancels_attempted(), 1);

    let view = h.service.sync(&merchant_uid).await.unwrap();
    assert_eq!(json(&view.cancel_amount), "4000");
    assert!(view.pending_refunds.is_empty());
    let settled = h.store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(settled.status, RefundStatus::Succeeded);
    refunded(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_timeout_stays_pending_until_a_webhook_settles_it() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    h.sandbox.inject_fault(
        Fault::HoldAfterCommit(REQUEST_TIMEOUT * 3),
        FaultTarget::Cancel,
        1,
    );
    let refund = pending(h.cancel(&body(&merchant_uid, Some("2500")), None).await);
    h.service.refresh(&imp_uid).await.unwrap();
    let settled = h.store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(settled.status, RefundStatus::Succeeded);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 2_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_dropped_connection_stays_pending_and_is_reconciled() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::DropAfterCommit, FaultTarget::Cancel, 1);
    pending(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    h.service.sync(&merchant_uid).await.unwrap();
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
    assert!(h
        .service
        .view(&merchant_uid)
        .await
        .unwrap()
        .pending_refunds
        .is_empty());
}

/// 5xx before commit, and a garbled reply: unknown outcomes that did not
/// happen. They stay pending while they could be on the wire, then the
/// sweep settles them as failed and the payment takes refunds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcomes_that_never_happened_are_failed_by_the_sweep() {
    let h = Harness::start().await;
    let (first, _) = h.seed_krw(10_000).await;
    let (second, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);
    let a = pending(h.cancel(&body(&first, Some("1000")), None).await);
    h.sandbox
        .inject_fault(Fault::Garbage, FaultTarget::Cancel, 1);
    let b = pending(h.cancel(&body(&second, Some("1000")), None).await);

    let early = h.service.sweep().await.unwrap();
    assert_eq!(early.settled, 0, "young refunds may still be in flight");
    h.service.sync(&first).await.unwrap();
    assert_eq!(
        h.store.refund(&a.id).await.unwrap().unwrap().status,
        RefundStatus::Pending
    );

    h.wait_until_settleable().await;
    let report = h.service.sweep().await.unwrap();
    assert!(report.settled >= 2, "{report:?}");
    for id in [&a.id, &b.id] {
        let refund = h.store.refund(id).await.unwrap().unwrap();
        assert_eq!(refund.status, RefundStatus::Failed);
    }
    assert_eq!(h.sandbox.stats().cancel.committed, 0);
    refunded(h.cancel(&body(&first, Some("1000")), None).await);
    assert_eq!(h.assert_in_sync(&first).await, 1_000);
    assert_eq!(h.assert_in_sync(&second).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_is_a_definite_failure() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    // The same store, but a gateway on a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = IamportConfig::new(
        url,
        IamportCredentials::new(DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET),
    )
    .connect_timeout(CONNECT_TIMEOUT);
    let unreachable = RefundService::new(
        h.store.clone(),
        Arc::new(IamportClient::new(config).unwrap()),
    );
    let request: CancelRequest = serde_json::from_str(&body(&merchant_uid, Some("1000"))).unwrap();
    let err = unreachable.cancel(request, None).await.unwrap_err();
    assert_eq!(err.code(), "gateway_error");
    assert_eq!(err.http_status(), 502);
    let journal = h.store.refunds_of(&merchant_uid).await.unwrap();
    assert_eq!(journal[0].status, RefundStatus::Failed);
    // Nothing is left pending: the next refund goes straight through.
    refunded(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_requests_make_one_gateway_cancel() {
    let h = Arc::new(Harness::start().await);
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (h, merchant_uid) = (h.clone(), merchant_uid.clone());
            tokio::spawn(async move {
                h.cancel(&body(&merchant_uid, Some("1000")), Some("double-click"))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(CancelOutcome::Refunded(view)) => ids.push(view.refund.unwrap().id),
            Ok(CancelOutcome::Pending(refund)) => ids.push(refund.id),
            Err(err) => panic!("a twin request must replay, got {err:?}"),
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every twin answers with the same refund");
    assert_eq!(h.cancels_attempted(), 1);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_distinct_refunds_never_exceed_the_payment() {
    let h = Arc::new(Harness::start().await);
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (h, merchant_uid) = (h.clone(), merchant_uid.clone());
            tokio::spawn(async move { h.cancel(&body(&merchant_uid, Some("3000")), None).await })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(CancelOutcome::Refunded(_)) => succeeded += 1,
            Err(err) => assert!(
                [
                    "refund_in_progress",
                    "amount_exceeds_cancelable",
                    "already_refunded"
                ]
                .contains(&err.code()),
                "{err:?}"
            ),
            Ok(other) => panic!("{other:?}"),
        }
    }
    assert!((1..=3).contains(&succeeded));
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 3_000 * succeeded);
    assert_eq!(
        h.sandbox.stats().cancel.committed,
        u64::try_from(succeeded).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_replay_returns_the_stored_outcome() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    let first = refunded(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("key-1"))
            .await,
    );
    // The same request, spelled differently: the same refund, no new call.
    let replay = refunded(
        h.cancel(&body(&merchant_uid, Some("1000.0")), Some("key-1"))
            .await,
    );
    assert_eq!(first.refund.unwrap().id, replay.refund.unwrap().id);
    assert_eq!(h.cancels_attempted(), 1);
    let err = h
        .cancel(&body(&merchant_uid, Some("2000")), Some("key-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "idempotency_key_reused");
    // A key names one refund: reused for another order, it is refused too.
    let (other, _) = h.seed_krw(10_000).await;
    let err = h
        .cancel(&body(&other, Some("1000")), Some("key-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "idempotency_key_reused");
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), Some("bad key\n"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request");
    assert_eq!(h.cancels_attempted(), 1);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_made_elsewhere_are_picked_up_by_sync_and_webhooks() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    h.console_refund(&imp_uid, Some(1_500), Some("console"));
    let view = h.service.sync(&merchant_uid).await.unwrap();
    assert_eq!(json(&view.cancel_amount), "1500");
    assert_eq!(view.cancel_history[0].reason.as_deref(), Some("console"));
    h.console_refund(&imp_uid, None, None);
    let view = h.service.refresh(&imp_uid).await.unwrap().unwrap();
    assert_eq!(view.status, "cancelled");
    // Duplicate deliveries are harmless.
    h.service.refresh(&imp_uid).await.unwrap();
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 10_000);
    assert!(h
        .service
        .refresh("imp_000000000000")
        .await
        .unwrap()
        .is_none());
    // A payment never seen locally is imported by sync.
    let created = h
        .sandbox
        .create_payment(NewPayment::new(unique(), 700, SandboxCurrency::Krw))
        .unwrap();
    let view = h.service.sync(&created.merchant_uid).await.unwrap();
    assert_eq!(view.imp_uid, created.imp_uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexplained_numbers_hold_the_payment_for_review() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    let refund = pending(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    // Someone else cancels too before we reconcile: 1000 + 500 explains nothing.
    h.console_refund(&imp_uid, Some(500), None);
    h.service.refresh(&imp_uid).await.unwrap();
    let journal = h.store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(
        journal.status,
        RefundStatus::Pending,
        "young refunds are not judged"
    );
    h.wait_until_settleable().await;
    h.service.sweep().await.unwrap();
    let journal = h.store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(journal.status, RefundStatus::NeedsReview);
    let err = h
        .cancel(&body(&merchant_uid, Some("100")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress");
    assert_eq!(h.cancels_attempted(), 1);
    // The operator looks, then syncs: refunds resume.
    h.service.sync(&merchant_uid).await.unwrap();
    refunded(h.cancel(&body(&merchant_uid, Some("100")), None).await);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_finds_unexplained_numbers_keeps_the_hold() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    pending(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    h.console_refund(&imp_uid, Some(500), None);
    h.wait_until_settleable().await;
    // This sync finds the trouble: the hold it sets must stand until the
    // operator's next sync.
    h.service.sync(&merchant_uid).await.unwrap();
    assert!(
        h.store
            .payment(&merchant_uid)
            .await
            .unwrap()
            .unwrap()
            .on_hold
    );
    let err = h
        .cancel(&body(&merchant_uid, Some("100")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress");
    h.service.sync(&merchant_uid).await.unwrap();
    refunded(h.cancel(&body(&merchant_uid, Some("100")), None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_pending_refund_is_reconciled_before_the_next_refund() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    let first = pending(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    h.wait_until_settleable().await;
    refunded(h.cancel(&body(&merchant_uid, Some("2000")), None).await);
    let settled = h.store.refund(&first.id).await.unwrap().unwrap();
    assert_eq!(settled.status, RefundStatus::Succeeded);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_failure_is_definite_and_sends_nothing() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox.revoke_tokens();
    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Token, 1);
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "gateway_error");
    assert_eq!(h.sandbox.stats().cancel.committed, 0);
    assert!(h
        .service
        .view(&merchant_uid)
        .await
        .unwrap()
        .pending_refunds
        .is_empty());
    refunded(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tax_and_vat_beyond_the_refund_never_reach_the_gateway() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    for extra in [r#""tax_free":999999"#, r#""vat_amount":600,"tax_free":500"#] {
        let json =
            format!(r#"{{"merchant_uid":"{merchant_uid}","cancel_request_amount":1000,{extra}}}"#);
        assert_eq!(
            h.cancel(&json, None).await.unwrap_err().code(),
            "invalid_request"
        );
        // Without an amount, the parts are checked against what is left.
        let json = format!(r#"{{"merchant_uid":"{merchant_uid}","tax_free":10001}}"#);
        assert_eq!(
            h.cancel(&json, None).await.unwrap_err().code(),
            "invalid_request"
        );
    }
    assert_eq!(h.cancels_attempted(), 0);
    let json = format!(
        r#"{{"merchant_uid":"{merchant_uid}","cancel_request_amount":1000,"tax_free":100,"vat_amount":90}}"#
    );
    refunded(h.cancel(&json, None).await);
}

/// A store that fails to record the gateway's answer: the refund must stay
/// pending (202), never be reported as "nothing happened".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_after_the_gateway_answered_leaves_the_refund_pending() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    let store = Arc::new(FailingFinish(h.store.clone()));
    let service = RefundService::new(store, h.gateway.clone());
    let request: CancelRequest = serde_json::from_str(&body(&merchant_uid, Some("1000"))).unwrap();
    let refund = pending(service.cancel(request, None).await);
    assert_eq!(h.sandbox.stats().cancel.committed, 1);
    assert_eq!(
        h.store.refund(&refund.id).await.unwrap().unwrap().status,
        RefundStatus::Pending
    );
    // Once the store works again, reconciliation settles it.
    h.service.refresh(&imp_uid).await.unwrap();
    assert_eq!(
        h.store.refund(&refund.id).await.unwrap().unwrap().status,
        RefundStatus::Succeeded
    );
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
}

/// Delegates everything but `finish_refund`, which finds the database down.
struct FailingFinish(Arc<MemoryPaymentStore>);

#[async_trait::async_trait]
impl PaymentStore for FailingFinish {
    async fn payment(&self, uid: &str) -> Result<Option<refund_core::StoredPayment>, StoreError> {
        self.0.payment(uid).await
    }
    async fn apply_snapshot(
        &self,
        p: &refund_core::Payment,
    ) -> Result<refund_core::StoredPayment, StoreError> {
        self.0.apply_snapshot(p).await
    }
    async fn begin_refund(&self, r: &refund_core::Refund) -> Result<(), StoreError> {
        self.0.begin_refund(r).await
    }
    async fn finish_refund(
        &self,
        _: &refund_core::RefundId,
        _: &refund_core::RefundOutcome,
        _: Option<&refund_core::Payment>,
        _: i64,
    ) -> Result<refund_core::Refund, StoreError> {
        Err(StoreError::Unavailable("database went away".into()))
    }
    async fn release_hold(&self, uid: &str) -> Result<(), StoreError> {
        self.0.release_hold(uid).await
    }
    async fn refund(
        &self,
        id: &refund_core::RefundId,
    ) -> Result<Option<refund_core::Refund>, StoreError> {
        self.0.refund(id).await
    }
    async fn refund_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<refund_core::Refund>, StoreError> {
        self.0.refund_by_idempotency_key(key).await
    }
    async fn refunds_of(&self, uid: &str) -> Result<Vec<refund_core::Refund>, StoreError> {
        self.0.refunds_of(uid).await
    }
    async fn stale_pending_refunds(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<refund_core::Refund>, StoreError> {
        self.0.stale_pending_refunds(before, limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_account_refunds_need_and_send_the_account() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h
        .seed(NewPayment::new(unique(), 50_000, SandboxCurrency::Krw).pay_method("vbank"))
        .await;
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_account_required");
    assert_eq!(h.cancels_attempted(), 0);
    let request = format!(
        r#"{{"merchant_uid":"{merchant_uid}","cancel_request_amount":1000,"refund_holder":"홍길동","refund_bank":"88","refund_account":"56211105948400"}}"#
    );
    refunded(h.cancel(&request, None).await);
    let journal = h.store.refunds_of(&merchant_uid).await.unwrap();
    assert_eq!(
        journal[0].refund_account_masked.as_deref(),
        Some("**********8400")
    );
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_payments_of_an_earlier_month_are_not_refundable() {
    let h = Harness::start().await;
    let forty_days_ago = refund_core::now_ms() / 1000 - 40 * 86_400;
    let (merchant_uid, _) = h
        .seed(
            NewPayment::new(unique(), 5_000, SandboxCurrency::Krw)
                .pay_method("phone")
                .paid_at(forty_days_ago),
        )
        .await;
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_refundable");
    assert_eq!(err.http_status(), 422);
    assert_eq!(h.cancels_attempted(), 0);
    let (this_month, _) = h
        .seed(NewPayment::new(unique(), 5_000, SandboxCurrency::Krw).pay_method("phone"))
        .await;
    refunded(h.cancel(&body(&this_month, Some("1000")), None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_fetched_once_for_many_calls() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(100_000).await;
    for _ in 0..5 {
        refunded(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
        h.gateway.payment(&imp_uid).await.unwrap().unwrap();
    }
    assert_eq!(h.sandbox.stats().get_token.requests, 1);
    assert_eq!(
        h.gateway
            .payment(&imp_uid)
            .await
            .unwrap()
            .unwrap()
            .cancel_amount,
        Amount::from_minor(5_000)
    );
}
