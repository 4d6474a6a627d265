use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::actor::Actor;
use crate::clock::{Clock, SystemClock};
use crate::listing::{capped_limit, RefundCursor, RefundFilter, RefundPage};
use crate::payment::{Payment, StoredPayment};
use crate::refund::{Refund, RefundId, RefundState, RefundStatus, Resolution};
use crate::store::{
    PaymentStore, PendingCursor, Settlement, StoreError, SETTLEMENT_RECENT_REFUNDS,
};

/// Payments and the refund journal in this process's memory.
///
/// Every operation runs under one lock, so each is atomic; nothing survives
/// a restart, which makes it right for tests, demos and single-instance
/// deployments that re-sync from the gateway. Its clock is the process's
/// (or one given to [`with_clock`](Self::with_clock), as tests do).
#[derive(Debug)]
pub struct MemoryPaymentStore {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryPaymentStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

#[derive(Debug, Default)]
struct State {
    payments: HashMap<String, StoredPayment>,
    refunds: HashMap<RefundId, Refund>,
}

impl MemoryPaymentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that reads the time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryPaymentStore {
            state: Mutex::default(),
            clock,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it can
        // panic, so a poisoned lock still guards valid data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a refund based on `base_cancel_amount` may take the payment's
/// pending slot: free, not held, and the total unchanged.
fn claimable(
    stored: &StoredPayment,
    base_cancel_amount: crate::money::Amount,
) -> Result<(), StoreError> {
    if stored.pending_refund.is_some() {
        return Err(StoreError::RefundInProgress);
    }
    if stored.on_hold {
        return Err(StoreError::OnHold);
    }
    if stored.payment.cancel_amount != base_cancel_amount {
        return Err(StoreError::CancelAmountChanged);
    }
    Ok(())
}

/// Applies a snapshot unless it is older (lower `cancel_amount`) than `stored`.
fn merge_snapshot(stored: &mut StoredPayment, snapshot: &Payment) {
    if snapshot.cancel_amount >= stored.payment.cancel_amount {
        stored.payment = snapshot.clone();
    }
}

/// The payment's `limit` newest refunds, newest first.
fn newest_refunds(
    refunds: &HashMap<RefundId, Refund>,
    merchant_uid: &str,
    limit: u32,
) -> Vec<Refund> {
    let mut refunds: Vec<Refund> = refunds
        .values()
        .filter(|r| r.merchant_uid == merchant_uid)
        .cloned()
        .collect();
    refunds.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
    refunds.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    refunds
}

#[async_trait]
impl PaymentStore for MemoryPaymentStore {
    async fn now_ms(&self) -> Result<i64, StoreError> {
        Ok(self.clock.now_ms())
    }

    async fn payment(&self, merchant_uid: &str) -> Result<Option<StoredPayment>, StoreError> {
        Ok(self.state().payments.get(merchant_uid).cloned())
    }

    async fn apply_snapshot(&self, snapshot: &Payment) -> Result<StoredPayment, StoreError> {
        let mut state = self.state();
        let stored = state
            .payments
            .entry(snapshot.merchant_uid.clone())
            .and_modify(|stored| merge_snapshot(stored, snapshot))
            .or_insert_with(|| StoredPayment {
                payment: snapshot.clone(),
                pending_refund: None,
                on_hold: false,
            });
        Ok(stored.clone())
    }

    async fn begin_refund(&self, refund: &Refund) -> Result<(), StoreError> {
        let mut state = self.state();
        let State { payments, refunds } = &mut *state;
        let stored = payments
            .get_mut(&refund.merchant_uid)
            .ok_or(StoreError::PaymentNotFound)?;
        claimable(stored, refund.base_cancel_amount)?;
        if let Some(key) = &refund.idempotency_key {
            if refunds
                .values()
                .any(|r| r.idempotency_key.as_ref() == Some(key))
            {
                return Err(StoreError::IdempotencyKeyTaken);
            }
        }
        stored.pending_refund = Some(refund.id.clone());
        let now = self.clock.now_ms();
        refunds.insert(
            refund.id.clone(),
            Refund {
                state: RefundState::PENDING,
                created_at_ms: now,
                attempt_started_at_ms: now,
                attempt: crate::refund::FIRST_ATTEMPT,
                updated_at_ms: now,
                ..refund.clone()
            },
        );
        Ok(())
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        attempt: u32,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Settlement, StoreError> {
        let now = self.clock.now_ms();
        let mut guard = self.state();
        let State { payments, refunds } = &mut *guard;
        let refund = refunds.get_mut(id).ok_or(StoreError::RefundNotFound)?;
        if refund.attempt != attempt {
            return Err(StoreError::AttemptChanged {
                current: refund.attempt,
            });
        }
        if !refund.state.may_become(state) {
            return Err(StoreError::NotPending(refund.status()));
        }
        refund.state = state.clone();
        refund.updated_at_ms = now;
        if let Some(stored) = payments.get_mut(&refund.merchant_uid) {
            if stored.pending_refund.as_ref() == Some(id) {
                stored.pending_refund = None;
            }
            if let RefundState::NeedsReview(_) = state {
                stored.on_hold = true;
            }
            if let Some(snapshot) = snapshot {
                merge_snapshot(stored, snapshot);
            }
        }
        let refund = refund.clone();
        let payment = payments
            .get(&refund.merchant_uid)
            .cloned()
            .ok_or_else(|| StoreError::corrupt("a refund of a payment that is not stored"))?;
        let recent = newest_refunds(refunds, &refund.merchant_uid, SETTLEMENT_RECENT_REFUNDS);
        Ok(Settlement::new(refund, payment, recent))
    }

    async fn retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: crate::money::Amount,
        checksum: crate::money::Amount,
    ) -> Result<Refund, StoreError> {
        let now = self.clock.now_ms();
        let mut guard = self.state();
        let State { payments, refunds } = &mut *guard;
        let refund = refunds.get_mut(id).ok_or(StoreError::RefundNotFound)?;
        if !refund.state.frees_its_key() {
            return Err(StoreError::NotPending(refund.status()));
        }
        let stored = payments
            .get_mut(&refund.merchant_uid)
            .ok_or(StoreError::PaymentNotFound)?;
        claimable(stored, base_cancel_amount)?;
        stored.pending_refund = Some(id.clone());
        refund.state = RefundState::PENDING;
        refund.base_cancel_amount = base_cancel_amount;
        refund.checksum = checksum;
        // Its place in listings (created_at_ms) stays; the attempt is new.
        refund.attempt_started_at_ms = now;
        refund.attempt = refund.attempt.saturating_add(1);
        refund.updated_at_ms = now;
        Ok(refund.clone())
    }

