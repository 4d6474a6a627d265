//! The storage contract: payments and the refund journal.

use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;

use crate::actor::Actor;
use crate::listing::{RefundCursor, RefundFilter, RefundPage};
use crate::payment::{Payment, StoredPayment};
use crate::refund::{Refund, RefundId, RefundState, RefundStatus};

/// A boxed error from a storage backend, kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation did not happen.
///
/// Conflicts are expected outcomes of the protocol; `Unavailable` and
/// `Backend` are failures. Adapters convert their own errors into this type
/// with a `From` impl that keeps the cause as `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The payment is not held for review (nothing to resolve).
    #[error("the payment is not held for review")]
    NotOnHold,
    /// The payment's open reviews are no longer the ones the caller read
    /// (one was resolved meanwhile, or another refund needs review now):
    /// a resolution is recorded only on the reviews its caller read.
    #[error("the payment's open reviews changed since they were read")]
    ReviewChanged,
    /// The idempotency key is already used by another refund.
    #[error("idempotency key already used")]
    IdempotencyKeyTaken,
    /// The refund cannot move to the state asked for: it is no longer
    /// pending (someone settled it first), and its state is final.
    #[error("refund is already {0}")]
    NotPending(RefundStatus),
    /// The write names an attempt of the refund that is no longer its
    /// current one: the refund was run again
    /// ([`PaymentStore::retry_refund`]) after the attempt the caller's
    /// verdict is about. Nothing changed; the verdict is stale (read the
    /// refund again and judge its current attempt).
    #[error("the refund was run again since that attempt (now attempt {current})")]
    AttemptChanged {
        /// The refund's current [`Refund::attempt`].
        current: u32,
    },
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

/// How many of a payment's newest refunds [`PaymentStore::finish_refund`]
/// returns in [`Settlement::recent_refunds`]: as many as the payment view
/// lists.
pub const SETTLEMENT_RECENT_REFUNDS: u32 = 50;

/// What [`PaymentStore::finish_refund`] stored: everything the answer to a
/// refund needs, so that it reads nothing again.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Settlement {
    /// The refund as stored afterwards.
    pub refund: Refund,
    /// Its payment as stored afterwards (slot freed, snapshot applied if it
    /// was not older, hold set for a review).
    pub payment: StoredPayment,
    /// The payment's [`SETTLEMENT_RECENT_REFUNDS`] newest refunds
    /// afterwards, newest first, as [`PaymentStore::refunds_of`] lists them
    /// (the settled one in its new state, if it is among them).
    pub recent_refunds: Vec<Refund>,
}

impl Settlement {
    /// A settlement from its parts (for store implementations).
    pub fn new(refund: Refund, payment: StoredPayment, recent_refunds: Vec<Refund>) -> Self {
        Settlement {
            refund,
            payment,
            recent_refunds,
        }
    }
}

/// Where a listing of stale pending refunds resumes: just after one refund,
/// in the listing's order (`created_at_ms`, then id). The sweep pages with
/// it, so refunds that stay pending for long (an asynchronous cancel still
/// in progress) cannot keep newer ones out of its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCursor {
    created_at_ms: i64,
    id: RefundId,
}

impl PendingCursor {
    /// The position just after `refund`.
    pub fn after(refund: &Refund) -> Self {
        PendingCursor {
            created_at_ms: refund.created_at_ms,
            id: refund.id.clone(),
        }
    }

