//! Settling refunds from what the gateway shows (protocol steps 6 and 8):
//! every path hands its evidence to [`decide`] and records the verdict here.

use super::verdict::{decide, Context, Evidence, Verdict};
use super::{RefundService, Via, RECENT_REFUNDS};
use crate::error::RefundError;
use crate::gateway::GatewayError;
use crate::payment::Payment;
use crate::refund::{Failure, FailureKind, Refund, RefundState};
use crate::store::{Settlement, StoreError};

impl RefundService {
    /// Fetches the refund's payment from the gateway, lets it settle what
    /// it proves, and returns the refund afterwards (still pending while it
    /// may be on the wire).
    pub(super) async fn reconcile_with_gateway(
        &self,
        refund: &Refund,
        via: Via,
    ) -> Result<Refund, RefundError> {
        // Read before the lookup: a verdict that the refund is no longer on
        // the wire must hold for the moment the gateway was asked.
        let now_ms = self.store.now_ms().await?;
        let snapshot = self
            .gateway
            .payment(super::refund_ref(refund))
            .await
            .map_err(RefundError::Gateway)?;
        if snapshot
            .as_ref()
            .is_some_and(|s| s.imp_uid != refund.imp_uid)
        {
            return Err(RefundError::Gateway(GatewayError::InvalidResponse(
                "the gateway answered with another payment".into(),
            )));
        }
        if let Some(snapshot) = &snapshot {
            self.store.apply_snapshot(snapshot).await?;
        }
        let refunds = self
            .judge(
                &refund.merchant_uid,
                snapshot.as_ref(),
                Some(now_ms),
                via,
                None,
            )
            .await?;
        match refunds.into_iter().find(|r| r.id == refund.id) {
            Some(after) => Ok(after),
            // Older than the refunds reconciliation reads: as it was.
            None => Ok(self
                .store
                .refund(&refund.id)
                .await?
                .unwrap_or_else(|| refund.clone())),
        }
    }

    /// Lets one gateway lookup of a payment (`None`: the gateway does not
    /// know it) settle every recent refund of it that it can speak for: the
    /// pending one, and refunds failed as `not_applied` that it shows
    /// applied after all. Oldest first, so each cancel entry is credited to
    /// one refund at most. Returns the refunds afterwards, newest first.
    ///
    /// `now_ms` is the store's clock read *before* the lookup was sent, so
    /// "no longer on the wire" holds for the lookup too; `None` (a webhook,
    /// which pays for no clock read) lets the lookup credit refunds but not
    /// fail them. `skip` leaves one refund out (the one whose own answer
    /// is being judged).
    pub(super) async fn judge(
        &self,
        merchant_uid: &str,
        lookup: Option<&Payment>,
        now_ms: Option<i64>,
        via: Via,
        skip: Option<&crate::refund::RefundId>,
    ) -> Result<Vec<Refund>, RefundError> {
        let mut refunds = self.store.refunds_of(merchant_uid, RECENT_REFUNDS).await?;
        if !refunds.iter().any(open_to_evidence) {
            return Ok(refunds);
        }
        let journal: Vec<String> = refunds.iter().map(|r| r.id.as_str().to_owned()).collect();
        let journal: Vec<&str> = journal.iter().map(String::as_str).collect();
        let mut claimed: Vec<String> = refunds
            .iter()
            .filter_map(|r| r.state.cancellation_id().map(str::to_owned))
            .collect();
        for refund in refunds.iter_mut().rev() {
            if !open_to_evidence(refund) || Some(&refund.id) == skip {
                continue;
            }
            let own = refund.state.cancellation_id();
            let others: Vec<&str> = claimed
                .iter()
                .map(String::as_str)
                .filter(|id| Some(*id) != own)
                .collect();
            let context = Context {
                now_ms,
                in_flight: self.settle_after,
                claimed: &others,
                journal: &journal,
            };
            let evidence = Evidence::Lookup {
                payment: lookup,
                answered: false,
            };
            let verdict = decide(refund, evidence, context);
            if let Verdict::Settle(state) = &verdict {
                if let Some(id) = state.cancellation_id() {
                    claimed.push(id.to_owned());
                }
            }
            *refund = self.apply_verdict(refund, verdict, lookup, via).await?;
        }
        Ok(refunds)
    }

    /// Records a verdict on `refund`'s current attempt (as `refund` was
    /// read: the attempt the verdict was reached about), with the gateway's
    /// `snapshot` when there is one. If someone else settled that attempt
    /// first, or the refund was run again since, what is stored stands and
    /// is returned.
    pub(super) async fn apply_verdict(
        &self,
        refund: &Refund,
        verdict: Verdict,
        snapshot: Option<&Payment>,
        via: Via,
    ) -> Result<Refund, RefundError> {
        self.record_verdict(refund, verdict, snapshot, via)
            .await
            .map(|recorded| recorded.refund)
    }

