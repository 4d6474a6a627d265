//! The shape of a payment document in the `payments` collection, and its
//! conversion from and to refund-core's types.
//!
//! One document holds everything about one payment that must change
//! together, so that a single-document update is atomic without
//! multi-document transactions:
//!
//! ```text
//! { _id: <merchant_uid>,
//!   payment: { imp_uid, pay_method, currency, amount, cancel_amount, status,
//!              paid_at, cancel_history: [{ pg_tid, amount, cancelled_at,
//!              reason, cancellation_id, receipt_url }] },
//!   pending_refund_id: <refund id> | null,
//!   on_hold: <bool>,
//!   refunds: [{ id, imp_uid, amount, base_cancel_amount, checksum, reason,
//!               idempotency_key, key_slot, fingerprint, refund_account_masked,
//!               status, failure_kind, failure_code, gateway_message,
//!               cancellation_id, requested_by, resolved_by, resolved_at_ms,
//!               review_note, created_at_ms, attempt_started_at_ms,
//!               attempt, updated_at_ms }] }
//! ```
//!
//! `created_at_ms` never changes once a refund exists (listings page on
//! it); `attempt_started_at_ms` is when its current attempt began (a
//! refund run again restarts it), absent on refunds journaled before it
//! was recorded: those began their attempt when they were journaled.
//! `attempt` counts the refund's runs (1 for the first, one more each time
//! it runs again); a settlement names the attempt it is about and applies
//! only while that attempt is the current one. Absent on refunds journaled
//! before it was counted (and on those the release before it wrote or ran
//! again): their first.
//!
//! A refund's currency is its payment's (`payment.currency`, in the same
//! document). `requested_by` is `null` on refunds journaled before actors
//! were recorded; `resolved_by`, `resolved_at_ms` and `review_note` are
//! set together, on a `needs_review` refund an operator resolved, and
//! `null` (or absent) otherwise.
//!
//! A refund's state is `status` (`pending`, `succeeded`, `failed`,
//! `needs_review`) plus, explicitly, what that state carries; every other
//! state field is `null`:
//!
//! | `status`       | fields set                                                          |
//! |----------------|---------------------------------------------------------------------|
//! | `pending`      | `cancellation_id` (string or `null`)                                 |
//! | `succeeded`    | `cancellation_id` (string or `null`)                                 |
//! | `failed`       | `failure_kind` (`rejected`, `not_sent`, `not_applied`), `failure_code` (string or `null`), `gateway_message` |
//! | `needs_review` | `gateway_message` (what did not add up)                              |
//!
//! Refunds written before the state was typed have no `failure_kind` or
//! `cancellation_id`, and an Int64 (or `null`) `gateway_code` instead of
//! `failure_code`. They are read as: `failed` with a code → `rejected` with
//! the code as text; `failed` without one → `not_applied`; `needs_review` →
//! its `gateway_message`; `pending`/`succeeded` → no `cancellation_id`. The
//! query fragments below ([`frees_its_key`], [`is_not_applied`]) decide the
//! same way, so a legacy refund behaves exactly as it reads. New writes
//! never set `gateway_code`; settling a legacy refund writes the typed
//! fields, which take precedence.
//!
//! `key_slot` is the idempotency key, or for a refund without one (or that
//! handed its key over) a value no key can take: the unique index on it
//! makes a key name one refund across payments.
//!
//! Every amount and timestamp is a BSON `Int64` (minor units, unix
//! seconds or milliseconds): `i64` fields always serialize as `Int64`, never
//! as doubles, and journal timestamps are the server's `$$NOW` converted
//! with `$toLong`, so amounts beyond 2^53 stay exact.

use mongodb::bson::{self, doc, Bson, Document};
use refund_core::{
    Actor, Amount, CancelEntry, Currency, Failure, FailureKind, PayMethod, Payment, PaymentStatus,
    Refund, RefundId, RefundState, RefundStatus, Resolution, Review, StoreError, StoredPayment,
};
use serde::{Deserialize, Serialize};

