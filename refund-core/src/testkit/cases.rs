//! The conformance cases. Each takes a store and panics on a violation.

use std::sync::Arc;

use super::{
    after_cancel, failed, paid_payment, pending_refund, review, same_refund, succeeded, unique,
};
use crate::actor::Actor;
use crate::listing::{RefundCursor, RefundFilter, RefundPage, MAX_LIST_LIMIT};
use crate::money::{Amount, Currency};
use crate::payment::{CancelEntry, PayMethod, PaymentStatus};
use crate::refund::{FailureKind, Refund, RefundId, RefundState, RefundStatus};
use crate::store::{PaymentStore, StoreError};

type Store = Arc<dyn PaymentStore>;

/// A snapshot is stored whole and read back equal, unknown codes included.
pub async fn snapshot_round_trips(store: Store) {
    let merchant_uid = unique("round-trip");
    let mut payment = paid_payment(&merchant_uid, 1005, Currency::Usd);
    payment.pay_method = PayMethod::Other("crypto_wallet".into());
    payment.status = PaymentStatus::Paid;
    payment = after_cancel(&payment, 1, "환불 🎉 \"quoted\" 'single'");
    payment.cancel_history.push(CancelEntry {
        pg_tid: None,
        amount: Amount::from_minor(2),
        cancelled_at: 0,
        reason: None,
        cancellation_id: None,
        receipt_url: None,
    });
    payment.cancel_amount = Amount::from_minor(3);
    let stored = store.apply_snapshot(&payment).await.unwrap();
    assert_eq!(stored.payment, payment);
    assert_eq!(stored.pending_refund, None);
    assert!(!stored.on_hold);
    let read = store.payment(&merchant_uid).await.unwrap().unwrap();
    assert_eq!(read, stored);
    assert!(store.payment(&unique("absent")).await.unwrap().is_none());

    let mut odd = paid_payment(&unique("odd-status"), 100, Currency::Krw);
    odd.status = PaymentStatus::Other("partial_cancelled_v2".into());
    let stored = store.apply_snapshot(&odd).await.unwrap();
    assert_eq!(stored.payment.status, odd.status);
}

/// Newer snapshots replace older ones; an older one (lower cancel_amount)
/// never rolls money back.
pub async fn snapshot_never_moves_cancel_amount_back(store: Store) {
    let merchant_uid = unique("monotonic");
    let mut first = paid_payment(&merchant_uid, 10_000, Currency::Krw);
    first.status = PaymentStatus::Ready;
    store.apply_snapshot(&first).await.unwrap();
    let mut paid = first.clone();
    paid.status = PaymentStatus::Paid;
    let stored = store.apply_snapshot(&paid).await.unwrap();
    assert_eq!(
        stored.payment.status,
        PaymentStatus::Paid,
        "same total, newer status applies"
    );
    let later = after_cancel(&paid, 3_000, "partial");
    assert_eq!(store.apply_snapshot(&later).await.unwrap().payment, later);
    let stale = store.apply_snapshot(&paid).await.unwrap();
    assert_eq!(stale.payment, later, "an older snapshot must be ignored");
    assert_eq!(
        store.payment(&merchant_uid).await.unwrap().unwrap().payment,
        later
    );
}

