//! The refund protocol end to end: `RefundService` over the in-memory store
//! and the real i'mport client, against the sandbox over real HTTP, with the
//! sandbox's fault injection standing in for a misbehaving gateway.

use std::sync::Arc;
use std::time::Duration;

use iamport_sandbox::{
    AdminCancel, Currency as SandboxCurrency, Fault, FaultTarget, NewPayment, Sandbox,
    SandboxConfig, DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET,
};
use refund_core::testkit::{FaultyStore, ManualClock, StoreFault, StoreOp};
use refund_core::{
    Amount, CancelCommand, CancelOutcome, CancelReceipt, CancelRequest, FailureKind, GatewayError,
    IamportClient, IamportConfig, IamportCredentials, MemoryPaymentStore, Payment, PaymentGateway,
    PaymentRef, PaymentStore, RefundError, RefundService, RefundState, RefundStatus,
};

/// Client timeouts short enough that "the refund can no longer be in
/// flight" arrives within a test, long enough for a loaded machine.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

struct Harness {
    sandbox: Sandbox,
    /// The store's clock: moved by hand, so no test sleeps for a bound.
    clock: Arc<ManualClock>,
    store: Arc<MemoryPaymentStore>,
    gateway: Arc<Tampering>,
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
        let clock = Arc::new(ManualClock::now());
        let store = Arc::new(MemoryPaymentStore::with_clock(clock.clone()));
        let gateway = Arc::new(Tampering::new(IamportClient::new(config).unwrap()));
        // Settle as soon as a refund can no longer be on the wire.
        let service = Arc::new(
            RefundService::new(store.clone(), gateway.clone())
                .settle_after(gateway.max_in_flight()),
        );
        Harness {
            sandbox,
            clock,
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
        self.service
            .cancel(&refund_core::testkit::operator(), request, key)
            .await
    }

    /// Moves the store's clock past the in-flight bound of refunds begun
    /// so far (no sleeping).
    fn wait_until_settleable(&self) {
        self.clock
            .advance(self.gateway.max_in_flight() + Duration::from_millis(1));
    }

    async fn state_of(&self, id: &refund_core::RefundId) -> RefundState {
        self.store.refund(id).await.unwrap().unwrap().state
    }

    /// A payment of 10,000 whose refund of 1,000 under `key` i'mport
    /// applied, answered with a 5xx, and whose lookup lagged: the refund is
    /// settled `not_applied` (502) although it applied. Gives the order id
    /// and the stale payment the lookup showed; lookups tell the truth
    /// again afterwards.
    async fn applied_but_judged_not_applied(&self, key: &str) -> (String, Payment) {
        let (merchant_uid, imp_uid) = self.seed_krw(10_000).await;
        let stale = self
            .gateway
            .inner
            .payment(v1(&imp_uid))
            .await
            .unwrap()
            .unwrap();
        self.sandbox
            .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
        self.gateway.set(Some(Tamper::Stale(stale.clone())));
        let err = self
            .cancel(&body(&merchant_uid, Some("1000")), Some(key))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "gateway_error");
        self.gateway.set(None);
        assert_eq!(self.sandbox.stats().cancel.committed, 1, "it applied");
        (merchant_uid, stale)
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
        Ok(CancelOutcome::Refunded(view)) => *view,
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

/// What the tampering gateway does to payment lookups.
#[derive(Debug, Clone)]
enum Tamper {
    /// Answers lookups with this (stale) payment, as a lagging replica would.
    Stale(Payment),
    /// Drops the cancel history, so the numbers no longer add up.
    StripHistory,
    /// Answers lookups with this payment until the next cancel call, then
    /// tells the truth again.
    StaleUntilCancel(Payment),
    /// Rewrites every cancel reason, as a PG that keeps its own would.
    RewriteReasons,
}

/// The real i'mport client, whose payment lookups a test can tamper with
/// to produce evidence the sandbox never would.
#[derive(Debug)]
struct Tampering {
    inner: IamportClient,
    tamper: std::sync::Mutex<Option<Tamper>>,
}

impl Tampering {
    fn new(inner: IamportClient) -> Self {
        Tampering {
            inner,
            tamper: std::sync::Mutex::default(),
        }
    }