/// The gateway snapshot, stored whole under `payment`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PaymentFields {
    imp_uid: String,
    pay_method: String,
    currency: String,
    amount: i64,
    pub(crate) cancel_amount: i64,
    status: String,
    paid_at: i64,
    cancel_history: Vec<CancelFields>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CancelFields {
    pg_tid: Option<String>,
    amount: i64,
    cancelled_at: i64,
    reason: Option<String>,
    cancellation_id: Option<String>,
    receipt_url: Option<String>,
}

/// One element of the embedded `refunds` journal, as read (new refunds are
/// written by [`RefundFields::pending_document`] and settled with
/// [`state_document`]).
#[derive(Debug, Deserialize)]
pub(crate) struct RefundFields {
    pub(crate) id: String,
    imp_uid: String,
    amount: i64,
    base_cancel_amount: i64,
    checksum: i64,
    reason: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    // `key_slot` is only written and indexed, never read.
    pub(crate) fingerprint: String,
    refund_account_masked: Option<String>,
    status: String,
    /// `rejected`, `not_sent` or `not_applied`, for `failed`.
    #[serde(default)]
    failure_kind: Option<String>,
    /// The gateway's code as text, for `failed` (when it gave one).
    #[serde(default)]
    failure_code: Option<String>,
    /// The failure's or the review's message.
    #[serde(default)]
    gateway_message: Option<String>,
    /// The gateway's cancellation id, for `pending` and `succeeded`.
    #[serde(default)]
    cancellation_id: Option<String>,
    /// Legacy only (refunds settled before the state was typed): i'mport's
    /// numeric code of a failure. Read, never written.
    #[serde(default)]
    gateway_code: Option<i64>,
    /// Who asked for it.
    #[serde(default)]
    requested_by: Option<String>,
    /// A resolved review: who resolved it, when (store clock), the note.
    #[serde(default)]
    resolved_by: Option<String>,
    #[serde(default)]
    resolved_at_ms: Option<i64>,
    #[serde(default)]
    review_note: Option<String>,
    created_at_ms: i64,
    /// Absent on refunds journaled before attempts were recorded.
    #[serde(default)]
    attempt_started_at_ms: Option<i64>,
    /// Absent on refunds journaled before attempts were counted: their
    /// first.
    #[serde(default)]
    attempt: Option<i64>,
    updated_at_ms: i64,
}

/// The state fields of `state` as a document: all of them, `null` where
/// the state carries nothing, so a settled refund keeps nothing of the
/// state it left.
pub(crate) fn state_document(state: &RefundState) -> Document {
    let (mut kind, mut code, mut message, mut cancellation_id) = (None, None, None, None);
    match state {
        RefundState::Pending {
            cancellation_id: id,
        }
        | RefundState::Succeeded {
            cancellation_id: id,
        } => {
            cancellation_id = id.as_deref();
        }
        RefundState::Failed(failure) => {
            kind = Some(failure.kind.as_str());
            code = failure.code.as_deref();
            message = Some(failure.message.as_str());
        }
        RefundState::NeedsReview(review) => message = Some(review.message.as_str()),
        // refund-core's states are non-exhaustive: of a state this crate
        // does not know, only its status name is stored.
        _ => {}
    }
    // A resolution is written by resolve_review alone; a state written here
    // (a settlement) carries none.
    doc! {
        "status": state.status().as_str(),
        "failure_kind": kind,
        "failure_code": code,
        "gateway_message": message,
        "cancellation_id": cancellation_id,
        "resolved_by": Bson::Null,
        "resolved_at_ms": Bson::Null,
        "review_note": Bson::Null,
    }
}

/// Query (inside `$elemMatch` on `refunds`) for a refund whose state
/// [frees its key](RefundState::frees_its_key): failed `not_sent` or
/// `not_applied`, including legacy failures without a code (read as
/// `not_applied`).
pub(crate) fn frees_its_key() -> Document {
    doc! {
        "status": RefundStatus::Failed.as_str(),
        "$or": [
            { "failure_kind": { "$in": [
                FailureKind::NotSent.as_str(),
                FailureKind::NotApplied.as_str(),
            ] } },
            { "failure_kind": Bson::Null, "gateway_code": Bson::Null },
        ],
    }
}

