//! `POST /cancel`: protocol steps 1 to 7.

use time::{OffsetDateTime, UtcOffset};

use super::{duration_ms, RefundService};
use crate::clock::now_ms;
use crate::error::RefundError;
use crate::gateway::{CancelCommand, GatewayError};
use crate::masking::mask_gateway_message;
use crate::payment::{PayMethod, Payment, PaymentStatus, StoredPayment};
use crate::refund::{
    validate_idempotency_key, CancelRequest, Refund, RefundId, RefundOutcome, RefundStatus,
    RequestAmounts, ValidRequest,
};
use crate::store::StoreError;
use crate::view::{PaymentView, RefundView};

/// What a cancel request achieved.
#[derive(Debug)]
pub enum CancelOutcome {
    /// The gateway refunded it: the payment afterwards, with the refund.
    Refunded(PaymentView),
    /// The outcome is not known yet (timeout, 5xx): the refund is journaled
    /// as pending and will be reconciled (HTTP 202).
    Pending(RefundView),
}

impl RefundService {
    /// Refunds (part of) a payment, safely: at most one refund per payment
    /// in flight, journaled before the gateway is called, never more than
    /// what is left, replayed for a repeated `idempotency_key`.
    #[tracing::instrument(skip_all, fields(merchant_uid = %request.merchant_uid, refund_id))]
    pub async fn cancel(
        &self,
        request: CancelRequest,
        idempotency_key: Option<&str>,
    ) -> Result<CancelOutcome, RefundError> {
        let request = request.validate()?;
        if let Some(key) = idempotency_key {
            validate_idempotency_key(key)?;
        }
        // A concurrent refund may settle between our read and our write;
        // one fresh read is enough to see its result.
        for _ in 0..2 {
            match self.begin(&request, idempotency_key).await {
                Ok(Begun {
                    refund,
                    payment,
                    send: Some(command),
                }) => return self.execute(refund, &payment, command).await,
                Ok(Begun {
                    refund,
                    payment,
                    send: None,
                }) => return self.replay(refund, &payment).await,
                Err(Retry::Stale) => continue,
                Err(Retry::No(error)) => return Err(error),
            }
        }
        Err(RefundError::RefundInProgress)
    }

