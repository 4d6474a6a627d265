//! How the workflow answers PortOne V2's typed refusals that need more than
//! "the gateway refused": a payment the gateway says is not paid is
//! `not_refundable` (422), on the first answer and on every replay.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refund_core::testkit::{paid_payment, unique};
use refund_core::{
    CancelCommand, CancelReceipt, CancelRequest, Currency, GatewayError, GatewayKind,
    MemoryPaymentStore, Payment, PaymentGateway, PaymentRef, PaymentStore, RefundError,
    RefundService,
};

/// A V2 gateway that refuses every cancel with one typed error and shows
/// the payment unchanged.
struct Refusing {
    payment: Payment,
    code: &'static str,
}

#[async_trait]
impl PaymentGateway for Refusing {
    async fn cancel(&self, _: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        Err(GatewayError::Rejected {
            code: Some(self.code.to_owned()),
            message: "refused".to_owned(),
        })
    }

    async fn payment(&self, _: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        Ok(Some(self.payment.clone()))
    }

    async fn find_payment(&self, _: &str) -> Result<Option<Payment>, GatewayError> {
        Ok(Some(self.payment.clone()))
    }

    fn max_in_flight(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn kind(&self) -> GatewayKind {
        GatewayKind::Portone
    }
}

async fn refused_with(code: &'static str) -> (RefundError, RefundError) {
    let payment = paid_payment(&unique("order"), 10_000, Currency::Krw);
    let store = Arc::new(MemoryPaymentStore::new());
    store.apply_snapshot(&payment).await.unwrap();
    let gateway = Arc::new(Refusing {
        payment: payment.clone(),
        code,
    });
    let service = RefundService::new(store, gateway);
    let request = || -> CancelRequest {
        serde_json::from_value(serde_json::json!({
            "merchant_uid": payment.merchant_uid, "cancel_request_amount": 1000
        }))
        .unwrap()
    };
    let first = service
        .cancel(&refund_core::testkit::operator(), request(), Some("key"))
        .await
        .unwrap_err();
    let replay = service
        .cancel(&refund_core::testkit::operator(), request(), Some("key"))
        .await
        .unwrap_err();
    (first, replay)
}

#[tokio::test]
async fn payment_not_paid_is_not_refundable_and_replays_so() {
    let (first, replay) = refused_with("PAYMENT_NOT_PAID").await;
    for error in [first, replay] {
        assert_eq!(error.code(), "not_refundable", "{error:?}");
        assert_eq!(error.http_status(), 422);
    }
}

#[tokio::test]
async fn other_refusals_are_gateway_rejected_with_their_type() {
    let (first, replay) = refused_with("INVALID_REQUEST").await;
    for error in [first, replay] {
        assert_eq!(error.code(), "gateway_rejected", "{error:?}");
        assert!(matches!(
            &error,
            RefundError::GatewayRejected { code: Some(code), .. } if code == "INVALID_REQUEST"
        ));
    }
}
