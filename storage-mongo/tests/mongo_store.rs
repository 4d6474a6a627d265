//! What the conformance suite cannot see: indexes, error classification,
//! the stored BSON itself, and MongoDB-specific hostile input.

mod common;

use std::error::Error as _;
use std::sync::Arc;

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use refund_core::testkit::{after_cancel, paid_payment, pending_refund, unique};
use refund_core::{
    Amount, CancelEntry, Currency, PayMethod, PaymentStatus, PaymentStore, RefundOutcome,
    RefundStatus, StoreError,
};
use storage_mongo::{MongoPaymentStore, MongoStoreError, PAYMENTS_COLLECTION};

/// A store in a database of its own; `None` skips the test (outside CI).
async fn fresh_store() -> Option<MongoPaymentStore> {
    common::store(&common::database_name()).await
}

/// Drops the test's database once it passed.
async fn drop_database(store: &MongoPaymentStore) {
    store.database().drop().await.expect("drop test database");
}

fn payments(store: &MongoPaymentStore) -> Collection<Document> {
    store.database().collection(PAYMENTS_COLLECTION)
}

/// The MongoStoreError behind a StoreError.
fn mongo_source(error: &StoreError) -> &MongoStoreError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<MongoStoreError>())
        .expect("a driver failure keeps its MongoStoreError as the source")
}

#[tokio::test]
async fn ensure_indexes_is_idempotent() {
    let Some(store) = fresh_store().await else {
        return;
    };
    // Already ran once in fresh_store; again, concurrently, and once more.
    let (first, second) = tokio::join!(store.ensure_indexes(), store.ensure_indexes());
    first.unwrap();
    second.unwrap();
    store.ensure_indexes().await.unwrap();
    let mut names = payments(&store).list_index_names().await.unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "_id_",
            "refund_id",
            "refund_key_slot",
            "refund_status_created_at"
        ]
    );
    drop_database(&store).await;
}

#[tokio::test]
async fn duplicate_keys_are_recognized_by_code_from_writes_and_commands() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let probe: Collection<Document> = store.database().collection("duplicate_probe");
    probe
        .create_index(
            IndexModel::builder()
                .keys(doc! { "key": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .unwrap();
    probe
        .insert_one(doc! { "_id": 1, "key": "taken" })
        .await
        .unwrap();

    // A plain insert reports the violation as a write error...
    let insert = probe
        .insert_one(doc! { "_id": 2, "key": "taken" })
        .await
        .unwrap_err();
    assert!(
        matches!(*insert.kind, ErrorKind::Write(WriteFailure::WriteError(_))),
        "{insert:?}"
    );
    let insert = MongoStoreError::new("insert", insert);
    assert!(insert.is_duplicate_key());
    assert!(!insert.is_unavailable());

    // ...an upsert through findAndModify as a command error.
    let upsert = probe
        .find_one_and_update(doc! { "_id": 3 }, doc! { "$set": { "key": "taken" } })
        .upsert(true)
        .await
        .unwrap_err();
    assert!(matches!(*upsert.kind, ErrorKind::Command(_)), "{upsert:?}");
    let upsert = MongoStoreError::new("upsert", upsert);
    assert!(upsert.is_duplicate_key());
    let store_error = StoreError::from(upsert);
    assert!(
        matches!(store_error, StoreError::Backend(_)),
        "{store_error:?}"
    );
    assert_eq!(mongo_source(&store_error).operation(), "upsert");

    // Another server-side error is neither a duplicate nor unavailability.
    let invalid = probe
        .update_one(doc! { "_id": 1 }, doc! { "$bogusOperator": { "key": 1 } })
        .await
        .unwrap_err();
    let invalid = MongoStoreError::new("update", invalid);
    assert!(!invalid.is_duplicate_key());
    assert!(matches!(StoreError::from(invalid), StoreError::Backend(_)));
    drop_database(&store).await;
}

/// Needs no server: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let store =
        MongoPaymentStore::connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", "x")
            .await
            .unwrap();
    let error = store.ping().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(mongo_source(&error).is_unavailable());
    let payment = paid_payment(&unique("down"), 1_000, Currency::Krw);
    let begin = store
        .begin_refund(&pending_refund(&payment, 100, None))
        .await
        .unwrap_err();
    assert!(matches!(begin, StoreError::Unavailable(_)), "{begin:?}");

    let malformed = MongoPaymentStore::connect("postgres://127.0.0.1", "x")
        .await
        .unwrap_err();
    assert!(!malformed.is_unavailable());
}

#[tokio::test]
async fn racing_first_snapshots_create_one_document() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let store = Arc::new(store);
    let payment = paid_payment(&unique("first-snapshot"), 5_000, Currency::Krw);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let payment = payment.clone();
            tokio::spawn(async move { store.apply_snapshot(&payment).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().payment, payment);
    }
    let count = payments(&store)
        .count_documents(doc! { "_id": payment.merchant_uid.as_str() })
        .await
        .unwrap();
    assert_eq!(count, 1);
    drop_database(&store).await;
}

