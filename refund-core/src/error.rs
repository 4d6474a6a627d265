//! The workflow's errors, each with a stable code and HTTP status.

use crate::gateway::GatewayError;
use crate::refund::RequestError;
use crate::store::{BoxError, StoreError};

/// Why a refund (or a view or sync) did not go through.
///
/// [`code`](Self::code) and [`http_status`](Self::http_status) are the
/// public contract (DESIGN.md's error table); the `Display` text is a
/// human-readable message that never contains secrets or account numbers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefundError {
    /// Malformed request; the message names the field.
    #[error("{0}")]
    InvalidRequest(String),
    /// A virtual-account payment needs the refund account.
    #[error("virtual-account refunds need refund_holder, refund_bank and refund_account")]
    RefundAccountRequired,
    /// No such payment.
    #[error("payment not found")]
    PaymentNotFound,
    /// Nothing left to refund.
    #[error("this payment has already been fully refunded")]
    AlreadyRefunded,
    /// More than what is left was asked for.
    #[error("the amount exceeds the cancelable amount ({cancelable})")]
    AmountExceedsCancelable {
        /// What is left, in the major unit.
        cancelable: String,
    },
    /// Another refund of the payment is pending.
    #[error("another refund of this payment is in progress")]
    RefundInProgress,
    /// A refund of the payment needs review; an operator must resolve it.
    #[error("a refund of this payment needs review; an operator must resolve the review first")]
    OnHold,
    /// A review was asked for a payment that is not held.
    #[error("this payment is not held for review")]
    NotOnHold,
    /// The idempotency key was used for a different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// Our copy of the payment was stale; it has been re-synced.
    #[error("the payment changed at the gateway; it has been re-synced, please retry")]
    PaymentOutOfSync,
    /// The reviews of a held payment changed while an operator resolved
    /// them (resolved by someone else, or a newer refund needs review):
    /// nothing was recorded. Code `payment_out_of_sync`: what the caller
    /// read changed under it; look at the payment again.
    #[error("the payment's review changed while it was being resolved (resolved by someone else, or another refund needs review); nothing was recorded: look at the payment again")]
    ReviewChanged,
    /// The payment cannot be refunded (not paid, or a phone payment of an
    /// earlier month).
    #[error("{0}")]
    NotRefundable(String),
    /// The gateway refused the cancel.
    #[error("the gateway refused the refund")]
    GatewayRejected {
        /// The gateway's code (V1's numeric `code`, V2's error `type`).
        code: Option<String>,
        /// The gateway's (or the PG's) message, masked.
        message: String,
    },
    /// The gateway was unreachable, or answered without applying the refund
    /// (one lookup proved it); nothing happened.
    #[error("the gateway was unreachable or did not apply the refund; nothing was refunded")]
    Gateway(#[source] GatewayError),
    /// The database is down; no gateway call was made.
    #[error("storage is unavailable; nothing was refunded")]
    StorageUnavailable(#[source] StoreError),
    /// A bug or a backend failure; details are logged, never shown.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl RefundError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            RefundError::InvalidRequest(_) => "invalid_request",
            RefundError::RefundAccountRequired => "refund_account_required",
            RefundError::PaymentNotFound => "payment_not_found",
            RefundError::AlreadyRefunded => "already_refunded",
            RefundError::AmountExceedsCancelable { .. } => "amount_exceeds_cancelable",
            RefundError::RefundInProgress | RefundError::OnHold => "refund_in_progress",
            RefundError::NotOnHold => "not_on_hold",
            RefundError::IdempotencyKeyReused => "idempotency_key_reused",
            RefundError::PaymentOutOfSync | RefundError::ReviewChanged => "payment_out_of_sync",
            RefundError::NotRefundable(_) => "not_refundable",
            RefundError::GatewayRejected { .. } => "gateway_rejected",
            RefundError::Gateway(_) => "gateway_error",
            RefundError::StorageUnavailable(_) => "storage_unavailable",
            RefundError::Internal(_) => "internal_error",
        }
    }

    /// The HTTP status for the code.
    pub fn http_status(&self) -> u16 {
        match self {
            RefundError::InvalidRequest(_) | RefundError::RefundAccountRequired => 400,
            RefundError::PaymentNotFound => 404,
            RefundError::AlreadyRefunded
            | RefundError::AmountExceedsCancelable { .. }
            | RefundError::RefundInProgress
            | RefundError::OnHold
            | RefundError::NotOnHold
            | RefundError::IdempotencyKeyReused
            | RefundError::PaymentOutOfSync
            | RefundError::ReviewChanged => 409,
            RefundError::NotRefundable(_) => 422,
            RefundError::GatewayRejected { .. } | RefundError::Gateway(_) => 502,
            RefundError::StorageUnavailable(_) => 503,
            RefundError::Internal(_) => 500,
        }
    }

    /// i'mport's own message, for `gateway_rejected` answers.
    pub fn gateway_message(&self) -> Option<&str> {
        match self {
            RefundError::GatewayRejected { message, .. } => Some(message),
            _ => None,
        }
    }
}

impl From<RequestError> for RefundError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Invalid(message) => RefundError::InvalidRequest(message),
            RequestError::PartialAccount => RefundError::RefundAccountRequired,
        }
    }
}

impl From<StoreError> for RefundError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => RefundError::StorageUnavailable(error),
            StoreError::PaymentNotFound => RefundError::PaymentNotFound,
            StoreError::RefundInProgress => RefundError::RefundInProgress,
            StoreError::OnHold => RefundError::OnHold,
            StoreError::NotOnHold => RefundError::NotOnHold,
            StoreError::ReviewChanged => RefundError::ReviewChanged,
            other => RefundError::Internal(other.into()),
        }
    }
}