    async fn note_cancellation_id(
        &self,
        id: &RefundId,
        attempt: u32,
        cancellation_id: &str,
    ) -> Result<Refund, StoreError> {
        let now = self.clock.now_ms();
        let mut state = self.state();
        let refund = state
            .refunds
            .get_mut(id)
            .ok_or(StoreError::RefundNotFound)?;
        if refund.attempt != attempt {
            return Err(StoreError::AttemptChanged {
                current: refund.attempt,
            });
        }
        if !matches!(refund.state, RefundState::Pending { .. }) {
            return Err(StoreError::NotPending(refund.status()));
        }
        refund.state = RefundState::Pending {
            cancellation_id: Some(cancellation_id.to_owned()),
        };
        refund.updated_at_ms = now;
        Ok(refund.clone())
    }

    async fn resolve_review(
        &self,
        merchant_uid: &str,
        open_reviews: &[RefundId],
        by: &Actor,
        note: &str,
        snapshot: Option<&Payment>,
    ) -> Result<StoredPayment, StoreError> {
        let now = self.clock.now_ms();
        let mut guard = self.state();
        let State { payments, refunds } = &mut *guard;
        let stored = payments
            .get_mut(merchant_uid)
            .ok_or(StoreError::PaymentNotFound)?;
        if !stored.on_hold {
            return Err(StoreError::NotOnHold);
        }
        if stored.pending_refund.is_some() {
            return Err(StoreError::RefundInProgress);
        }
        let is_open = |refund: &Refund| {
            refund.merchant_uid == merchant_uid
                && matches!(&refund.state, RefundState::NeedsReview(review) if review.resolution.is_none())
        };
        let open: HashSet<&RefundId> = refunds
            .values()
            .filter(|r| is_open(r))
            .map(|r| &r.id)
            .collect();
        if open != open_reviews.iter().collect::<HashSet<_>>() {
            return Err(StoreError::ReviewChanged);
        }
        for id in open_reviews {
            if let Some(refund) = refunds.get_mut(id) {
                if let RefundState::NeedsReview(review) = &mut refund.state {
                    review.resolution = Some(Resolution {
                        resolved_by: by.clone(),
                        resolved_at_ms: now,
                        note: note.to_owned(),
                    });
                    refund.updated_at_ms = now;
                }
            }
        }
        if let Some(snapshot) = snapshot {
            merge_snapshot(stored, snapshot);
        }
        stored.on_hold = false;
        Ok(stored.clone())
    }

    async fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        Ok(self.state().refunds.get(id).cloned())
    }

    async fn refund_by_idempotency_key(&self, key: &str) -> Result<Option<Refund>, StoreError> {
        Ok(self
            .state()
            .refunds
            .values()
            .find(|r| r.idempotency_key.as_deref() == Some(key))
            .cloned())
    }

    async fn refunds_of(&self, merchant_uid: &str, limit: u32) -> Result<Vec<Refund>, StoreError> {
        Ok(newest_refunds(&self.state().refunds, merchant_uid, limit))
    }

    async fn list_refunds(
        &self,
        filter: &RefundFilter,
        limit: u32,
        cursor: Option<&RefundCursor>,
    ) -> Result<RefundPage, StoreError> {
        let limit = capped_limit(limit);
        let mut listed: Vec<Refund> = self
            .state()
            .refunds
            .values()
            .filter(|r| filter.status.is_none_or(|s| r.status() == s))
            .filter(|r| {
                filter
                    .merchant_uid
                    .as_ref()
                    .is_none_or(|m| &r.merchant_uid == m)
            })
            .filter(|r| cursor.is_none_or(|c| c.precedes(r)))
            .cloned()
            .collect();
        listed.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        listed.truncate(
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        Ok(RefundPage::from_overfetch(listed, limit))
    }

    async fn stale_pending_refunds(
        &self,
        older_than: Duration,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError> {
        let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let started_before_ms = self.clock.now_ms().saturating_sub(older_than_ms);
        let follows = |r: &Refund| {
            after.is_none_or(|c| (r.created_at_ms, &r.id) > (c.created_at_ms(), c.id()))
        };
        let mut pending: Vec<Refund> = self
            .state()
            .refunds
            .values()
            .filter(|r| {
                r.status() == RefundStatus::Pending && r.attempt_started_at_ms < started_before_ms
            })
            .filter(|r| follows(r))
            .cloned()
            .collect();
        pending.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        pending.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(pending)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
