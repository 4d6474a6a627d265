//! Settling pending refunds from the gateway's numbers (protocol steps 6 and 8).

use super::{duration_ms, RefundService};
use crate::clock::now_ms;
use crate::error::RefundError;
use crate::payment::Payment;
use crate::refund::{Refund, RefundOutcome, RefundStatus};
use crate::store::StoreError;

impl RefundService {
    /// Fetches the refund's payment from the gateway and settles the refund.
    pub(super) async fn reconcile_with_gateway(
        &self,
        refund: &Refund,
    ) -> Result<Refund, RefundError> {
        let snapshot = self
            .gateway
            .payment(&refund.imp_uid)
            .await
            .map_err(RefundError::Gateway)?;
        match snapshot {
            Some(snapshot) if snapshot.imp_uid != refund.imp_uid => Err(RefundError::Gateway(
                crate::gateway::GatewayError::InvalidResponse(
                    "the gateway answered with another payment".into(),
                ),
            )),
            Some(snapshot) => self.reconcile(refund, &snapshot).await,
            None => {
                let message = "the gateway no longer knows this payment".to_owned();
                tracing::error!(refund_id = %refund.id, merchant_uid = %refund.merchant_uid, "{message}");
                self.finish(refund, RefundOutcome::NeedsReview { message }, None)
                    .await
            }
        }
    }

    /// Settles a pending `refund` against a fresh gateway `snapshot`.
    ///
    /// At most one refund per payment is pending, so the gateway's total
    /// tells the story: `base + amount` means it happened. Once the refund
    /// can no longer be on the wire, `base` means it did not, and anything
    /// else cannot be explained and goes to review. Returns the refund
    /// afterwards (still pending while it may be in flight).
    pub(super) async fn reconcile(
        &self,
        refund: &Refund,
        snapshot: &Payment,
    ) -> Result<Refund, RefundError> {
        if refund.status != RefundStatus::Pending {
            return Ok(refund.clone());
        }
        if snapshot.imp_uid != refund.imp_uid {
            // Another attempt of the order says nothing about this refund.
            return Ok(refund.clone());
        }
        let applied = refund.base_cancel_amount.checked_add(refund.amount);
        let young = now_ms() - refund.created_at_ms < duration_ms(self.settle_after);
        let outcome = if Some(snapshot.cancel_amount) == applied {
            RefundOutcome::Succeeded
        } else if young {
            // It may still be on the wire, and its own answer will settle
            // it: only a gateway total that shows it applied is conclusive.
            self.store.apply_snapshot(snapshot).await?;
            return Ok(refund.clone());
        } else if snapshot.cancel_amount == refund.base_cancel_amount {
            RefundOutcome::Failed {
                code: None,
                message: "the gateway never applied this refund".to_owned(),
            }
        } else {
            let currency = snapshot.currency;
            let message = format!(
                "gateway cancel_amount {} is neither {} (refund not applied) nor {} (applied)",
                currency.format_major(snapshot.cancel_amount),
                currency.format_major(refund.base_cancel_amount),
                applied.map_or_else(|| "overflow".to_owned(), |a| currency.format_major(a)),
            );
            tracing::error!(
                refund_id = %refund.id,
                merchant_uid = %refund.merchant_uid,
                "refund needs review: {message}"
            );
            RefundOutcome::NeedsReview { message }
        };
        self.finish(refund, outcome, Some(snapshot)).await
    }

    /// Records how a pending refund ended. If someone else settled it
    /// first, their verdict stands and is returned.
    pub(super) async fn finish(
        &self,
        refund: &Refund,
        outcome: RefundOutcome,
        snapshot: Option<&Payment>,
    ) -> Result<Refund, RefundError> {
        match self
            .store
            .finish_refund(&refund.id, &outcome, snapshot, now_ms())
            .await
        {
            Ok(settled) => {
                tracing::info!(refund_id = %refund.id, status = %settled.status, "refund settled");
                Ok(settled)
            }
            Err(StoreError::NotPending(_)) => {
                if let Some(snapshot) = snapshot {
                    self.store.apply_snapshot(snapshot).await?;
                }
                self.store
                    .refund(&refund.id)
                    .await?
                    .ok_or_else(|| RefundError::Internal("a settled refund vanished".into()))
            }
            Err(error) => Err(error.into()),
        }
    }
}
