//! The refund workflow: DESIGN.md's protocol on top of a store and a gateway.

mod cancel;
mod list;
mod reconcile;
mod review;
mod verdict;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::actor::Actor;
use crate::error::RefundError;
use crate::gateway::{PaymentGateway, PaymentRef};
use crate::payment::{Payment, StoredPayment};
use crate::refund::{validate_payment_id, RefundStatus};
use crate::store::{PaymentStore, PendingCursor};
use crate::view::PaymentView;

pub use cancel::CancelOutcome;
pub use list::DEFAULT_LIST_LIMIT;
pub use review::{ReviewRequest, MAX_NOTE_CHARS};
pub(crate) use verdict::entry_id;

/// Refunds, views, syncs and webhooks for one merchant.
///
/// Cheap to share: wrap it in an `Arc` (the actix scope does) and call it
/// from any number of tasks and server instances at once; the store keeps
/// the money decisions atomic.
pub struct RefundService {
    store: Arc<dyn PaymentStore>,
    gateway: Arc<dyn PaymentGateway>,
    settle_after: Duration,
    sweep_batch: u32,
    /// Where the next sweep resumes (after the last refund the previous
    /// one examined; `None`: from the oldest). Refunds pending for long
    /// (asynchronous cancels) would otherwise fill every batch.
    sweep_cursor: Mutex<Option<PendingCursor>>,
}

impl fmt::Debug for RefundService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundService")
            .field("settle_after", &self.settle_after)
            .field("sweep_batch", &self.sweep_batch)
            .finish_non_exhaustive()
    }
}

/// What one sweep of stale pending refunds did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Pending refunds examined.
    pub examined: usize,
    /// Settled as succeeded, failed or needs_review.
    pub settled: usize,
    /// Left pending (gateway unreachable).
    pub still_pending: usize,
}

/// Slack added to the gateway's own in-flight bound before a pending refund
/// that the gateway does not show is declared failed.
const SETTLE_GRACE: Duration = Duration::from_secs(30);

/// How many of a payment's newest refunds reconciliation and the view read.
/// The pending refund is always the newest (one at a time), and claims of
/// older refunds lie within the totals later refunds began from.
const RECENT_REFUNDS: u32 = crate::store::SETTLEMENT_RECENT_REFUNDS;

/// Which path reached a verdict (logs today; the settlement metric's `via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The cancel call's own answer.
    Answer,
    /// The sync route.
    Sync,
    /// A webhook.
    Webhook,
    /// Reconciliation before the next refund of the payment (or a replay).
    NextRefund,
    /// The background sweep.
    Sweep,
    /// An operator's review.
    Review,
}

impl Via {
    /// The label's text.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Via::Answer => "answer",
            Via::Sync => "sync",
            Via::Webhook => "webhook",
            Via::NextRefund => "next_refund",
            Via::Sweep => "sweep",
            Via::Review => "review",
        }
    }
}

impl RefundService {
    /// A service over `store` and `gateway`.
    pub fn new(store: Arc<dyn PaymentStore>, gateway: Arc<dyn PaymentGateway>) -> Self {
        let settle_after = gateway.max_in_flight() + SETTLE_GRACE;
        RefundService {
            store,
            gateway,
            settle_after,
            sweep_batch: 100,
            sweep_cursor: Mutex::new(None),
        }
    }

    /// How old a pending refund must be before reconciliation may conclude
    /// it never happened (default: the gateway's in-flight bound plus 30 s).
    /// Never set it below the gateway's in-flight bound.
    #[must_use]
    pub fn settle_after(mut self, age: Duration) -> Self {
        self.settle_after = age.max(self.gateway.max_in_flight());
        self
    }

    /// How many stale pending refunds one sweep handles (default 100).
    #[must_use]
    pub fn sweep_batch(mut self, batch: u32) -> Self {
        self.sweep_batch = batch.max(1);
        self
    }

    /// Which API the gateway speaks (the webhook shape, metric labels).
    pub fn gateway_kind(&self) -> crate::gateway::GatewayKind {
        self.gateway.kind()
    }

    /// The store, for health checks and operator tools.
    pub fn store(&self) -> &Arc<dyn PaymentStore> {
        &self.store
    }

    /// The payment view of `merchant_uid` with its pending refunds. Reads the
    /// store only. A malformed id is `invalid_request`.
    #[tracing::instrument(skip(self))]
    pub async fn view(&self, merchant_uid: &str) -> Result<PaymentView, RefundError> {
        validate_payment_id("merchant_uid", merchant_uid)?;
        let stored = self
            .store
            .payment(merchant_uid)
            .await?
            .ok_or(RefundError::PaymentNotFound)?;
        self.view_of(&stored).await
    }

