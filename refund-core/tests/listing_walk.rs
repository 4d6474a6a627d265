//! Walking the refund listing page by page while the journal changes
//! (DESIGN.md, "Operators": keyset pagination; `PaymentStore::list_refunds`:
//! "walking the pages lists every refund that existed at the start exactly
//! once").

use std::sync::Arc;
use std::time::Duration;

use refund_core::testkit::{failed, paid_payment, pending_refund, ManualClock};
use refund_core::{
    Currency, FailureKind, MemoryPaymentStore, PaymentStore, RefundCursor, RefundFilter, RefundId,
};

#[tokio::test]
async fn a_refund_run_again_during_a_walk_is_still_listed_once() {
    let clock = Arc::new(ManualClock::at(1_764_000_000_000));
    let store = MemoryPaymentStore::with_clock(clock.clone());
    let payment = paid_payment("order-walk", 100_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();

    // Three refunds that never reached the gateway, a second apart: the
    // oldest is the one the customer's retry will run again.
    let mut journaled: Vec<RefundId> = Vec::new();
    for _ in 0..3 {
        let refund = pending_refund(&payment, 1_000, Some(&format!("key-{}", journaled.len())));
        store.begin_refund(&refund).await.unwrap();
        store
            .finish_refund(
                &refund.id,
                refund.attempt,
                &failed(FailureKind::NotSent, None::<String>, "token endpoint down"),
                None,
            )
            .await
            .unwrap();
        journaled.push(refund.id);
        clock.advance(Duration::from_secs(1));
    }
    let oldest = journaled[0].clone();

    // An operator walks the listing one record a page.
    let all = RefundFilter::default();
    let mut listed: Vec<RefundId> = Vec::new();
    let first = store.list_refunds(&all, 1, None).await.unwrap();
    listed.extend(first.refunds.iter().map(|r| r.id.clone()));
    let mut cursor: Option<RefundCursor> = first.next_cursor;

    // Meanwhile the same request (same key, same body) runs the oldest
    // refund again, as the protocol allows for `not_sent`.
    clock.advance(Duration::from_secs(1));
    store
        .retry_refund(&oldest, payment.cancel_amount, payment.cancelable())
        .await
        .unwrap();

    while let Some(at) = cursor {
        let page = store.list_refunds(&all, 1, Some(&at)).await.unwrap();
        listed.extend(page.refunds.iter().map(|r| r.id.clone()));
        cursor = page.next_cursor;
    }
    for id in &journaled {
        assert_eq!(
            listed.iter().filter(|l| *l == id).count(),
            1,
            "every refund that existed when the walk began is listed exactly once; \
             {id} is not (listed: {listed:?}): running a refund again restamps its \
             created_at, the listing's key, so it jumps ahead of the cursor"
        );
    }
}
