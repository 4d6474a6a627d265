//! Upgrading a running deployment: instances are replaced one by one, so
//! for a while an instance of the previous release writes to the schema the
//! new one migrated. What it journals then must stay readable (and
//! refundable) by the new release.

use refund_core::testkit::{paid_payment, unique};
use refund_core::{Currency, PaymentStore};
use storage_sql::SqlPaymentStore;

#[tokio::test]
async fn a_refund_journaled_by_the_previous_release_after_the_migration_is_readable() {
    let dir = std::env::temp_dir().join(unique("rolling-upgrade"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("refunds.db").display());
    let store = SqlPaymentStore::<sqlx::Sqlite>::connect(&url)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("order"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();

    // The previous release's `begin_refund` insert, column for column: it
    // knows nothing of currency or requested_by.
    sqlx::query(
        "INSERT INTO refund_journal (id, merchant_uid, imp_uid, amount, base_cancel_amount, \
         checksum, reason, idempotency_key, fingerprint, refund_account_masked, status, \
         created_at_ms, updated_at_ms) \
         VALUES ('rf_0123456789abcdef0123456789abcdef', ?, ?, 1000, 0, 10000, 'refund', NULL, \
         'fp', NULL, 'pending', 1764000000000, 1764000000000)",
    )
    .bind(&payment.merchant_uid)
    .bind(&payment.imp_uid)
    .execute(store.pool())
    .await
    .unwrap();

    let read = store.refunds_of(&payment.merchant_uid, 50).await;
    assert!(
        read.is_ok(),
        "the payment's journal cannot be read once an older instance journaled a refund \
         into the migrated table (currency left NULL): {read:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
