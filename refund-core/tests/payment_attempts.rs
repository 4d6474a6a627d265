//! One order, several payment attempts at i'mport (an expired virtual
//! account, a declined card, then a paid card): the refund follows the paid
//! one, whatever webhooks arrive and in whatever order. The sandbox keeps
//! one payment per order, so a canned gateway plays i'mport here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refund_core::testkit::{paid_payment, unique};
use refund_core::{
    CancelCommand, CancelReceipt, Currency, GatewayError, MemoryPaymentStore, Payment,
    PaymentGateway, PaymentRef, PaymentStatus, PaymentStore, RefundService,
};

/// Answers lookups from a fixed set of payments; never cancels.
struct CannedGateway(HashMap<String, Payment>);

#[async_trait]
impl PaymentGateway for CannedGateway {
    async fn cancel(&self, _: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        Err(GatewayError::Unreachable("not used here".into()))
    }

    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        Ok(self.0.get(at.imp_uid).cloned())
    }

    async fn find_payment(&self, _: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(None)
    }

    fn max_in_flight(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn kind(&self) -> refund_core::GatewayKind {
        refund_core::GatewayKind::Iamport
    }
}

fn attempt(merchant_uid: &str, status: PaymentStatus) -> Payment {
    let mut payment = paid_payment(merchant_uid, 10_000, Currency::Krw);
    payment.status = status;
    payment
}

#[tokio::test]
async fn the_paid_attempt_wins_and_others_are_ignored() {
    let order = unique("order");
    let declined = attempt(&order, PaymentStatus::Failed);
    let paid = attempt(&order, PaymentStatus::Paid);
    let expired = attempt(&order, PaymentStatus::Ready);
    let gateway = CannedGateway(
        [&declined, &paid, &expired]
            .into_iter()
            .map(|p| (p.imp_uid.clone(), p.clone()))
            .collect(),
    );
    let store = Arc::new(MemoryPaymentStore::new());
    let service = RefundService::new(store.clone(), Arc::new(gateway));
    let stored_imp_uid = || async {
        store
            .payment(&order)
            .await
            .unwrap()
            .unwrap()
            .payment
            .imp_uid
    };

    service.refresh(&declined.imp_uid).await.unwrap();
    assert_eq!(stored_imp_uid().await, declined.imp_uid);
    // The paid attempt replaces an attempt that never got paid...
    service.refresh(&paid.imp_uid).await.unwrap();
    assert_eq!(stored_imp_uid().await, paid.imp_uid);
    // ...and no later webhook of another attempt displaces it.
    for other in [&expired, &declined] {
        service.refresh(&other.imp_uid).await.unwrap();
        assert_eq!(stored_imp_uid().await, paid.imp_uid);
    }
    let stored = store.payment(&order).await.unwrap().unwrap();
    assert_eq!(stored.payment.status, PaymentStatus::Paid);
}
