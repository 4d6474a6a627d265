//! The sweep pages through stale pending refunds: asynchronous cancels that
//! stay pending for hours must not keep a newer refund that timed out (and
//! did apply) out of every batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use refund_core::testkit::{paid_payment, unique, ManualClock};
use refund_core::{
    Amount, CancelCommand, CancelEntry, CancelOutcome, CancelReceipt, CancelRequest, Currency,
    GatewayError, GatewayKind, MemoryPaymentStore, Payment, PaymentGateway, PaymentRef,
    PaymentStore, RefundService, RefundStatus,
};

/// A V2-like gateway: orders in `asynchronous` take every cancel as
/// `REQUESTED` and keep it in progress; any other order applies the cancel
/// but its answer never comes back (a timeout).
struct Gateway {
    payments: Mutex<HashMap<String, Payment>>,
    asynchronous: Vec<String>,
}

impl Gateway {
    fn entry(command: &CancelCommand, id: &str) -> CancelEntry {
        CancelEntry {
            pg_tid: None,
            amount: command.amount,
            cancelled_at: 1_764_000_100,
            reason: command.reason.clone(),
            cancellation_id: Some(id.to_owned()),
            receipt_url: None,
        }
    }
}

#[async_trait]
impl PaymentGateway for Gateway {
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        let mut payments = self.payments.lock().unwrap();
        let payment = payments.get_mut(&command.merchant_uid).unwrap();
        let id = unique("c");
        if self.asynchronous.contains(&command.merchant_uid) {
            payment.requested_cancels.push(Self::entry(command, &id));
            return Ok(CancelReceipt::Accepted {
                cancellation_id: id,
            });
        }
        payment.cancel_amount = payment.cancel_amount.checked_add(command.amount).unwrap();
        payment.cancel_history.push(Self::entry(command, &id));
        Err(GatewayError::Unknown("timed out".into()))
    }

    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        Ok(self.payments.lock().unwrap().get(at.merchant_uid).cloned())
    }

    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(self.payments.lock().unwrap().get(merchant_uid).cloned())
    }

    fn max_in_flight(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn kind(&self) -> GatewayKind {
        GatewayKind::Portone
    }
}

fn request(merchant_uid: &str) -> CancelRequest {
    serde_json::from_value(serde_json::json!({
        "merchant_uid": merchant_uid, "cancel_request_amount": 1000, "reason": "test",
    }))
    .unwrap()
}

#[tokio::test]
async fn long_pending_asynchronous_cancels_do_not_starve_a_newer_stale_refund() {
    let asynchronous: Vec<String> = (0..3).map(|i| unique(&format!("async-{i}"))).collect();
    let late = unique("late");
    let orders: Vec<String> = asynchronous.iter().cloned().chain([late.clone()]).collect();
    let payments: HashMap<String, Payment> = orders
        .iter()
        .map(|o| (o.clone(), paid_payment(o, 10_000, Currency::Krw)))
        .collect();
    let gateway = Arc::new(Gateway {
        payments: Mutex::new(payments.clone()),
        asynchronous: asynchronous.clone(),
    });
    let clock = Arc::new(ManualClock::now());
    let store = Arc::new(MemoryPaymentStore::with_clock(clock.clone()));
    for payment in payments.values() {
        store.apply_snapshot(payment).await.unwrap();
    }
    let service = RefundService::new(store.clone(), gateway.clone()).sweep_batch(2);
    // The asynchronous cancels first (the oldest), then the one that timed out.
    for order in &orders {
        let outcome = service
            .cancel(&refund_core::testkit::operator(), request(order), None)
            .await
            .unwrap();
        assert!(matches!(outcome, CancelOutcome::Pending(_)), "{outcome:?}");
        clock.advance(Duration::from_millis(5));
    }
    clock.advance(Duration::from_secs(3_600));
    let status_of_late = || async { store.refunds_of(&late, 1).await.unwrap()[0].status() };
    // Two sweeps of two go through all four: the late one is settled.
    for _ in 0..2 {
        service.sweep().await.unwrap();
    }
    assert_eq!(status_of_late().await, RefundStatus::Succeeded);
    let stored = store.payment(&late).await.unwrap().unwrap();
    assert_eq!(stored.payment.cancel_amount, Amount::from_minor(1000));
    // The asynchronous ones stay pending, and sweeps keep coming round.
    for order in &asynchronous {
        assert_eq!(
            store.refunds_of(order, 1).await.unwrap()[0].status(),
            RefundStatus::Pending
        );
    }
    let mut examined = 0;
    for _ in 0..3 {
        examined += service.sweep().await.unwrap().examined;
    }
    assert_eq!(examined, 2 + 1 + 2, "pages of two, then round again");
}
