//! What the HTTP API answers about a payment (amounts in the major unit).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::gateway::GatewayKind;
use crate::money::Currency;
use crate::payment::StoredPayment;
use crate::record::RefundRecord;
use crate::refund::{Refund, RefundId, RefundState, RefundStatus};

/// The payment view of DESIGN.md: the payment, what is left, its history,
/// and the refund this answer is about.
#[derive(Debug, Serialize)]
pub struct PaymentView {
    /// The merchant's order id.
    pub merchant_uid: String,
    /// i'mport's id.
    pub imp_uid: String,
    /// Amount paid.
    pub amount: Box<RawValue>,
    /// Refunded so far.
    pub cancel_amount: Box<RawValue>,
    /// Still refundable.
    pub cancelable_amount: Box<RawValue>,
    /// ISO currency code.
    pub currency: Currency,
    /// i'mport's status (`paid`, `cancelled`, ...).
    pub status: String,
    /// i'mport's payment method code.
    pub pay_method: String,
    /// Every cancellation, oldest first.
    pub cancel_history: Vec<CancelView>,
    /// The refund this answer is about (on `POST /cancel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundView>,
    /// Refunds whose outcome is not known yet.
    pub pending_refunds: Vec<RefundView>,
    /// True while the payment is held for review: it takes no refund until
    /// an operator resolves the review.
    pub on_hold: bool,
    /// What the held refund's review says did not add up; `null` when not
    /// held.
    pub hold_reason: Option<String>,
    /// The gateway API the payment is refunded through.
    pub gateway: GatewayKind,
    /// The payment's refund journal, newest first (up to 50 records).
    pub refunds: Vec<RefundRecord>,
}

/// One cancellation in the view.
#[derive(Debug, Serialize)]
pub struct CancelView {
    /// The journal refund this cancellation is credited to; `null` for a
    /// refund made outside this service (the gateway's console, another
    /// system) or one not yet reconciled.
    pub refund_id: Option<RefundId>,
    /// Amount cancelled.
    pub amount: Box<RawValue>,
    /// Reason given.
    pub reason: Option<String>,
    /// Unix seconds.
    pub cancelled_at: i64,
    /// The PG's cancellation id.
    pub pg_tid: Option<String>,
    /// Receipt.
    pub receipt_url: Option<String>,
}

/// A refund in the view.
#[derive(Debug, Clone, Serialize)]
pub struct RefundView {
    /// Journal id.
    pub id: RefundId,
    /// Amount, in the major unit.
    pub amount: Box<RawValue>,
    /// Where it stands.
    pub status: RefundStatus,
}

impl RefundView {
    /// The view of `refund` in `currency`.
    pub fn new(refund: &Refund, currency: Currency) -> Self {
        RefundView {
            id: refund.id.clone(),
            amount: currency.to_json(refund.amount),
            status: refund.status(),
        }
    }
}

impl PaymentView {
    /// The view of `stored` given its recent refunds, newest first (the
    /// pending one among them): pending refunds are listed, each
    /// cancellation is matched to the refund credited with it, and a hold
    /// is explained by the review that placed it.
    pub fn new(stored: &StoredPayment, refunds: &[Refund], gateway: GatewayKind) -> Self {
        let payment = &stored.payment;
        let currency = payment.currency;
        let credited = |entry: &crate::payment::CancelEntry| {
            let id = crate::workflow::entry_id(entry)?;
            refunds
                .iter()
                .find(|r| {
                    r.status() == RefundStatus::Succeeded && r.state.cancellation_id() == Some(id)
                })
                .map(|r| r.id.clone())
        };
        PaymentView {
            merchant_uid: payment.merchant_uid.clone(),
            imp_uid: payment.imp_uid.clone(),
            amount: currency.to_json(payment.amount),
            cancel_amount: currency.to_json(payment.cancel_amount),
            cancelable_amount: currency.to_json(payment.cancelable()),
            currency,
            status: payment.status.as_str().to_owned(),
            pay_method: payment.pay_method.as_str().to_owned(),
            cancel_history: payment
                .cancel_history
                .iter()
                .map(|c| CancelView {
                    refund_id: credited(c),
                    amount: currency.to_json(c.amount),
                    reason: c.reason.clone(),
                    cancelled_at: c.cancelled_at,
                    pg_tid: c.pg_tid.clone(),
                    receipt_url: c.receipt_url.clone(),
                })
                .collect(),
            refund: None,
            pending_refunds: refunds
                .iter()
                .filter(|r| r.status() == RefundStatus::Pending)
                .map(|r| RefundView::new(r, currency))
                .collect(),
            on_hold: stored.on_hold,
            hold_reason: stored.on_hold.then(|| hold_reason(refunds)),
            gateway,
            refunds: refunds
                .iter()
                .take(VIEW_REFUNDS)
                .map(RefundRecord::new)
                .collect(),
        }
    }

    /// Adds the refund this answer is about.
    #[must_use]
    pub fn with_refund(mut self, refund: &Refund) -> Self {
        self.refund = Some(RefundView::new(refund, self.currency));
        self
    }
}

/// How many refund records the view lists.
const VIEW_REFUNDS: usize = 50;

/// Why a held payment is held: the newest open review's message.
fn hold_reason(refunds: &[Refund]) -> String {
    refunds
        .iter()
        .find_map(|r| match &r.state {
            RefundState::NeedsReview(review) if review.resolution.is_none() => {
                Some(review.message.clone())
            }
            _ => None,
        })
        // The review is older than the refunds read: say what holds it.
        .unwrap_or_else(|| "a refund of this payment needs review".to_owned())
}
