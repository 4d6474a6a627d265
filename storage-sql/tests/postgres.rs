//! PostgreSQL: the conformance suite and the backend cases, on databases
//! created for this run on the server at `$STORAGE_SQL_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`).

#![cfg(feature = "postgres")]

mod common;

use std::str::FromStr;
use std::time::Duration;

use refund_core::testkit::{paid_payment, pending_refund, unique};
use refund_core::{Currency, PaymentStore};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Postgres;
use storage_sql::{PgPaymentStore, SqlStoreError};
use tokio::sync::OnceCell;

use common::{Backend, Server, ServerBackend};
use refund_core::testkit::services::{Service, POSTGRES};

struct PostgresServer;

impl Server for PostgresServer {
    type Db = Postgres;

    fn service() -> &'static Service {
        &POSTGRES
    }

    fn list_databases(like: &str) -> String {
        format!("SELECT datname::text FROM pg_database WHERE datname LIKE '{like}'")
    }

    fn drop_statement(name: &str) -> String {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    }
}

type PostgresBackend = ServerBackend<PostgresServer>;

mod conformance {
    use super::*;

    static DATABASE: OnceCell<Option<String>> = OnceCell::const_new();

    refund_core::store_conformance_tests!(common::conformance_store::<PostgresBackend>(&DATABASE));
}

mod backend {
    crate::backend_tests!(super::PostgresBackend);
}

/// A server that is not there is "unavailable", not a bug.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let error = PgPaymentStore::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(matches!(error, SqlStoreError::Unavailable(_)), "{error:?}");
}

/// A merchant's pool may run every transaction SERIALIZABLE. A begin that
/// waits on a row another transaction then commits fails with a
/// serialization error; the store must run it again, and then it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_are_retried() {
    let Some(backend) = PostgresBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    let plain = backend.store().await;
    plain.migrate().await.unwrap();
    let payment = paid_payment(&unique("serializable"), 10_000, Currency::Krw);
    plain.apply_snapshot(&payment).await.unwrap();
    let serializable = PgConnectOptions::from_str(&backend.url())
        .unwrap()
        .options([("default_transaction_isolation", "serializable")]);
    let store = PgPaymentStore::new(
        PgPoolOptions::new()
            .connect_with(serializable)
            .await
            .unwrap(),
    );

    // Another transaction holds the payment's row...
    let mut other = plain.pool().begin().await.unwrap();
    sqlx::query("UPDATE refund_payments SET updated_at_ms = 0 WHERE merchant_uid = $1")
        .bind(&payment.merchant_uid)
        .execute(&mut *other)
        .await
        .unwrap();
    let refund = pending_refund(&payment, 1_000, None);
    let begin = tokio::spawn({
        let (store, refund) = (store.clone(), refund.clone());
        async move { store.begin_refund(&refund).await }
    });
    // ...until the store's transaction is waiting for it...
    let mut polls = 0;
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(plain.pool())
    .await
    .unwrap()
        == 0
    {
        polls += 1;
        assert!(
            polls < 3_000,
            "the store's transaction never waited on the row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and then commits: the waiting UPDATE fails to serialize.
    other.commit().await.unwrap();
    begin
        .await
        .unwrap()
        .expect("retried after the serialization failure");
    let stored = plain.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.pending_refund, Some(refund.id));

    store.pool().close().await;
    plain.pool().close().await;
    backend.drop_database().await;
}

/// A database whose sessions default to read-only transactions (as after
/// `ALTER DATABASE ... SET default_transaction_read_only = on`, or on a
/// standby) is unavailable for writes and fails the health ping; the same
/// database writable passes it.
#[tokio::test]
async fn a_read_only_database_is_unavailable() {
    let Some(backend) = PostgresBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    let writable = backend.store().await;
    writable.migrate().await.unwrap();
    let payment = paid_payment(&unique("read-only"), 10_000, Currency::Krw);
    writable.apply_snapshot(&payment).await.unwrap();
    writable.ping().await.unwrap();

    let read_only = PgConnectOptions::from_str(&backend.url())
        .unwrap()
        .options([("default_transaction_read_only", "on")]);
    let read_only =
        PgPaymentStore::new(PgPoolOptions::new().connect_with(read_only).await.unwrap());
    common::assert_read_only_is_unavailable(&read_only, &payment).await;
    read_only.pool().close().await;
    writable.pool().close().await;
    backend.drop_database().await;
}

/// The store keeps a connection checked out between its calls (so sqlx
/// does not ping it on every release) and its next call runs on it
/// without asking the pool; the pool's `close` gets it back and returns.
#[tokio::test]
async fn the_store_keeps_a_connection_between_calls_until_the_pool_closes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let Some(backend) = PostgresBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    // Every connection the pool hands out either was idle (before_acquire)
    // or is new (after_connect): together they count the acquires.
    let acquires = Arc::new(AtomicUsize::new(0));
    let (idle, new) = (acquires.clone(), acquires.clone());
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .before_acquire(move |_, _| {
            idle.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(true) })
        })
        .after_connect(move |_, _| {
            new.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
        .connect(&backend.url())
        .await
        .unwrap();
    let store = PgPaymentStore::new(pool);
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("kept"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let read = || async {
        let stored = store.payment(&payment.merchant_uid).await.unwrap();
        assert_eq!(stored.unwrap().payment, payment);
    };
    read().await;
    let before = acquires.load(Ordering::SeqCst);
    read().await;
    read().await;
    let refund = pending_refund(&payment, 1_000, None);
    store.begin_refund(&refund).await.unwrap();
    assert_eq!(
        acquires.load(Ordering::SeqCst),
        before,
        "calls went to the pool"
    );

    store.pool().close().await;
    assert!(store.pool().is_closed());
    backend.drop_database().await;
}