    fn set(&self, tamper: Option<Tamper>) {
        *self.tamper.lock().unwrap() = tamper;
    }

    fn apply(&self, payment: Option<Payment>) -> Option<Payment> {
        match self.tamper.lock().unwrap().clone() {
            None => payment,
            Some(Tamper::Stale(stale)) => Some(stale),
            Some(Tamper::StripHistory) => payment.map(|mut p| {
                p.cancel_history.clear();
                p
            }),
            Some(Tamper::StaleUntilCancel(stale)) => Some(stale),
            Some(Tamper::RewriteReasons) => payment.map(|mut p| {
                for entry in &mut p.cancel_history {
                    entry.reason = Some("환불".to_owned());
                }
                p
            }),
        }
    }
}

#[async_trait::async_trait]
impl PaymentGateway for Tampering {
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        {
            let mut tamper = self.tamper.lock().unwrap();
            if matches!(*tamper, Some(Tamper::StaleUntilCancel(_))) {
                *tamper = None;
            }
        }
        self.inner.cancel(command).await
    }

    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        Ok(self.apply(self.inner.payment(at).await?))
    }

    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(self.apply(self.inner.find_payment(merchant_uid).await?))
    }

    fn max_in_flight(&self) -> Duration {
        self.inner.max_in_flight()
    }

    fn kind(&self) -> refund_core::GatewayKind {
        self.inner.kind()
    }
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
    let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
    let failures: Vec<_> = journal.iter().filter_map(|r| r.state.failure()).collect();
    assert_eq!(failures.len(), 1, "{journal:?}");
    assert_eq!(failures[0].kind, FailureKind::Rejected);
    assert_eq!(failures[0].code.as_deref(), Some("-1"));
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

/// A 5xx after i'mport applied the refund: the gateway answered, so one
/// lookup settles it at once (DESIGN step 6, answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_5xx_is_settled_at_once_by_one_lookup() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    let view = refunded(h.cancel(&body(&merchant_uid, Some("4000")), None).await);
    assert_eq!(json(&view.cancel_amount), "4000");
    assert!(view.pending_refunds.is_empty());
    let refund = view.refund.unwrap();
    match h.state_of(&refund.id).await {
        RefundState::Succeeded { cancellation_id } => assert!(cancellation_id.is_some()),
        other => panic!("{other:?}"),
    }
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
    assert_eq!(settled.status(), RefundStatus::Succeeded);
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

/// A 5xx before commit, and a garbled reply: the gateway answered without
/// applying anything. One lookup proves it, the refund fails as
/// `not_applied` (502 `gateway_error`), and the payment and the key are
/// free again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_failures_that_applied_nothing_are_settled_at_once() {
    let h = Harness::start().await;
    for fault in [Fault::FailBeforeCommit, Fault::Garbage] {
        let (merchant_uid, _) = h.seed_krw(10_000).await;
        h.sandbox.inject_fault(fault, FaultTarget::Cancel, 1);
        let err = h
            .cancel(&body(&merchant_uid, Some("1000")), Some(&merchant_uid))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "gateway_error", "{fault:?}");
        let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
        match &journal[0].state {
            RefundState::Failed(failure) => assert_eq!(failure.kind, FailureKind::NotApplied),
            other => panic!("{fault:?}: {other:?}"),
        }
        // The same key and body try again, and go through.
        let view = refunded(
            h.cancel(&body(&merchant_uid, Some("1000")), Some(&merchant_uid))
                .await,
        );
        assert_eq!(json(&view.cancel_amount), "1000");
        assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
    }
}