/// Query (inside `$elemMatch` on `refunds`) for a refund failed as
/// `not_applied`, including legacy failures without a code.
pub(crate) fn is_not_applied() -> Document {
    doc! {
        "status": RefundStatus::Failed.as_str(),
        "$or": [
            { "failure_kind": FailureKind::NotApplied.as_str() },
            { "failure_kind": Bson::Null, "gateway_code": Bson::Null },
        ],
    }
}

/// Query (inside `$elemMatch` on `refunds`) for the value of `attempt`
/// while `attempt` is a refund's current one: a refund without the field
/// (journaled before attempts were counted) is at its first.
pub(crate) fn is_attempt(attempt: u32) -> Bson {
    if attempt == refund_core::FIRST_ATTEMPT {
        doc! { "$in": [i64::from(attempt), Bson::Null] }.into()
    } else {
        i64::from(attempt).into()
    }
}

/// A whole payment document (`refunds` may be projected away).
#[derive(Debug, Deserialize)]
pub(crate) struct PaymentDocument {
    #[serde(rename = "_id")]
    pub(crate) merchant_uid: String,
    pub(crate) payment: PaymentFields,
    #[serde(default)]
    pub(crate) pending_refund_id: Option<String>,
    #[serde(default)]
    pub(crate) on_hold: bool,
    #[serde(default)]
    pub(crate) refunds: Vec<RefundFields>,
}

/// The projection that reads a payment's journal: the refunds and the
/// payment's currency (theirs).
pub(crate) fn journal_projection() -> Document {
    doc! { "refunds": 1, "payment.currency": 1 }
}

/// The payment's currency, all a journal needs of its snapshot.
#[derive(Debug, Deserialize)]
pub(crate) struct PaymentCurrency {
    currency: String,
}

impl PaymentCurrency {
    fn parse(&self, merchant_uid: &str) -> Result<Currency, StoreError> {
        self.currency
            .parse()
            .map_err(|e| StoreError::corrupt(format!("stored payment {merchant_uid:?}: {e}")))
    }
}

/// A payment document projected to its journal ([`journal_projection`]).
#[derive(Debug, Deserialize)]
pub(crate) struct JournalDocument {
    #[serde(rename = "_id")]
    pub(crate) merchant_uid: String,
    pub(crate) payment: PaymentCurrency,
    #[serde(default)]
    pub(crate) refunds: Vec<RefundFields>,
}

/// One journal element with its payment's id and currency, as `$unwind`
/// produces it from a [`journal_projection`].
#[derive(Debug, Deserialize)]
pub(crate) struct UnwoundRefund {
    #[serde(rename = "_id")]
    merchant_uid: String,
    payment: PaymentCurrency,
    refunds: RefundFields,
}

impl UnwoundRefund {
    pub(crate) fn into_refund(self) -> Result<Refund, StoreError> {
        let currency = self.payment.parse(&self.merchant_uid)?;
        self.refunds.into_refund(self.merchant_uid, currency)
    }
}

/// Serializes one of our field structs; they hold only strings, integers,
/// booleans and nulls, so this cannot fail.
fn to_document(fields: &impl Serialize) -> Document {
    bson::to_document(fields).expect("plain fields always serialize to BSON")
}

/// Decodes a document read from the server into one of our shapes.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(document: Document) -> Result<T, StoreError> {
    bson::from_document(document)
        .map_err(|e| StoreError::corrupt(format!("malformed payment document: {e}")))
}