    /// Reconciles `merchant_uid` with the gateway (settling a pending
    /// refund, picking up refunds made elsewhere, importing a payment we
    /// have not stored yet). A review hold stays: only an operator's
    /// [`review`](Self::review) lifts it, with a note saying why. A
    /// malformed id is refused before the gateway is asked.
    #[tracing::instrument(skip(self))]
    pub async fn sync(&self, merchant_uid: &str) -> Result<PaymentView, RefundError> {
        validate_payment_id("merchant_uid", merchant_uid)?;
        let stored = self.store.payment(merchant_uid).await?;
        // Read before the lookup (see `judge`).
        let now_ms = self.store.now_ms().await?;
        let snapshot = match &stored {
            Some(stored) => self.gateway.payment(payment_ref(&stored.payment)).await,
            None => self.gateway.find_payment(merchant_uid).await,
        }
        .map_err(RefundError::Gateway)?;
        let Some(snapshot) = snapshot else {
            let Some(stored) = stored else {
                return Err(RefundError::PaymentNotFound);
            };
            // The gateway forgot a payment we hold: a pending refund of it
            // that can no longer be on the wire cannot be explained.
            if stored.pending_refund.is_some() {
                self.judge(merchant_uid, None, Some(now_ms), Via::Sync, None)
                    .await?;
            }
            return Err(RefundError::PaymentNotFound);
        };
        let stored = self
            .absorb_snapshot(&snapshot, Some(now_ms), Via::Sync)
            .await?;
        self.view_of(&stored).await
    }

    /// Handles an i'mport webhook (or records a payment after checkout):
    /// the notice is never trusted, the payment is fetched by `imp_uid` and
    /// upserted. Repeated deliveries are harmless. Returns `None` when the
    /// gateway has no such payment; a malformed id is refused before the
    /// gateway is asked. PortOne V2 looks payments up by the order id: use
    /// [`refresh_payment`](Self::refresh_payment) there.
    #[tracing::instrument(skip(self), fields(actor = Actor::WEBHOOK))]
    pub async fn refresh(&self, imp_uid: &str) -> Result<Option<PaymentView>, RefundError> {
        validate_payment_id("imp_uid", imp_uid)?;
        self.refresh_payment(PaymentRef {
            imp_uid,
            merchant_uid: "",
        })
        .await
    }

    /// [`refresh`](Self::refresh) by both ids, as a PortOne V2 webhook
    /// names a payment (`paymentId` is the order id, `transactionId` the
    /// attempt): the payment is fetched from the gateway (V1 by `imp_uid`,
    /// V2 by `merchant_uid`) and upserted. Each id given must be well
    /// formed; an empty one is not known.
    #[tracing::instrument(skip(self))]
    pub async fn refresh_payment(
        &self,
        at: PaymentRef<'_>,
    ) -> Result<Option<PaymentView>, RefundError> {
        if !at.imp_uid.is_empty() {
            validate_payment_id("imp_uid", at.imp_uid)?;
        }
        if !at.merchant_uid.is_empty() {
            validate_payment_id("merchant_uid", at.merchant_uid)?;
        }
        let Some(snapshot) = self
            .gateway
            .payment(at)
            .await
            .map_err(RefundError::Gateway)?
        else {
            tracing::info!("webhook for a payment unknown to the gateway ignored");
            return Ok(None);
        };
        // No clock read: a webhook may credit refunds, never fail them
        // (the sweep and sync do that).
        let stored = self.absorb_snapshot(&snapshot, None, Via::Webhook).await?;
        self.view_of(&stored).await.map(Some)
    }

    /// Reconciles pending refunds older than the settle age (on the store's
    /// clock), oldest first, one batch. Each sweep resumes after the last
    /// refund the previous one examined, and starts from the oldest again
    /// once it has been through them all: refunds that stay pending for
    /// long (an asynchronous cancel in progress) never keep newer ones out
    /// of the batch. The host runs this periodically (see
    /// [`Self::run_sweeper`]).
    #[tracing::instrument(skip(self), fields(actor = Actor::SWEEP))]
    pub async fn sweep(&self) -> Result<SweepReport, RefundError> {
        let after = self.cursor().clone();
        let mut stale = self
            .store
            .stale_pending_refunds(self.settle_after, after.as_ref(), self.sweep_batch)
            .await?;
        if stale.is_empty() && after.is_some() {
            // Past the newest: round again from the oldest.
            stale = self
                .store
                .stale_pending_refunds(self.settle_after, None, self.sweep_batch)
                .await?;
        }
        // A short page was the last: the next sweep starts from the oldest.
        let full = u32::try_from(stale.len()).is_ok_and(|n| n >= self.sweep_batch);
        *self.cursor() = stale.last().filter(|_| full).map(PendingCursor::after);
        let mut report = SweepReport::default();
        for refund in stale {
            report.examined += 1;
            match self.reconcile_with_gateway(&refund, Via::Sweep).await {
                Ok(r) if r.status() == RefundStatus::Pending => report.still_pending += 1,
                Ok(_) => report.settled += 1,
                Err(error) => {
                    report.still_pending += 1;
                    tracing::warn!(refund_id = %refund.id, %error, "sweep could not reconcile a refund");
                }
            }
        }
        if report.examined > 0 {
            tracing::info!(?report, "swept stale pending refunds");
        }
        Ok(report)
    }