/// Dropped connections before commit: no answer, so the refunds may be on
/// the wire. They stay pending until their in-flight bound has passed on
/// the store's clock, then the sweep settles them as `not_applied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_refunds_that_never_happened_are_failed_by_the_sweep() {
    let h = Harness::start().await;
    let (first, _) = h.seed_krw(10_000).await;
    let (second, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 2);
    let a = pending(h.cancel(&body(&first, Some("1000")), None).await);
    let b = pending(h.cancel(&body(&second, Some("1000")), None).await);

    let early = h.service.sweep().await.unwrap();
    assert_eq!(early.settled, 0, "young refunds may still be in flight");
    h.service.sync(&first).await.unwrap();
    assert_eq!(h.state_of(&a.id).await.status(), RefundStatus::Pending);
    let err = h
        .cancel(&body(&first, Some("500")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress");

    h.wait_until_settleable();
    let report = h.service.sweep().await.unwrap();
    assert_eq!(report.settled, 2, "{report:?}");
    for id in [&a.id, &b.id] {
        match h.state_of(id).await {
            RefundState::Failed(failure) => assert_eq!(failure.kind, FailureKind::NotApplied),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(h.sandbox.stats().cancel.committed, 0);
    refunded(h.cancel(&body(&first, Some("1000")), None).await);
    assert_eq!(h.assert_in_sync(&first).await, 1_000);
    assert_eq!(h.assert_in_sync(&second).await, 0);
}

/// A sweep that judged while the cancel was still on the wire (here, a
/// lagging lookup) settles it `not_applied`; its own success answer then
/// arrives and wins: the refund is `succeeded`, never reported as "nothing
/// was refunded".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_success_answer_wins_over_an_early_verdict() {
    let h = Arc::new(Harness::start().await);
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    let before = h.sandbox.payment(&imp_uid).unwrap();
    let stale = h
        .gateway
        .inner
        .payment(v1(&imp_uid))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.cancel_amount, 0);
    h.sandbox.inject_fault(
        Fault::HoldAfterCommit(Duration::from_millis(300)),
        FaultTarget::Cancel,
        1,
    );
    let cancel = {
        let (h, merchant_uid) = (h.clone(), merchant_uid.clone());
        tokio::spawn(async move {
            h.cancel(&body(&merchant_uid, Some("2000")), Some("late-1"))
                .await
        })
    };
    // While the answer is held: the lookup lags, and the store's clock says
    // the refund is past its bound (as a wrong bound or a paused process
    // would make it).
    while h.sandbox.stats().cancel.committed == 0 {
        tokio::task::yield_now().await;
    }
    h.gateway.set(Some(Tamper::Stale(stale)));
    h.wait_until_settleable();
    let report = h.service.sweep().await.unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    h.gateway.set(None);
    let view = refunded(cancel.await.unwrap());
    let refund = view.refund.unwrap();
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!(
        h.state_of(&refund.id).await.status(),
        RefundStatus::Succeeded
    );
    // The key replays the success: no second refund.
    let again = refunded(
        h.cancel(&body(&merchant_uid, Some("2000")), Some("late-1"))
            .await,
    );
    assert_eq!(again.refund.unwrap().id, refund.id);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 2_000);
    assert_eq!(h.sandbox.stats().cancel.committed, 1);
}

/// Our refund is pending (no answer, never applied); the console refunds
/// the same amount: neither the webhook nor, later, the sweep credits the
/// console's entry to ours. Past its bound the entry is ambiguous (ours
/// with a rewritten reason, or someone else's): the refund goes to review,
/// and the payment shows the entry as made outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_refund_of_the_same_amount_is_never_credited_to_ours() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 1);
    let ours = pending(h.cancel(&body(&merchant_uid, Some("2000")), None).await);
    h.console_refund(&imp_uid, Some(2_000), Some("test"));
    h.service.refresh(&imp_uid).await.unwrap();
    assert_eq!(h.state_of(&ours.id).await.status(), RefundStatus::Pending);
    h.wait_until_settleable();
    h.service.sweep().await.unwrap();
    assert_eq!(
        h.state_of(&ours.id).await.status(),
        RefundStatus::NeedsReview
    );
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 2_000);
    let view = h.service.view(&merchant_uid).await.unwrap();
    assert_eq!(view.cancel_history.len(), 1);
    assert_eq!(view.cancel_history[0].refund_id, None, "made outside");
    // The operator looks and resolves the review; our refund, asked
    // again, is credited with its own entry.
    h.service
        .review(
            &merchant_uid,
            &refund_core::testkit::operator(),
            "console refund",
        )
        .await
        .unwrap();
    let view = refunded(h.cancel(&body(&merchant_uid, Some("2000")), None).await);
    let id = view.refund.as_ref().unwrap().id.clone();
    assert_eq!(view.cancel_history[1].refund_id.as_ref(), Some(&id));
    assert_eq!(view.cancel_history[0].refund_id, None);
}

