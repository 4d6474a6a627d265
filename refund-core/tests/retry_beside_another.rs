//! A retry of a refund judged `not_applied`, over a gateway history whose
//! only entry of its amount names another refund of the payment: that entry
//! is the other refund's, so it proves nothing moved for this one. The
//! retry runs (or waits while the other is pending); it is never put up for
//! review, holding the payment, over an entry that names someone else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use refund_core::testkit::{operator, paid_payment, unique, ManualClock};
use refund_core::{
    Amount, CancelCommand, CancelEntry, CancelOutcome, CancelReceipt, CancelRequest, Currency,
    GatewayError, GatewayKind, MemoryPaymentStore, Payment, PaymentGateway, PaymentRef,
    PaymentStore, RefundError, RefundService, RefundStatus,
};

/// How the gateway double answers the next cancel.
#[derive(Clone, Copy)]
enum Answer {
    /// A 5xx before doing anything (an answered failure).
    ErrorBeforeCommit,
    /// Apply the cancel, but the answer is lost (a timeout).
    Lost,
    /// Apply the cancel and answer it.
    Applied,
}

/// An i'mport-like gateway whose cancel entries carry no id (some PGs
/// report no `pg_tid`), scripted per call.
struct Scripted {
    payment: Mutex<Payment>,
    answers: Mutex<Vec<Answer>>,
    cancels: AtomicU64,
}

impl Scripted {
    fn apply(&self, command: &CancelCommand) -> Payment {
        let mut payment = self.payment.lock().unwrap();
        payment.cancel_amount = payment.cancel_amount.checked_add(command.amount).unwrap();
        let at = payment.cancel_history.len() as i64;
        payment.cancel_history.push(CancelEntry {
            pg_tid: None,
            amount: command.amount,
            cancelled_at: 1_900_000_000 + at,
            reason: command.reason.clone(),
            cancellation_id: None,
            receipt_url: None,
        });
        payment.clone()
    }
}

#[async_trait]
impl PaymentGateway for Scripted {
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers.lock().unwrap().remove(0);
        match answer {
            Answer::ErrorBeforeCommit => Err(GatewayError::Garbled("HTTP 500".into())),
            Answer::Lost => {
                self.apply(command);
                Err(GatewayError::Unknown("timed out".into()))
            }
            Answer::Applied => Ok(CancelReceipt::Applied {
                payment: self.apply(command),
                cancellation_id: None,
            }),
        }
    }

    async fn payment(&self, _: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        Ok(Some(self.payment.lock().unwrap().clone()))
    }

    async fn find_payment(&self, _: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(Some(self.payment.lock().unwrap().clone()))
    }

    fn max_in_flight(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn kind(&self) -> GatewayKind {
        GatewayKind::Iamport
    }
}

fn request(merchant_uid: &str, amount: i64, reason: &str) -> CancelRequest {
    serde_json::from_value(serde_json::json!({
        "merchant_uid": merchant_uid, "cancel_request_amount": amount, "reason": reason
    }))
    .unwrap()
}

#[tokio::test]
async fn a_retry_over_an_entry_naming_another_refund_runs_and_holds_nothing() {
    let clock = Arc::new(ManualClock::now());
    let store = Arc::new(MemoryPaymentStore::with_clock(clock.clone()));
    let payment = paid_payment(&unique("order"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let gateway = Arc::new(Scripted {
        payment: Mutex::new(payment.clone()),
        answers: Mutex::new(vec![
            Answer::ErrorBeforeCommit,
            Answer::Lost,
            Answer::Applied,
        ]),
        cancels: AtomicU64::new(0),
    });
    let service = RefundService::new(store.clone(), gateway.clone());
    let uid = payment.merchant_uid.as_str();
    let status = |key: &'static str| {
        let store = store.clone();
        async move {
            store
                .refund_by_idempotency_key(key)
                .await
                .unwrap()
                .unwrap()
                .status()
        }
    };

    // Refund A (2,000) gets a 5xx and the lookup shows nothing: not applied.
    let a = service
        .cancel(&operator(), request(uid, 2_000, "size"), Some("k-a"))
        .await;
    assert!(matches!(&a, Err(e) if e.code() == "gateway_error"), "{a:?}");
    assert_eq!(status("k-a").await, RefundStatus::Failed);
    // Refund B (2,000, another request) applies; its answer is lost. Once it
    // cannot be on the wire, the sweep credits it with its entry (which has
    // no id: nothing records it as claimed).
    clock.advance(Duration::from_secs(1));
    let b = service
        .cancel(&operator(), request(uid, 2_000, "gift"), Some("k-b"))
        .await;
    assert!(matches!(b, Ok(CancelOutcome::Pending(_))), "{b:?}");
    clock.advance(Duration::from_secs(3600));
    service.sweep().await.unwrap();
    assert_eq!(status("k-b").await, RefundStatus::Succeeded);
    assert_eq!(status("k-a").await, RefundStatus::Failed);

    // The client retries A under its key. The only entry of 2,000 names B:
    // A provably moved nothing, so it runs again; no review, no hold.
    let retry = service
        .cancel(&operator(), request(uid, 2_000, "size"), Some("k-a"))
        .await;
    let stored = store.payment(uid).await.unwrap().unwrap();
    let a_after = store
        .refund_by_idempotency_key("k-a")
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&retry, Ok(CancelOutcome::Refunded(_))),
        "{:?}; A is {:?}; held: {}",
        retry.as_ref().map_err(RefundError::code),
        a_after.state,
        stored.on_hold
    );
    assert_eq!(a_after.status(), RefundStatus::Succeeded);
    assert!(!stored.on_hold);
    assert_eq!(stored.payment.cancel_amount, Amount::from_minor(4_000));
    assert_eq!(gateway.cancels.load(Ordering::SeqCst), 3);
}
