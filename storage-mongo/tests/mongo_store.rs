//! What the conformance suite cannot see: indexes, error classification,
//! the stored BSON itself, and MongoDB-specific hostile input.

mod common;

use std::error::Error as _;
use std::sync::Arc;

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use refund_core::testkit::{
    after_cancel, failed, paid_payment, pending_refund, review, succeeded, unique,
};
use refund_core::{
    Amount, CancelEntry, Currency, Failure, FailureKind, PayMethod, PaymentStatus, PaymentStore,
    RefundId, RefundState, RefundStatus, Review, StoreError,
};
use storage_mongo::{MongoPaymentStore, MongoStoreError, PAYMENTS_COLLECTION};

/// A store in a database of its own; `None` skips the test (outside CI).
async fn fresh_store() -> Option<MongoPaymentStore> {
    common::store(&common::SCRATCH.name()).await
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
            "refund_created_at_id",
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
        .finish_refund(&refund.id, refund.attempt, &succeeded(), Some(&older))
        .await
        .unwrap()
        .refund;
    assert_eq!(done.status(), RefundStatus::Succeeded);
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
            refund.attempt,
            &failed(FailureKind::Rejected, Some(1), "no"),
            Some(&after_cancel(&payment, 2, "cents")),
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
        let held = review(text);
        let done = store
            .finish_refund(&refund.id, refund.attempt, &held, Some(&after))
            .await
            .unwrap()
            .refund;
        assert_eq!(done.state, held);
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
        assert!(store.refunds_of(text, 10).await.unwrap().is_empty());
        let operator = refund_core::testkit::operator();
        assert!(matches!(
            store.resolve_review(text, &[], &operator, text, None).await,
            Err(StoreError::PaymentNotFound)
        ));

        // A refund re-opened by its id keeps its key, matched as data; a
        // note and an actor are data too.
        store
            .resolve_review(
                &merchant_uid,
                std::slice::from_ref(&refund.id),
                &operator,
                text,
                Some(&after),
            )
            .await
            .unwrap();
        let resolved = store.refund(&refund.id).await.unwrap().unwrap();
        let resolution = resolved.state.review().unwrap().resolution.clone().unwrap();
        assert_eq!(resolution.note, text);
        let key = format!("{text}-again");
        let mut first = pending_refund(&after, 1_000, Some(&key));
        first.fingerprint = text.to_owned();
        store.begin_refund(&first).await.unwrap();
        let not_sent = failed(FailureKind::NotSent, None::<String>, text);
        store
            .finish_refund(&first.id, first.attempt, &not_sent, None)
            .await
            .unwrap();
        let reopened = store
            .retry_refund(&first.id, after.cancel_amount, after.cancelable())
            .await
            .unwrap();
        assert_eq!(reopened.state, RefundState::PENDING);
        let holder = store
            .refund_by_idempotency_key(&key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(holder.id, first.id);
    }
    let count = payments(&store).count_documents(doc! {}).await.unwrap();
    assert_eq!(count, hostile.len() as u64);
    drop_database(&store).await;
}

#[tokio::test]
async fn each_state_is_stored_in_explicit_fields() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let cases = [
        (
            failed(FailureKind::Rejected, Some("-1"), "refused"),
            doc! { "status": "failed", "failure_kind": "rejected", "failure_code": "-1",
            "gateway_message": "refused", "cancellation_id": Bson::Null },
        ),
        (
            failed(FailureKind::NotApplied, None::<String>, "5xx"),
            doc! { "status": "failed", "failure_kind": "not_applied", "failure_code": Bson::Null,
            "gateway_message": "5xx", "cancellation_id": Bson::Null },
        ),
        (
            review("odd"),
            doc! { "status": "needs_review", "failure_kind": Bson::Null,
            "failure_code": Bson::Null, "gateway_message": "odd",
            "cancellation_id": Bson::Null },
        ),
        (
            RefundState::Succeeded {
                cancellation_id: Some("cxl_1".into()),
            },
            doc! { "status": "succeeded", "failure_kind": Bson::Null,
            "failure_code": Bson::Null, "gateway_message": Bson::Null,
            "cancellation_id": "cxl_1" },
        ),
    ];
    for (state, expected) in cases {
        let payment = paid_payment(&unique("explicit"), 10_000, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        let refund = pending_refund(&payment, 1_000, None);
        store.begin_refund(&refund).await.unwrap();
        let pending = element(&store, &payment.merchant_uid, 0).await;
        assert_eq!(pending.get_str("status").unwrap(), "pending");
        assert_eq!(pending.get("cancellation_id"), Some(&Bson::Null));
        assert_eq!(pending.get("failure_kind"), Some(&Bson::Null));
        store
            .finish_refund(&refund.id, refund.attempt, &state, None)
            .await
            .unwrap();
        let settled = element(&store, &payment.merchant_uid, 0).await;
        for (field, value) in &expected {
            assert_eq!(settled.get(field), Some(value), "{state:?}: {field}");
        }
        assert!(settled.get("gateway_code").is_none(), "never written");
    }
    drop_database(&store).await;
}