/// Applying a snapshot while a refund is pending keeps the refund and the lock.
pub async fn snapshot_keeps_the_pending_refund(store: Store) {
    let payment = paid_payment(&unique("keeps-pending"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 4_000, None);
    store.begin_refund(&refund).await.unwrap();
    let stored = store
        .apply_snapshot(&after_cancel(&payment, 4_000, "webhook"))
        .await
        .unwrap();
    assert_eq!(stored.pending_refund.as_ref(), Some(&refund.id));
    assert_eq!(stored.payment.cancel_amount, Amount::from_minor(4_000));
    let journal = store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(journal.status(), RefundStatus::Pending);
    assert_eq!(
        store
            .begin_refund(&pending_refund(&stored.payment, 1, None))
            .await
            .unwrap_err()
            .to_string(),
        StoreError::RefundInProgress.to_string()
    );
}

/// Fifty concurrent begins on one payment: exactly one wins, and the losers
/// are refused with a conflict, not an error.
pub async fn begin_refund_admits_exactly_one_of_many(store: Store) {
    let payment = paid_payment(&unique("race"), 50_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let refund = pending_refund(&payment, 1_000 + i, None);
            tokio::spawn(async move {
                let result = store.begin_refund(&refund).await;
                (refund.id, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (id, result) = task.await.unwrap();
        match result {
            Ok(()) => winners.push(id),
            Err(StoreError::RefundInProgress | StoreError::CancelAmountChanged) => {}
            Err(other) => panic!("a losing begin must be a conflict, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refund may be pending");
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.pending_refund.as_ref(), Some(&winners[0]));
    let journal = store.refunds_of(&payment.merchant_uid, 100).await.unwrap();
    assert_eq!(journal.len(), 1, "losers must write nothing");
}

/// A begin based on an outdated cancel_amount is refused and writes nothing.
pub async fn begin_refund_refuses_a_stale_cancel_amount(store: Store) {
    let payment = paid_payment(&unique("stale"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let moved = after_cancel(&payment, 2_000, "elsewhere");
    store.apply_snapshot(&moved).await.unwrap();
    let key = unique("k1");
    let stale = pending_refund(&payment, 1_000, Some(&key));
    assert!(matches!(
        store.begin_refund(&stale).await,
        Err(StoreError::CancelAmountChanged)
    ));
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.pending_refund, None);
    assert!(store
        .refunds_of(&payment.merchant_uid, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .refund_by_idempotency_key(&key)
        .await
        .unwrap()
        .is_none());
    store
        .begin_refund(&pending_refund(&moved, 1_000, Some(&key)))
        .await
        .unwrap();
}

/// No refund without its payment.
pub async fn begin_refund_needs_the_payment(store: Store) {
    let ghost = paid_payment(&unique("ghost"), 1_000, Currency::Krw);
    assert!(matches!(
        store.begin_refund(&pending_refund(&ghost, 500, None)).await,
        Err(StoreError::PaymentNotFound)
    ));
}

/// Success records the gateway's payment, frees the slot, and is final.
pub async fn finish_succeeded_applies_the_snapshot_and_frees_the_payment(store: Store) {
    let payment = paid_payment(&unique("succeed"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 10_000, None);
    store.begin_refund(&refund).await.unwrap();
    let after = after_cancel(&payment, 10_000, "full");
    let done = store
        .finish_refund(&refund.id, refund.attempt, &succeeded(), Some(&after))
        .await
        .unwrap()
        .refund;
    assert_eq!(done.status(), RefundStatus::Succeeded);
    assert!(done.updated_at_ms >= done.created_at_ms);
    assert_eq!(done.amount, refund.amount);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.payment, after);
    assert_eq!(stored.pending_refund, None);
    assert!(matches!(
        store
            .finish_refund(&refund.id, refund.attempt, &succeeded(), Some(&after))
            .await,
        Err(StoreError::NotPending(RefundStatus::Succeeded))
    ));
    let failed_late = failed(FailureKind::Rejected, Some(1), "late");
    assert!(matches!(
        store
            .finish_refund(&refund.id, refund.attempt, &failed_late, None)
            .await,
        Err(StoreError::NotPending(RefundStatus::Succeeded))
    ));
    assert_eq!(
        store.refund(&refund.id).await.unwrap().unwrap().status(),
        RefundStatus::Succeeded
    );
}

/// Failure stores the gateway's word, leaves money alone, frees the slot.
pub async fn finish_failed_keeps_the_money_and_frees_the_payment(store: Store) {
    let payment = paid_payment(&unique("fail"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 3_000, None);
    store.begin_refund(&refund).await.unwrap();
    let outcome = failed(
        FailureKind::Rejected,
        Some(-1),
        "취소 가능 금액을 초과했습니다",
    );
    let done = store
        .finish_refund(&refund.id, refund.attempt, &outcome, None)
        .await
        .unwrap()
        .refund;
    assert_eq!(done.status(), RefundStatus::Failed);
    assert_eq!(done.state, outcome);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.payment, payment);
    assert_eq!(stored.pending_refund, None);
    store
        .begin_refund(&pending_refund(&payment, 3_000, None))
        .await
        .unwrap();
}

/// needs_review puts the payment on hold until an operator resolves the
/// review: the resolution is recorded on the refund (who, when on the
/// store's clock, the note), the operator's snapshot applied and the hold
/// lifted, atomically; a payment not held is refused.
pub async fn needs_review_holds_the_payment_until_resolved(store: Store) {
    let payment = paid_payment(&unique("review"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 3_000, None);
    store.begin_refund(&refund).await.unwrap();
    let odd = after_cancel(&payment, 5_000, "unexplained");
    let outcome = review("numbers do not add up");
    let done = store
        .finish_refund(&refund.id, refund.attempt, &outcome, Some(&odd))
        .await
        .unwrap()
        .refund;
    assert_eq!(done.status(), RefundStatus::NeedsReview);
    assert_eq!(done.state, outcome);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert!(stored.on_hold);
    assert_eq!(stored.payment, odd);
    assert!(matches!(
        store.begin_refund(&pending_refund(&odd, 1_000, None)).await,
        Err(StoreError::OnHold)
    ));
    let resynced = store.apply_snapshot(&odd).await.unwrap();
    assert!(resynced.on_hold, "a snapshot alone does not lift the hold");
    // The operator saw the gateway at a newer total; an older snapshot
    // would not roll it back.
    let seen = after_cancel(&odd, 1_000, "console");
    let operator = Actor::from_stored("lee.finance");
    let note = "console refund of 1,000 confirmed with the PG — 'ok'";
    let before_ms = store.now_ms().await.unwrap();
    let resolved = store
        .resolve_review(
            &payment.merchant_uid,
            std::slice::from_ref(&refund.id),
            &operator,
            note,
            Some(&seen),
        )
        .await
        .unwrap();
    assert!(!resolved.on_hold);
    assert_eq!(resolved.payment, seen);
    assert_eq!(
        store.payment(&payment.merchant_uid).await.unwrap().unwrap(),
        resolved
    );
    let read = store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(
        read.status(),
        RefundStatus::NeedsReview,
        "the verdict stays"
    );
    let RefundState::NeedsReview(review) = &read.state else {
        panic!("{read:?}");
    };
    assert_eq!(review.message, "numbers do not add up");
    let resolution = review.resolution.as_ref().expect("resolved");
    assert_eq!(resolution.resolved_by, operator);
    assert_eq!(resolution.note, note);
    // The store's clock (SQLite's and the in-memory store's may sit a
    // millisecond behind a read of the same clock; none goes back further).
    assert!(
        resolution.resolved_at_ms >= before_ms - 1_000,
        "{resolution:?}"
    );
    assert!(read.updated_at_ms >= done.updated_at_ms);
    // Nothing is held any more: a second resolution is refused and writes
    // nothing.
    assert!(matches!(
        store
            .resolve_review(
                &payment.merchant_uid,
                std::slice::from_ref(&refund.id),
                &Actor::from_stored("x"),
                "again",
                Some(&odd)
            )
            .await,
        Err(StoreError::NotOnHold)
    ));
    assert_eq!(store.refund(&refund.id).await.unwrap().unwrap(), read);
    store
        .begin_refund(&pending_refund(&seen, 1_000, None))
        .await
        .unwrap();
    assert!(matches!(
        store
            .resolve_review(&unique("ghost"), &[], &operator, "note", None)
            .await,
        Err(StoreError::PaymentNotFound)
    ));
}

/// Lifts the payment's hold if it has one (for cases that reuse a payment
/// after a review).
async fn lift_hold(store: &Store, merchant_uid: &str) {
    let operator = Actor::from_stored("ops");
    let open = open_reviews(store, merchant_uid).await;
    match store
        .resolve_review(merchant_uid, &open, &operator, "checked", None)
        .await
    {
        Ok(_) | Err(StoreError::NotOnHold) => {}
        Err(error) => panic!("resolve_review: {error:?}"),
    }
}

/// The ids of the payment's refunds that need review and have no
/// resolution, as an operator's workflow reads them.
async fn open_reviews(store: &Store, merchant_uid: &str) -> Vec<RefundId> {
    let page = store
        .list_refunds(
            &filter(Some(RefundStatus::NeedsReview), Some(merchant_uid)),
            crate::MAX_LIST_LIMIT,
            None,
        )
        .await
        .unwrap();
    assert!(page.next_cursor.is_none(), "a test payment has few reviews");
    page.refunds
        .into_iter()
        .filter(
            |r| matches!(&r.state, RefundState::NeedsReview(review) if review.resolution.is_none()),
        )
        .map(|r| r.id)
        .collect()
}

/// A resolution is recorded only on the reviews its operator saw: while
/// the payment's open reviews are not exactly the ids given (one of them
/// resolved meanwhile, another refund needing review since, an id that is
/// not an open review of it), nothing is written and the answer is
/// `ReviewChanged`; the other refusals keep their precedence.
pub async fn a_resolution_lands_only_on_the_reviews_it_names(store: Store) {
    let payment = paid_payment(&unique("seen-review"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let first = pending_refund(&payment, 1_000, None);
    store.begin_refund(&first).await.unwrap();
    store
        .finish_refund(&first.id, first.attempt, &review("first"), None)
        .await
        .unwrap();
    let uid = payment.merchant_uid.as_str();
    let alice = Actor::from_stored("alice");
    let before = store.refund(&first.id).await.unwrap().unwrap();
    // An open review of another payment.
    let elsewhere = paid_payment(&unique("other-review"), 10_000, Currency::Krw);
    store.apply_snapshot(&elsewhere).await.unwrap();
    let other = journaled(&store, &elsewhere.merchant_uid, Some(review("elsewhere"))).await;
    for wrong in [
        vec![],
        vec![RefundId::generate()],
        vec![first.id.clone(), RefundId::generate()],
        vec![other.id.clone()],
        vec![first.id.clone(), other.id.clone()],
    ] {
        assert!(
            matches!(
                store.resolve_review(uid, &wrong, &alice, "no", None).await,
                Err(StoreError::ReviewChanged)
            ),
            "{wrong:?}"
        );
        assert_eq!(store.refund(&first.id).await.unwrap().unwrap(), before);
        assert!(store.payment(uid).await.unwrap().unwrap().on_hold);
    }
    // The review Bob saw: resolved, the hold lifted.
    let bob = Actor::from_stored("bob");
    let lifted = store
        .resolve_review(
            uid,
            std::slice::from_ref(&first.id),
            &bob,
            "first checked",
            None,
        )
        .await
        .unwrap();
    assert!(!lifted.on_hold);
    // A second refund needs review: Alice's resolution of the first one
    // (the ids she read) must not land on it.
    let now = store.payment(uid).await.unwrap().unwrap().payment;
    let second = pending_refund(&now, 2_000, None);
    store.begin_refund(&second).await.unwrap();
    store
        .finish_refund(&second.id, second.attempt, &review("second"), None)
        .await
        .unwrap();
    let second_before = store.refund(&second.id).await.unwrap().unwrap();
    assert!(matches!(
        store
            .resolve_review(
                uid,
                std::slice::from_ref(&first.id),
                &alice,
                "about the first",
                None
            )
            .await,
        Err(StoreError::ReviewChanged)
    ));
    assert_eq!(
        store.refund(&second.id).await.unwrap().unwrap(),
        second_before
    );
    assert!(store.payment(uid).await.unwrap().unwrap().on_hold);
    let resolved = store
        .resolve_review(
            uid,
            std::slice::from_ref(&second.id),
            &alice,
            "second checked",
            None,
        )
        .await
        .unwrap();
    assert!(!resolved.on_hold);
    for (id, by, note) in [
        (&first.id, &bob, "first checked"),
        (&second.id, &alice, "second checked"),
    ] {
        let read = store.refund(id).await.unwrap().unwrap();
        let RefundState::NeedsReview(review) = &read.state else {
            panic!("{read:?}");
        };
        let resolution = review.resolution.as_ref().expect("resolved");
        assert_eq!(
            (&resolution.resolved_by, resolution.note.as_str()),
            (by, note)
        );
    }
    // The other payment's review was never touched.
    assert_eq!(store.refund(&other.id).await.unwrap().unwrap(), other);
    lift_hold(&store, &other.merchant_uid).await;
}

/// Finishing a refund that does not exist is an error, not a write.
pub async fn finish_of_an_unknown_refund_is_refused(store: Store) {
    assert!(matches!(
        store
            .finish_refund(&RefundId::generate(), 1, &succeeded(), None)
            .await,
        Err(StoreError::RefundNotFound)
    ));
    assert!(store.refund(&RefundId::generate()).await.unwrap().is_none());
}

/// A key names one refund, whichever payment reuses it; keys match
/// byte for byte.
pub async fn idempotency_keys_are_unique(store: Store) {
    let first = paid_payment(&unique("idem-a"), 10_000, Currency::Krw);
    let second = paid_payment(&unique("idem-b"), 10_000, Currency::Krw);
    store.apply_snapshot(&first).await.unwrap();
    store.apply_snapshot(&second).await.unwrap();
    let key = format!("Order-42/click-{}", unique("k"));
    let refund = pending_refund(&first, 1_000, Some(&key));
    store.begin_refund(&refund).await.unwrap();
    let outcome = failed(FailureKind::Rejected, Some(-1), "no");
    store
        .finish_refund(&refund.id, refund.attempt, &outcome, None)
        .await
        .unwrap();
    for payment in [&first, &second] {
        assert!(
            matches!(
                store
                    .begin_refund(&pending_refund(payment, 1_000, Some(&key)))
                    .await,
                Err(StoreError::IdempotencyKeyTaken)
            ),
            "a key names one refund"
        );
    }
    assert_eq!(
        store
            .payment(&second.merchant_uid)
            .await
            .unwrap()
            .unwrap()
            .pending_refund,
        None,
        "a refused begin writes nothing"
    );
    let found = store
        .refund_by_idempotency_key(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, refund.id);
    assert_eq!(found.merchant_uid, first.merchant_uid);
    let lower = key.to_lowercase();
    let spaced = format!("{key} ");
    let cut = &key[..key.len() - 1];
    let wildcard = format!("{cut}_");
    let percent = format!("{}%", &key[..10]);
    for miss in [
        lower.as_str(),
        spaced.as_str(),
        cut,
        wildcard.as_str(),
        percent.as_str(),
    ] {
        assert!(
            store
                .refund_by_idempotency_key(miss)
                .await
                .unwrap()
                .is_none(),
            "{miss:?} must not match {key:?}"
        );
    }
    store
        .begin_refund(&pending_refund(&second, 1_000, Some(&spaced)))
        .await
        .unwrap();
}

/// The same key raced on many payments at once: exactly one refund gets it.
pub async fn a_key_is_taken_once_across_racing_payments(store: Store) {
    let key = unique("raced-key");
    let mut payments = Vec::new();
    for i in 0..20 {
        let payment = paid_payment(&unique(&format!("key-race-{i}")), 10_000, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        payments.push(payment);
    }
    let tasks: Vec<_> = payments
        .iter()
        .map(|payment| {
            let store = store.clone();
            let refund = pending_refund(payment, 1_000, Some(&key));
            tokio::spawn(async move { store.begin_refund(&refund).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(StoreError::IdempotencyKeyTaken) => {}
            Err(other) => panic!("a losing begin must be IdempotencyKeyTaken, got {other:?}"),
        }
    }
    assert_eq!(admitted, 1, "a key names one refund");
    let pending = count_pending(&store, &payments).await;
    assert_eq!(pending, 1, "losers must write nothing");
}

async fn count_pending(store: &Store, payments: &[crate::payment::Payment]) -> usize {
    let mut pending = 0;
    for payment in payments {
        let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
        pending += usize::from(stored.pending_refund.is_some());
    }
    pending
}

/// Many racing refunds, each retried on conflict the way the workflow does:
/// the refunded total never exceeds the payment and the journal adds up.
pub async fn concurrent_refunds_never_exceed_the_payment(store: Store) {
    let payment = paid_payment(&unique("ceiling"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let merchant_uid = payment.merchant_uid.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    let current = store.payment(&merchant_uid).await.unwrap().unwrap().payment;
                    if current.cancelable() < Amount::from_minor(1_500) {
                        return;
                    }
                    let refund = pending_refund(&current, 1_500, None);
                    match store.begin_refund(&refund).await {
                        Ok(()) => {
                            let after = after_cancel(&current, 1_500, "race");
                            store
                                .finish_refund(
                                    &refund.id,
                                    refund.attempt,
                                    &succeeded(),
                                    Some(&after),
                                )
                                .await
                                .unwrap();
                        }
                        Err(StoreError::RefundInProgress | StoreError::CancelAmountChanged) => {
                            tokio::task::yield_now().await;
                        }
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    let journal = store.refunds_of(&payment.merchant_uid, 100).await.unwrap();
    let refunded: i64 = journal
        .iter()
        .filter(|r| r.status() == RefundStatus::Succeeded)
        .map(|r| r.amount.minor())
        .sum();
    assert_eq!(refunded, 9_000, "six refunds of 1,500 fit in 10,000");
    assert_eq!(stored.payment.cancel_amount, Amount::from_minor(refunded));
    assert_eq!(stored.pending_refund, None);
}

/// The sweep pages through its work list: after a cursor, only the refunds
/// that come after it (by `created_at_ms`, then id), each once, even when
/// several began in the same millisecond.
pub async fn stale_pending_refunds_page_after_a_cursor(store: Store) {
    let mut ours = Vec::new();
    for i in 0..5 {
        let payment = paid_payment(&unique(&format!("page-{i}")), 1_000, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        let refund = pending_refund(&payment, 100, None);
        store.begin_refund(&refund).await.unwrap();
        ours.push(store.refund(&refund.id).await.unwrap().unwrap().id);
        if i % 2 == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
    }
    // All of them older than the store's now.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let all = store
        .stale_pending_refunds(std::time::Duration::ZERO, None, 10_000)
        .await
        .unwrap();
    let order: Vec<(i64, RefundId)> = all
        .iter()
        .map(|r| (r.created_at_ms, r.id.clone()))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "ordered by time, then id"
    );
    // Page by two from the start: every refund once, in the same order.
    let mut paged = Vec::new();
    let mut cursor: Option<crate::store::PendingCursor> = None;
    loop {
        let page = store
            .stale_pending_refunds(std::time::Duration::ZERO, cursor.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some(crate::store::PendingCursor::after(last));
        paged.extend(page.into_iter().map(|r| r.id));
        assert!(paged.len() <= all.len() + 100_000, "paging never ends");
    }
    let ours_in = |ids: &[RefundId]| -> Vec<RefundId> {
        ids.iter().filter(|id| ours.contains(id)).cloned().collect()
    };
    let listed: Vec<RefundId> = all.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ours_in(&paged), ours_in(&listed));
    assert_eq!(ours_in(&paged).len(), ours.len());
    // After one of ours: only what follows it.
    let second = all.iter().find(|r| r.id == ours_in(&listed)[1]).unwrap();
    let rest = store
        .stale_pending_refunds(
            std::time::Duration::ZERO,
            Some(&crate::store::PendingCursor::after(second)),
            10_000,
        )
        .await
        .unwrap();
    let rest_ids: Vec<RefundId> = rest.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ours_in(&rest_ids), ours_in(&listed)[2..].to_vec());
    assert!(rest
        .iter()
        .all(|r| (r.created_at_ms, &r.id) > (second.created_at_ms, &second.id)));
    for id in &ours {
        store
            .finish_refund(id, crate::FIRST_ATTEMPT, &succeeded(), None)
            .await
            .unwrap();
    }
}

/// The sweep's work list: pending only, older than the cutoff on the
/// store's clock, oldest first.
pub async fn stale_pending_refunds_are_listed_oldest_first(store: Store) {
    let mut ours = Vec::new();
    for i in 0..4 {
        let payment = paid_payment(&unique(&format!("sweep-{i}")), 1_000, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        let refund = pending_refund(&payment, 100, None);
        store.begin_refund(&refund).await.unwrap();
        ours.push(store.refund(&refund.id).await.unwrap().unwrap());
        // Distinct store timestamps, so "oldest first" is observable.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    // A settled refund is not listed.
    let settled = ours.remove(2);
    store
        .finish_refund(&settled.id, settled.attempt, &succeeded(), None)
        .await
        .unwrap();
    let ours_listed = |listed: Vec<crate::refund::Refund>| -> Vec<RefundId> {
        listed
            .into_iter()
            .map(|r| r.id)
            .filter(|id| ours.iter().any(|o| &o.id == id))
            .collect()
    };
    let all = store
        .stale_pending_refunds(std::time::Duration::ZERO, None, 10_000)
        .await
        .unwrap();
    assert!(
        all.windows(2)
            .all(|w| w[0].created_at_ms <= w[1].created_at_ms),
        "oldest first"
    );
    assert!(all.iter().all(|r| r.status() == RefundStatus::Pending));
    assert_eq!(
        ours_listed(all),
        ours.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    // Younger than the cutoff (an hour) on the store's clock: not listed.
    let young = store
        .stale_pending_refunds(std::time::Duration::from_secs(3_600), None, 10_000)
        .await
        .unwrap();
    assert!(ours_listed(young).is_empty());
    let limited = store
        .stale_pending_refunds(std::time::Duration::ZERO, None, 1)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert!(
        limited[0].created_at_ms <= ours[0].created_at_ms,
        "oldest first"
    );
    // Leave nothing pending for later runs on the same database.
    for refund in &ours {
        store
            .finish_refund(&refund.id, refund.attempt, &succeeded(), None)
            .await
            .unwrap();
    }
}

/// Every refund field survives storage; lists are newest first.
pub async fn refunds_round_trip_newest_first(store: Store) {
    let payment = paid_payment(&unique("journal"), 30_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let mut current = payment.clone();
    let mut ids = Vec::new();
    let (first_key, third_key) = (unique("k-1"), unique("k-3"));
    let keys = [Some(first_key.as_str()), None, Some(third_key.as_str())];
    for (i, key) in keys.into_iter().enumerate() {
        let refund = pending_refund(&current, 1_000, key);
        store.begin_refund(&refund).await.unwrap();
        same_refund(&store.refund(&refund.id).await.unwrap().unwrap(), &refund);
        if i < 2 {
            // Distinct store timestamps, so "newest first" is observable.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        current = after_cancel(&current, 1_000, "step");
        store
            .finish_refund(&refund.id, refund.attempt, &succeeded(), Some(&current))
            .await
            .unwrap();
        ids.push(refund.id);
    }
    let listed: Vec<RefundId> = store
        .refunds_of(&payment.merchant_uid, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert!(store
        .refunds_of(&unique("none"), 100)
        .await
        .unwrap()
        .is_empty());
}

/// Ids full of SQL, Mongo operators, wildcards and unicode are data.
pub async fn hostile_ids_are_stored_and_matched_literally(store: Store) {
    let tag = unique("h");
    let hostile = [
        "'; DROP TABLE payments; --",
        r#"{"$ne": null}"#,
        "$where",
        "$gt",
        "%",
        "_",
        ".*",
        "\\",
        "\"quoted\"",
        "주문-1 🎉",
        "a\u{301}",
    ];
    for (i, text) in hostile.iter().enumerate() {
        let merchant_uid = format!("{text}{tag}");
        let payment = paid_payment(&merchant_uid, 1_000 + i as i64, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        let key = format!("{text}{tag}");
        let refund = pending_refund(&payment, 10, Some(&key));
        store.begin_refund(&refund).await.unwrap();
        assert_eq!(
            store.payment(&merchant_uid).await.unwrap().unwrap().payment,
            payment
        );
        let found = store
            .refund_by_idempotency_key(&key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, refund.id);
    }
    // As patterns these would match stored ids; as literals they match none.
    let rest = &tag[1..];
    for pattern in [
        format!("%{rest}"),
        format!("__{rest}"),
        format!(".*{rest}"),
        format!("%{tag}%"),
    ] {
        assert!(
            store.payment(&pattern).await.unwrap().is_none(),
            "{pattern:?}"
        );
    }
    for pattern in [format!("%{rest}"), format!("__{rest}"), format!("%{rest}%")] {
        let found = store.refund_by_idempotency_key(&pattern).await.unwrap();
        assert!(found.is_none(), "{pattern:?} matched a key");
    }
}

/// Amounts beyond f64's exact range come back exact.
pub async fn amounts_are_exact_at_the_extremes(store: Store) {
    let big = 9_007_199_254_740_993; // 2^53 + 1: not representable as f64.
    let payment = paid_payment(&unique("big"), big, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, big - 1, None);
    store.begin_refund(&refund).await.unwrap();
    let read = store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(read.amount.minor(), big - 1);
    assert_eq!(read.checksum.minor(), big);
    let after = after_cancel(&payment, big - 1, "big");
    store
        .finish_refund(&refund.id, refund.attempt, &succeeded(), Some(&after))
        .await
        .unwrap();
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.payment.amount.minor(), big);
    assert_eq!(stored.payment.cancel_amount.minor(), big - 1);
    assert_eq!(stored.payment.cancel_history[0].amount.minor(), big - 1);

    let cents = paid_payment(&unique("usd"), 1, Currency::Usd);
    assert_eq!(store.apply_snapshot(&cents).await.unwrap().payment, cents);
}

/// A settled refund's snapshot never rolls the payment back either.
pub async fn finish_never_rolls_back_with_an_older_snapshot(store: Store) {
    let payment = paid_payment(&unique("finish-old"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, None);
    store.begin_refund(&refund).await.unwrap();
    let newer = after_cancel(&after_cancel(&payment, 1_000, "ours"), 2_000, "console");
    store.apply_snapshot(&newer).await.unwrap();
    let older = after_cancel(&payment, 1_000, "ours");
    store
        .finish_refund(&refund.id, refund.attempt, &succeeded(), Some(&older))
        .await
        .unwrap();
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.payment, newer);
    assert_eq!(stored.pending_refund, None);
}

/// Concurrent settlements of one refund: exactly one wins, the others see
/// its verdict.
pub async fn concurrent_finishes_have_one_winner(store: Store) {
    let payment = paid_payment(&unique("finish-race"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, None);
    store.begin_refund(&refund).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, id) = (store.clone(), refund.id.clone());
            let outcome = if i % 2 == 0 {
                succeeded()
            } else {
                failed(FailureKind::Rejected, Some(i), format!("attempt {i}"))
            };
            tokio::spawn(async move { store.finish_refund(&id, 1, &outcome, None).await })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(settled) => winners.push(settled.refund),
            Err(StoreError::NotPending(status)) => losers.push(status),
            Err(other) => panic!("a losing finish must be NotPending, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(stored, winners[0]);
    assert!(losers.iter().all(|s| *s == stored.status()));
}

/// Concurrent snapshots of one payment: the highest total wins whatever
/// the order.
pub async fn concurrent_snapshots_keep_the_highest_total(store: Store) {
    let payment = paid_payment(&unique("snap-race"), 100_000, Currency::Krw);
    let mut versions = vec![payment.clone()];
    for _ in 0..15 {
        let last = versions.last().unwrap().clone();
        versions.push(after_cancel(&last, 1_000, "step"));
    }
    let tasks: Vec<_> = versions
        .iter()
        .rev()
        .cloned()
        .map(|version| {
            let store = store.clone();
            tokio::spawn(async move { store.apply_snapshot(&version).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(&stored.payment, versions.last().unwrap());
}

/// Long and multi-byte text fits: 256 four-byte characters of reason,
/// 128-character ids and keys, kilobytes of gateway message.
pub async fn long_and_unusual_text_round_trips(store: Store) {
    let merchant_uid = format!("{}{}", unique("long"), "주".repeat(90));
    let mut payment = paid_payment(&merchant_uid, 10_000, Currency::Krw);
    payment.cancel_history.push(CancelEntry {
        pg_tid: Some("t".repeat(200)),
        amount: Amount::ZERO,
        cancelled_at: 1,
        reason: Some("🎉".repeat(256)),
        cancellation_id: Some("c".repeat(200)),
        receipt_url: Some(format!("https://receipt.example/{}", "r".repeat(1_000))),
    });
    store.apply_snapshot(&payment).await.unwrap();
    let key = format!("{:k<128}", unique("key"));
    let mut refund = pending_refund(&payment, 1_000, Some(&key));
    refund.reason = Some("🎉".repeat(256));
    store.begin_refund(&refund).await.unwrap();
    same_refund(&store.refund(&refund.id).await.unwrap().unwrap(), &refund);
    let message = "실패 ".repeat(1_000);
    let outcome = failed(FailureKind::Rejected, Some(i64::MIN), message.clone());
    let done = store
        .finish_refund(&refund.id, refund.attempt, &outcome, None)
        .await
        .unwrap()
        .refund;
    assert_eq!(done.state, outcome);
    assert_eq!(
        store.payment(&merchant_uid).await.unwrap().unwrap().payment,
        payment
    );
    let found = store
        .refund_by_idempotency_key(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, refund.id);
}

/// The health check answers.
pub async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
}

/// The store's clock is unix milliseconds, and it stamps the journal:
/// `begin_refund` ignores the caller's timestamps.
pub async fn the_journal_is_stamped_by_the_store_clock(store: Store) {
    let before = store.now_ms().await.unwrap();
    let process = crate::clock::now_ms();
    // Same machine in tests: the store's clock and ours agree roughly; a
    // unit mistake (seconds, microseconds) would be off by orders.
    assert!(
        (before - process).abs() < 3_600_000,
        "store clock {before} is not unix milliseconds near {process}"
    );
    let payment = paid_payment(&unique("clock"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let mut refund = pending_refund(&payment, 1_000, None);
    refund.created_at_ms = 1;
    refund.updated_at_ms = 1;
    store.begin_refund(&refund).await.unwrap();
    let stored = store.refund(&refund.id).await.unwrap().unwrap();
    let after = store.now_ms().await.unwrap();
    assert!(
        (before..=after).contains(&stored.created_at_ms),
        "created {} outside [{before}, {after}]",
        stored.created_at_ms
    );
    assert_eq!(stored.updated_at_ms, stored.created_at_ms);
    let done = store
        .finish_refund(&refund.id, refund.attempt, &succeeded(), None)
        .await
        .unwrap()
        .refund;
    assert_eq!(done.created_at_ms, stored.created_at_ms);
    assert!(done.updated_at_ms >= stored.created_at_ms);
    assert!(done.updated_at_ms <= store.now_ms().await.unwrap());
}

/// Every state is stored explicitly and read back as it was.
pub async fn every_state_round_trips(store: Store) {
    let states = [
        RefundState::Succeeded {
            cancellation_id: Some(unique("cxl")),
        },
        succeeded(),
        failed(FailureKind::Rejected, Some("-1"), "refused"),
        failed(FailureKind::Rejected, Some("PG_PROVIDER"), "카드사 거절"),
        failed(FailureKind::NotSent, None::<String>, "gateway unreachable"),
        failed(FailureKind::NotApplied, None::<String>, "not applied"),
        review("numbers do not add up"),
    ];
    for state in states {
        let payment = paid_payment(&unique("state"), 10_000, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        let refund = pending_refund(&payment, 1_000, None);
        store.begin_refund(&refund).await.unwrap();
        let done = store
            .finish_refund(&refund.id, refund.attempt, &state, None)
            .await
            .unwrap()
            .refund;
        assert_eq!(done.state, state);
        let read = store.refund(&refund.id).await.unwrap().unwrap();
        assert_eq!(read.state, state);
        let listed = store.refunds_of(&payment.merchant_uid, 10).await.unwrap();
        assert_eq!(listed[0].state, state);
    }
}

/// An asynchronous cancel's id is recorded on its pending refund, which
/// stays pending, keeps its start and its payment's slot; a settled refund
/// is never renamed, and unknown ids are refused.
pub async fn a_pending_refund_is_named_by_its_cancellation_id(store: Store) {
    let payment = paid_payment(&unique("accepted"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, Some(&unique("key")));
    store.begin_refund(&refund).await.unwrap();
    let begun = store.refund(&refund.id).await.unwrap().unwrap();
    let id = unique("cxl");
    let noted = store
        .note_cancellation_id(&refund.id, refund.attempt, &id)
        .await
        .unwrap();
    let named = RefundState::Pending {
        cancellation_id: Some(id.clone()),
    };
    assert_eq!(noted.state, named);
    assert_eq!(noted.created_at_ms, begun.created_at_ms, "its start stays");
    let read = store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(read.state, named);
    assert_eq!(read.amount, refund.amount);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(
        stored.pending_refund.as_ref(),
        Some(&refund.id),
        "still holds the slot"
    );
    let other = pending_refund(&payment, 500, None);
    assert!(matches!(
        store.begin_refund(&other).await,
        Err(StoreError::RefundInProgress)
    ));
    // Settled with that id; a settled refund is never renamed.
    let done = RefundState::Succeeded {
        cancellation_id: Some(id.clone()),
    };
    store
        .finish_refund(&refund.id, refund.attempt, &done, None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .note_cancellation_id(&refund.id, refund.attempt, "another")
            .await,
        Err(StoreError::NotPending(RefundStatus::Succeeded))
    ));
    assert_eq!(store.refund(&refund.id).await.unwrap().unwrap().state, done);
    assert!(matches!(
        store
            .note_cancellation_id(&RefundId::generate(), 1, "x")
            .await,
        Err(StoreError::RefundNotFound)
    ));
}

/// Late evidence wins: a `not_applied` failure may still become
/// `succeeded` (or go to review, when a retry finds ambiguous evidence),
/// and nothing else settled ever moves.
pub async fn only_not_applied_failures_may_still_succeed(store: Store) {
    let payment = paid_payment(&unique("late"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, None);
    store.begin_refund(&refund).await.unwrap();
    let not_applied = failed(FailureKind::NotApplied, None::<String>, "not applied");
    store
        .finish_refund(&refund.id, refund.attempt, &not_applied, None)
        .await
        .unwrap();
    // Meanwhile the payment is free for another refund.
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.pending_refund, None);
    for never in [
        failed(FailureKind::Rejected, Some("1"), "no"),
        RefundState::PENDING,
    ] {
        assert!(matches!(
            store
                .finish_refund(&refund.id, refund.attempt, &never, None)
                .await,
            Err(StoreError::NotPending(RefundStatus::Failed))
        ));
    }
    let other = paid_payment(&unique("late-review"), 10_000, Currency::Krw);
    store.apply_snapshot(&other).await.unwrap();
    let doubtful = pending_refund(&other, 1_000, None);
    store.begin_refund(&doubtful).await.unwrap();
    store
        .finish_refund(&doubtful.id, doubtful.attempt, &not_applied, None)
        .await
        .unwrap();
    let held = store
        .finish_refund(&doubtful.id, doubtful.attempt, &review("ambiguous"), None)
        .await
        .unwrap();
    assert_eq!(held.refund.state, review("ambiguous"));
    assert!(
        store
            .payment(&other.merchant_uid)
            .await
            .unwrap()
            .unwrap()
            .on_hold
    );
    let after = after_cancel(&payment, 1_000, "ours");
    let late = RefundState::Succeeded {
        cancellation_id: Some(unique("cxl")),
    };
    let done = store
        .finish_refund(&refund.id, refund.attempt, &late, Some(&after))
        .await
        .unwrap()
        .refund;
    assert_eq!(done.state, late);
    assert_eq!(
        store
            .payment(&payment.merchant_uid)
            .await
            .unwrap()
            .unwrap()
            .payment,
        after
    );
    assert!(matches!(
        store
            .finish_refund(&refund.id, refund.attempt, &not_applied, None)
            .await,
        Err(StoreError::NotPending(RefundStatus::Succeeded))
    ));
    for settled in [
        failed(FailureKind::Rejected, Some("1"), "no"),
        failed(FailureKind::NotSent, None::<String>, "down"),
        review("odd"),
    ] {
        let refund = pending_refund(&after, 1_000, None);
        let current = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
        let refund = crate::refund::Refund {
            base_cancel_amount: current.payment.cancel_amount,
            ..refund
        };
        lift_hold(&store, &payment.merchant_uid).await;
        store.begin_refund(&refund).await.unwrap();
        store
            .finish_refund(&refund.id, refund.attempt, &settled, None)
            .await
            .unwrap();
        assert!(
            matches!(
                store
                    .finish_refund(&refund.id, refund.attempt, &succeeded(), None)
                    .await,
                Err(StoreError::NotPending(_))
            ),
            "{settled:?} is final"
        );
    }
}

/// A failure that provably changed nothing does not spend its idempotency
/// key: the refund runs again as the same row (`retry_refund`), pending
/// with a new base and checksum, a new attempt and its journal time kept;
/// a rejection, a
/// success or a review cannot be re-opened, and a key is never taken by
/// another refund.
pub async fn a_refund_that_changed_nothing_runs_again_as_the_same_row(store: Store) {
    for (state, reopens) in [
        (failed(FailureKind::NotSent, None::<String>, "down"), true),
        (failed(FailureKind::NotApplied, None::<String>, "5xx"), true),
        (failed(FailureKind::Rejected, Some("-1"), "no"), false),
        (succeeded(), false),
        (review("odd"), false),
    ] {
        let payment = paid_payment(&unique("rerun"), 10_000, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        let key = unique("key");
        let first = pending_refund(&payment, 1_000, Some(&key));
        store.begin_refund(&first).await.unwrap();
        let done = store
            .finish_refund(&first.id, first.attempt, &state, None)
            .await
            .unwrap();
        lift_hold(&store, &payment.merchant_uid).await;
        // No other refund ever takes the key, whatever its state.
        assert!(matches!(
            store
                .begin_refund(&pending_refund(&payment, 1_000, Some(&key)))
                .await,
            Err(StoreError::IdempotencyKeyTaken)
        ));
        // Another refund moved the payment meanwhile (of another amount).
        let other = pending_refund(&payment, 500, None);
        store.begin_refund(&other).await.unwrap();
        let moved = after_cancel(&payment, 500, "other");
        store
            .finish_refund(&other.id, other.attempt, &succeeded(), Some(&moved))
            .await
            .unwrap();
        let retried = store
            .retry_refund(&first.id, moved.cancel_amount, moved.cancelable())
            .await;
        if reopens {
            let retried = retried.unwrap();
            assert_eq!(retried.id, first.id);
            assert_eq!(retried.state, RefundState::PENDING, "{state:?}");
            assert_eq!(retried.base_cancel_amount, moved.cancel_amount);
            assert_eq!(retried.checksum, moved.cancelable());
            assert_eq!(retried.amount, first.amount);
            assert_eq!(retried.reason, first.reason);
            assert_eq!(retried.idempotency_key.as_deref(), Some(key.as_str()));
            assert_eq!(retried.created_at_ms, done.refund.created_at_ms);
            assert!(retried.attempt_started_at_ms >= done.refund.updated_at_ms);
            assert_eq!(done.refund.attempt, crate::FIRST_ATTEMPT);
            assert_eq!(retried.attempt, done.refund.attempt + 1, "a new attempt");
            assert_eq!(
                store.refund(&first.id).await.unwrap().as_ref(),
                Some(&retried)
            );
            let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
            assert_eq!(stored.pending_refund.as_ref(), Some(&first.id));
            let holder = store
                .refund_by_idempotency_key(&key)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(holder.id, first.id);
            // Pending again: it settles like any pending refund, as its
            // new attempt.
            store
                .finish_refund(&first.id, retried.attempt, &succeeded(), None)
                .await
                .unwrap();
        } else {
            assert!(
                matches!(retried, Err(StoreError::NotPending(s)) if s == state.status()),
                "{state:?}: {retried:?}"
            );
            let read = store.refund(&first.id).await.unwrap().unwrap();
            match (&read.state, &state) {
                // Resolved since (the hold was lifted above): still the
                // same review.
                (RefundState::NeedsReview(read), RefundState::NeedsReview(sent)) => {
                    assert_eq!(read.message, sent.message);
                    assert!(read.resolution.is_some());
                }
                (read, sent) => assert_eq!(read, sent),
            }
        }
    }
}

/// `retry_refund` checks what `begin_refund` checks, atomically: another
/// pending refund, a hold, a stale `cancel_amount`, an unknown id; a
/// refused retry writes nothing.
pub async fn a_retry_is_refused_like_a_begin(store: Store) {
    let payment = paid_payment(&unique("rerun-checks"), 100_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let first = pending_refund(&payment, 1_000, Some(&unique("key")));
    store.begin_refund(&first).await.unwrap();
    let not_sent = failed(FailureKind::NotSent, None::<String>, "down");
    store
        .finish_refund(&first.id, first.attempt, &not_sent, None)
        .await
        .unwrap();
    let (base, checksum) = (payment.cancel_amount, payment.cancelable());
    // Another refund of the payment is pending.
    let busy = pending_refund(&payment, 500, None);
    store.begin_refund(&busy).await.unwrap();
    assert!(matches!(
        store.retry_refund(&first.id, base, checksum).await,
        Err(StoreError::RefundInProgress)
    ));
    store
        .finish_refund(&busy.id, busy.attempt, &review("odd"), None)
        .await
        .unwrap();
    // Held for review.
    assert!(matches!(
        store.retry_refund(&first.id, base, checksum).await,
        Err(StoreError::OnHold)
    ));
    lift_hold(&store, &payment.merchant_uid).await;
    // A stale base.
    assert!(matches!(
        store
            .retry_refund(&first.id, Amount::from_minor(1), checksum)
            .await,
        Err(StoreError::CancelAmountChanged)
    ));
    assert!(matches!(
        store
            .retry_refund(&RefundId::generate(), base, checksum)
            .await,
        Err(StoreError::RefundNotFound)
    ));
    // Nothing of the refused retries was written.
    let read = store.refund(&first.id).await.unwrap().unwrap();
    assert_eq!(read.state, not_sent);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.pending_refund, None);
    // Twins race to run it again: one re-opens it, the others are refused.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, id) = (store.clone(), first.id.clone());
            tokio::spawn(async move { store.retry_refund(&id, base, checksum).await })
        })
        .collect();
    let mut reopened = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => reopened += 1,
            Err(StoreError::RefundInProgress | StoreError::NotPending(_)) => {}
            Err(other) => panic!("a losing retry must be a conflict, got {other:?}"),
        }
    }
    assert_eq!(reopened, 1);
}

/// A refund run again keeps `created_at_ms`, so it keeps its place in every
/// listing (the payment's refunds, the filtered and unfiltered walks, the
/// sweep's order) and a walk under way lists it once; its new attempt's
/// start is `attempt_started_at_ms`, which the sweep's cutoff reads.
pub async fn a_refund_run_again_keeps_its_place_in_listings(store: Store) {
    let payment = paid_payment(&unique("rerun-place"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let first = pending_refund(&payment, 1_000, Some(&unique("key")));
    store.begin_refund(&first).await.unwrap();
    let down = failed(FailureKind::NotSent, None::<String>, "token endpoint down");
    let journaled_first = store
        .finish_refund(&first.id, first.attempt, &down, None)
        .await
        .unwrap()
        .refund;
    assert_eq!(
        journaled_first.attempt_started_at_ms,
        journaled_first.created_at_ms
    );
    // A later refund, a few milliseconds on, so the order is observable.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let later = journaled(&store, &payment.merchant_uid, Some(succeeded())).await;
    assert!(later.created_at_ms > journaled_first.created_at_ms);
    let order = vec![later.id.clone(), first.id.clone()];
    let by_payment = filter(None, Some(&payment.merchant_uid));
    let page = store.list_refunds(&by_payment, 1, None).await.unwrap();
    assert_eq!(ids(&page.refunds), vec![later.id.clone()]);
    let cursor = page.next_cursor.expect("a second page");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let now = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    let retried = store
        .retry_refund(
            &first.id,
            now.payment.cancel_amount,
            now.payment.cancelable(),
        )
        .await
        .unwrap();
    assert_eq!(retried.created_at_ms, journaled_first.created_at_ms);
    assert!(
        retried.attempt_started_at_ms > later.created_at_ms,
        "the new attempt starts on the store's clock: {retried:?}"
    );
    assert_eq!(
        store.refund(&first.id).await.unwrap().as_ref(),
        Some(&retried)
    );
    // The walk under way goes on: the re-run refund comes once, last.
    let rest = store
        .list_refunds(&by_payment, 10, Some(&cursor))
        .await
        .unwrap();
    assert_eq!(ids(&rest.refunds), vec![first.id.clone()]);
    assert_eq!(rest.refunds[0], retried);
    assert!(rest.next_cursor.is_none());
    let listed = store.refunds_of(&payment.merchant_uid, 10).await.unwrap();
    assert_eq!(ids(&listed), order);
    let pending = store
        .list_refunds(
            &filter(Some(RefundStatus::Pending), Some(&payment.merchant_uid)),
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(ids(&pending.refunds), vec![first.id.clone()]);
    // The sweep lists it by its journal time, once its attempt is older
    // than the cutoff; an hour's cutoff is later than the attempt.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let stale = store
        .stale_pending_refunds(std::time::Duration::ZERO, None, 10_000)
        .await
        .unwrap();
    let swept = stale.iter().find(|r| r.id == first.id).expect("swept");
    assert_eq!(swept, &retried);
    let young = store
        .stale_pending_refunds(std::time::Duration::from_secs(3_600), None, 10_000)
        .await
        .unwrap();
    assert!(young.iter().all(|r| r.id != first.id));
    store
        .finish_refund(&first.id, retried.attempt, &succeeded(), None)
        .await
        .unwrap();
}

/// `finish_refund` returns the refund, its payment and the payment's newest
/// refunds exactly as a read afterwards finds them: after a success with a
/// snapshot, a review (hold), an older snapshot (ignored), and a late
/// success of an older refund while another one holds the payment's slot.
pub async fn finish_returns_what_it_stored(store: Store) {
    async fn matches_a_read(store: &Store, settled: &crate::store::Settlement) {
        let merchant_uid = &settled.refund.merchant_uid;
        assert_eq!(
            Some(&settled.refund),
            store.refund(&settled.refund.id).await.unwrap().as_ref()
        );
        assert_eq!(
            Some(&settled.payment),
            store.payment(merchant_uid).await.unwrap().as_ref()
        );
        let listed = store
            .refunds_of(merchant_uid, crate::store::SETTLEMENT_RECENT_REFUNDS)
            .await
            .unwrap();
        assert_eq!(settled.recent_refunds, listed);
    }
    let payment = paid_payment(&unique("settlement"), 100_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();

    let first = pending_refund(&payment, 1_000, None);
    store.begin_refund(&first).await.unwrap();
    let after_first = after_cancel(&payment, 1_000, "first");
    let settled = store
        .finish_refund(&first.id, first.attempt, &succeeded(), Some(&after_first))
        .await
        .unwrap();
    assert_eq!(settled.refund.status(), RefundStatus::Succeeded);
    assert_eq!(settled.payment.payment, after_first);
    assert_eq!(settled.payment.pending_refund, None);
    assert_eq!(settled.recent_refunds.len(), 1);
    matches_a_read(&store, &settled).await;

    // Not applied, then another refund takes the slot.
    let second = pending_refund(&after_first, 2_000, None);
    store.begin_refund(&second).await.unwrap();
    let not_applied = failed(FailureKind::NotApplied, None::<String>, "not applied");
    let settled = store
        .finish_refund(&second.id, second.attempt, &not_applied, None)
        .await
        .unwrap();
    assert_eq!(
        settled.payment.payment, after_first,
        "no snapshot, no change"
    );
    matches_a_read(&store, &settled).await;
    let third = pending_refund(&after_first, 3_000, None);
    store.begin_refund(&third).await.unwrap();

    // The second turns out applied: its payment keeps the third's slot and
    // takes the newer snapshot; an older one would have been ignored.
    let after_second = after_cancel(&after_first, 2_000, "second");
    let late = RefundState::Succeeded {
        cancellation_id: None,
    };
    let settled = store
        .finish_refund(&second.id, second.attempt, &late, Some(&after_second))
        .await
        .unwrap();
    assert_eq!(settled.payment.pending_refund, Some(third.id.clone()));
    assert_eq!(settled.payment.payment, after_second);
    assert_eq!(settled.recent_refunds.len(), 3);
    matches_a_read(&store, &settled).await;

    // The third needs review, with a snapshot older than what is stored.
    let settled = store
        .finish_refund(&third.id, third.attempt, &review("odd"), Some(&after_first))
        .await
        .unwrap();
    assert!(settled.payment.on_hold);
    assert_eq!(settled.payment.pending_refund, None);
    assert_eq!(
        settled.payment.payment, after_second,
        "older snapshot ignored"
    );
    matches_a_read(&store, &settled).await;
}

/// Journals one refund of the payment as it is stored now and settles it in
/// `state` (`None` leaves it pending); gives it as stored.
async fn journaled(store: &Store, merchant_uid: &str, state: Option<RefundState>) -> Refund {
    let current = store.payment(merchant_uid).await.unwrap().unwrap().payment;
    let refund = pending_refund(&current, 100, None);
    store.begin_refund(&refund).await.unwrap();
    match state {
        Some(state) => {
            store
                .finish_refund(&refund.id, refund.attempt, &state, None)
                .await
                .unwrap()
                .refund
        }
        None => store.refund(&refund.id).await.unwrap().unwrap(),
    }
}

/// The listing's order: newest first, by creation time then id.
fn listing_order(refunds: &mut [Refund]) {
    refunds.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
}

fn ids(refunds: &[Refund]) -> Vec<RefundId> {
    refunds.iter().map(|r| r.id.clone()).collect()
}

fn filter(status: Option<RefundStatus>, merchant_uid: Option<&str>) -> RefundFilter {
    RefundFilter {
        status,
        merchant_uid: merchant_uid.map(str::to_owned),
    }
}

/// Every page of a listing, checking each page's shape; `stop` ends the
/// walk early once it has seen what it needs (the database is shared with
/// other cases and runs).
async fn walk(
    store: &Store,
    filter: &RefundFilter,
    limit: u32,
    mut stop: impl FnMut(&[Refund]) -> bool,
) -> Vec<Refund> {
    let mut listed: Vec<Refund> = Vec::new();
    let mut cursor: Option<RefundCursor> = None;
    loop {
        let page = store
            .list_refunds(filter, limit, cursor.as_ref())
            .await
            .unwrap();
        assert!(page.refunds.len() <= limit.min(MAX_LIST_LIMIT) as usize);
        if page.next_cursor.is_some() {
            assert_eq!(page.refunds.len(), limit.min(MAX_LIST_LIMIT) as usize);
            assert_eq!(
                page.next_cursor,
                page.refunds.last().map(RefundCursor::after),
                "the cursor points after the page's last refund"
            );
        }
        listed.extend(page.refunds);
        if stop(&listed) {
            return listed;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return listed,
        }
    }
}

fn assert_newest_first(listed: &[Refund]) {
    for pair in listed.windows(2) {
        assert!(
            (pair[0].created_at_ms, &pair[0].id) > (pair[1].created_at_ms, &pair[1].id),
            "newest first, no duplicates: {:?} then {:?}",
            pair[0].id,
            pair[1].id
        );
    }
}

/// Refunds are listed across payments, newest first (creation time, then
/// id), filtered by status, by order, or both; records come back whole.
pub async fn refunds_are_listed_newest_first_and_filtered(store: Store) {
    let a = paid_payment(&unique("list-a"), 100_000, Currency::Krw);
    let b = paid_payment(&unique("list-b"), 100_000, Currency::Usd);
    store.apply_snapshot(&a).await.unwrap();
    store.apply_snapshot(&b).await.unwrap();
    let (a_uid, b_uid) = (a.merchant_uid.as_str(), b.merchant_uid.as_str());
    let not_sent = || Some(failed(FailureKind::NotSent, None::<String>, "down"));
    let mut ours = vec![
        journaled(&store, a_uid, not_sent()).await,
        journaled(&store, b_uid, Some(succeeded())).await,
        journaled(&store, a_uid, Some(succeeded())).await,
        journaled(&store, b_uid, not_sent()).await,
        journaled(&store, a_uid, None).await,
        journaled(&store, b_uid, Some(review("odd"))).await,
    ];
    listing_order(&mut ours);
    let of = |uid: &str, status: Option<RefundStatus>| -> Vec<Refund> {
        ours.iter()
            .filter(|r| r.merchant_uid == uid && status.is_none_or(|s| r.status() == s))
            .cloned()
            .collect()
    };

    for (uid, status) in [
        (a_uid, None),
        (b_uid, None),
        (a_uid, Some(RefundStatus::Succeeded)),
        (b_uid, Some(RefundStatus::Failed)),
        (b_uid, Some(RefundStatus::NeedsReview)),
        (a_uid, Some(RefundStatus::Pending)),
        (a_uid, Some(RefundStatus::NeedsReview)),
    ] {
        let page = store
            .list_refunds(&filter(status, Some(uid)), 50, None)
            .await
            .unwrap();
        assert_eq!(page.refunds, of(uid, status), "{uid} {status:?}");
        assert_eq!(page.next_cursor, None);
    }

    // By status alone: across payments, only that status, ours among them
    // in order.
    for status in RefundStatus::ALL {
        let wanted = ids(&ours
            .iter()
            .filter(|r| r.status() == status)
            .cloned()
            .collect::<Vec<_>>());
        let listed = walk(&store, &filter(Some(status), None), 200, |listed| {
            wanted.iter().all(|id| listed.iter().any(|r| &r.id == id))
        })
        .await;
        assert!(listed.iter().all(|r| r.status() == status), "{status}");
        assert_newest_first(&listed);
        let seen: Vec<RefundId> = listed
            .iter()
            .filter(|r| wanted.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(seen, wanted, "{status}");
    }

    // No filter: every payment's, ours in order among the others'.
    let wanted = ids(&ours);
    let listed = walk(&store, &RefundFilter::default(), 200, |listed| {
        wanted.iter().all(|id| listed.iter().any(|r| &r.id == id))
    })
    .await;
    assert_newest_first(&listed);
    let seen: Vec<Refund> = listed
        .into_iter()
        .filter(|r| wanted.contains(&r.id))
        .collect();
    assert_eq!(seen, ours, "whole records, newest first");
    assert!(seen.iter().any(|r| r.currency == Currency::Usd));
    assert!(seen
        .iter()
        .all(|r| r.requested_by.as_ref().map(Actor::as_str) == Some("kim.support")));
}

/// Walking the pages lists every refund that existed when the walk began
/// exactly once, in order, while refunds are journaled between pages (of
/// the same payment and of others); limits 0 and 1 work.
pub async fn listing_pages_have_no_duplicates_or_gaps_under_inserts(store: Store) {
    let payment = paid_payment(&unique("pages"), 100_000, Currency::Krw);
    let other = paid_payment(&unique("pages-other"), 100_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    store.apply_snapshot(&other).await.unwrap();
    let uid = payment.merchant_uid.as_str();
    let not_sent = || Some(failed(FailureKind::NotSent, None::<String>, "down"));
    let mut existing = Vec::new();
    for _ in 0..7 {
        existing.push(journaled(&store, uid, not_sent()).await);
    }
    listing_order(&mut existing);

    for limit in [1, 2, 3] {
        let only_ours = filter(None, Some(uid));
        let mut listed: Vec<Refund> = Vec::new();
        let mut cursor: Option<RefundCursor> = None;
        loop {
            let page = store
                .list_refunds(&only_ours, limit, cursor.as_ref())
                .await
                .unwrap();
            assert!(page.refunds.len() <= limit as usize);
            listed.extend(page.refunds);
            // Inserts between pages: newer than anything listed so far.
            journaled(&store, uid, not_sent()).await;
            journaled(&store, &other.merchant_uid, not_sent()).await;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_newest_first(&listed);
        let seen: Vec<RefundId> = listed
            .iter()
            .filter(|r| existing.iter().any(|e| e.id == r.id))
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(seen, ids(&existing), "limit {limit}: no gap, no duplicate");
        assert!(listed.iter().all(|r| r.merchant_uid == uid));
    }

    let empty = store
        .list_refunds(&filter(None, Some(uid)), 0, None)
        .await
        .unwrap();
    assert!(empty.refunds.is_empty());
    assert_eq!(empty.next_cursor, None, "limit 0 is an empty last page");

    // A cursor past everything, and one before everything (keyset
    // positions need not name a stored refund).
    let past = RefundCursor {
        created_at_ms: 0,
        id: RefundId::from_stored("rf_0"),
    };
    let page = store
        .list_refunds(&filter(None, Some(uid)), 50, Some(&past))
        .await
        .unwrap();
    assert_eq!(page, RefundPage::from_overfetch(Vec::new(), 50));
    let before = RefundCursor {
        created_at_ms: i64::MAX,
        id: RefundId::from_stored("rf_z"),
    };
    let page = store
        .list_refunds(&filter(None, Some(uid)), 200, Some(&before))
        .await
        .unwrap();
    let mut all = store.refunds_of(uid, 200).await.unwrap();
    listing_order(&mut all);
    assert_eq!(page.refunds, all);
}

/// A limit above the maximum is capped at [`MAX_LIST_LIMIT`], and the rest
/// follows on the next page.
pub async fn listing_caps_the_limit(store: Store) {
    // More refunds than one page holds (one per payment, journaled in
    // parallel: small documents and rows keep every backend quick).
    let mut journaling = tokio::task::JoinSet::new();
    for _ in 0..=MAX_LIST_LIMIT {
        let store = store.clone();
        journaling.spawn(async move {
            let payment = paid_payment(&unique("cap"), 1_000, Currency::Krw);
            store.apply_snapshot(&payment).await.unwrap();
            journaled(&store, &payment.merchant_uid, None).await
        });
    }
    let mut ours = journaling.join_all().await;
    listing_order(&mut ours);
    let everything = RefundFilter::default();
    let first = store
        .list_refunds(&everything, u32::MAX, None)
        .await
        .unwrap();
    assert_eq!(first.refunds.len(), MAX_LIST_LIMIT as usize);
    let next = first.next_cursor.as_ref().expect("more follow");
    let second = store
        .list_refunds(&everything, u32::MAX, Some(next))
        .await
        .unwrap();
    assert!(!second.refunds.is_empty());
    let mut listed = first.refunds;
    listed.extend(second.refunds);
    assert_newest_first(&listed);
    // Ours are the newest of this case, in order, none lost at the seam
    // (refunds of cases running alongside may sit between them).
    let seen: Vec<RefundId> = listed
        .iter()
        .filter(|r| ours.iter().any(|o| o.id == r.id))
        .map(|r| r.id.clone())
        .collect();
    let expected = ids(&ours);
    assert_eq!(seen, expected[..seen.len()], "in order, no gap at the seam");
}

/// Filter values are data: quotes, SQL wildcards, operators and very long
/// or unusual text match only an order with exactly that id.
pub async fn listing_treats_hostile_filters_as_data(store: Store) {
    let base = unique("hostile");
    let names = [
        format!("{base}'; DROP TABLE refund_journal; --"),
        format!("{base}%"),
        format!("{base}_x"),
        format!("{base}\\"),
        format!("{base}$ne"),
        format!("{base}주문-🎉"),
    ];
    for name in &names {
        store
            .apply_snapshot(&paid_payment(name, 10_000, Currency::Krw))
            .await
            .unwrap();
        journaled(&store, name, None).await;
    }
    for name in &names {
        let page = store
            .list_refunds(&filter(None, Some(name)), 50, None)
            .await
            .unwrap();
        assert_eq!(page.refunds.len(), 1, "{name:?}");
        assert_eq!(&page.refunds[0].merchant_uid, name);
    }
    for probe in [
        format!("{base}%%"),
        base.clone(),
        format!("{base}_"),
        format!("{base}__x"),
        format!("{base}' OR '1'='1"),
        format!("{base}주문"),
        format!("{base}{}", "%".repeat(10_000)),
        "$where".to_owned(),
        "%".to_owned(),
        "_".to_owned(),
        "".to_owned(),
        "x".repeat(100_000),
    ] {
        let page = store
            .list_refunds(&filter(None, Some(&probe)), 50, None)
            .await
            .unwrap();
        assert!(
            page.refunds.is_empty(),
            "{:?}",
            &probe[..probe.len().min(40)]
        );
        assert_eq!(page.next_cursor, None);
    }
    // A token nobody gave out is refused before any store sees it.
    for garbage in ["garbage", "%", "' OR 1=1 --", "0000"] {
        assert!(garbage.parse::<RefundCursor>().is_err(), "{garbage}");
    }
}

/// A refund failed `not_applied` at its first attempt and run again: its
/// second attempt is pending. Returns the refund as stored then.
async fn run_again(store: &Store, payment: &crate::payment::Payment) -> Refund {
    let refund = pending_refund(payment, 1_000, Some(&unique("key")));
    store.begin_refund(&refund).await.unwrap();
    let begun = store.refund(&refund.id).await.unwrap().unwrap();
    assert_eq!(
        begun.attempt,
        crate::FIRST_ATTEMPT,
        "a new refund's first attempt"
    );
    let not_applied = failed(FailureKind::NotApplied, None::<String>, "no entry");
    let settled = store
        .finish_refund(&refund.id, begun.attempt, &not_applied, None)
        .await
        .unwrap();
    assert_eq!(settled.refund.attempt, crate::FIRST_ATTEMPT);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    let retried = store
        .retry_refund(
            &refund.id,
            stored.payment.cancel_amount,
            stored.payment.cancelable(),
        )
        .await
        .unwrap();
    assert_eq!(retried.attempt, crate::FIRST_ATTEMPT + 1, "a new attempt");
    assert_eq!(retried.state, RefundState::PENDING);
    assert_eq!(
        store.refund(&refund.id).await.unwrap().as_ref(),
        Some(&retried),
        "the attempt is stored"
    );
    retried
}

/// A verdict is about one attempt: a settlement that names an attempt the
/// refund has been run again since changes nothing (not the refund, not its
/// payment's slot, hold or numbers, whatever state and snapshot it brings)
/// and says so; the current attempt settles as usual, and a late success
/// about the earlier attempt cannot rewrite the current one's failure.
pub async fn a_settlement_naming_an_earlier_attempt_changes_nothing(store: Store) {
    let payment = paid_payment(&unique("attempt-finish"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let retried = run_again(&store, &payment).await;
    let earlier = retried.attempt - 1;
    let before = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(before.pending_refund.as_ref(), Some(&retried.id));
    let applied = after_cancel(&payment, 1_000, "earlier attempt");
    let verdicts = [
        failed(FailureKind::NotApplied, None::<String>, "stale: no entry"),
        failed(FailureKind::Rejected, Some("-1"), "stale: refused"),
        succeeded(),
        review("stale: odd numbers"),
    ];
    for verdict in &verdicts {
        for snapshot in [None, Some(&applied)] {
            let outcome = store
                .finish_refund(&retried.id, earlier, verdict, snapshot)
                .await;
            assert!(
                matches!(
                    outcome,
                    Err(StoreError::AttemptChanged { current }) if current == retried.attempt
                ),
                "{verdict:?}: {outcome:?}"
            );
            assert_eq!(
                store.refund(&retried.id).await.unwrap().as_ref(),
                Some(&retried),
                "the attempt on the wire is untouched"
            );
            assert_eq!(
                store.payment(&payment.merchant_uid).await.unwrap().as_ref(),
                Some(&before),
                "its payment too: slot, hold and numbers"
            );
        }
    }
    // An attempt that never was is not the current one either.
    assert!(matches!(
        store
            .finish_refund(&retried.id, retried.attempt + 1, &succeeded(), None)
            .await,
        Err(StoreError::AttemptChanged { current }) if current == retried.attempt
    ));
    assert!(matches!(
        store
            .finish_refund(&RefundId::generate(), earlier, &succeeded(), None)
            .await,
        Err(StoreError::RefundNotFound)
    ));
    // The current attempt settles (not applied, then proven applied after
    // all by late evidence about it).
    let not_applied = failed(FailureKind::NotApplied, None::<String>, "no entry");
    let settled = store
        .finish_refund(&retried.id, retried.attempt, &not_applied, None)
        .await
        .unwrap();
    assert_eq!(settled.refund.state, not_applied);
    assert_eq!(settled.refund.attempt, retried.attempt);
    assert_eq!(settled.payment.pending_refund, None);
    let freed = settled.payment.clone();
    // Late evidence reached about the earlier attempt does not move it: the
    // caller must judge what is stored now.
    assert!(matches!(
        store
            .finish_refund(&retried.id, earlier, &succeeded(), Some(&applied))
            .await,
        Err(StoreError::AttemptChanged { current }) if current == retried.attempt
    ));
    assert_eq!(
        store.refund(&retried.id).await.unwrap().unwrap(),
        settled.refund
    );
    assert_eq!(
        store.payment(&payment.merchant_uid).await.unwrap().unwrap(),
        freed
    );
    let late = store
        .finish_refund(&retried.id, retried.attempt, &succeeded(), Some(&applied))
        .await
        .unwrap();
    assert_eq!(late.refund.state, succeeded());
    assert_eq!(late.payment.payment.cancel_amount, applied.cancel_amount);
    // Settled for good: the earlier attempt is still told apart from a
    // refund that is no longer pending.
    assert!(matches!(
        store
            .finish_refund(&retried.id, earlier, &not_applied, None)
            .await,
        Err(StoreError::AttemptChanged { .. })
    ));
    assert!(matches!(
        store
            .finish_refund(&retried.id, retried.attempt, &not_applied, None)
            .await,
        Err(StoreError::NotPending(RefundStatus::Succeeded))
    ));
}

/// The gateway's id for an asynchronous cancel names one attempt: noted
/// about an attempt the refund has been run again since, it changes
/// nothing and says so; the current attempt takes its own.
pub async fn a_cancellation_id_naming_an_earlier_attempt_changes_nothing(store: Store) {
    let payment = paid_payment(&unique("attempt-note"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let retried = run_again(&store, &payment).await;
    let earlier = retried.attempt - 1;
    let outcome = store
        .note_cancellation_id(&retried.id, earlier, &unique("cxl-earlier"))
        .await;
    assert!(
        matches!(outcome, Err(StoreError::AttemptChanged { current }) if current == retried.attempt),
        "{outcome:?}"
    );
    assert_eq!(
        store.refund(&retried.id).await.unwrap().as_ref(),
        Some(&retried),
        "nothing changed"
    );
    assert!(matches!(
        store
            .note_cancellation_id(&RefundId::generate(), earlier, "x")
            .await,
        Err(StoreError::RefundNotFound)
    ));
    let id = unique("cxl-current");
    let noted = store
        .note_cancellation_id(&retried.id, retried.attempt, &id)
        .await
        .unwrap();
    assert_eq!(
        noted.state,
        RefundState::Pending {
            cancellation_id: Some(id.clone()),
        }
    );
    assert_eq!(noted.attempt, retried.attempt);
    assert_eq!(
        noted.attempt_started_at_ms, retried.attempt_started_at_ms,
        "its in-flight bound stays"
    );
    // A later stale note does not rename it either.
    assert!(matches!(
        store
            .note_cancellation_id(&retried.id, earlier, "another")
            .await,
        Err(StoreError::AttemptChanged { .. })
    ));
    assert_eq!(store.refund(&retried.id).await.unwrap().unwrap(), noted);
    store
        .finish_refund(&retried.id, retried.attempt, &succeeded(), None)
        .await
        .unwrap();
}