/// A refund settled `not_applied` on an answered 5xx whose cancel i'mport
/// applied anyway (a lagging lookup): the same key and body, asked again,
/// first give that late evidence its chance, so the retry replays the
/// success instead of refunding twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_not_applied_credits_a_late_refund_instead_of_repeating_it() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.applied_but_judged_not_applied("retry-1").await;
    let view = refunded(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("retry-1"))
            .await,
    );
    assert_eq!(json(&view.cancel_amount), "1000");
    assert_eq!(h.sandbox.stats().cancel.committed, 1, "no second cancel");
    let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
    assert_eq!(journal.len(), 1, "the retry replayed the first refund");
    assert_eq!(journal[0].status(), RefundStatus::Succeeded);
    assert_eq!(
        view.cancel_history[0].refund_id.as_ref(),
        Some(&journal[0].id)
    );
}

/// A `not_applied` refund applied late, found only when the same request's
/// retry (the same journal row, run again) is refused by the checksum: the
/// refusal's lookup shows the entry that names the refund, so it is
/// credited and the answer is its success. One refund, one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_rerun_credits_the_attempt_that_applied() {
    let h = Harness::start().await;
    let (merchant_uid, stale) = h.applied_but_judged_not_applied("retry-2").await;
    let first = h.store.refunds_of(&merchant_uid, 50).await.unwrap()[0].clone();
    // The retry's pre-check lookup still lags, so it runs again; the
    // gateway refuses its checksum, and the refusal's lookup is current.
    h.gateway.set(Some(Tamper::StaleUntilCancel(stale)));
    let view = refunded(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("retry-2"))
            .await,
    );
    assert_eq!(view.refund.as_ref().unwrap().id, first.id);
    let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
    assert_eq!(journal.len(), 1, "one request, one journal row");
    assert_eq!(journal[0].status(), RefundStatus::Succeeded);
    // The key replays the success.
    let again = refunded(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("retry-2"))
            .await,
    );
    assert_eq!(again.refund.unwrap().id, first.id);
    assert_eq!(h.sandbox.stats().cancel.committed, 1);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
}

/// A second review's interleaving: the first attempt applied (lookup
/// lagging: `not_applied`), the rerun's connection drops (pending), the
/// sweep's current lookup shows the entry naming the refund: credited. A
/// third try with the key replays it. One cancel committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_that_got_no_answer_is_credited_by_the_first_attempt() {
    let h = Harness::start().await;
    let (merchant_uid, stale) = h.applied_but_judged_not_applied("retry-3").await;
    // The rerun's pre-check lookup still lags, so it runs again.
    h.gateway.set(Some(Tamper::Stale(stale)));
    h.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 1);
    pending(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("retry-3"))
            .await,
    );
    h.gateway.set(None);
    h.wait_until_settleable();
    h.service.sweep().await.unwrap();
    let view = refunded(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("retry-3"))
            .await,
    );
    let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(view.refund.unwrap().id, journal[0].id);
    assert_eq!(
        h.sandbox.stats().cancel.committed,
        1,
        "never refunded twice"
    );
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
}