    /// [`apply_verdict`](Self::apply_verdict), also giving what the store
    /// returned when this call settled the refund (its payment and recent
    /// refunds afterwards, for an answer that reads nothing again).
    pub(super) async fn record_verdict(
        &self,
        refund: &Refund,
        verdict: Verdict,
        snapshot: Option<&Payment>,
        via: Via,
    ) -> Result<Recorded, RefundError> {
        let state = match verdict {
            Verdict::Settle(state) => state,
            Verdict::Await(cancellation_id) => {
                if let Some(snapshot) = snapshot {
                    self.store.apply_snapshot(snapshot).await?;
                }
                return self.note_accepted(refund, &cancellation_id).await;
            }
            Verdict::Unchanged => {
                if let Some(snapshot) = snapshot {
                    self.store.apply_snapshot(snapshot).await?;
                }
                return Ok(Recorded::unchanged(refund.clone()));
            }
        };
        match self
            .store
            .finish_refund(&refund.id, refund.attempt, &state, snapshot)
            .await
        {
            Ok(settlement) => {
                log_settlement(refund, &settlement.refund, via);
                Ok(Recorded {
                    refund: settlement.refund.clone(),
                    settlement: Some(settlement),
                })
            }
            // Someone settled it first, or ran it again after the attempt
            // this verdict is about (a verdict about an earlier attempt says
            // nothing about the one now on the wire): what is stored stands.
            Err(StoreError::NotPending(_) | StoreError::AttemptChanged { .. }) => {
                if let Some(snapshot) = snapshot {
                    self.store.apply_snapshot(snapshot).await?;
                }
                self.store
                    .refund(&refund.id)
                    .await?
                    .map(Recorded::unchanged)
                    .ok_or_else(|| RefundError::Internal("a settled refund vanished".into()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Step 4's asynchronous case: records the id the gateway took the
    /// refund under on its pending journal row (the strongest evidence
    /// later). If that write fails the refund is still pending and its
    /// reason still names it, so it is only logged.
    async fn note_accepted(
        &self,
        refund: &Refund,
        cancellation_id: &str,
    ) -> Result<Recorded, RefundError> {
        match self
            .store
            .note_cancellation_id(&refund.id, refund.attempt, cancellation_id)
            .await
        {
            Ok(noted) => Ok(Recorded {
                refund: noted,
                settlement: None,
            }),
            // Settled, or run again, since this attempt was accepted: the
            // id names that attempt's cancellation, not the current one.
            Err(StoreError::NotPending(_) | StoreError::AttemptChanged { .. }) => self
                .store
                .refund(&refund.id)
                .await?
                .map(|refund| Recorded {
                    refund,
                    settlement: None,
                })
                .ok_or_else(|| RefundError::Internal("a pending refund vanished".into())),
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, %error, "could not record the gateway's cancellation id; the refund's reason still names it");
                Ok(Recorded {
                    refund: Refund {
                        state: RefundState::Pending {
                            cancellation_id: Some(cancellation_id.to_owned()),
                        },
                        ..refund.clone()
                    },
                    settlement: None,
                })
            }
        }
    }
}

/// A refund after a verdict was recorded.
#[derive(Debug)]
pub(super) struct Recorded {
    /// The refund as stored.
    pub(super) refund: Refund,
    /// What `finish_refund` returned, when this verdict settled it.
    pub(super) settlement: Option<Settlement>,
}

impl Recorded {
    fn unchanged(refund: Refund) -> Self {
        Recorded {
            refund,
            settlement: None,
        }
    }
}

/// A refund evidence can still change: pending, or failed as not applied.
fn open_to_evidence(refund: &Refund) -> bool {
    matches!(
        &refund.state,
        RefundState::Pending { .. }
            | RefundState::Failed(Failure {
                kind: FailureKind::NotApplied,
                ..
            })
    )
}

fn log_settlement(before: &Refund, after: &Refund, via: Via) {
    let via = via.as_str();
    crate::metrics::settled(after.status().as_str(), via);
    match (&before.state, &after.state) {
        (RefundState::Failed(_), RefundState::Succeeded { .. }) => tracing::error!(
            refund_id = %after.id,
            merchant_uid = %after.merchant_uid,
            via,
            "a refund settled as not applied was applied after all; it is now succeeded"
        ),
        (_, RefundState::NeedsReview(review)) => tracing::error!(
            refund_id = %after.id,
            merchant_uid = %after.merchant_uid,
            via,
            "refund needs review: {}",
            review.message
        ),
        (_, state) => tracing::info!(
            refund_id = %after.id,
            status = %state.status(),
            via,
            "refund settled"
        ),
    }
}