    /// Steps 1, 2 and 7: validate against the payment and journal the refund.
    async fn begin(&self, request: &ValidRequest, key: Option<&str>) -> Result<Begun, Retry> {
        let stored = self
            .store
            .payment(&request.merchant_uid)
            .await?
            .ok_or(RefundError::PaymentNotFound)?;
        let amounts = request.amounts(stored.payment.currency)?;
        let fingerprint = request.fingerprint(&amounts);
        if let Some(existing) = self.by_key(key, &fingerprint).await? {
            return Ok(Begun::existing(existing, stored.payment));
        }
        let current = stored.payment.clone();
        let stored = match self.settle_pending_before_refund(stored).await {
            // The pending refund may be a twin request with this very key
            // that began after our lookup: replay it rather than refuse.
            Err(Retry::No(RefundError::RefundInProgress)) => {
                match self.by_key(key, &fingerprint).await? {
                    Some(existing) => return Ok(Begun::existing(existing, current)),
                    None => return Err(RefundError::RefundInProgress.into()),
                }
            }
            other => other?,
        };
        let payment = stored.payment;
        let amount = check_refundable(&payment, request, &amounts)?;
        let now = now_ms();
        let refund = Refund {
            id: RefundId::generate(),
            merchant_uid: payment.merchant_uid.clone(),
            imp_uid: payment.imp_uid.clone(),
            amount,
            base_cancel_amount: payment.cancel_amount,
            checksum: payment.cancelable(),
            reason: request.reason.clone(),
            idempotency_key: key.map(str::to_owned),
            fingerprint: fingerprint.clone(),
            refund_account_masked: request
                .account
                .as_ref()
                .map(|a| crate::refund::mask_account(&a.account)),
            status: RefundStatus::Pending,
            gateway_code: None,
            gateway_message: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        match self.store.begin_refund(&refund).await {
            Ok(()) => {
                tracing::Span::current().record("refund_id", tracing::field::display(&refund.id));
                let command = CancelCommand {
                    imp_uid: refund.imp_uid.clone(),
                    merchant_uid: refund.merchant_uid.clone(),
                    amount: refund.amount,
                    checksum: refund.checksum,
                    tax_free: amounts.tax_free,
                    vat_amount: amounts.vat_amount,
                    reason: refund.reason.clone(),
                    account: request.account.clone(),
                    currency: payment.currency,
                };
                Ok(Begun {
                    refund,
                    payment,
                    send: Some(command),
                })
            }
            Err(StoreError::CancelAmountChanged) => Err(Retry::Stale),
            Err(StoreError::RefundInProgress | StoreError::IdempotencyKeyTaken) => {
                // A twin request with the same key may have won the race.
                match self.by_key(key, &fingerprint).await? {
                    Some(existing) => Ok(Begun::existing(existing, payment)),
                    None => Err(RefundError::RefundInProgress.into()),
                }
            }
            Err(error) => Err(RefundError::from(error).into()),
        }
    }

    /// The refund already made under `key`, if the request matches it (the
    /// fingerprint covers the order id: a key reused for another payment is
    /// a different request).
    async fn by_key(
        &self,
        key: Option<&str>,
        fingerprint: &str,
    ) -> Result<Option<Refund>, RefundError> {
        let Some(key) = key else { return Ok(None) };
        match self.store.refund_by_idempotency_key(key).await? {
            Some(existing) if existing.fingerprint != fingerprint => {
                Err(RefundError::IdempotencyKeyReused)
            }
            existing => Ok(existing),
        }
    }

    /// Reconciliation before a new refund: an old pending refund is settled
    /// from the gateway; a young one may still be on the wire, so the new
    /// request waits its turn (no gateway call).
    async fn settle_pending_before_refund(
        &self,
        stored: StoredPayment,
    ) -> Result<StoredPayment, Retry> {
        let Some(pending_id) = &stored.pending_refund else {
            return Ok(stored);
        };
        let Some(pending) = self.store.refund(pending_id).await? else {
            return Err(RefundError::Internal(
                "a pending refund is missing from the journal".into(),
            )
            .into());
        };
        if now_ms() - pending.created_at_ms < duration_ms(self.settle_after) {
            return Err(RefundError::RefundInProgress.into());
        }
        let settled = self.reconcile_with_gateway(&pending).await?;
        if settled.status == RefundStatus::Pending {
            return Err(RefundError::RefundInProgress.into());
        }
        Err(Retry::Stale)
    }

    /// Steps 3 to 6: call the gateway and record what it said.
    ///
    /// Once the gateway has been called, a store failure can no longer mean
    /// "nothing happened": the refund stays pending in the journal and the
    /// answer is 202, for reconciliation to settle.
    async fn execute(
        &self,
        refund: Refund,
        payment: &Payment,
        command: CancelCommand,
    ) -> Result<CancelOutcome, RefundError> {
        let pending = CancelOutcome::Pending(RefundView::new(&refund, payment.currency));
        let answer = match self.gateway.cancel(&command).await {
            Ok(after) => self.record_success(&refund, after).await,
            Err(GatewayError::Rejected { code, message }) => {
                // A PG may echo the refund account, holder or phone we sent:
                // masked here, before the message is logged, stored or answered.
                let message = mask_gateway_message(&message, command.account.as_ref());
                tracing::warn!(refund_id = %refund.id, ?code, "i'mport refused the refund");
                self.record_rejection(&refund, code, message).await
            }
            Err(error) if error.is_definite() => {
                tracing::warn!(refund_id = %refund.id, %error, "refund not sent");
                let outcome = RefundOutcome::Failed {
                    code: None,
                    message: error.to_string(),
                };
                self.finish(&refund, outcome, None)
                    .await
                    .map(|_| Err(RefundError::Gateway(error)))
            }
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, %error, "refund outcome unknown; left pending");
                return Ok(pending);
            }
        };
        answer.unwrap_or_else(|error| {
            tracing::error!(
                refund_id = %refund.id,
                error = %error_chain(&error),
                "could not record the gateway's answer; the refund stays pending"
            );
            Ok(pending)
        })
    }

    /// Step 4, checked: the gateway's payment must be ours and must show
    /// exactly this refund on top of what we based it on (i'mport cancels
    /// everything when it misreads an amount). Anything else goes to review.
    async fn record_success(
        &self,
        refund: &Refund,
        after: Payment,
    ) -> Result<Result<CancelOutcome, RefundError>, RefundError> {
        let ours = after.imp_uid == refund.imp_uid && after.merchant_uid == refund.merchant_uid;
        let expected = refund.base_cancel_amount.checked_add(refund.amount);
        let outcome = if !ours {
            RefundOutcome::NeedsReview {
                message: format!(
                    "i'mport confirmed the cancel of another payment ({})",
                    after.imp_uid
                ),
            }
        } else if Some(after.cancel_amount) != expected {
            RefundOutcome::NeedsReview {
                message: format!(
                    "i'mport confirmed the refund but its cancel_amount is {}",
                    after.currency.format_major(after.cancel_amount)
                ),
            }
        } else {
            RefundOutcome::Succeeded
        };
        if let RefundOutcome::NeedsReview { message } = &outcome {
            tracing::error!(refund_id = %refund.id, merchant_uid = %refund.merchant_uid, "refund needs review: {message}");
        }
        let settled = self.finish(refund, outcome, ours.then_some(&after)).await?;
        if settled.status == RefundStatus::Failed {
            // Reconciliation gave up on it before the answer came: the
            // journal contradicts the gateway. The snapshot above already
            // put the money right; an operator must fix the record.
            tracing::error!(refund_id = %refund.id, "i'mport confirmed a refund the journal had marked failed");
        }
        let stored = self
            .store
            .payment(&refund.merchant_uid)
            .await?
            .ok_or(RefundError::PaymentNotFound)?;
        let view = self.view_of(&stored).await?;
        Ok(Ok(CancelOutcome::Refunded(view.with_refund(&settled))))
    }

    /// Step 5: i'mport refused. Its numbers tell why: unchanged means a
    /// plain refusal; showing this refund means it happened after all (an
    /// operator must look; the client must not retry); anything else means
    /// our copy was stale (a checksum mismatch): re-sync and say so.
    async fn record_rejection(
        &self,
        refund: &Refund,
        code: Option<i64>,
        message: String,
    ) -> Result<Result<CancelOutcome, RefundError>, RefundError> {
        let failed = RefundOutcome::Failed {
            code,
            message: message.clone(),
        };
        let snapshot = match self.gateway.payment(&refund.imp_uid).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::warn!(%error, "could not re-read the payment after a refusal");
                None
            }
        };
        let Some(snapshot) = snapshot else {
            self.finish(refund, failed, None).await?;
            return Ok(Err(RefundError::GatewayRejected { code, message }));
        };
        if snapshot.cancel_amount == refund.base_cancel_amount {
            self.finish(refund, failed, Some(&snapshot)).await?;
            Ok(Err(RefundError::GatewayRejected { code, message }))
        } else if Some(snapshot.cancel_amount)
            == refund.base_cancel_amount.checked_add(refund.amount)
        {
            let message = "i'mport refused the refund but shows it applied".to_owned();
            tracing::error!(refund_id = %refund.id, "refund needs review: {message}");
            self.finish(
                refund,
                RefundOutcome::NeedsReview { message },
                Some(&snapshot),
            )
            .await?;
            Ok(Err(RefundError::OnHold))
        } else {
            self.finish(refund, failed, Some(&snapshot)).await?;
            Ok(Err(RefundError::PaymentOutOfSync))
        }
    }

    /// Step 7: the stored outcome of an earlier request with the same key.
    /// An old pending one is reconciled first; if the gateway cannot be
    /// asked, it is still pending.
    async fn replay(
        &self,
        refund: Refund,
        payment: &Payment,
    ) -> Result<CancelOutcome, RefundError> {
        let refund = if refund.status == RefundStatus::Pending
            && now_ms() - refund.created_at_ms >= duration_ms(self.settle_after)
        {
            match self.reconcile_with_gateway(&refund).await {
                Ok(settled) => settled,
                Err(error) => {
                    tracing::warn!(refund_id = %refund.id, %error, "could not reconcile a replayed refund");
                    refund
                }
            }
        } else {
            refund
        };
        self.outcome_of(refund, payment).await
    }

    /// The answer for a refund in its current state.
    async fn outcome_of(
        &self,
        refund: Refund,
        payment: &Payment,
    ) -> Result<CancelOutcome, RefundError> {
        match refund.status {
            RefundStatus::Succeeded => {
                let stored = self
                    .store
                    .payment(&refund.merchant_uid)
                    .await?
                    .ok_or(RefundError::PaymentNotFound)?;
                let view = self.view_of(&stored).await?;
                Ok(CancelOutcome::Refunded(view.with_refund(&refund)))
            }
            RefundStatus::Pending => Ok(CancelOutcome::Pending(RefundView::new(
                &refund,
                payment.currency,
            ))),
            RefundStatus::Failed => Err(match refund.gateway_code {
                Some(code) => RefundError::GatewayRejected {
                    code: Some(code),
                    message: refund.gateway_message.unwrap_or_default(),
                },
                None => RefundError::Gateway(GatewayError::Rejected {
                    code: None,
                    message: refund.gateway_message.unwrap_or_default(),
                }),
            }),
            RefundStatus::NeedsReview => Err(RefundError::OnHold),
        }
    }
}