    /// The `created_at_ms` of the refund it follows.
    pub fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }

    /// The id of the refund it follows.
    pub fn id(&self) -> &RefundId {
        &self.id
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
/// [`Pending`](RefundState::Pending) before the gateway is called and
/// settled afterwards, so a crash at any point leaves a record to reconcile.
///
/// **Time is the store's.** Journal timestamps, the age of a pending refund
/// and the sweep's cutoff come from the store's own clock (the database
/// server's time; the process clock, or an injected one, for the in-memory
/// store), never from the calling instance: instances whose wall clocks
/// disagree must still agree on every verdict.
///
/// Run `refund_core::store_conformance_tests!` (feature `testkit`) against a
/// real backend to check an implementation.
#[async_trait]
pub trait PaymentStore: Send + Sync + 'static {
    /// The store's clock: now, in unix milliseconds. The workflow reads it
    /// only where time decides money (reconciliation, deadlines).
    async fn now_ms(&self) -> Result<i64, StoreError>;

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

    /// Records `refund` as pending and makes it the payment's pending
    /// refund, atomically, only if:
    /// - the payment exists, else [`StoreError::PaymentNotFound`];
    /// - no other refund of it is pending, else [`StoreError::RefundInProgress`];
    /// - it is not held for review, else [`StoreError::OnHold`];
    /// - its stored `cancel_amount` still equals `refund.base_cancel_amount`,
    ///   else [`StoreError::CancelAmountChanged`];
    /// - no refund (of any payment) holds `refund.idempotency_key`, else
    ///   [`StoreError::IdempotencyKeyTaken`]: a key names one refund, for
    ///   good (a refund that changed nothing runs again as the same row,
    ///   see [`retry_refund`](Self::retry_refund)).
    ///
    /// The stored refund's state is [`RefundState::PENDING`] whatever
    /// `refund.state` says, its `attempt` is
    /// [`FIRST_ATTEMPT`](crate::FIRST_ATTEMPT), and its timestamps
    /// (`created_at_ms`, `attempt_started_at_ms`, `updated_at_ms`) are the
    /// store's clock (the values passed are ignored).
    ///
    /// Under any number of concurrent callers at most one succeeds per
    /// payment until that refund is finished. On error nothing is written.
    async fn begin_refund(&self, refund: &Refund) -> Result<(), StoreError>;

    /// Moves refund `id` to `state`, atomically, if `attempt` is still its
    /// current [`attempt`](Refund::attempt) (the one the verdict was reached
    /// about) and its current state [`may become`](RefundState::may_become)
    /// it (a pending refund settles; a `not_applied` failure may still
    /// become `succeeded`):
    /// - sets the state and `updated_at_ms` (store clock);
    /// - releases the payment's pending slot if it names this refund;
    /// - applies `snapshot` if given (with the same rule as
    ///   [`apply_snapshot`](Self::apply_snapshot));
    /// - for [`RefundState::NeedsReview`], puts the payment on hold.
    ///
    /// Returns the refund, its payment and the payment's newest refunds as
    /// stored afterwards ([`Settlement`]), so the caller can answer without
    /// reading them again. If the refund was run again since `attempt`
    /// (a verdict about an earlier attempt must not settle the one now on
    /// the wire), nothing changes and the error is
    /// [`StoreError::AttemptChanged`]; else if the move is not allowed,
    /// nothing changes and the error is [`StoreError::NotPending`] with
    /// its current status; unknown ids give [`StoreError::RefundNotFound`]
    /// (finding out which may cost a read, on that failure path only).
    async fn finish_refund(
        &self,
        id: &RefundId,
        attempt: u32,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Settlement, StoreError>;

    /// Runs a refund that provably changed nothing (its state
    /// [frees its key](RefundState::frees_its_key): failed `not_sent` or
    /// `not_applied`) again, as the same journal row: atomically, only if
    /// - it exists, else [`StoreError::RefundNotFound`], and its state frees
    ///   its key, else [`StoreError::NotPending`] with its status;
    /// - its payment has no pending refund ([`StoreError::RefundInProgress`]),
    ///   is not held ([`StoreError::OnHold`]) and its stored `cancel_amount`
    ///   still equals `base_cancel_amount` ([`StoreError::CancelAmountChanged`]),
    ///
    /// it becomes [`RefundState::PENDING`] again with the new
    /// `base_cancel_amount` and `checksum`, its `attempt` one more than
    /// before, `attempt_started_at_ms` and `updated_at_ms` on the store's
    /// clock, and the payment's pending refund. Its id, amount, reason, key and `created_at_ms` stay:
    /// evidence of any attempt names the same refund, and a listing walked
    /// meanwhile (keyed on `created_at_ms`) still lists it once, in its
    /// place. On error nothing is written. Returns the refund as stored.
    async fn retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: crate::money::Amount,
        checksum: crate::money::Amount,
    ) -> Result<Refund, StoreError>;

    /// Records the id the gateway accepted pending refund `id`'s attempt
    /// `attempt` under (an asynchronous PortOne V2 cancel), atomically,
    /// only while that attempt is its current one and still pending: its
    /// state becomes `Pending { cancellation_id: Some(..) }` and
    /// `updated_at_ms` the store's clock; `attempt_started_at_ms` (the
    /// start of its in-flight bound) and the payment's pending slot stay
    /// as they are. A refund run again since `attempt` gives
    /// [`StoreError::AttemptChanged`] (the id names an earlier attempt's
    /// cancellation, not the one on the wire); else one no longer pending
    /// gives [`StoreError::NotPending`] with its status; in both cases
    /// nothing changes. An unknown id gives [`StoreError::RefundNotFound`].
    /// Returns the refund as stored.
    async fn note_cancellation_id(
        &self,
        id: &RefundId,
        attempt: u32,
        cancellation_id: &str,
    ) -> Result<Refund, StoreError>;

    /// Resolves a payment's review, atomically, only if it is held
    /// ([`StoreError::NotOnHold`] otherwise; unknown payments give
    /// [`StoreError::PaymentNotFound`]), no refund of it is pending
    /// ([`StoreError::RefundInProgress`]: it could still apply, and lifting
    /// the hold would let a second refund go out beside it), and its open
    /// reviews (its refunds in [`RefundState::NeedsReview`] without a
    /// resolution) are exactly `open_reviews`, the ones the operator's
    /// workflow read before it asked the gateway (in any order; else
    /// [`StoreError::ReviewChanged`]: a review resolved meanwhile, or one
    /// opened since they were read, must not take this note):
    /// - each of them gets `{resolved_by: by, resolved_at_ms: <store
    ///   clock>, note}` (its state stays `needs_review`, its
    ///   `updated_at_ms` is the same clock);
    /// - `snapshot`, if given, is applied (the gateway's numbers the
    ///   operator saw; `None` when the gateway no longer knows the
    ///   payment), with the same rule as
    ///   [`apply_snapshot`](Self::apply_snapshot);
    /// - the hold is lifted.
    ///
    /// Returns the payment as stored afterwards. On error nothing is
    /// written. Of concurrent resolutions of one hold exactly one succeeds.
    async fn resolve_review(
        &self,
        merchant_uid: &str,
        open_reviews: &[RefundId],
        by: &Actor,
        note: &str,
        snapshot: Option<&Payment>,
    ) -> Result<StoredPayment, StoreError>;

    /// The refund with this id.
    async fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError>;

    /// The refund that holds this idempotency key, of whichever payment.
    async fn refund_by_idempotency_key(&self, key: &str) -> Result<Option<Refund>, StoreError>;

    /// The payment's `limit` newest refunds, newest first (by `created_at_ms`,
    /// then id).
    async fn refunds_of(&self, merchant_uid: &str, limit: u32) -> Result<Vec<Refund>, StoreError>;

    /// Refund records across payments that match `filter`, newest first
    /// (by `created_at_ms`, then id, both descending), at most `limit` of
    /// them (capped at [`MAX_LIST_LIMIT`](crate::MAX_LIST_LIMIT); 0 gives an
    /// empty last page), starting just after `cursor` when given.
    ///
    /// Keyset pagination, never an offset: a page starts strictly after the
    /// cursor's `(created_at_ms, id)`, so refunds journaled between two
    /// calls (they are newer) never shift later pages, and walking the pages
    /// lists every refund that existed at the start exactly once.
    /// `next_cursor` is `None` on the last page. Filter values are data,
    /// matched literally. Served by an index on every backend.
    async fn list_refunds(
        &self,
        filter: &RefundFilter,
        limit: u32,
        cursor: Option<&RefundCursor>,
    ) -> Result<RefundPage, StoreError>;

    /// Up to `limit` pending refunds whose current attempt began
    /// (`attempt_started_at_ms`) more than `older_than` ago on the store's
    /// clock, oldest first (by `created_at_ms`, then id): the work list of
    /// the reconciliation sweep. With `after`, only those that come after
    /// it in that order (the next page).
    async fn stale_pending_refunds(
        &self,
        older_than: Duration,
        after: Option<&PendingCursor>,
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