/// The `refunds[index]` element of a payment's document, as stored.
async fn element(store: &MongoPaymentStore, merchant_uid: &str, index: usize) -> Document {
    let stored = payments(store)
        .find_one(doc! { "_id": merchant_uid })
        .await
        .unwrap()
        .unwrap();
    stored.get_array("refunds").unwrap()[index]
        .as_document()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_re_opened_refund_keeps_its_key_slot() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let payment = paid_payment(&unique("slot"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let key = unique("key");
    let first = pending_refund(&payment, 1_000, Some(&key));
    store.begin_refund(&first).await.unwrap();
    store
        .finish_refund(
            &first.id,
            first.attempt,
            &failed(FailureKind::NotApplied, None::<String>, "5xx"),
            None,
        )
        .await
        .unwrap();
    store
        .retry_refund(&first.id, payment.cancel_amount, payment.cancelable())
        .await
        .unwrap();
    let element = element(&store, &payment.merchant_uid, 0).await;
    assert_eq!(element.get_str("key_slot").unwrap(), key);
    assert_eq!(element.get_str("status").unwrap(), "pending");
    assert_eq!(element.get("failure_kind"), Some(&Bson::Null));
    // The key stays this refund's: another payment cannot take it.
    let other = paid_payment(&unique("slot-other"), 10_000, Currency::Krw);
    store.apply_snapshot(&other).await.unwrap();
    assert!(matches!(
        store
            .begin_refund(&pending_refund(&other, 1_000, Some(&key)))
            .await,
        Err(StoreError::IdempotencyKeyTaken)
    ));
    drop_database(&store).await;
}

#[tokio::test]
async fn now_ms_is_the_server_clock_that_stamps_the_journal() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let hello = store
        .database()
        .run_command(doc! { "hello": 1 })
        .await
        .unwrap();
    let server = hello.get_datetime("localTime").unwrap().timestamp_millis();
    let now = store.now_ms().await.unwrap();
    assert!((server..server + 60_000).contains(&now), "{server} {now}");
    let payment = paid_payment(&unique("stamp"), 1_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let mut refund = pending_refund(&payment, 100, None);
    refund.created_at_ms = i64::MAX;
    refund.updated_at_ms = i64::MIN;
    store.begin_refund(&refund).await.unwrap();
    let stored = element(&store, &payment.merchant_uid, 0).await;
    let created = stored.get_i64("created_at_ms").unwrap();
    assert!((now..=store.now_ms().await.unwrap()).contains(&created));
    assert_eq!(stored.get_i64("updated_at_ms").unwrap(), created);
    drop_database(&store).await;
}

/// A payment document as the version before typed refund states wrote it:
/// `status` with an Int64-or-null `gateway_code` and a `gateway_message`,
/// no `failure_kind`, `failure_code` or `cancellation_id`.
fn legacy_document(merchant_uid: &str, imp_uid: &str, keys: [&str; 5]) -> Document {
    let element = |id: &str, key: &str, status: &str, code: Bson, message: Bson, at: i64| {
        doc! {
            "id": id, "imp_uid": imp_uid, "amount": 1_000_i64,
            "base_cancel_amount": 0_i64, "checksum": 10_000_i64,
            "reason": "legacy", "idempotency_key": key, "key_slot": key,
            "fingerprint": format!("{:064x}", 1_000), "refund_account_masked": Bson::Null,
            "status": status, "gateway_code": code, "gateway_message": message,
            "created_at_ms": at, "updated_at_ms": at,
        }
    };
    doc! {
        "_id": merchant_uid,
        "payment": {
            "imp_uid": imp_uid, "pay_method": "card", "currency": "KRW",
            "amount": 10_000_i64, "cancel_amount": 1_000_i64, "status": "paid",
            "paid_at": 1_700_000_000_i64,
            "cancel_history": [{
                "pg_tid": "pg_1", "amount": 1_000_i64, "cancelled_at": 1_700_000_100_i64,
                "reason": "legacy", "cancellation_id": "cxl_legacy", "receipt_url": Bson::Null,
            }],
        },
        "pending_refund_id": "rf_legacy_pending",
        "on_hold": false,
        "refunds": [
            element("rf_legacy_succeeded", keys[0], "succeeded", Bson::Null, Bson::Null, 1_000),
            element("rf_legacy_rejected", keys[1], "failed", Bson::Int64(-1), "거절".into(), 2_000),
            element("rf_legacy_unanswered", keys[2], "failed", Bson::Null, "timeout".into(), 3_000),
            element("rf_legacy_review", keys[3], "needs_review", Bson::Null, "odd".into(), 4_000),
            element("rf_legacy_pending", keys[4], "pending", Bson::Null, Bson::Null, 5_000),
        ],
    }
}

#[tokio::test]
async fn legacy_refund_documents_are_read_and_settled() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let merchant_uid = unique("legacy");
    let imp_uid = unique("imp");
    let keys: Vec<String> = (0..5).map(|i| unique(&format!("legacy-key-{i}"))).collect();
    let key = |i: usize| keys[i].as_str();
    payments(&store)
        .insert_one(legacy_document(
            &merchant_uid,
            &imp_uid,
            [key(0), key(1), key(2), key(3), key(4)],
        ))
        .await
        .unwrap();
    let id = |name: &str| RefundId::from_stored(format!("rf_legacy_{name}"));
    let expected = [
        ("succeeded", succeeded()),
        (
            "rejected",
            RefundState::Failed(Failure {
                kind: FailureKind::Rejected,
                code: Some("-1".into()),
                message: "거절".into(),
            }),
        ),
        (
            "unanswered",
            RefundState::Failed(Failure::new(FailureKind::NotApplied, "timeout")),
        ),
        ("review", RefundState::NeedsReview(Review::new("odd"))),
        ("pending", RefundState::PENDING),
    ];
    for (i, (name, state)) in expected.iter().enumerate() {
        let refund = store.refund(&id(name)).await.unwrap().unwrap();
        assert_eq!(&refund.state, state, "{name}");
        assert_eq!(refund.merchant_uid, merchant_uid);
        assert_eq!(refund.amount, Amount::from_minor(1_000));
        assert_eq!(refund.created_at_ms, 1_000 * (i as i64 + 1));
        assert_eq!(refund.attempt, 1, "{name}: no count is the first attempt");
        let by_key = store.refund_by_idempotency_key(key(i)).await.unwrap();
        assert_eq!(by_key.map(|r| r.id), Some(id(name)));
    }
    let listed: Vec<RefundId> = store
        .refunds_of(&merchant_uid, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [id("pending"), id("review"), id("unanswered")]);
    // The legacy pending refund is old on the server's clock: the sweep
    // lists it (this database holds nothing else pending).
    let stale = store
        .stale_pending_refunds(std::time::Duration::from_secs(60), None, 10)
        .await
        .unwrap();
    assert_eq!(
        stale.into_iter().map(|r| r.id).collect::<Vec<_>>(),
        [id("pending")]
    );
    let stored = store.payment(&merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.pending_refund, Some(id("pending")));

    // Settling the legacy pending refund writes the typed fields.
    let cxl = RefundState::Succeeded {
        cancellation_id: Some("cxl_legacy".into()),
    };
    let done = store
        .finish_refund(&id("pending"), 1, &cxl, None)
        .await
        .unwrap()
        .refund;
    assert_eq!(done.state, cxl);
    assert!(done.updated_at_ms > 5_000, "stamped by the server clock");
    assert_eq!(
        store
            .payment(&merchant_uid)
            .await
            .unwrap()
            .unwrap()
            .pending_refund,
        None
    );

    // Legacy failures behave as they read: a rejection is final...
    assert!(matches!(
        store
            .finish_refund(&id("rejected"), 1, &succeeded(), None)
            .await,
        Err(StoreError::NotPending(RefundStatus::Failed))
    ));
    // ...and an unanswered one changed nothing, so it may run again as
    // the same row, keeping its key (and it may still succeed).
    let current = store.payment(&merchant_uid).await.unwrap().unwrap().payment;
    let reopened = store
        .retry_refund(
            &id("unanswered"),
            current.cancel_amount,
            current.cancelable(),
        )
        .await
        .unwrap();
    assert_eq!(reopened.state, RefundState::PENDING);
    assert_eq!(reopened.attempt, 2, "counted on from the first");
    let holder = store
        .refund_by_idempotency_key(key(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.id, id("unanswered"));
    let late = store
        .finish_refund(&id("unanswered"), reopened.attempt, &succeeded(), None)
        .await
        .unwrap();
    assert_eq!(late.refund.state, succeeded());
    // A legacy rejection cannot run again, and its key stays spent.
    assert!(matches!(
        store
            .retry_refund(&id("rejected"), current.cancel_amount, current.cancelable())
            .await,
        Err(StoreError::NotPending(RefundStatus::Failed))
    ));
    let reuse = pending_refund(&current, 1_000, Some(key(1)));
    assert!(matches!(
        store.begin_refund(&reuse).await,
        Err(StoreError::IdempotencyKeyTaken)
    ));
    drop_database(&store).await;
}

/// A rolling upgrade: an instance of the previous release still runs
/// beside this one. Its sweep takes a pending refund whose `created_at_ms`
/// is older than the cutoff on `$$NOW`, and its in-flight bound runs from
/// `created_at_ms` (it restamps that when it runs a refund again). A refund
/// this release runs again keeps the `created_at_ms` it was journaled with:
/// the older instance must not take the attempt just sent for one past its
/// in-flight bound.
#[tokio::test]
#[ignore = "known gap: the release before 0003/0004 judges a refund run again here by its kept created_at_ms, so it may settle it not_applied early during a rolling upgrade (see README)"]
async fn a_refund_run_again_here_is_not_stale_to_the_previous_release() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let payment = paid_payment(&unique("rerun-mixed"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, None);
    store.begin_refund(&refund).await.unwrap();
    let down = failed(FailureKind::NotSent, None::<String>, "token endpoint down");
    store
        .finish_refund(&refund.id, refund.attempt, &down, None)
        .await
        .unwrap();
    // Journaled (and first tried) an hour ago.
    let backdated = payments(&store)
        .update_one(
            doc! { "_id": &payment.merchant_uid, "refunds.id": refund.id.as_str() },
            doc! { "$inc": {
                "refunds.$.created_at_ms": -3_600_000_i64,
                "refunds.$.attempt_started_at_ms": -3_600_000_i64,
            } },
        )
        .await
        .unwrap();
    assert_eq!(backdated.modified_count, 1);
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    let retried = store
        .retry_refund(
            &refund.id,
            stored.payment.cancel_amount,
            stored.payment.cancelable(),
        )
        .await
        .unwrap();
    // This release: the attempt just began, not stale.
    let stale = store
        .stale_pending_refunds(std::time::Duration::from_secs(60), None, 10_000)
        .await
        .unwrap();
    assert!(stale.iter().all(|r| r.id != refund.id), "{stale:?}");
    // The previous release's sweep, on the same document: pending refunds
    // whose created_at_ms is a minute older than the server's clock.
    let mut previous = payments(&store)
        .aggregate(vec![
            doc! { "$match": { "_id": &payment.merchant_uid, "refunds.status": "pending" } },
            doc! { "$unwind": "$refunds" },
            doc! { "$match": {
                "refunds.status": "pending",
                "$expr": { "$lt": [
                    "$refunds.created_at_ms",
                    { "$subtract": [{ "$toLong": "$$NOW" }, 60_000_i64] },
                ] },
            } },
        ])
        .await
        .unwrap();
    let mut swept_by_previous = Vec::new();
    while previous.advance().await.unwrap() {
        swept_by_previous.push(previous.deserialize_current().unwrap());
    }
    assert!(
        swept_by_previous.is_empty(),
        "an instance of the previous release sweeps the attempt begun at {} as one begun at {}: \
         {swept_by_previous:?}",
        retried.attempt_started_at_ms,
        retried.created_at_ms
    );
    drop_database(&store).await;
}
