//! An operator's review lifts a hold (DESIGN.md, "Operators"), but never
//! while the held refund can still apply at the gateway: the hold is what
//! keeps a second refund from going out beside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use refund_core::testkit::{operator, paid_payment, unique, ManualClock};
use refund_core::{
    Amount, CancelCommand, CancelEntry, CancelOutcome, CancelReceipt, CancelRequest, Currency,
    GatewayError, GatewayKind, MemoryPaymentStore, Payment, PaymentGateway, PaymentRef,
    PaymentStore, Refund, RefundService, RefundStatus,
};

/// PortOne V2 played by hand: every cancel is taken asynchronously
/// (`REQUESTED`), lookups answer whatever the test says.
struct AsyncPortOne {
    lookup: Mutex<Option<Payment>>,
    cancels: AtomicU64,
}

#[async_trait]
impl PaymentGateway for AsyncPortOne {
    async fn cancel(&self, _: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        let n = self.cancels.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(CancelReceipt::Accepted {
            cancellation_id: format!("cancellation-{n}"),
        })
    }

    async fn payment(&self, _: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        Ok(self.lookup.lock().unwrap().clone())
    }

    async fn find_payment(&self, _: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(self.lookup.lock().unwrap().clone())
    }

    fn max_in_flight(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn kind(&self) -> GatewayKind {
        GatewayKind::Portone
    }
}

fn request(merchant_uid: &str, amount: i64) -> CancelRequest {
    serde_json::from_value(serde_json::json!({
        "merchant_uid": merchant_uid, "cancel_request_amount": amount
    }))
    .unwrap()
}

/// A payment held for review over an asynchronous refund: a refund of
/// 4,000 taken by PortOne (`REQUESTED`, pending under `cancellation-1`),
/// then, an hour later, one lookup that does not find the payment (a
/// PortOne hiccup), so the sweep cannot explain the pending refund and
/// holds the payment. Lookups answer the payment again from here on.
struct Held {
    store: Arc<MemoryPaymentStore>,
    gateway: Arc<AsyncPortOne>,
    service: RefundService,
    payment: Payment,
    refund: Refund,
}

async fn held_over_an_accepted_refund() -> Held {
    let clock = Arc::new(ManualClock::now());
    let store = Arc::new(MemoryPaymentStore::with_clock(clock.clone()));
    let payment = paid_payment(&unique("order"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let gateway = Arc::new(AsyncPortOne {
        lookup: Mutex::new(Some(payment.clone())),
        cancels: AtomicU64::new(0),
    });
    let service = RefundService::new(store.clone(), gateway.clone());
    let uid = payment.merchant_uid.as_str();
    let outcome = service
        .cancel(&operator(), request(uid, 4_000), Some("first"))
        .await
        .unwrap();
    assert!(matches!(outcome, CancelOutcome::Pending(_)));
    let refund = store.refunds_of(uid, 1).await.unwrap().remove(0);
    clock.advance(Duration::from_secs(3600));
    *gateway.lookup.lock().unwrap() = None;
    service.sweep().await.unwrap();
    assert_eq!(
        store.refund(&refund.id).await.unwrap().unwrap().status(),
        RefundStatus::NeedsReview
    );
    assert!(store.payment(uid).await.unwrap().unwrap().on_hold);
    *gateway.lookup.lock().unwrap() = Some(payment.clone());
    Held {
        store,
        gateway,
        service,
        payment,
        refund,
    }
}

#[tokio::test]
async fn a_review_does_not_free_a_payment_whose_held_cancellation_is_still_in_progress() {
    let Held {
        gateway,
        service,
        payment,
        refund,
        ..
    } = held_over_an_accepted_refund().await;
    let uid = payment.merchant_uid.as_str();

    // PortOne finds it again: its cancellation is still being processed.
    let mut in_progress = payment.clone();
    in_progress.requested_cancels.push(CancelEntry {
        pg_tid: None,
        amount: Amount::from_minor(4_000),
        cancelled_at: 0,
        reason: refund.reason.clone(),
        cancellation_id: Some("cancellation-1".to_owned()),
        receipt_url: None,
    });
    *gateway.lookup.lock().unwrap() = Some(in_progress);

    // The operator resolves the review, then the merchant asks again.
    let _ = service
        .review(uid, &operator(), "PortOne shows the payment again")
        .await;
    let _ = service
        .cancel(&operator(), request(uid, 4_000), Some("second"))
        .await;
    assert_eq!(
        gateway.cancels.load(Ordering::SeqCst),
        1,
        "a second refund of 4,000 went out while PortOne was still processing the held one: \
         the review lifted the hold although the gateway it fetched shows the held refund's \
         cancellation in progress"
    );
}

/// i'mport V1 played by hand: the first lookup waits until released (an
/// operator's review whose gateway call is slow); never cancels.
struct SlowFirstLookup {
    payment: Payment,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    first: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl PaymentGateway for SlowFirstLookup {
    async fn cancel(&self, _: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        Err(GatewayError::Unreachable("not used here".into()))
    }

    async fn payment(&self, _: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        if !self.first.swap(true, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(Some(self.payment.clone()))
    }

    async fn find_payment(&self, _: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(Some(self.payment.clone()))
    }

    fn max_in_flight(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn kind(&self) -> GatewayKind {
        GatewayKind::Iamport
    }
}

#[tokio::test]
async fn a_resolution_is_recorded_on_the_review_its_operator_saw_not_on_a_later_one() {
    use refund_core::testkit::{pending_refund, review};
    use refund_core::{Actor, RefundState};

    let store = Arc::new(MemoryPaymentStore::new());
    let payment = paid_payment(&unique("order"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let uid = payment.merchant_uid.clone();
    // A first refund needs review: the payment is held.
    let first = pending_refund(&payment, 1_000, None);
    store.begin_refund(&first).await.unwrap();
    store
        .finish_refund(
            &first.id,
            first.attempt,
            &review("the first refund's numbers"),
            None,
        )
        .await
        .unwrap();
    let gateway = Arc::new(SlowFirstLookup {
        payment: payment.clone(),
        entered: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
        first: std::sync::atomic::AtomicBool::new(false),
    });
    let service = Arc::new(RefundService::new(store.clone(), gateway.clone()));

    // Alice resolves it; her gateway lookup is slow.
    let alice = {
        let service = Arc::clone(&service);
        let uid = uid.clone();
        tokio::spawn(async move {
            let alice = Actor::new("alice").unwrap();
            service
                .review(&uid, &alice, "the first refund was made in the console")
                .await
        })
    };
    gateway.entered.notified().await;
    // Meanwhile Bob resolves the same review, the payment takes a second
    // refund, and that one needs review too: held again, for a new reason.
    let bob = Actor::new("bob").unwrap();
    service
        .review(&uid, &bob, "checked the first refund")
        .await
        .unwrap();
    let second = pending_refund(&payment, 2_000, None);
    store.begin_refund(&second).await.unwrap();
    store
        .finish_refund(
            &second.id,
            second.attempt,
            &review("the second refund's numbers"),
            None,
        )
        .await
        .unwrap();

    gateway.release.notify_one();
    let answer = alice.await.unwrap();
    // Alice is told the reviews changed under her (409, the code for
    // "what you read changed"), and nothing of hers was recorded.
    match &answer {
        Err(error) => assert_eq!(
            (error.http_status(), error.code()),
            (409, "payment_out_of_sync"),
            "{error:?}"
        ),
        Ok(view) => panic!("Alice's stale resolution went through: {view:?}"),
    }
    let first_now = store.refund(&first.id).await.unwrap().unwrap();
    let first_resolution = first_now
        .state
        .review()
        .unwrap()
        .resolution
        .clone()
        .unwrap();
    assert_eq!(
        (
            first_resolution.resolved_by.as_str(),
            first_resolution.note.as_str()
        ),
        ("bob", "checked the first refund")
    );
    let second_now = store.refund(&second.id).await.unwrap().unwrap();
    let resolution = match &second_now.state {
        RefundState::NeedsReview(review) => review.resolution.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        resolution.is_none() && store.payment(&uid).await.unwrap().unwrap().on_hold,
        "the second refund's review was resolved, and its hold lifted, by a note written \
         about the first one before the second existed: {resolution:?}"
    );
}

/// The held refund's own cancellation is reported `FAILED` (it moved
/// nothing), and PortOne lists one more cancellation in progress: a console
/// refund of another amount, another reason and another id (a virtual
/// account refund can sit `REQUESTED` for days; one in a status the client
/// does not know sits there for ever). Nothing of ours can still apply, so
/// the operator who checked must be able to resolve the review (refusing
/// it, 409 `refund_in_progress`, would last as long as the unrelated
/// cancellation does).
#[tokio::test]
async fn an_unrelated_cancellation_in_progress_does_not_block_a_review() {
    let Held {
        store,
        gateway,
        service,
        payment,
        refund,
    } = held_over_an_accepted_refund().await;
    let uid = payment.merchant_uid.as_str();
    // PortOne again: ours failed; a console refund of 700 is in progress.
    let entry = |amount: i64, reason: &str, id: &str| CancelEntry {
        pg_tid: None,
        amount: Amount::from_minor(amount),
        cancelled_at: 0,
        reason: Some(reason.to_owned()),
        cancellation_id: Some(id.to_owned()),
        receipt_url: None,
    };
    let mut seen = payment.clone();
    seen.failed_cancels.push(entry(
        4_000,
        refund.reason.as_deref().unwrap(),
        "cancellation-1",
    ));
    seen.requested_cancels
        .push(entry(700, "고객센터 가상계좌 환불", "console-1"));
    *gateway.lookup.lock().unwrap() = Some(seen);
    let resolved = service
        .review(
            uid,
            &operator(),
            "ours failed at PortOne; the 700 is the console's",
        )
        .await;
    assert!(resolved.is_ok(), "{resolved:?}");
    assert!(!store.payment(uid).await.unwrap().unwrap().on_hold);
}
