//! A verdict is about one attempt of a refund: the attempt that was pending
//! when the gateway was asked. A refund run again meanwhile (the same row,
//! a new attempt just sent) must not take the verdict reached about the
//! attempt before it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refund_core::testkit::{failed, paid_payment, pending_refund, unique, ManualClock};
use refund_core::{
    Actor, Amount, CancelCommand, CancelReceipt, Currency, FailureKind, GatewayError, GatewayKind,
    MemoryPaymentStore, Payment, PaymentGateway, PaymentRef, PaymentStore, PendingCursor, Refund,
    RefundCursor, RefundFilter, RefundId, RefundPage, RefundService, RefundState, RefundStatus,
    Settlement, StoreError, StoredPayment,
};
use tokio::sync::Notify;

/// The gateway shows the payment as paid, with no cancellation: none of
/// the refund's amount moved (yet).
struct Untouched(Payment);

#[async_trait]
impl PaymentGateway for Untouched {
    async fn cancel(&self, _: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        Err(GatewayError::Unknown("not used by this test".into()))
    }

    async fn payment(&self, _: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        Ok(Some(self.0.clone()))
    }

    async fn find_payment(&self, _: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(Some(self.0.clone()))
    }

    fn max_in_flight(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn kind(&self) -> GatewayKind {
        GatewayKind::Iamport
    }
}

/// Delegates to a memory store; the first `finish_refund` once armed waits
/// (after the verdict was reached, before it is written) until released.
struct PausedFinish {
    inner: Arc<MemoryPaymentStore>,
    armed: AtomicBool,
    reached: Notify,
    release: Notify,
}

#[async_trait]
impl PaymentStore for PausedFinish {
    async fn now_ms(&self) -> Result<i64, StoreError> {
        self.inner.now_ms().await
    }

    async fn payment(&self, merchant_uid: &str) -> Result<Option<StoredPayment>, StoreError> {
        self.inner.payment(merchant_uid).await
    }

    async fn apply_snapshot(&self, snapshot: &Payment) -> Result<StoredPayment, StoreError> {
        self.inner.apply_snapshot(snapshot).await
    }

    async fn begin_refund(&self, refund: &Refund) -> Result<(), StoreError> {
        self.inner.begin_refund(refund).await
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        attempt: u32,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Settlement, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
        self.inner.finish_refund(id, attempt, state, snapshot).await
    }

    async fn retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: Amount,
        checksum: Amount,
    ) -> Result<Refund, StoreError> {
        self.inner
            .retry_refund(id, base_cancel_amount, checksum)
            .await
    }

    async fn note_cancellation_id(
        &self,
        id: &RefundId,
        attempt: u32,
        cancellation_id: &str,
    ) -> Result<Refund, StoreError> {
        self.inner
            .note_cancellation_id(id, attempt, cancellation_id)
            .await
    }

    async fn resolve_review(
        &self,
        merchant_uid: &str,
        open_reviews: &[RefundId],
        by: &Actor,
        note: &str,
        snapshot: Option<&Payment>,
    ) -> Result<StoredPayment, StoreError> {
        self.inner
            .resolve_review(merchant_uid, open_reviews, by, note, snapshot)
            .await
    }

    async fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        self.inner.refund(id).await
    }

    async fn refund_by_idempotency_key(&self, key: &str) -> Result<Option<Refund>, StoreError> {
        self.inner.refund_by_idempotency_key(key).await
    }

    async fn refunds_of(&self, merchant_uid: &str, limit: u32) -> Result<Vec<Refund>, StoreError> {
        self.inner.refunds_of(merchant_uid, limit).await
    }

    async fn list_refunds(
        &self,
        filter: &RefundFilter,
        limit: u32,
        cursor: Option<&RefundCursor>,
    ) -> Result<RefundPage, StoreError> {
        self.inner.list_refunds(filter, limit, cursor).await
    }

    async fn stale_pending_refunds(
        &self,
        older_than: Duration,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError> {
        self.inner
            .stale_pending_refunds(older_than, after, limit)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// The sweep reaches "not applied" about a refund's first attempt (pending
/// for an hour, nothing at the gateway). Before it writes that verdict,
/// another instance settles the first attempt the same way and the caller
/// runs the refund again (its key and body): a second attempt goes on the
/// wire. The sweep's verdict, reached before that attempt began, must not
/// fail it: the new attempt stays pending until its own in-flight bound has
/// passed.
#[tokio::test]
async fn a_verdict_about_an_earlier_attempt_does_not_settle_the_refund_run_again() {
    let clock = Arc::new(ManualClock::at(1_764_000_000_000));
    let memory = Arc::new(MemoryPaymentStore::with_clock(clock.clone()));
    let payment = paid_payment(&unique("attempts"), 10_000, Currency::Krw);
    memory.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, Some(&unique("key")));
    memory.begin_refund(&refund).await.unwrap();
    clock.advance(Duration::from_secs(3_600));

    let store = Arc::new(PausedFinish {
        inner: memory.clone(),
        armed: AtomicBool::new(true),
        reached: Notify::new(),
        release: Notify::new(),
    });
    let service = Arc::new(RefundService::new(
        store.clone(),
        Arc::new(Untouched(payment.clone())),
    ));
    let sweep = tokio::spawn({
        let service = service.clone();
        async move { service.sweep().await }
    });
    // The sweep has judged the first attempt not applied and is about to
    // write it.
    store.reached.notified().await;

    // Meanwhile: another instance settles the first attempt, and the caller
    // runs the refund again (a second attempt, sent now).
    let not_applied = failed(FailureKind::NotApplied, None::<String>, "no entry");
    memory
        .finish_refund(&refund.id, refund.attempt, &not_applied, None)
        .await
        .unwrap();
    clock.advance(Duration::from_millis(5));
    let stored = memory
        .payment(&payment.merchant_uid)
        .await
        .unwrap()
        .unwrap();
    let second = memory
        .retry_refund(
            &refund.id,
            stored.payment.cancel_amount,
            stored.payment.cancelable(),
        )
        .await
        .unwrap();
    assert_eq!(second.status(), RefundStatus::Pending);

    store.release.notify_one();
    sweep.await.unwrap().unwrap();
    let after = memory.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(
        after.status(),
        RefundStatus::Pending,
        "the attempt sent 0 s ago may still be on the wire: {after:?}"
    );
}
