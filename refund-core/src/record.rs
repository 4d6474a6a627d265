//! A refund record as the API shows it to operators: the journal row
//! without what must never leave it (the idempotency key, the request's
//! fingerprint, the refund account).

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::actor::Actor;
use crate::listing::RefundPage;
use crate::money::Currency;
use crate::refund::{FailureKind, Refund, RefundId, RefundState, RefundStatus};

/// One journal refund, for listings and the payment view: amounts in the
/// currency's major unit, times in RFC 3339 UTC.
#[derive(Debug, Clone, Serialize)]
pub struct RefundRecord {
    /// Journal id.
    pub id: RefundId,
    /// The payment's order id.
    pub merchant_uid: String,
    /// The gateway's payment id.
    pub imp_uid: String,
    /// Amount, in the major unit.
    pub amount: Box<RawValue>,
    /// ISO currency code.
    pub currency: Currency,
    /// Where it stands.
    pub status: RefundStatus,
    /// How it failed, for a failed refund; `null` otherwise.
    pub failure: Option<FailureRecord>,
    /// Its review, for a refund that needs (or needed) one; `null` otherwise.
    pub review: Option<ReviewRecord>,
    /// The reason sent to the gateway.
    pub reason: Option<String>,
    /// Who asked for it (`null` for refunds journaled before actors were).
    pub requested_by: Option<Actor>,
    /// When it began.
    pub created_at: String,
    /// Its last change.
    pub updated_at: String,
}

/// How a refund failed.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    /// What the failure proves about the money.
    pub kind: FailureKind,
    /// The gateway's code, when it gave one.
    pub code: Option<String>,
    /// The gateway's message (masked) or ours.
    pub message: String,
}

/// A refund's review and its resolution.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewRecord {
    /// What did not add up.
    pub message: String,
    /// Who resolved it; `null` while open.
    pub resolved_by: Option<Actor>,
    /// When it was resolved; `null` while open.
    pub resolved_at: Option<String>,
    /// The operator's note; `null` while open.
    pub note: Option<String>,
}

/// A page of refund records: `{refunds, next_cursor}`.
#[derive(Debug, Clone, Serialize)]
pub struct RefundList {
    /// The records, newest first.
    pub refunds: Vec<RefundRecord>,
    /// The token of the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl RefundList {
    /// The records of `page`.
    pub fn new(page: &RefundPage) -> Self {
        RefundList {
            refunds: page.refunds.iter().map(RefundRecord::new).collect(),
            next_cursor: page.next_cursor.as_ref().map(ToString::to_string),
        }
    }
}

impl RefundRecord {
    /// The record of `refund`.
    pub fn new(refund: &Refund) -> Self {
        let failure = refund.state.failure().map(|f| FailureRecord {
            kind: f.kind,
            code: f.code.clone(),
            message: f.message.clone(),
        });
        let review = match &refund.state {
            RefundState::NeedsReview(review) => {
                let resolution = review.resolution.as_ref();
                Some(ReviewRecord {
                    message: review.message.clone(),
                    resolved_by: resolution.map(|r| r.resolved_by.clone()),
                    resolved_at: resolution.map(|r| rfc3339_utc(r.resolved_at_ms)),
                    note: resolution.map(|r| r.note.clone()),
                })
            }
            _ => None,
        };
        RefundRecord {
            id: refund.id.clone(),
            merchant_uid: refund.merchant_uid.clone(),
            imp_uid: refund.imp_uid.clone(),
            amount: refund.currency.to_json(refund.amount),
            currency: refund.currency,
            status: refund.status(),
            failure,
            review,
            reason: refund.reason.clone(),
            requested_by: refund.requested_by.clone(),
            created_at: rfc3339_utc(refund.created_at_ms),
            updated_at: rfc3339_utc(refund.updated_at_ms),
        }
    }
}

/// Unix milliseconds as RFC 3339 in UTC, always to the millisecond
/// (`2026-12-01T10:28:44.120Z`, never `…44.12Z` or `…44Z`): every time
/// has the same width, so the text sorts as the times do (an operator's
/// spreadsheet, a `sort`, a string comparison). A value outside years
/// 0000-9999 shows as the epoch rather than fail an answer.
pub(crate) fn rfc3339_utc(unix_ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .filter(|at| (0..=9999).contains(&at.year()))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_764_585_724_000), "2025-12-01T10:42:04.000Z");
        assert_eq!(rfc3339_utc(1_764_585_724_120), "2025-12-01T10:42:04.120Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_utc(1_764_585_724_123), "2025-12-01T10:42:04.123Z");
        assert_eq!(rfc3339_utc(i64::MAX), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(i64::MIN), "1970-01-01T00:00:00.000Z");
    }
}