/// A second review's interleaving: the first attempt applied but the PG
/// rewrote its reason, so the entry does not name the refund. The retry's
/// lookup cannot prove it never applied: an operator must look (review,
/// 409), never a second refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_without_proof_that_nothing_moved_goes_to_review() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.applied_but_judged_not_applied("retry-4").await;
    h.gateway.set(Some(Tamper::RewriteReasons));
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), Some("retry-4"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress", "{err:?}");
    let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status(), RefundStatus::NeedsReview);
    assert_eq!(
        h.sandbox.stats().cancel.committed,
        1,
        "never refunded twice"
    );
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
    let err = unreachable
        .cancel(&refund_core::testkit::operator(), request, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "gateway_error");
    assert_eq!(err.http_status(), 502);
    let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
    match &journal[0].state {
        RefundState::Failed(failure) => assert_eq!(failure.kind, FailureKind::NotSent),
        other => panic!("{other:?}"),
    }
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
        .inject_fault(Fault::DropAfterCommit, FaultTarget::Cancel, 1);
    let refund = pending(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    // The gateway's numbers stop adding up (its history is gone).
    h.gateway.set(Some(Tamper::StripHistory));
    h.service.refresh(&imp_uid).await.unwrap();
    assert_eq!(
        h.state_of(&refund.id).await.status(),
        RefundStatus::Pending,
        "young refunds are not judged"
    );
    h.wait_until_settleable();
    h.service.sweep().await.unwrap();
    assert_eq!(
        h.state_of(&refund.id).await.status(),
        RefundStatus::NeedsReview
    );
    let err = h
        .cancel(&body(&merchant_uid, Some("100")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress");
    assert_eq!(h.cancels_attempted(), 1);
    // A sync no longer lifts the hold (it did once: any sync silently
    // resumed refunds nobody had looked at).
    h.gateway.set(None);
    let view = h.service.sync(&merchant_uid).await.unwrap();
    assert!(view.on_hold);
    assert!(view.hold_reason.is_some());
    let err = h
        .cancel(&body(&merchant_uid, Some("100")), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "refund_in_progress",
        "the hold stays after a sync"
    );
    assert_eq!(h.cancels_attempted(), 1);
    // The operator resolves the review with a note: refunds resume, and the
    // journal says who resolved it.
    let operator = refund_core::Actor::new("lee.finance").unwrap();
    let view = h
        .service
        .review(&merchant_uid, &operator, "history checked with the PG")
        .await
        .unwrap();
    assert!(!view.on_hold);
    assert_eq!(view.hold_reason, None);
    let resolved = h.store.refund(&refund.id).await.unwrap().unwrap();
    let review = resolved.state.review().unwrap();
    let resolution = review.resolution.as_ref().unwrap();
    assert_eq!(resolution.resolved_by, operator);
    assert_eq!(resolution.note, "history checked with the PG");
    assert_eq!(
        h.service
            .review(&merchant_uid, &operator, "again")
            .await
            .unwrap_err()
            .code(),
        "not_on_hold"
    );
    refunded(h.cancel(&body(&merchant_uid, Some("100")), None).await);
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_finds_unexplained_numbers_keeps_the_hold() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::DropAfterCommit, FaultTarget::Cancel, 1);
    pending(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    h.gateway.set(Some(Tamper::StripHistory));
    h.wait_until_settleable();
    // This sync finds the trouble: the hold it sets must stand until an
    // operator resolves the review.
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
    h.gateway.set(None);
    h.service.sync(&merchant_uid).await.unwrap();
    let err = h
        .cancel(&body(&merchant_uid, Some("100")), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "refund_in_progress",
        "a later sync keeps it too"
    );
    h.service
        .review(&merchant_uid, &refund_core::testkit::operator(), "looked")
        .await
        .unwrap();
    refunded(h.cancel(&body(&merchant_uid, Some("100")), None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_pending_refund_is_reconciled_before_the_next_refund() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::DropAfterCommit, FaultTarget::Cancel, 1);
    let first = pending(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    h.wait_until_settleable();
    refunded(h.cancel(&body(&merchant_uid, Some("2000")), None).await);
    assert_eq!(
        h.state_of(&first.id).await.status(),
        RefundStatus::Succeeded
    );
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
    let store = Arc::new(FaultyStore::new(h.store.clone()));
    store.fail(StoreOp::FinishRefund, StoreFault::Unavailable);
    let service = RefundService::new(store, h.gateway.clone());
    let request: CancelRequest = serde_json::from_str(&body(&merchant_uid, Some("1000"))).unwrap();
    let refund = pending(
        service
            .cancel(&refund_core::testkit::operator(), request, None)
            .await,
    );
    assert_eq!(h.sandbox.stats().cancel.committed, 1);
    assert_eq!(h.state_of(&refund.id).await.status(), RefundStatus::Pending);
    // Once the store works again, reconciliation settles it.
    h.service.refresh(&imp_uid).await.unwrap();
    assert_eq!(
        h.state_of(&refund.id).await.status(),
        RefundStatus::Succeeded
    );
    assert_eq!(h.assert_in_sync(&merchant_uid).await, 1_000);
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
    let journal = h.store.refunds_of(&merchant_uid, 50).await.unwrap();
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
        h.gateway
            .inner
            .payment(v1(&imp_uid))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(h.sandbox.stats().get_token.requests, 1);
    assert_eq!(
        h.gateway
            .inner
            .payment(v1(&imp_uid))
            .await
            .unwrap()
            .unwrap()
            .cancel_amount,
        Amount::from_minor(5_000)
    );
}

/// The answer to a refund is built from what `finish_refund` returned, with
/// no read: it must be exactly the view a read afterwards gives (credited
/// cancel entries, refunds made outside, pending refunds), plus the refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_is_the_view_a_read_gives() {
    fn without_refund(view: &refund_core::PaymentView) -> serde_json::Value {
        let mut value = serde_json::to_value(view).unwrap();
        value.as_object_mut().unwrap().remove("refund");
        value
    }
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(100_000).await;
    let first = refunded(h.cancel(&body(&merchant_uid, Some("1000")), None).await);
    let read = h.service.view(&merchant_uid).await.unwrap();
    assert_eq!(without_refund(&first), without_refund(&read));
    // A refund made outside, one left not applied, then ours again.
    h.console_refund(&imp_uid, Some(2_000), Some("console"));
    h.service.refresh(&imp_uid).await.unwrap();
    h.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 1);
    let lost = pending(h.cancel(&body(&merchant_uid, Some("3000")), None).await);
    h.wait_until_settleable();
    h.service.sweep().await.unwrap();
    assert_eq!(h.state_of(&lost.id).await.status(), RefundStatus::Failed);
    for amount in ["4000", "5000"] {
        let answer = refunded(h.cancel(&body(&merchant_uid, Some(amount)), None).await);
        let read = h.service.view(&merchant_uid).await.unwrap();
        assert_eq!(without_refund(&answer), without_refund(&read));
        let id = answer.refund.as_ref().unwrap().id.clone();
        assert_eq!(
            answer.cancel_history.last().unwrap().refund_id.as_ref(),
            Some(&id)
        );
    }
    let answer = serde_json::to_value(refunded(
        h.cancel(&body(&merchant_uid, Some("6000")), None).await,
    ))
    .unwrap();
    let history = answer["cancel_history"].as_array().unwrap();
    assert_eq!(history.len(), 5, "{answer}");
    assert!(history[1]["refund_id"].is_null(), "the console's refund");
    assert!(history
        .iter()
        .enumerate()
        .all(|(i, entry)| (i == 1) == entry["refund_id"].is_null()));
    assert_eq!(answer["pending_refunds"], serde_json::json!([]));
}

/// A third review's interleaving: the first attempt applied (judged not
/// applied on a lagging lookup); another instance stored the gateway's
/// current payment, with that attempt's entry, but died before judging;
/// the retry's own lookup still lags. Re-opening on the store's newer
/// totals would make the checksum match and refund twice: the re-run
/// runs only against the lookup that proved it, so it does not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_never_runs_on_totals_newer_than_its_proof() {
    let h = Harness::start().await;
    let (merchant_uid, stale) = h.applied_but_judged_not_applied("retry-5").await;
    let current = h
        .gateway
        .inner
        .payment(v1(&stale.imp_uid))
        .await
        .unwrap()
        .unwrap();
    h.store.apply_snapshot(&current).await.unwrap();
    h.gateway.set(Some(Tamper::Stale(stale)));
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), Some("retry-5"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress", "{err:?}");
    assert_eq!(
        h.sandbox.stats().cancel.committed,
        1,
        "never refunded twice"
    );
    // Once lookups tell the truth, the retry credits the first attempt.
    h.gateway.set(None);
    let view = refunded(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("retry-5"))
            .await,
    );
    assert_eq!(json(&view.cancel_amount), "1000");
    assert_eq!(h.sandbox.stats().cancel.committed, 1);
}

