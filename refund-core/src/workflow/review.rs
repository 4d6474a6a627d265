//! An operator resolves a review: the only way a hold is lifted.

use super::verdict::may_be_ours;
use super::{RefundService, Via, RECENT_REFUNDS};
use crate::actor::Actor;
use crate::error::RefundError;
use crate::listing::{RefundFilter, MAX_LIST_LIMIT};
use crate::refund::{validate_payment_id, RefundId, RefundState, RefundStatus};
use crate::store::StoreError;
use crate::view::PaymentView;

/// Longest review note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// The body of `POST {prefix}/{merchant_uid}/review`: the operator's note
/// (required). Any other field is an error.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// What the operator found or did: 1 to 500 characters.
    pub note: String,
}

impl RefundService {
    /// Resolves the review that holds `merchant_uid`, as `actor`, with the
    /// operator's `note` (1 to 500 characters, no control characters but
    /// line breaks and tabs): fetches the payment from the gateway, records
    /// `{resolved_by: actor, resolved_at, note}` on the held refund(s),
    /// applies the gateway's numbers and lifts the hold, in one atomic
    /// store write. Answers the view afterwards.
    ///
    /// A payment that is not held is [`RefundError::NotOnHold`], decided
    /// before the gateway is asked (and again, atomically, by the store:
    /// of two racing reviews one wins, the other gets `NotOnHold`).
    ///
    /// The resolution is recorded only on the reviews that were open when
    /// this call began (read before the gateway is asked): if they changed
    /// by the time the store writes (resolved by someone else, or another
    /// refund needs review now), nothing is written and the answer is
    /// [`RefundError::ReviewChanged`] (409 `payment_out_of_sync`), so a
    /// note never lands on a review that opened while it ran. The open set
    /// is read when this call begins, not when the operator's page was
    /// rendered: a review that opened between the two takes the note too.
    #[tracing::instrument(skip(self, note), fields(%actor))]
    pub async fn review(
        &self,
        merchant_uid: &str,
        actor: &Actor,
        note: &str,
    ) -> Result<PaymentView, RefundError> {
        validate_payment_id("merchant_uid", merchant_uid)?;
        validate_note(note)?;
        let stored = self
            .store
            .payment(merchant_uid)
            .await?
            .ok_or(RefundError::PaymentNotFound)?;
        if !stored.on_hold {
            return Err(RefundError::NotOnHold);
        }
        // A refund still pending could yet apply: lifting the hold now
        // would let another go out beside it (the store checks this again,
        // atomically).
        if stored.pending_refund.is_some() {
            return Err(RefundError::RefundInProgress);
        }
        // The reviews this resolution is about: the ones open now. The
        // store records it on these alone, and only if they are still
        // exactly the open ones when it writes.
        let open_reviews = self.open_reviews(merchant_uid).await?;
        let imp_uid = &stored.payment.imp_uid;
        // The gateway's numbers are what the operator resolves against; a
        // payment it no longer knows is resolved without new numbers.
        let snapshot = self
            .gateway
            .payment(super::payment_ref(&stored.payment))
            .await
            .map_err(RefundError::Gateway)?
            .filter(|p| &p.imp_uid == imp_uid);
        // The same for a cancellation the gateway is still working on that
        // could be one of ours (an asynchronous V2 cancel, perhaps the held
        // refund's own): the hold stays until it is done. One that cannot be
        // ours (a console refund of another amount, reason and id) does
        // not hold the review up, however long it stays in progress.
        let journal = match &snapshot {
            Some(p) if !p.requested_cancels.is_empty() => {
                self.store.refunds_of(merchant_uid, RECENT_REFUNDS).await?
            }
            _ => Vec::new(),
        };
        if snapshot.as_ref().is_some_and(|p| {
            p.requested_cancels
                .iter()
                .any(|cancel| may_be_ours(&journal, cancel))
        }) {
            tracing::info!(
                merchant_uid,
                "review refused: a cancellation is still in progress"
            );
            return Err(RefundError::RefundInProgress);
        }
        let after = match self
            .store
            .resolve_review(merchant_uid, &open_reviews, actor, note, snapshot.as_ref())
            .await
        {
            Err(StoreError::NotOnHold) => return Err(RefundError::NotOnHold),
            Err(StoreError::ReviewChanged) => {
                tracing::info!(
                    merchant_uid,
                    "review refused: the open reviews changed while it was resolved"
                );
                return Err(RefundError::ReviewChanged);
            }
            other => other?,
        };
        crate::metrics::settled(RefundStatus::NeedsReview.as_str(), Via::Review.as_str());
        tracing::info!(merchant_uid, "review resolved; hold lifted");
        self.view_of(&after).await
    }
}

impl RefundService {
    /// The ids of the payment's refunds that need review and have no
    /// resolution yet (every page of them).
    async fn open_reviews(&self, merchant_uid: &str) -> Result<Vec<RefundId>, RefundError> {
        let filter = RefundFilter {
            status: Some(RefundStatus::NeedsReview),
            merchant_uid: Some(merchant_uid.to_owned()),
        };
        let mut open = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .list_refunds(&filter, MAX_LIST_LIMIT, cursor.as_ref())
                .await?;
            open.extend(page.refunds.into_iter().filter_map(|refund| {
                matches!(&refund.state, RefundState::NeedsReview(review) if review.resolution.is_none())
                    .then_some(refund.id)
            }));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(open),
            }
        }
    }
}

/// Checks an operator's note: 1 to [`MAX_NOTE_CHARS`] characters, not
/// blank, no control characters but line breaks and tabs.
fn validate_note(note: &str) -> Result<(), RefundError> {
    let invalid = |m: &str| Err(RefundError::InvalidRequest(m.to_owned()));
    if note.trim().is_empty() {
        return invalid("note is required");
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return invalid("note is longer than 500 characters");
    }
    if note
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return invalid("note must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_checked() {
        assert!(validate_note("refund made in the console; checked").is_ok());
        assert!(validate_note(&"가".repeat(MAX_NOTE_CHARS)).is_ok());
        assert!(validate_note("line one\nline two").is_ok());
        for bad in ["", "   ", "a\u{0}b", &"x".repeat(MAX_NOTE_CHARS + 1)] {
            assert!(validate_note(bad).is_err(), "{bad:?}");
        }
    }
}