impl PaymentFields {
    pub(crate) fn from_payment(payment: &Payment) -> Self {
        Self {
            imp_uid: payment.imp_uid.clone(),
            pay_method: payment.pay_method.as_str().to_owned(),
            currency: payment.currency.code().to_owned(),
            amount: payment.amount.minor(),
            cancel_amount: payment.cancel_amount.minor(),
            status: payment.status.as_str().to_owned(),
            paid_at: payment.paid_at,
            cancel_history: payment
                .cancel_history
                .iter()
                .map(|entry| CancelFields {
                    pg_tid: entry.pg_tid.clone(),
                    amount: entry.amount.minor(),
                    cancelled_at: entry.cancelled_at,
                    reason: entry.reason.clone(),
                    cancellation_id: entry.cancellation_id.clone(),
                    receipt_url: entry.receipt_url.clone(),
                })
                .collect(),
        }
    }

    pub(crate) fn to_document(&self) -> Document {
        to_document(self)
    }

    /// The payment's currency.
    pub(crate) fn currency(&self) -> Result<Currency, StoreError> {
        self.currency
            .parse()
            .map_err(|e| StoreError::corrupt(format!("stored payment currency: {e}")))
    }

    fn into_payment(self, merchant_uid: String) -> Result<Payment, StoreError> {
        let currency = self
            .currency
            .parse()
            .map_err(|e| StoreError::corrupt(format!("stored payment {merchant_uid:?}: {e}")))?;
        Ok(Payment {
            imp_uid: self.imp_uid,
            merchant_uid,
            pay_method: PayMethod::from(self.pay_method.as_str()),
            currency,
            amount: Amount::from_minor(self.amount),
            cancel_amount: Amount::from_minor(self.cancel_amount),
            status: PaymentStatus::from(self.status.as_str()),
            paid_at: self.paid_at,
            cancel_history: self
                .cancel_history
                .into_iter()
                .map(|entry| CancelEntry {
                    pg_tid: entry.pg_tid,
                    amount: Amount::from_minor(entry.amount),
                    cancelled_at: entry.cancelled_at,
                    reason: entry.reason,
                    cancellation_id: entry.cancellation_id,
                    receipt_url: entry.receipt_url,
                })
                .collect(),
            // Not stored: only ever read from the gateway's own answers.
            requested_cancels: Vec::new(),
            failed_cancels: Vec::new(),
        })
    }
}

impl PaymentDocument {
    pub(crate) fn into_stored(self) -> Result<StoredPayment, StoreError> {
        Ok(StoredPayment {
            payment: self.payment.into_payment(self.merchant_uid)?,
            pending_refund: self.pending_refund_id.map(RefundId::from_stored),
            on_hold: self.on_hold,
        })
    }
}

impl RefundFields {
    /// The journal element for a new refund, without its timestamps (the
    /// update stamps the server's clock). Its state is always
    /// [`RefundState::PENDING`], whatever the caller's struct says, because
    /// begin_refund records the write-ahead entry.
    pub(crate) fn pending_document(refund: &Refund) -> Document {
        let key_slot = refund
            .idempotency_key
            .clone()
            .unwrap_or_else(|| no_key_slot(refund.id.as_str()));
        let mut document = doc! {
            "id": refund.id.as_str(),
            "imp_uid": refund.imp_uid.as_str(),
            "amount": refund.amount.minor(),
            "base_cancel_amount": refund.base_cancel_amount.minor(),
            "checksum": refund.checksum.minor(),
            "reason": refund.reason.as_deref(),
            "idempotency_key": refund.idempotency_key.as_deref(),
            "key_slot": key_slot,
            "fingerprint": refund.fingerprint.as_str(),
            "refund_account_masked": refund.refund_account_masked.as_deref(),
            "requested_by": refund.requested_by.as_ref().map(Actor::as_str),
        };
        document.extend(state_document(&RefundState::PENDING));
        document
    }