/// A re-run whose lookup is older than the refund's base proves nothing
/// yet: 409, and no hold (the payment is not put up for review because a
/// replica lagged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_on_a_lagging_lookup_waits_without_a_hold() {
    let h = Harness::start().await;
    let (merchant_uid, imp_uid) = h.seed_krw(10_000).await;
    let before_console = h
        .gateway
        .inner
        .payment(v1(&imp_uid))
        .await
        .unwrap()
        .unwrap();
    h.console_refund(&imp_uid, Some(2_000), Some("console"));
    h.service.sync(&merchant_uid).await.unwrap();
    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), Some("retry-6"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "gateway_error");
    h.gateway.set(Some(Tamper::Stale(before_console)));
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), Some("retry-6"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_in_progress", "{err:?}");
    let stored = h.store.payment(&merchant_uid).await.unwrap().unwrap();
    assert!(!stored.on_hold, "a lagging lookup holds nothing");
    h.gateway.set(None);
    let view = refunded(
        h.cancel(&body(&merchant_uid, Some("1000")), Some("retry-6"))
            .await,
    );
    assert_eq!(json(&view.cancel_amount), "3000");
}

/// A V1 lookup by `imp_uid`.
fn v1(imp_uid: &str) -> PaymentRef<'_> {
    PaymentRef {
        imp_uid,
        merchant_uid: "",
    }
}