/// A journaled refund and the payment it was checked against.
struct Begun {
    refund: Refund,
    payment: Payment,
    /// The cancel to send; `None` for the refund an earlier request with the
    /// same key made, whose stored outcome is replayed.
    send: Option<CancelCommand>,
}

impl Begun {
    fn existing(refund: Refund, payment: Payment) -> Self {
        Begun {
            refund,
            payment,
            send: None,
        }
    }
}

/// Why `begin` stopped: a stale read worth one retry, or a final error.
enum Retry {
    Stale,
    No(RefundError),
}

impl<E: Into<RefundError>> From<E> for Retry {
    fn from(error: E) -> Self {
        Retry::No(error.into())
    }
}

/// Steps 1's checks that need the payment; returns the amount to refund.
fn check_refundable(
    payment: &Payment,
    request: &ValidRequest,
    amounts: &RequestAmounts,
) -> Result<crate::money::Amount, RefundError> {
    let cancelable = payment.cancelable();
    if !cancelable.is_positive() {
        return Err(RefundError::AlreadyRefunded);
    }
    if payment.status != PaymentStatus::Paid {
        return Err(RefundError::NotRefundable(format!(
            "the payment is {}, not paid",
            payment.status
        )));
    }
    if payment.pay_method == PayMethod::Vbank && request.account.is_none() {
        return Err(RefundError::RefundAccountRequired);
    }
    let amount = amounts.amount.unwrap_or(cancelable);
    if amount > cancelable {
        return Err(RefundError::AmountExceedsCancelable {
            cancelable: payment.currency.format_major(cancelable),
        });
    }
    amounts.check_parts(amount)?;
    if payment.pay_method == PayMethod::Phone && !same_kst_month(payment.paid_at, now_ms() / 1000) {
        return Err(RefundError::NotRefundable(
            "phone payments can only be refunded in the month they were paid (KST)".to_owned(),
        ));
    }
    Ok(amount)
}

/// An error and its sources, for logs.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// True when both unix times fall in the same calendar month in Korea (UTC+9).
fn same_kst_month(a: i64, b: i64) -> bool {
    let kst = UtcOffset::from_hms(9, 0, 0).expect("UTC+9 is a valid offset");
    let month = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .map(|d| d.to_offset(kst))
            .map(|d| (d.year(), d.month()))
    };
    matches!((month(a), month(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::same_kst_month;

    #[test]
    fn kst_months_split_at_korean_midnight() {
        // 2026-01-31 14:59:59 UTC is 23:59:59 KST; one second later is February in Korea.
        let last_january_second = 1_769_871_599;
        assert!(same_kst_month(
            last_january_second - 86_400 * 10,
            last_january_second
        ));
        assert!(!same_kst_month(
            last_january_second,
            last_january_second + 1
        ));
    }
}
