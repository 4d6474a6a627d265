//! A verdict is about one attempt of a refund: the attempt that was pending
//! when the gateway was asked. A refund run again meanwhile (the same row,
//! a new attempt just sent) must not take the verdict reached about the
//! attempt before it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refund_core::testkit::{
    failed, paid_payment, pending_refund, unique, FaultyStore, ManualClock, StoreOp,
};
use refund_core::{
    CancelCommand, CancelReceipt, Currency, FailureKind, GatewayError, GatewayKind,
    MemoryPaymentStore, Payment, PaymentGateway, PaymentRef, PaymentStore, RefundService,
    RefundStatus,
};

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

    // The sweep's write of its verdict waits, after the verdict was
    // reached, until released.
    let store = Arc::new(FaultyStore::new(memory.clone()));
    let held = store.pause_next(StoreOp::FinishRefund);
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
    held.reached().await;

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

    held.release();
    sweep.await.unwrap().unwrap();
    let after = memory.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(
        after.status(),
        RefundStatus::Pending,
        "the attempt sent 0 s ago may still be on the wire: {after:?}"
    );
}
