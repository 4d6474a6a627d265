//! `POST /cancel`: protocol steps 1 to 7.

use time::{OffsetDateTime, UtcOffset};

use super::reconcile::Recorded;
use super::verdict::{
    decide, rerun_proof, sent_reason, Context, Evidence, Others, RerunProof, Verdict,
};
use super::{RefundService, Via};
use crate::actor::Actor;
use crate::error::RefundError;
use crate::gateway::{CancelCommand, CancelReceipt, GatewayError, RefusalMeaning};
use crate::masking::mask_gateway_message;
use crate::payment::{PayMethod, Payment, PaymentStatus, StoredPayment};
use crate::refund::{
    validate_idempotency_key, CancelRequest, Failure, FailureKind, Refund, RefundId, RefundState,
    RefundStatus, RequestAmounts, Review, ValidRequest,
};
use crate::store::{Settlement, StoreError};
use crate::view::{PaymentView, RefundView};

/// What a cancel request achieved.
#[derive(Debug)]
pub enum CancelOutcome {
    /// The gateway refunded it: the payment afterwards, with the refund
    /// (boxed: a view with its journal is much larger than a pending answer).
    Refunded(Box<PaymentView>),
    /// The outcome is not known yet (timeout, 5xx): the refund is journaled
    /// as pending and will be reconciled (HTTP 202).
    Pending(RefundView),
}

