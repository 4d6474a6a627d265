//! The [`PaymentStore`] conformance suite and the
//! shared test helpers (feature `testkit`).
//!
//! Every storage backend runs the same cases against a real server:
//!
//! ```ignore
//! /// `None` when the server is missing: a skip outside CI (under
//! /// `CI=true`, `testkit::services::MONGODB.connect` fails the test).
//! async fn store() -> Option<Arc<dyn PaymentStore>> { /* connect, migrate */ }
//! refund_core::store_conformance_tests!(store());
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case (so the adapter crate
//! needs `tokio` with `macros` and `rt-multi-thread` as a dev-dependency).
//! Each case works on fresh random ids, so cases may share one database and
//! run in parallel.
//!
//! Besides the cases: [`services`] (where the local servers run, skip or
//! fail under `CI=true`, scratch database names and leftovers),
//! [`FaultyStore`] (a store that fails on demand), [`ManualClock`] and the
//! builders below.

mod cases;
mod faulty_store;
pub mod services;

pub use cases::*;
pub use faulty_store::{FaultyStore, Pause, StoreFault, StoreOp};

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::actor::Actor;
use crate::clock::Clock;
use crate::money::{Amount, Currency};
use crate::payment::{CancelEntry, PayMethod, Payment, PaymentStatus};
use crate::refund::{Failure, FailureKind, Refund, RefundId, RefundState, Review};
use crate::store::PaymentStore;

/// Generates one `#[tokio::test]` per conformance case. `$make_store` is an
/// expression (a factory's call, an `async` block) awaited at the start of
/// each case; it gives a store, `Arc<S>` or `Arc<dyn PaymentStore>`, or an
/// `Option` of one, where `None` skips the case (see [`ConformanceStore`]).
/// A factory that gives `None` has already said why: through
/// [`services::Service::connect`] or [`services::skip_or_fail`], which fail
/// the test instead under `CI=true`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make_store:expr) => {
        $crate::store_conformance_tests!(@cases $make_store;
            snapshot_round_trips,
            snapshot_never_moves_cancel_amount_back,
            snapshot_keeps_the_pending_refund,
            begin_refund_admits_exactly_one_of_many,
            begin_refund_refuses_a_stale_cancel_amount,
            begin_refund_needs_the_payment,
            finish_succeeded_applies_the_snapshot_and_frees_the_payment,
            finish_failed_keeps_the_money_and_frees_the_payment,
            needs_review_holds_the_payment_until_resolved,
            a_resolution_lands_only_on_the_reviews_it_names,
            finish_of_an_unknown_refund_is_refused,
            idempotency_keys_are_unique,
            a_key_is_taken_once_across_racing_payments,
            concurrent_refunds_never_exceed_the_payment,
            stale_pending_refunds_are_listed_oldest_first,
            stale_pending_refunds_page_after_a_cursor,
            refunds_round_trip_newest_first,
            hostile_ids_are_stored_and_matched_literally,
            amounts_are_exact_at_the_extremes,
            finish_never_rolls_back_with_an_older_snapshot,
            concurrent_finishes_have_one_winner,
            concurrent_snapshots_keep_the_highest_total,
            long_and_unusual_text_round_trips,
            ping_answers,
            the_journal_is_stamped_by_the_store_clock,
            every_state_round_trips,
            a_pending_refund_is_named_by_its_cancellation_id,
            only_not_applied_failures_may_still_succeed,
            a_refund_that_changed_nothing_runs_again_as_the_same_row,
            a_retry_is_refused_like_a_begin,
            a_refund_run_again_keeps_its_place_in_listings,
            a_settlement_naming_an_earlier_attempt_changes_nothing,
            a_cancellation_id_naming_an_earlier_attempt_changes_nothing,
            finish_returns_what_it_stored,
            refunds_are_listed_newest_first_and_filtered,
            listing_pages_have_no_duplicates_or_gaps_under_inserts,
            listing_caps_the_limit,
            listing_treats_hostile_filters_as_data,
        );
    };
    (@cases $make_store:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(store) =
                    $crate::testkit::ConformanceStore::into_store($make_store.await)
                else {
                    return; // Skipped: the factory said why.
                };
                $crate::testkit::$case(store).await;
            }
        )*
    };
}

/// What a [`store_conformance_tests!`] factory may give: a store, or
/// `None` to skip the case.
pub trait ConformanceStore {
    /// The store to run the case on; `None` skips it.
    fn into_store(self) -> Option<Arc<dyn PaymentStore>>;
}

impl ConformanceStore for Arc<dyn PaymentStore> {
    fn into_store(self) -> Option<Arc<dyn PaymentStore>> {
        Some(self)
    }
}