    /// The refund's current attempt: its first when it has no count
    /// (journaled before attempts were counted).
    pub(crate) fn attempt(&self) -> Result<u32, StoreError> {
        match self.attempt {
            None => Ok(refund_core::FIRST_ATTEMPT),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n >= refund_core::FIRST_ATTEMPT)
                .ok_or_else(|| {
                    StoreError::corrupt(format!("refund {:?} has attempt {n}", self.id))
                }),
        }
    }

    /// The refund's state, legacy shapes included.
    pub(crate) fn state(&self) -> Result<RefundState, StoreError> {
        let id = &self.id;
        let corrupt = |what: String| StoreError::corrupt(format!("refund {id:?} {what}"));
        let status = RefundStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("has unknown status {:?}", self.status)))?;
        let message = || {
            self.gateway_message
                .clone()
                .ok_or_else(|| corrupt(format!("is {status} without a message")))
        };
        Ok(match status {
            RefundStatus::Pending => RefundState::Pending {
                cancellation_id: self.cancellation_id.clone(),
            },
            RefundStatus::Succeeded => RefundState::Succeeded {
                cancellation_id: self.cancellation_id.clone(),
            },
            RefundStatus::Failed => {
                let (kind, code) = match (&self.failure_kind, self.gateway_code) {
                    (Some(kind), _) => {
                        let kind = FailureKind::parse(kind)
                            .ok_or_else(|| corrupt(format!("has unknown failure kind {kind:?}")))?;
                        (kind, self.failure_code.clone())
                    }
                    // Legacy: i'mport answered with a code, so it refused.
                    (None, Some(code)) => (FailureKind::Rejected, Some(code.to_string())),
                    // Legacy: no answer was recorded; nothing was applied.
                    (None, None) => (FailureKind::NotApplied, None),
                };
                RefundState::Failed(Failure {
                    kind,
                    code,
                    message: message()?,
                })
            }
            RefundStatus::NeedsReview => RefundState::NeedsReview(Review {
                message: message()?,
                resolution: match (&self.resolved_by, self.resolved_at_ms, &self.review_note) {
                    (Some(by), Some(at), Some(note)) => Some(Resolution {
                        resolved_by: Actor::from_stored(by.clone()),
                        resolved_at_ms: at,
                        note: note.clone(),
                    }),
                    (None, None, None) => None,
                    _ => return Err(corrupt("has a review resolution with missing parts".into())),
                },
            }),
            _ => return Err(corrupt(format!("has unsupported status {status}"))),
        })
    }

    pub(crate) fn into_refund(
        self,
        merchant_uid: String,
        currency: Currency,
    ) -> Result<Refund, StoreError> {
        let state = self.state()?;
        let attempt = self.attempt()?;
        Ok(Refund {
            id: RefundId::from_stored(self.id),
            merchant_uid,
            imp_uid: self.imp_uid,
            currency,
            amount: Amount::from_minor(self.amount),
            base_cancel_amount: Amount::from_minor(self.base_cancel_amount),
            checksum: Amount::from_minor(self.checksum),
            reason: self.reason,
            idempotency_key: self.idempotency_key,
            fingerprint: self.fingerprint,
            refund_account_masked: self.refund_account_masked,
            requested_by: self.requested_by.map(Actor::from_stored),
            state,
            created_at_ms: self.created_at_ms,
            // A refund without one (journaled before it was recorded) began
            // its attempt when it was journaled; releases before it also
            // restamped that time when they ran a refund again, so the
            // later of the two is the attempt's start either way.
            attempt_started_at_ms: self
                .attempt_started_at_ms
                .map_or(self.created_at_ms, |at| at.max(self.created_at_ms)),
            attempt,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// The `key_slot` of a refund that holds no key: a leading space, which no
/// idempotency key has, then the refund's id (unique).
pub(crate) fn no_key_slot(refund_id: &str) -> String {
    format!(" {refund_id}")
}

impl JournalDocument {
    /// Every refund of the payment, as refund-core's type.
    pub(crate) fn into_refunds(self) -> Result<Vec<Refund>, StoreError> {
        let merchant_uid = self.merchant_uid;
        let currency = self.payment.parse(&merchant_uid)?;
        self.refunds
            .into_iter()
            .map(|fields| fields.into_refund(merchant_uid.clone(), currency))
            .collect()
    }
}
