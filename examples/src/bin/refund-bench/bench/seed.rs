//! The payments refunds are made against: paid at the sandbox, then
//! imported into the merchant server the way i'mport tells it about them,
//! through its webhook route.

use std::sync::Arc;

use iamport_sandbox::{Currency, NewPayment, Sandbox};

use super::options::Gateway;
use refund_core::BoxError;
use tokio::task::JoinSet;

/// Each seeded payment's amount in won: room for millions of refunds.
const PAYMENT_AMOUNT: i64 = 1_000_000_000;

/// Webhook deliveries in flight at once while importing.
const IMPORT_CONCURRENCY: usize = 32;

/// A payment paid at the sandbox.
#[derive(Debug, Clone)]
pub struct SeededPayment {
    /// The gateway's id.
    pub imp_uid: String,
    /// The order id refunds name.
    pub merchant_uid: String,
}

/// Pays `count` payments at the sandbox, named `{prefix}-{i}`.
pub fn pay(sandbox: &Sandbox, prefix: &str, count: u64) -> Result<Vec<SeededPayment>, BoxError> {
    (0..count)
        .map(|i| {
            let new = NewPayment::new(format!("{prefix}-{i}"), PAYMENT_AMOUNT, Currency::Krw);
            let paid = sandbox.create_payment(new)?;
            Ok(SeededPayment {
                imp_uid: paid.imp_uid,
                merchant_uid: paid.merchant_uid,
            })
        })
        .collect()
}

/// Delivers a `paid` webhook for each payment to the merchant server at
/// `base_url`, which fetches it from the gateway and stores it.
pub async fn import(
    client: &reqwest::Client,
    base_url: &str,
    payments: &[SeededPayment],
    gateway: Gateway,
) -> Result<(), BoxError> {
    let url: Arc<str> = format!("{base_url}/payments/webhook").into();
    let chunk = payments.len().div_ceil(IMPORT_CONCURRENCY).max(1);
    let mut deliveries = JoinSet::new();
    for share in payments.chunks(chunk) {
        let (client, url, share) = (client.clone(), Arc::clone(&url), share.to_vec());
        deliveries.spawn(async move {
            for payment in share {
                let notice = match gateway {
                    Gateway::Iamport => serde_json::json!({
                        "imp_uid": payment.imp_uid,
                        "merchant_uid": payment.merchant_uid,
                        "status": "paid",
                    }),
                    Gateway::Portone => serde_json::json!({
                        "type": "Transaction.Paid",
                        "timestamp": "2026-01-01T00:00:00Z",
                        "data": {
                            "paymentId": payment.merchant_uid,
                            "transactionId": payment.imp_uid,
                        },
                    }),
                };
                let answer = client.post(&*url).json(&notice).send().await?;
                if !answer.status().is_success() {
                    let status = answer.status();
                    let body = answer.text().await.unwrap_or_default();
                    return Err(BoxError::from(format!(
                        "importing {} failed: HTTP {status}: {body}",
                        payment.merchant_uid
                    )));
                }
            }
            Ok(())
        });
    }
    while let Some(delivered) = deliveries.join_next().await {
        delivered??;
    }
    Ok(())
}