impl ConformanceStore for Option<Arc<dyn PaymentStore>> {
    fn into_store(self) -> Option<Arc<dyn PaymentStore>> {
        self
    }
}

impl<S: PaymentStore> ConformanceStore for Arc<S> {
    fn into_store(self) -> Option<Arc<dyn PaymentStore>> {
        Some(self)
    }
}

impl<S: PaymentStore> ConformanceStore for Option<Arc<S>> {
    fn into_store(self) -> Option<Arc<dyn PaymentStore>> {
        self.map(|store| store as Arc<dyn PaymentStore>)
    }
}

/// The operator tests act as (`operator`).
pub fn operator() -> Actor {
    Actor::from_stored("operator")
}

/// A unique id with a readable prefix, so parallel cases never collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A paid payment of `amount` minor units, nothing cancelled yet.
pub fn paid_payment(merchant_uid: &str, amount: i64, currency: Currency) -> Payment {
    Payment {
        imp_uid: format!("imp_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        merchant_uid: merchant_uid.to_owned(),
        pay_method: PayMethod::Card,
        currency,
        amount: Amount::from_minor(amount),
        cancel_amount: Amount::ZERO,
        status: PaymentStatus::Paid,
        paid_at: 1_764_000_000,
        cancel_history: Vec::new(),
        requested_cancels: Vec::new(),
        failed_cancels: Vec::new(),
    }
}

/// The same payment after the gateway cancelled `amount` more.
pub fn after_cancel(payment: &Payment, amount: i64, reason: &str) -> Payment {
    let mut after = payment.clone();
    after.cancel_amount = Amount::from_minor(payment.cancel_amount.minor() + amount);
    if after.cancelable() == Amount::ZERO {
        after.status = PaymentStatus::Cancelled;
    }
    after.cancel_history.push(CancelEntry {
        pg_tid: Some(unique("pgtid")),
        amount: Amount::from_minor(amount),
        cancelled_at: 1_764_000_100 + payment.cancel_history.len() as i64,
        reason: Some(reason.to_owned()),
        cancellation_id: Some(unique("cxl")),
        receipt_url: Some("https://receipt.example/c".to_owned()),
    });
    after
}

/// A pending refund of `amount` against the payment as it is now. Its
/// timestamps are placeholders: the store stamps its own clock.
pub fn pending_refund(payment: &Payment, amount: i64, key: Option<&str>) -> Refund {
    Refund {
        id: RefundId::generate(),
        merchant_uid: payment.merchant_uid.clone(),
        imp_uid: payment.imp_uid.clone(),
        currency: payment.currency,
        amount: Amount::from_minor(amount),
        base_cancel_amount: payment.cancel_amount,
        checksum: payment.cancelable(),
        reason: Some("단순 변심 — changed mind".to_owned()),
        idempotency_key: key.map(str::to_owned),
        fingerprint: format!("{:064x}", amount),
        refund_account_masked: Some("**********8400".to_owned()),
        requested_by: Some(Actor::from_stored("kim.support")),
        state: RefundState::PENDING,
        created_at_ms: 0,
        attempt_started_at_ms: 0,
        attempt: crate::refund::FIRST_ATTEMPT,
        updated_at_ms: 0,
    }
}

/// Asserts that `stored` is `sent` as the store keeps it: every field
/// equal but the timestamps, which are the store's.
pub fn same_refund(stored: &Refund, sent: &Refund) {
    let stamped = Refund {
        created_at_ms: stored.created_at_ms,
        attempt_started_at_ms: stored.attempt_started_at_ms,
        updated_at_ms: stored.updated_at_ms,
        ..sent.clone()
    };
    assert_eq!(stored, &stamped);
    assert!(stored.created_at_ms > 0, "the store stamps its clock");
    assert!(
        stored.attempt_started_at_ms >= stored.created_at_ms,
        "an attempt starts no earlier than its refund was journaled"
    );
}

/// The state of a refund that succeeded with no cancel entry id.
pub fn succeeded() -> RefundState {
    RefundState::Succeeded {
        cancellation_id: None,
    }
}

/// A failed state.
pub fn failed(
    kind: FailureKind,
    code: Option<impl ToString>,
    message: impl Into<String>,
) -> RefundState {
    RefundState::Failed(Failure {
        kind,
        code: code.map(|c| c.to_string()),
        message: message.into(),
    })
}

/// A needs-review state.
pub fn review(message: impl Into<String>) -> RefundState {
    RefundState::NeedsReview(Review::new(message))
}

/// A clock that moves only when told: for tests of time-bound protocol
/// rules (in-flight bounds, the sweep's cutoff) without sleeping.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        ManualClock(AtomicI64::new(now_ms))
    }

    /// A clock stopped at the process's current time.
    pub fn now() -> Self {
        Self::at(crate::clock::now_ms())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
