//! The refund protocol's proven failures (issue: "Refund protocol, second
//! generation"), each reproduced against the sandbox over real HTTP. They
//! use only the service's public surface, so the same file runs against
//! the first-generation protocol, where each of them fails.
//!
//! The fourth proven failure, a doubled refund when two instances' clocks
//! differ, needs processes whose clocks really differ: it is
//! `examples/tests/clock_skew.rs`.

use std::sync::Arc;
use std::time::Duration;

use iamport_sandbox::{
    AdminCancel, Currency, Fault, FaultTarget, NewPayment, Sandbox, SandboxConfig, DEFAULT_IMP_KEY,
    DEFAULT_IMP_SECRET,
};
use refund_core::{
    CancelOutcome, CancelRequest, IamportClient, IamportConfig, IamportCredentials,
    MemoryPaymentStore, PaymentView, RefundError, RefundService,
};

struct Demo {
    sandbox: Sandbox,
    service: RefundService,
}

impl Demo {
    async fn start() -> Demo {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let config = IamportConfig::new(
            sandbox.base_url(),
            IamportCredentials::new(DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET),
        )
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(2));
        let gateway = Arc::new(IamportClient::new(config).unwrap());
        // The defaults a merchant gets: the settle age is the client's
        // in-flight bound plus its grace.
        let service = RefundService::new(Arc::new(MemoryPaymentStore::new()), gateway);
        Demo { sandbox, service }
    }

    async fn seed(&self, amount: i64) -> (String, String) {
        let merchant_uid = refund_core::testkit::unique("PROVEN");
        let created = self
            .sandbox
            .create_payment(NewPayment::new(merchant_uid.clone(), amount, Currency::Krw))
            .unwrap();
        self.service
            .refresh(&created.imp_uid)
            .await
            .unwrap()
            .unwrap();
        (merchant_uid, created.imp_uid)
    }

    async fn cancel(
        &self,
        merchant_uid: &str,
        amount: i64,
        key: Option<&str>,
    ) -> Result<CancelOutcome, RefundError> {
        let body = format!(
            r#"{{"merchant_uid":"{merchant_uid}","cancel_request_amount":{amount},"reason":"size exchange"}}"#
        );
        let request: CancelRequest = serde_json::from_str(&body).unwrap();
        self.service
            .cancel(&refund_core::testkit::operator(), request, key)
            .await
    }

    fn gateway_cancelled(&self, merchant_uid: &str) -> i64 {
        self.sandbox
            .payment_by_merchant_uid(merchant_uid)
            .unwrap()
            .cancel_amount
    }
}

fn refunded(outcome: Result<CancelOutcome, RefundError>) -> PaymentView {
    match outcome {
        Ok(CancelOutcome::Refunded(view)) => *view,
        other => panic!("expected a refund, got {other:?}"),
    }
}

/// Proven failure 2: one harmless gateway 5xx (nothing applied) locked the
/// payment for the whole settle age; every retry was `refund_in_progress`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_harmless_5xx_never_locks_the_payment() {
    let demo = Demo::start().await;
    let (merchant_uid, _) = demo.seed(10_000).await;
    demo.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);
    let error = demo.cancel(&merchant_uid, 3_000, None).await.unwrap_err();
    assert_eq!(error.code(), "gateway_error", "{error:?}");
    assert_eq!(error.http_status(), 502);
    // The payment takes the retry at once.
    let view = refunded(demo.cancel(&merchant_uid, 3_000, None).await);
    assert_eq!(view.cancel_amount.get(), "3000");
    assert_eq!(demo.gateway_cancelled(&merchant_uid), 3_000);
}

/// Proven failure 3: our refund is pending after a lost connection (it
/// never reached i'mport); the console refunds the same amount for another
/// item; the webhook must not credit the console's refund to ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equal_console_refund_is_not_credited_to_our_pending_refund() {
    let demo = Demo::start().await;
    let (merchant_uid, imp_uid) = demo.seed(10_000).await;
    demo.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 1);
    match demo.cancel(&merchant_uid, 2_000, None).await {
        Ok(CancelOutcome::Pending(_)) => {}
        other => panic!("expected a pending refund, got {other:?}"),
    }
    let console = AdminCancel {
        amount: Some(2_000),
        reason: Some("damaged item, refunded by phone".into()),
    };
    demo.sandbox.admin_cancel(&imp_uid, console).unwrap();
    let view = demo.service.refresh(&imp_uid).await.unwrap().unwrap();
    assert_eq!(
        view.cancel_amount.get(),
        "2000",
        "the console's refund is recorded"
    );
    assert_eq!(
        view.pending_refunds.len(),
        1,
        "ours must stay pending: the only 2,000 entry is the console's"
    );
    assert_eq!(demo.gateway_cancelled(&merchant_uid), 2_000);
}

/// Proven failure 4: a failure that provably sent nothing (the token
/// endpoint down) spent the Idempotency-Key: every retry replayed the 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_that_never_left_does_not_spend_its_key() {
    let demo = Demo::start().await;
    let (merchant_uid, _) = demo.seed(10_000).await;
    // The cached token is refused, and the token endpoint is down.
    demo.sandbox.revoke_tokens();
    demo.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Token, 1);
    let error = demo
        .cancel(&merchant_uid, 1_500, Some("click-1"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "gateway_error", "{error:?}");
    assert_eq!(demo.gateway_cancelled(&merchant_uid), 0);
    // Same key, same body: tried again, and it goes through.
    let view = refunded(demo.cancel(&merchant_uid, 1_500, Some("click-1")).await);
    assert_eq!(view.cancel_amount.get(), "1500");
    // And now the key is spent: a double click replays the success.
    let again = refunded(demo.cancel(&merchant_uid, 1_500, Some("click-1")).await);
    assert_eq!(again.cancel_amount.get(), "1500");
    assert_eq!(demo.gateway_cancelled(&merchant_uid), 1_500);
}
