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
//!               idempotency_key, fingerprint, refund_account_masked, status,
//!               gateway_code, gateway_message, created_at_ms, updated_at_ms }] }
//! ```
//!
//! Every amount and timestamp is a BSON `Int64` (minor units, unix
//! seconds or milliseconds): `i64` fields always serialize as `Int64`, never
//! as doubles, so amounts beyond 2^53 stay exact.

use mongodb::bson::{self, Document};
use refund_core::{
    Amount, CancelEntry, PayMethod, Payment, PaymentStatus, Refund, RefundId, RefundStatus,
    StoreError, StoredPayment,
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

/// One element of the embedded `refunds` journal.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RefundFields {
    pub(crate) id: String,
    imp_uid: String,
    amount: i64,
    base_cancel_amount: i64,
    checksum: i64,
    reason: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    /// The idempotency key, or for a refund without one a value no key can
    /// take (keys have no spaces): a unique index on it makes keys unique
    /// across payments without colliding on "no key".
    #[serde(default)]
    key_slot: String,
    fingerprint: String,
    refund_account_masked: Option<String>,
    status: String,
    gateway_code: Option<i64>,
    gateway_message: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
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

/// A payment document projected to its journal.
#[derive(Debug, Deserialize)]
pub(crate) struct JournalDocument {
    #[serde(rename = "_id")]
    pub(crate) merchant_uid: String,
    #[serde(default)]
    pub(crate) refunds: Vec<RefundFields>,
}

/// One journal element with its payment's id, as `$unwind` produces it.
#[derive(Debug, Deserialize)]
pub(crate) struct UnwoundRefund {
    #[serde(rename = "_id")]
    pub(crate) merchant_uid: String,
    pub(crate) refunds: RefundFields,
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
    /// The journal element for a new refund; its status is always `pending`,
    /// whatever the caller's struct says, because begin_refund records the
    /// write-ahead entry.
    pub(crate) fn pending(refund: &Refund) -> Self {
        Self {
            id: refund.id.as_str().to_owned(),
            imp_uid: refund.imp_uid.clone(),
            amount: refund.amount.minor(),
            base_cancel_amount: refund.base_cancel_amount.minor(),
            checksum: refund.checksum.minor(),
            reason: refund.reason.clone(),
            idempotency_key: refund.idempotency_key.clone(),
            key_slot: refund
                .idempotency_key
                .clone()
                .unwrap_or_else(|| format!(" {}", refund.id)),
            fingerprint: refund.fingerprint.clone(),
            refund_account_masked: refund.refund_account_masked.clone(),
            status: RefundStatus::Pending.as_str().to_owned(),
            gateway_code: refund.gateway_code,
            gateway_message: refund.gateway_message.clone(),
            created_at_ms: refund.created_at_ms,
            updated_at_ms: refund.updated_at_ms,
        }
    }

    pub(crate) fn to_document(&self) -> Document {
        to_document(self)
    }

    pub(crate) fn status(&self) -> Result<RefundStatus, StoreError> {
        RefundStatus::parse(&self.status).ok_or_else(|| {
            StoreError::corrupt(format!(
                "refund {:?} has unknown status {:?}",
                self.id, self.status
            ))
        })
    }

    pub(crate) fn into_refund(self, merchant_uid: String) -> Result<Refund, StoreError> {
        let status = self.status()?;
        Ok(Refund {
            id: RefundId::from_stored(self.id),
            merchant_uid,
            imp_uid: self.imp_uid,
            amount: Amount::from_minor(self.amount),
            base_cancel_amount: Amount::from_minor(self.base_cancel_amount),
            checksum: Amount::from_minor(self.checksum),
            reason: self.reason,
            idempotency_key: self.idempotency_key,
            fingerprint: self.fingerprint,
            refund_account_masked: self.refund_account_masked,
            status,
            gateway_code: self.gateway_code,
            gateway_message: self.gateway_message,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

impl JournalDocument {
    /// Every refund of the payment, as refund-core's type.
    pub(crate) fn into_refunds(self) -> Result<Vec<Refund>, StoreError> {
        let merchant_uid = self.merchant_uid;
        self.refunds
            .into_iter()
            .map(|fields| fields.into_refund(merchant_uid.clone()))
            .collect()
    }
}