#[tokio::test]
async fn finish_refund_never_lowers_cancel_amount() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let payment = paid_payment(&unique("late-finish"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 3_000, None);
    store.begin_refund(&refund).await.unwrap();
    // A webhook already brought a newer total (our refund plus one made
    // in the admin console)...
    let newer = after_cancel(&after_cancel(&payment, 3_000, "ours"), 2_000, "console");
    store.apply_snapshot(&newer).await.unwrap();
    // ...so the older snapshot that comes with the finish must not win.
    let older = after_cancel(&payment, 3_000, "ours");
    let done = store
        .finish_refund(&refund.id, &RefundOutcome::Succeeded, Some(&older), 7)
        .await
        .unwrap();
    assert_eq!(done.status, RefundStatus::Succeeded);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.payment, newer);
    assert_eq!(stored.pending_refund, None);
    drop_database(&store).await;
}

#[tokio::test]
async fn amounts_and_times_are_stored_as_int64() {
    let Some(store) = fresh_store().await else {
        return;
    };
    // Small values, which a careless encoder would write as Int32 or double.
    let payment = paid_payment(&unique("int64"), 5, Currency::Usd);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 2, None);
    store.begin_refund(&refund).await.unwrap();
    store
        .finish_refund(
            &refund.id,
            &RefundOutcome::Failed {
                code: Some(1),
                message: "no".into(),
            },
            Some(&after_cancel(&payment, 2, "cents")),
            9,
        )
        .await
        .unwrap();
    let stored = payments(&store)
        .find_one(doc! { "_id": payment.merchant_uid.as_str() })
        .await
        .unwrap()
        .unwrap();
    let snapshot = stored.get_document("payment").unwrap();
    let history = snapshot.get_array("cancel_history").unwrap();
    let entry = history[0].as_document().unwrap();
    let journal = stored.get_array("refunds").unwrap();
    let element = journal[0].as_document().unwrap();
    let int64_fields = [
        (snapshot, "amount"),
        (snapshot, "cancel_amount"),
        (snapshot, "paid_at"),
        (entry, "amount"),
        (entry, "cancelled_at"),
        (element, "amount"),
        (element, "base_cancel_amount"),
        (element, "checksum"),
        (element, "gateway_code"),
        (element, "created_at_ms"),
        (element, "updated_at_ms"),
    ];
    for (document, field) in int64_fields {
        assert!(
            matches!(document.get(field), Some(Bson::Int64(_))),
            "{field}: {:?}",
            document.get(field)
        );
    }
    drop_database(&store).await;
}

#[tokio::test]
async fn operator_like_values_are_stored_and_matched_as_data() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let tag = unique("");
    let hostile = [
        r#"{"$ne": null}"#,
        "$where",
        "$gt",
        "$$ROOT",
        "$payment.cancel_amount",
        "$$refund",
    ];
    for (i, text) in hostile.into_iter().enumerate() {
        let merchant_uid = format!("{text}{tag}");
        // Every stored string field carries the text, because the snapshot
        // and the settled refund travel through update pipelines, where a
        // bare `$...` string would be a field path.
        let mut payment = paid_payment(&merchant_uid, 10_000 + i as i64, Currency::Krw);
        payment.imp_uid = text.to_owned();
        payment.pay_method = PayMethod::Other(text.to_owned());
        payment.status = PaymentStatus::Other(text.to_owned());
        payment.cancel_history.push(CancelEntry {
            pg_tid: Some(text.to_owned()),
            amount: Amount::ZERO,
            cancelled_at: 0,
            reason: Some(text.to_owned()),
            cancellation_id: Some(text.to_owned()),
            receipt_url: Some(text.to_owned()),
        });
        assert_eq!(
            store.apply_snapshot(&payment).await.unwrap().payment,
            payment
        );

        let mut refund = pending_refund(&payment, 1_000, Some(text));
        refund.reason = Some(text.to_owned());
        refund.fingerprint = text.to_owned();
        store.begin_refund(&refund).await.unwrap();
        let after = after_cancel(&payment, 1_000, text);
        let review = RefundOutcome::NeedsReview {
            message: text.to_owned(),
        };
        let done = store
            .finish_refund(&refund.id, &review, Some(&after), 3)
            .await
            .unwrap();
        assert_eq!(done.gateway_message.as_deref(), Some(text));
        assert_eq!(done.reason.as_deref(), Some(text));
        let stored = store.payment(&merchant_uid).await.unwrap().unwrap();
        assert_eq!(stored.payment, after);
        assert!(stored.on_hold);
        assert_eq!(
            store
                .refund_by_idempotency_key(text)
                .await
                .unwrap()
                .unwrap(),
            done
        );
        // Only the literal id matches: the text alone is another id.
        assert!(store.payment(text).await.unwrap().is_none(), "{text:?}");
        assert!(store.refunds_of(text).await.unwrap().is_empty());
        assert!(matches!(
            store.release_hold(text).await,
            Err(StoreError::PaymentNotFound)
        ));
    }
    let count = payments(&store).count_documents(doc! {}).await.unwrap();
    assert_eq!(count, hostile.len() as u64);
    drop_database(&store).await;
}