impl RefundService {
    /// Refunds (part of) a payment, safely: at most one refund per payment
    /// in flight, journaled before the gateway is called, never more than
    /// what is left, replayed for a repeated `idempotency_key`. The journal
    /// records `actor` as the refund's `requested_by`.
    #[tracing::instrument(skip_all, fields(merchant_uid = %request.merchant_uid, %actor, refund_id))]
    pub async fn cancel(
        &self,
        actor: &Actor,
        request: CancelRequest,
        idempotency_key: Option<&str>,
    ) -> Result<CancelOutcome, RefundError> {
        let request = request.validate_for(self.gateway.kind())?;
        if let Some(key) = idempotency_key {
            validate_idempotency_key(key)?;
        }
        // A concurrent refund may settle between our read and our write;
        // one fresh read is enough to see its result.
        for _ in 0..2 {
            match self.begin(actor, &request, idempotency_key).await {
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
    async fn begin(
        &self,
        actor: &Actor,
        request: &ValidRequest,
        key: Option<&str>,
    ) -> Result<Begun, Retry> {
        let stored = self
            .store
            .payment(&request.merchant_uid)
            .await?
            .ok_or(RefundError::PaymentNotFound)?;
        let amounts = request.amounts(stored.payment.currency)?;
        let fingerprint = request.fingerprint(&amounts);
        match self.by_key(key, &fingerprint).await? {
            Keyed::Replay(existing) => return Ok(Begun::existing(existing, stored.payment)),
            Keyed::Rerun(existing) => return self.rerun(existing, request, &amounts).await,
            Keyed::New => {}
        }
        let current = stored.payment.clone();
        let stored = match self.settle_pending_before_refund(stored).await {
            // The pending refund may be a twin request with this very key
            // that began after our lookup: replay it rather than refuse.
            Err(Retry::No(RefundError::RefundInProgress)) => {
                match self.by_key(key, &fingerprint).await? {
                    Keyed::Replay(existing) => return Ok(Begun::existing(existing, current)),
                    _ => return Err(RefundError::RefundInProgress.into()),
                }
            }
            other => other?,
        };
        let payment = stored.payment;
        // The phone rule is a deadline: it reads the store's clock, and
        // only phone payments pay for that read.
        let now_ms = match payment.pay_method {
            PayMethod::Phone => Some(self.store.now_ms().await?),
            _ => None,
        };
        let amount = check_refundable(&payment, request, &amounts, now_ms)?;
        let id = RefundId::generate();
        // The reason travels to the gateway's cancel history: naming the
        // refund in it makes its entry evidence for this refund alone (an
        // operator's console refund of the same amount, even with the same
        // canned reason, cannot pass for it; nor can another refund whose
        // client reason mentions this one's id).
        let reason = sent_reason(&id, request.reason.as_deref());
        let refund = Refund {
            id,
            merchant_uid: payment.merchant_uid.clone(),
            imp_uid: payment.imp_uid.clone(),
            currency: payment.currency,
            amount,
            base_cancel_amount: payment.cancel_amount,
            checksum: payment.cancelable(),
            reason: Some(reason),
            idempotency_key: key.map(str::to_owned),
            fingerprint: fingerprint.clone(),
            refund_account_masked: request
                .account
                .as_ref()
                .map(|a| crate::refund::mask_account(&a.account)),
            requested_by: Some(actor.clone()),
            state: RefundState::PENDING,
            // Stamped by the store's clock.
            created_at_ms: 0,
            attempt_started_at_ms: 0,
            attempt: crate::refund::FIRST_ATTEMPT,
            updated_at_ms: 0,
        };
        match self.store.begin_refund(&refund).await {
            Ok(()) => {
                tracing::Span::current().record("refund_id", tracing::field::display(&refund.id));
                Ok(Begun::to_send(refund, payment, request, &amounts))
            }
            Err(StoreError::CancelAmountChanged) => Err(Retry::Stale),
            Err(StoreError::RefundInProgress | StoreError::IdempotencyKeyTaken) => {
                // A twin request with the same key may have won the race.
                match self.by_key(key, &fingerprint).await? {
                    Keyed::Replay(existing) => Ok(Begun::existing(existing, payment)),
                    _ => Err(RefundError::RefundInProgress.into()),
                }
            }
            Err(error) => Err(RefundError::from(error).into()),
        }
    }

    /// Step 7 for a refund that provably changed nothing: the same request
    /// runs it again, as the same journal row (same id, so the same reason:
    /// evidence of every attempt names this one refund).
    ///
    /// An earlier attempt may have applied after all (a lagging lookup, a
    /// gateway that kept working; a `not_sent` row may have had a
    /// `not_applied` attempt before it), so one lookup first, whatever the
    /// kind. If it shows the refund, it is credited and replayed; if it
    /// shows an entry of its amount that names neither it nor another
    /// refund of the payment, nothing is proven either way and an operator
    /// must look (review); if it is older than the refund's base, nothing
    /// is proven yet (409, try again). Only when it proves no entry of its
    /// amount came since the refund began but other refunds' (credited to
    /// them, or naming them) does it run again, against that very lookup's
    /// totals: the store must still hold exactly them, so the checksum sent
    /// is the one the proof was made on (and, one pending refund per
    /// payment, a still pending other refund makes it 409 instead).
    async fn rerun(
        &self,
        existing: Refund,
        request: &ValidRequest,
        amounts: &RequestAmounts,
    ) -> Result<Begun, Retry> {
        let lookup = self
            .gateway
            .payment(super::refund_ref(&existing))
            .await
            .map_err(RefundError::Gateway)?
            .filter(|p| p.imp_uid == existing.imp_uid);
        if let Some(lookup) = &lookup {
            self.store.apply_snapshot(lookup).await?;
        }
        let refunds = self
            .judge(
                &existing.merchant_uid,
                lookup.as_ref(),
                None,
                Via::NextRefund,
                None,
            )
            .await?;
        let current = refunds
            .iter()
            .find(|r| r.id == existing.id)
            .cloned()
            .unwrap_or(existing);
        if !current.state.frees_its_key() {
            let payment = self.current_payment(&current.merchant_uid).await?;
            return Ok(Begun::existing(current, payment));
        }
        let claimed: Vec<&str> = refunds
            .iter()
            .filter(|r| r.id != current.id)
            .filter_map(|r| r.state.cancellation_id())
            .collect();
        let journal: Vec<&str> = refunds.iter().map(|r| r.id.as_str()).collect();
        let others = Others {
            claimed: &claimed,
            journal: &journal,
        };
        let proof = lookup
            .as_ref()
            .map_or(RerunProof::Ambiguous, |p| rerun_proof(&current, p, others));
        match (proof, lookup) {
            (RerunProof::NothingMoved, Some(lookup)) => {
                self.reopen(current, &lookup, request, amounts).await
            }
            (RerunProof::NotYet, _) => Err(RefundError::RefundInProgress.into()),
            (_, lookup) => {
                let review = RefundState::NeedsReview(Review::new(
                    "a retry found the gateway showing a cancel of this refund's amount \
                     that names no refund of the payment (or no longer knowing the payment): \
                     applied with a changed reason, or made outside",
                ));
                let held = self
                    .apply_verdict(
                        &current,
                        Verdict::Settle(review),
                        lookup.as_ref(),
                        Via::NextRefund,
                    )
                    .await?;
                let payment = self.current_payment(&held.merchant_uid).await?;
                Ok(Begun::existing(held, payment))
            }
        }
    }

    /// Re-opens `refund` as pending against `proved`, the gateway's payment
    /// that proved it changed nothing (the store must still hold exactly
    /// its totals, or the retry is stale).
    async fn reopen(
        &self,
        refund: Refund,
        proved: &Payment,
        request: &ValidRequest,
        amounts: &RequestAmounts,
    ) -> Result<Begun, Retry> {
        let payment = self.current_payment(&refund.merchant_uid).await?;
        if payment.cancel_amount != proved.cancel_amount {
            // Someone stored newer (or other) numbers meanwhile: prove again.
            return Err(Retry::Stale);
        }
        let now_ms = match payment.pay_method {
            PayMethod::Phone => Some(self.store.now_ms().await?),
            _ => None,
        };
        // The amount the refund was for, whatever "no amount" means now.
        let same = RequestAmounts {
            amount: Some(refund.amount),
            ..*amounts
        };
        check_refundable(&payment, request, &same, now_ms)?;
        match self
            .store
            .retry_refund(&refund.id, proved.cancel_amount, proved.cancelable())
            .await
        {
            Ok(refund) => {
                tracing::Span::current().record("refund_id", tracing::field::display(&refund.id));
                tracing::info!(refund_id = %refund.id, "running a refund that changed nothing again");
                Ok(Begun::to_send(refund, payment, request, amounts))
            }
            Err(StoreError::CancelAmountChanged) => Err(Retry::Stale),
            // A twin retry re-opened it first: replay that one.
            Err(StoreError::RefundInProgress | StoreError::NotPending(_)) => {
                match self.store.refund(&refund.id).await? {
                    Some(current) if !current.state.frees_its_key() => {
                        Ok(Begun::existing(current, payment))
                    }
                    _ => Err(RefundError::RefundInProgress.into()),
                }
            }
            Err(error) => Err(RefundError::from(error).into()),
        }
    }

    async fn current_payment(&self, merchant_uid: &str) -> Result<Payment, RefundError> {
        Ok(self
            .store
            .payment(merchant_uid)
            .await?
            .ok_or(RefundError::PaymentNotFound)?
            .payment)
    }

    /// What `key` says about this request (the fingerprint covers the
    /// order id: a key reused for another payment is a different request):
    /// nothing yet, a refund to replay, or a refund that provably changed
    /// nothing (`not_sent`, `not_applied`) and so did not spend the key: the
    /// same request runs it again.
    async fn by_key(&self, key: Option<&str>, fingerprint: &str) -> Result<Keyed, RefundError> {
        let Some(key) = key else {
            return Ok(Keyed::New);
        };
        Ok(match self.store.refund_by_idempotency_key(key).await? {
            None => Keyed::New,
            Some(existing) if existing.fingerprint != fingerprint => {
                return Err(RefundError::IdempotencyKeyReused)
            }
            Some(existing) if existing.state.frees_its_key() => Keyed::Rerun(existing),
            Some(existing) => Keyed::Replay(existing),
        })
    }

    /// Reconciliation before a new refund: a pending refund that may still
    /// be on the wire (by the store's clock) makes the new request wait its
    /// turn, with no gateway call; an older one is settled from the gateway.
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
        if !self.past_in_flight(&pending).await? {
            return Err(RefundError::RefundInProgress.into());
        }
        let settled = self
            .reconcile_with_gateway(&pending, Via::NextRefund)
            .await?;
        if settled.status() == RefundStatus::Pending {
            return Err(RefundError::RefundInProgress.into());
        }
        Err(Retry::Stale)
    }

    /// Steps 3 to 6: call the gateway and let [`decide`] judge its answer.
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
        let pending = || CancelOutcome::Pending(RefundView::new(&refund, payment.currency));
        let judged = match self.gateway.cancel(&command).await {
            Ok(CancelReceipt::Applied {
                payment: after,
                cancellation_id,
            }) => {
                let snapshot = (after.imp_uid == refund.imp_uid).then_some(&after);
                let evidence = match cancellation_id.as_deref() {
                    Some(cancellation_id) => Evidence::AppliedUnder {
                        after: &after,
                        cancellation_id,
                    },
                    None => Evidence::Applied(&after),
                };
                self.settle_answer(&refund, evidence, snapshot)
                    .await
                    .map(|recorded| (recorded, None))
            }
            Ok(CancelReceipt::Accepted { cancellation_id }) => {
                // Taken, not finished (V2 `REQUESTED`, or a success whose
                // payment could not be read back): the refund stays pending
                // under the gateway's id, which credits it once a lookup
                // shows that cancellation succeeded (202 meanwhile).
                tracing::info!(refund_id = %refund.id, "the gateway accepted the refund; it settles when the cancellation completes");
                let evidence = Evidence::Accepted {
                    cancellation_id: &cancellation_id,
                };
                self.settle_answer(&refund, evidence, None)
                    .await
                    .map(|recorded| (recorded, None))
            }
            Err(GatewayError::Rejected { code, message }) => {
                // A PG may echo the refund account, holder or phone we sent:
                // masked here, before the message is logged, stored or answered.
                let message = mask_gateway_message(&message, command.account.as_ref());
                tracing::info!(refund_id = %refund.id, ?code, "the gateway refused the refund");
                self.after_rejection(&refund, code.as_deref(), &message)
                    .await
            }
            Err(error) if error.is_definite() => {
                tracing::warn!(refund_id = %refund.id, %error, "refund not sent");
                let message = error.to_string();
                let evidence = Evidence::NotSent { message: &message };
                self.settle_answer(&refund, evidence, None)
                    .await
                    .map(|recorded| (recorded, Some(RefundError::Gateway(error))))
            }
            Err(error @ GatewayError::Garbled(_)) => {
                // The gateway answered, so it is done with the request: one
                // lookup tells whether it applied, and the payment is
                // refundable again at once if it did not.
                tracing::warn!(refund_id = %refund.id, %error, "the gateway answered without a usable result; looking the payment up");
                let lookup = match self.gateway.payment(super::refund_ref(&refund)).await {
                    Ok(lookup) => lookup.filter(|p| p.imp_uid == refund.imp_uid),
                    Err(lookup_error) => {
                        tracing::warn!(refund_id = %refund.id, error = %lookup_error, "could not look the payment up; the refund stays pending");
                        return Ok(pending());
                    }
                };
                let evidence = Evidence::Lookup {
                    payment: lookup.as_ref(),
                    answered: true,
                };
                self.settle_with_lookup(&refund, evidence, lookup.as_ref())
                    .await
                    .map(|recorded| (recorded, Some(RefundError::Gateway(error))))
            }
            Err(error) => {
                // No answer: it may still be on the wire, so nothing is
                // proven and the refund stays pending (202).
                tracing::warn!(refund_id = %refund.id, %error, "refund outcome unknown; left pending");
                self.settle_answer(&refund, Evidence::NoAnswer, None)
                    .await
                    .map(|recorded| (recorded, None))
            }
        };
        let answer = match judged {
            Ok((recorded, on_failure)) => {
                self.answer(recorded.refund, payment, on_failure, recorded.settlement)
                    .await
            }
            Err(error) => Err(error),
        };
        match answer {
            // The journal holds the verdict; only reading it back failed.
            Err(error @ (RefundError::StorageUnavailable(_) | RefundError::Internal(_))) => {
                tracing::error!(
                    refund_id = %refund.id,
                    error = %error_chain(&error),
                    "could not record or read back the gateway's answer; reconciliation will settle it"
                );
                Ok(pending())
            }
            other => other,
        }
    }

    /// Step 5: the gateway refused. The payment, looked up, tells why: our
    /// copy was stale (its total moved: re-synced, `payment_out_of_sync`)
    /// or a plain refusal (`gateway_rejected`); and [`decide`] puts a
    /// refusal the gateway's history contradicts up for review.
    async fn after_rejection(
        &self,
        refund: &Refund,
        code: Option<&str>,
        message: &str,
    ) -> Result<(Recorded, Option<RefundError>), RefundError> {
        let lookup = match self.gateway.payment(super::refund_ref(refund)).await {
            Ok(lookup) => lookup.filter(|p| p.imp_uid == refund.imp_uid),
            Err(error) => {
                tracing::warn!(%error, "could not re-read the payment after a refusal");
                None
            }
        };
        let evidence = Evidence::Rejected {
            code,
            message,
            after: lookup.as_ref(),
        };
        let recorded = self
            .settle_with_lookup(refund, evidence, lookup.as_ref())
            .await?;
        let stale = lookup
            .as_ref()
            .is_some_and(|after| after.cancel_amount != refund.base_cancel_amount);
        let rejected = matches!(
            &recorded.refund.state,
            RefundState::Failed(Failure {
                kind: FailureKind::Rejected,
                ..
            })
        );
        let answer = match (rejected, stale, RefusalMeaning::of(code)) {
            (false, _, _) => None,
            (true, true, _) => Some(RefundError::PaymentOutOfSync),
            (true, false, RefusalMeaning::NotPaid) => Some(not_paid()),
            (true, false, RefusalMeaning::Refused) => None,
        };
        Ok((recorded, answer))
    }

    /// Judges the cancel call's own answer and records the verdict, with
    /// no clock (an answered call is not on the wire) and no claims: the
    /// success answer's entry is the one whose reason names the refund, or
    /// the first of its amount after its base, and the checksum guarantees
    /// no other refund's entry can sit there (a refund applied after our
    /// base would have failed our checksum). No journal read on this path.
    async fn settle_answer(
        &self,
        refund: &Refund,
        evidence: Evidence<'_>,
        snapshot: Option<&Payment>,
    ) -> Result<Recorded, RefundError> {
        let none = Others {
            claimed: &[],
            journal: &[],
        };
        self.settle_claimed(refund, evidence, snapshot, none).await
    }

    /// Judges an answer that came with a lookup of the payment (a refusal,
    /// an answered 5xx). The lookup may show other open refunds of the
    /// payment applied late (`not_applied` ones): those are judged first,
    /// so their entries are theirs, and this refund is judged against what
    /// they do not claim.
    async fn settle_with_lookup(
        &self,
        refund: &Refund,
        evidence: Evidence<'_>,
        lookup: Option<&Payment>,
    ) -> Result<Recorded, RefundError> {
        let others = self
            .judge(
                &refund.merchant_uid,
                lookup,
                None,
                Via::Answer,
                Some(&refund.id),
            )
            .await?;
        let claimed: Vec<&str> = others
            .iter()
            .filter(|r| r.id != refund.id)
            .filter_map(|r| r.state.cancellation_id())
            .collect();
        let journal: Vec<&str> = others.iter().map(|r| r.id.as_str()).collect();
        let others = Others {
            claimed: &claimed,
            journal: &journal,
        };
        self.settle_claimed(refund, evidence, lookup, others).await
    }

    async fn settle_claimed(
        &self,
        refund: &Refund,
        evidence: Evidence<'_>,
        snapshot: Option<&Payment>,
        others: Others<'_>,
    ) -> Result<Recorded, RefundError> {
        let context = Context {
            now_ms: None,
            in_flight: self.settle_after,
            claimed: others.claimed,
            journal: others.journal,
        };
        let verdict = decide(refund, evidence, context);
        self.record_verdict(refund, verdict, snapshot, Via::Answer)
            .await
    }

    /// Step 7: the stored outcome of an earlier request with the same key.
    /// A pending one that can no longer be on the wire is reconciled first;
    /// if the gateway cannot be asked, it is still pending.
    async fn replay(
        &self,
        refund: Refund,
        payment: &Payment,
    ) -> Result<CancelOutcome, RefundError> {
        let refund = if refund.status() == RefundStatus::Pending
            && self.past_in_flight(&refund).await?
        {
            match self.reconcile_with_gateway(&refund, Via::NextRefund).await {
                Ok(settled) => settled,
                Err(error) => {
                    tracing::warn!(refund_id = %refund.id, %error, "could not reconcile a replayed refund");
                    refund
                }
            }
        } else {
            refund
        };
        self.answer(refund, payment, None, None).await
    }

    /// The answer for a refund in its current state; `on_failure`, when
    /// given, answers a failed one instead of what its record says (the
    /// live cause, or `payment_out_of_sync`). `settled` is what the store
    /// returned when this request settled the refund: the view is built
    /// from it, with no read; otherwise (a replay, someone else settled
    /// it) the payment and its refunds are read.
    async fn answer(
        &self,
        refund: Refund,
        payment: &Payment,
        on_failure: Option<RefundError>,
        settled: Option<Settlement>,
    ) -> Result<CancelOutcome, RefundError> {
        match (&refund.state, on_failure) {
            (RefundState::Succeeded { .. }, _) => {
                let view = match settled {
                    Some(settled) if settled.refund.id == refund.id => PaymentView::new(
                        &settled.payment,
                        &settled.recent_refunds,
                        self.gateway.kind(),
                    ),
                    _ => {
                        let stored = self
                            .store
                            .payment(&refund.merchant_uid)
                            .await?
                            .ok_or(RefundError::PaymentNotFound)?;
                        self.view_of(&stored).await?
                    }
                };
                Ok(CancelOutcome::Refunded(Box::new(view.with_refund(&refund))))
            }
            (RefundState::Pending { .. }, _) => Ok(CancelOutcome::Pending(RefundView::new(
                &refund,
                payment.currency,
            ))),
            (RefundState::Failed(_), Some(error)) => Err(error),
            (RefundState::Failed(failure), None) => {
                let message = failure.message.clone();
                let meaning = RefusalMeaning::of(failure.code.as_deref());
                Err(match failure.kind {
                    FailureKind::Rejected if meaning == RefusalMeaning::NotPaid => not_paid(),
                    FailureKind::Rejected => RefundError::GatewayRejected {
                        code: failure.code.clone(),
                        message,
                    },
                    FailureKind::NotSent => {
                        RefundError::Gateway(GatewayError::Unreachable(message.into()))
                    }
                    _ => RefundError::Gateway(GatewayError::Garbled(message.into())),
                })
            }
            _ => Err(RefundError::OnHold),
        }
    }
}

/// What an idempotency key says about a request.
enum Keyed {
    /// No refund holds it.
    New,
    /// The refund it names: its outcome is the answer.
    Replay(Refund),
    /// The refund it names changed nothing: run it again.
    Rerun(Refund),
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
    /// A journaled (or re-opened) pending refund and the cancel to send for
    /// it: always its explicit amount and balance check.
    fn to_send(
        refund: Refund,
        payment: Payment,
        request: &ValidRequest,
        amounts: &RequestAmounts,
    ) -> Self {
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
        Begun {
            refund,
            payment,
            send: Some(command),
        }
    }

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
/// `now_ms` is the store's clock, read for phone payments only.
fn check_refundable(
    payment: &Payment,
    request: &ValidRequest,
    amounts: &RequestAmounts,
    now_ms: Option<i64>,
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
    let now_s = now_ms.map(|ms| ms / 1000);
    if payment.pay_method == PayMethod::Phone
        && !now_s.is_some_and(|now| same_kst_month(payment.paid_at, now))
    {
        return Err(RefundError::NotRefundable(
            "phone payments can only be refunded in the month they were paid (KST)".to_owned(),
        ));
    }
    Ok(amount)
}

/// The answer to a refusal that says the payment is not paid.
fn not_paid() -> RefundError {
    RefundError::NotRefundable("the gateway says the payment is not paid".to_owned())
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
