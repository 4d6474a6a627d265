//! [`FaultyStore`]: a [`PaymentStore`] decorator that fails chosen
//! operations on demand, for tests of what the workflow and the HTTP scope
//! do when the database goes away mid-protocol, and holds one call of an
//! operation on demand ([`FaultyStore::pause_next`]), for tests of what
//! another instance does meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::actor::Actor;
use crate::listing::{RefundCursor, RefundFilter, RefundPage};
use crate::payment::{Payment, StoredPayment};
use crate::refund::{Refund, RefundId, RefundState};
use crate::store::{PaymentStore, PendingCursor, Settlement, StoreError};

/// A store operation, to fail on its own or with [`StoreOp::All`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOp {
    /// Every operation.
    All,
    /// [`PaymentStore::now_ms`].
    NowMs,
    /// [`PaymentStore::payment`].
    Payment,
    /// [`PaymentStore::apply_snapshot`].
    ApplySnapshot,
    /// [`PaymentStore::begin_refund`] and [`PaymentStore::retry_refund`].
    BeginRefund,
    /// [`PaymentStore::finish_refund`] and
    /// [`PaymentStore::note_cancellation_id`].
    FinishRefund,
    /// [`PaymentStore::resolve_review`].
    ResolveReview,
    /// [`PaymentStore::refund`], [`PaymentStore::refund_by_idempotency_key`],
    /// [`PaymentStore::refunds_of`], [`PaymentStore::list_refunds`] and
    /// [`PaymentStore::stale_pending_refunds`].
    ReadRefunds,
    /// [`PaymentStore::ping`].
    Ping,
}

/// How a failing operation fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFault {
    /// [`StoreError::Unavailable`]: the database is down.
    Unavailable,
    /// [`StoreError::Backend`] with this cause (a bug, corrupt data): it
    /// must reach the logs, never an answer.
    Backend(String),
}

impl StoreFault {
    fn error(&self) -> StoreError {
        match self {
            StoreFault::Unavailable => {
                StoreError::Unavailable("connection refused (database down)".into())
            }
            StoreFault::Backend(cause) => StoreError::Backend(cause.clone().into()),
        }
    }
}

/// One call of an operation held by [`FaultyStore::pause_next`]: it stops
/// before reaching the inner store until [`release`](Self::release)d.
#[derive(Debug, Default)]
pub struct Pause {
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Pause {
    /// Waits until the held call has arrived (and is waiting).
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held call go on to the inner store.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// Delegates to an inner store, except for the operations told to fail or
/// to pause.
pub struct FaultyStore {
    inner: Arc<dyn PaymentStore>,
    faults: Mutex<HashMap<StoreOp, StoreFault>>,
    pauses: Mutex<HashMap<StoreOp, Arc<Pause>>>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// A decorator of `inner` that fails nothing yet.
    pub fn new(inner: Arc<dyn PaymentStore>) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::default(),
            pauses: Mutex::default(),
        }
    }

    /// Makes `op` fail with `fault` until [`heal`](Self::heal)ed.
    pub fn fail(&self, op: StoreOp, fault: StoreFault) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(op, fault);
    }

    /// Makes every operation work again.
    pub fn heal(&self) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Holds the next call of `op` (exactly that operation, not
    /// [`StoreOp::All`]) before it reaches the inner store, until the
    /// returned [`Pause`] is released; later calls go through.
    pub fn pause_next(&self, op: StoreOp) -> Arc<Pause> {
        let pause = Arc::new(Pause::default());
        self.pauses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(op, pause.clone());
        pause
    }

    /// What every operation passes first: a pause armed on it, then a
    /// fault told for it.
    async fn enter(&self, op: StoreOp) -> Result<(), StoreError> {
        let pause = self
            .pauses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&op);
        if let Some(pause) = pause {
            pause.reached.notify_one();
            pause.release.notified().await;
        }
        self.check(op)
    }

    fn check(&self, op: StoreOp) -> Result<(), StoreError> {
        let faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        match faults.get(&op).or_else(|| faults.get(&StoreOp::All)) {
            Some(fault) => Err(fault.error()),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl PaymentStore for FaultyStore {
    async fn now_ms(&self) -> Result<i64, StoreError> {
        self.enter(StoreOp::NowMs).await?;
        self.inner.now_ms().await
    }

    async fn payment(&self, merchant_uid: &str) -> Result<Option<StoredPayment>, StoreError> {
        self.enter(StoreOp::Payment).await?;
        self.inner.payment(merchant_uid).await
    }

    async fn apply_snapshot(&self, snapshot: &Payment) -> Result<StoredPayment, StoreError> {
        self.enter(StoreOp::ApplySnapshot).await?;
        self.inner.apply_snapshot(snapshot).await
    }

    async fn begin_refund(&self, refund: &Refund) -> Result<(), StoreError> {
        self.enter(StoreOp::BeginRefund).await?;
        self.inner.begin_refund(refund).await
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        attempt: u32,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Settlement, StoreError> {
        self.enter(StoreOp::FinishRefund).await?;
        self.inner.finish_refund(id, attempt, state, snapshot).await
    }

    async fn retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: crate::money::Amount,
        checksum: crate::money::Amount,
    ) -> Result<Refund, StoreError> {
        self.enter(StoreOp::BeginRefund).await?;
        self.inner
            .retry_refund(id, base_cancel_amount, checksum)
            .await
    }

    async fn note_cancellation_id(
        &self,
        id: &RefundId,
        attempt: u32,
        cancellation_id: &str,
    ) -> Result<Refund, StoreError> {
        self.enter(StoreOp::FinishRefund).await?;
        self.inner
            .note_cancellation_id(id, attempt, cancellation_id)
            .await
    }

    async fn resolve_review(
        &self,
        merchant_uid: &str,
        open_reviews: &[RefundId],
        by: &Actor,
        note: &str,
        snapshot: Option<&Payment>,
    ) -> Result<StoredPayment, StoreError> {
        self.enter(StoreOp::ResolveReview).await?;
        self.inner
            .resolve_review(merchant_uid, open_reviews, by, note, snapshot)
            .await
    }

    async fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        self.enter(StoreOp::ReadRefunds).await?;
        self.inner.refund(id).await
    }

    async fn refund_by_idempotency_key(&self, key: &str) -> Result<Option<Refund>, StoreError> {
        self.enter(StoreOp::ReadRefunds).await?;
        self.inner.refund_by_idempotency_key(key).await
    }

    async fn refunds_of(&self, merchant_uid: &str, limit: u32) -> Result<Vec<Refund>, StoreError> {
        self.enter(StoreOp::ReadRefunds).await?;
        self.inner.refunds_of(merchant_uid, limit).await
    }

    async fn list_refunds(
        &self,
        filter: &RefundFilter,
        limit: u32,
        cursor: Option<&RefundCursor>,
    ) -> Result<RefundPage, StoreError> {
        self.enter(StoreOp::ReadRefunds).await?;
        self.inner.list_refunds(filter, limit, cursor).await
    }

    async fn stale_pending_refunds(
        &self,
        older_than: Duration,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError> {
        self.enter(StoreOp::ReadRefunds).await?;
        self.inner
            .stale_pending_refunds(older_than, after, limit)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.enter(StoreOp::Ping).await?;
        self.inner.ping().await
    }
}