/// i'mport V1, the same story as the V2 test of this name: refund A (1,000)
/// answered with a 5xx before commit is `not_applied`. The client asks for
/// refund B (1,000) with the reason "retry of <A's id>"; B applies but its
/// answer is lost. Before reasons were matched "by name at any position",
/// B's entry (reason "retry of <A> (<B>)") could never pass for A's. Now
/// the sweep credits A with it (oldest first), judges B `not_applied`, and
/// B's key sends B a second time: 2,000 refunded for one 1,000 refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_that_mentions_an_older_refund_does_not_credit_it() {
    let h = Harness::start().await;
    let (merchant_uid, _) = h.seed_krw(10_000).await;
    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);
    let err = h
        .cancel(&body(&merchant_uid, Some("1000")), Some("k-a"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "gateway_error");
    let a = h.store.refunds_of(&merchant_uid, 50).await.unwrap()[0].clone();
    assert_eq!(a.status(), RefundStatus::Failed);
    let retry = serde_json::json!({
        "merchant_uid": merchant_uid,
        "cancel_request_amount": 1000,
        "reason": format!("retry of {}", a.id),
    })
    .to_string();
    // B begins after A on the store's clock (as it would in real time).
    h.clock.advance(Duration::from_secs(1));
    h.sandbox.inject_fault(
        Fault::HoldAfterCommit(REQUEST_TIMEOUT * 3),
        FaultTarget::Cancel,
        1,
    );
    let b = pending(h.cancel(&retry, Some("k-b")).await);
    h.wait_until_settleable();
    h.service.sweep().await.unwrap();
    let a_after = h.state_of(&a.id).await.status();
    let b_after = h.state_of(&b.id).await.status();
    // The client retries B under its key.
    let _ = h.cancel(&retry, Some("k-b")).await;
    assert_eq!(
        h.sandbox.stats().cancel.committed,
        1,
        "B was applied twice (after the sweep: A {a_after:?}, B {b_after:?})"
    );
    assert_eq!(
        (a_after, b_after),
        (RefundStatus::Failed, RefundStatus::Succeeded)
    );
}