    fn cursor(&self) -> std::sync::MutexGuard<'_, Option<PendingCursor>> {
        // The cursor is only a position: a poisoned one is still usable.
        self.sweep_cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sweeps every `every`, forever: spawn it on the host's runtime.
    pub async fn run_sweeper(self: Arc<Self>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.sweep().await {
                tracing::warn!(%error, "refund sweep failed");
            }
        }
    }

    /// Applies a fresh gateway snapshot and lets it settle what it proves
    /// (the pending refund; refunds failed as `not_applied` that it shows
    /// applied after all).
    ///
    /// One order (`merchant_uid`) can have several payment attempts at
    /// i'mport (an expired virtual account, then a card). The stored one is
    /// kept unless it never got paid and the other did; a snapshot of any
    /// other attempt is ignored, whoever sent its webhook.
    async fn absorb_snapshot(
        &self,
        snapshot: &Payment,
        now_ms: Option<i64>,
        via: Via,
    ) -> Result<StoredPayment, RefundError> {
        let before = self.store.payment(&snapshot.merchant_uid).await?;
        if let Some(stored) = &before {
            if stored.payment.imp_uid != snapshot.imp_uid && !replaced_by(stored, snapshot) {
                tracing::warn!(
                    merchant_uid = %snapshot.merchant_uid,
                    kept = %stored.payment.imp_uid,
                    ignored = %snapshot.imp_uid,
                    "ignored another payment attempt of this order"
                );
                return Ok(stored.clone());
            }
        }
        let stored = self.store.apply_snapshot(snapshot).await?;
        if before.is_none() {
            // Imported just now: no refund of it exists yet.
            return Ok(stored);
        }
        // The pending refund wants a verdict, and the entries may be late
        // evidence for a refund settled as not applied (even when our copy
        // of the totals already had them: another path may have stored
        // them without crediting anyone).
        self.judge(&snapshot.merchant_uid, Some(snapshot), now_ms, via, None)
            .await?;
        self.store
            .payment(&snapshot.merchant_uid)
            .await?
            .ok_or(RefundError::PaymentNotFound)
    }

    /// The view of a stored payment, from its recent refunds (one read,
    /// bounded: the journal grows with every partial refund and must not
    /// make each refund slower than the last; the pending refund is always
    /// the newest).
    async fn view_of(&self, stored: &StoredPayment) -> Result<PaymentView, RefundError> {
        let refunds = self
            .store
            .refunds_of(&stored.payment.merchant_uid, RECENT_REFUNDS)
            .await?;
        Ok(PaymentView::new(stored, &refunds, self.gateway.kind()))
    }

    /// True once `refund` can no longer be on the wire, by the store's clock.
    async fn past_in_flight(&self, refund: &crate::refund::Refund) -> Result<bool, RefundError> {
        let now = self.store.now_ms().await?;
        Ok(!verdict::may_be_on_the_wire(refund, now, self.settle_after))
    }
}

/// Both ids of a payment, for a gateway lookup.
pub(crate) fn payment_ref(payment: &Payment) -> PaymentRef<'_> {
    PaymentRef {
        imp_uid: &payment.imp_uid,
        merchant_uid: &payment.merchant_uid,
    }
}

/// Both ids of a refund's payment, for a gateway lookup.
pub(crate) fn refund_ref(refund: &crate::refund::Refund) -> PaymentRef<'_> {
    PaymentRef {
        imp_uid: &refund.imp_uid,
        merchant_uid: &refund.merchant_uid,
    }
}

/// True when another payment attempt of the order should replace the
/// stored one: ours never got paid, the other did, and no refund is open.
fn replaced_by(stored: &StoredPayment, other: &Payment) -> bool {
    use crate::payment::PaymentStatus;
    stored.pending_refund.is_none()
        && !stored.on_hold
        && !stored.payment.cancel_amount.is_positive()
        && matches!(
            stored.payment.status,
            PaymentStatus::Ready | PaymentStatus::Failed
        )
        && other.status == PaymentStatus::Paid
}
