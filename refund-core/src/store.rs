//! The storage contract: payments and the refund journal.

use std::error::Error as StdError;

use async_trait::async_trait;

use crate::payment::{Payment, StoredPayment};
use crate::refund::{Refund, RefundId, RefundOutcome, RefundStatus};

/// A boxed error from a storage backend, kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation did not happen.
///
/// Conflicts are expected outcomes of the protocol; `Unavailable` and
/// `Backend` are failures. Adapters convert their own errors into this type
/// with a `From` impl that keeps the cause as `source()`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No payment with that `merchant_uid`.
    #[error("payment not found")]
    PaymentNotFound,
    /// No refund with that id.
    #[error("refund not found")]
    RefundNotFound,
    /// Another refund of the payment is pending.
    #[error("another refund of this payment is pending")]
    RefundInProgress,
    /// The payment's `cancel_amount` is no longer what the caller read.
    #[error("the payment changed since it was read")]
    CancelAmountChanged,
    /// The payment is held for review.
    #[error("the payment is held for review")]
    OnHold,
    /// The idempotency key is already used by another refund.
    #[error("idempotency key already used")]
    IdempotencyKeyTaken,
    /// The refund is no longer pending (someone settled it first).
    #[error("refund is already {0}")]
    NotPending(RefundStatus),
    /// The backend cannot be reached, or cannot take writes now (read-only
    /// database or transaction): nothing was written.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else the backend reported (schema, corrupt rows, ...).
    #[error("storage backend error")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// A backend error from a message, for data that fails validation on read.
    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Backend(what.into().into())
    }
}

/// Where the merchant's payments and the refund journal live.
///
/// # Contract
/// Every operation that decides money is atomic inside the backend (one SQL
/// transaction or conditional `UPDATE`, one Mongo `findOneAndUpdate`): an
/// implementation never reads in Rust and writes in a second call. Several
/// server instances may share one store; the guarantees below hold across
/// all of them. No operation may hold a transaction open after it returns.
///
/// The journal is write-ahead: a refund is recorded as
/// [`Pending`](RefundStatus::Pending) before the gateway is called and
/// settled afterwards, so a crash at any point leaves a record to reconcile.
///
/// Run `refund_core::store_conformance_tests!` (feature `testkit`) against a
/// real backend to check an implementation.
#[async_trait]
pub trait PaymentStore: Send + Sync + 'static {
    /// The payment with this order id, if stored.
    ///
    /// Ids are matched literally (byte for byte): no pattern, operator or
    /// case folding.
    async fn payment(&self, merchant_uid: &str) -> Result<Option<StoredPayment>, StoreError>;

    /// Inserts or updates a payment from a gateway snapshot, keyed by
    /// `merchant_uid`, and returns what is stored afterwards.
    ///
    /// Keeps the local refund state (`pending_refund`, `on_hold`). A snapshot
    /// with a lower `cancel_amount` than the stored one is older than what we
    /// know and is ignored (cancellations only ever add up), so out-of-order
    /// webhooks cannot roll money back.
    async fn apply_snapshot(&self, snapshot: &Payment) -> Result<StoredPayment, StoreError>;

    /// Records `refund` (status `Pending`) and makes it the payment's pending
    /// refund, atomically, only if:
    /// - the payment exists, else [`StoreError::PaymentNotFound`];
    /// - no other refund of it is pending, else [`StoreError::RefundInProgress`];
    /// - it is not held for review, else [`StoreError::OnHold`];
    /// - its stored `cancel_amount` still equals `refund.base_cancel_amount`,
    ///   else [`StoreError::CancelAmountChanged`];
    /// - no refund (of any payment) has `refund.idempotency_key`, else
    ///   [`StoreError::IdempotencyKeyTaken`]: a key names one refund.
    ///
    /// Under any number of concurrent callers at most one succeeds per
    /// payment until that refund is finished. On error nothing is written.
    async fn begin_refund(&self, refund: &Refund) -> Result<(), StoreError>;

    /// Settles the pending refund `id` with `outcome`, atomically:
    /// sets its status, code and message and `updated_at_ms = now_ms`,
    /// releases the payment's pending slot, applies `snapshot` if given (with
    /// the same rule as [`apply_snapshot`](Self::apply_snapshot)), and for
    /// [`RefundOutcome::NeedsReview`] puts the payment on hold.
    ///
    /// Returns the refund as stored afterwards. If it is no longer pending,
    /// nothing changes and the error is [`StoreError::NotPending`] with its
    /// current status; unknown ids give [`StoreError::RefundNotFound`].
    async fn finish_refund(
        &self,
        id: &RefundId,
        outcome: &RefundOutcome,
        snapshot: Option<&Payment>,
        now_ms: i64,
    ) -> Result<Refund, StoreError>;

    /// Lifts a review hold (an operator synced the payment). Unknown
    /// payments give [`StoreError::PaymentNotFound`].
    async fn release_hold(&self, merchant_uid: &str) -> Result<(), StoreError>;

    /// The refund with this id.
    async fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError>;

    /// The refund that carries this idempotency key, of whichever payment.
    async fn refund_by_idempotency_key(&self, key: &str) -> Result<Option<Refund>, StoreError>;

    /// Every refund of the payment, newest first.
    async fn refunds_of(&self, merchant_uid: &str) -> Result<Vec<Refund>, StoreError>;

    /// Up to `limit` pending refunds created before `created_before_ms`,
    /// oldest first: the work list of the reconciliation sweep.
    async fn stale_pending_refunds(
        &self,
        created_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError>;

    /// Checks that the backend answers **and accepts writes** (for health
    /// checks): a database that can be read but not written (read-only
    /// file or mode, a read-only transaction default, a demoted primary)
    /// cannot take refunds, so it fails the check with
    /// [`StoreError::Unavailable`], the error every write then reports
    /// too. Cheap: a probe write that changes nothing (or one tiny row),
    /// never a scan.
    async fn ping(&self) -> Result<(), StoreError>;
}
