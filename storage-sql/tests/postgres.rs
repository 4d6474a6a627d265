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

/// A store asked to keep connections (`keep_connections`) keeps one
/// checked out between its calls (so sqlx does not ping it on every
/// release) and its next call runs on it
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
    let store = PgPaymentStore::new(pool).keep_connections(4);
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

/// A pool built with sqlx's defaults (`test_before_acquire`) pings every
/// idle connection before handing it out, so a session the server ended
/// (a restart, a failover, an administrator) is replaced before a call
/// runs on it. The connection `begin_refund` ran on must get the same
/// check before `finish_refund` uses it: otherwise the session the server
/// ended while the gateway was called fails the settlement, and a refund
/// the gateway made stays pending. A store on the merchant's pool
/// therefore keeps no connection between calls unless asked to
/// (`keep_connections`).
#[tokio::test]
async fn finish_refund_runs_on_a_live_session_after_the_server_ended_the_kept_one() {
    let Some(backend) = PostgresBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    let name = unique("kept-session");
    let options = PgConnectOptions::from_str(&backend.url())
        .unwrap()
        .application_name(&name);
    // sqlx's defaults: every idle connection is pinged before use.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let store = PgPaymentStore::new(pool);
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("kept-session"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, None);
    store.begin_refund(&refund).await.unwrap();

    // While the gateway is called, the server ends the store's sessions
    // (found first by their name, then ended one by one: no other session).
    let admin = sqlx::PgPool::connect(&backend.url()).await.unwrap();
    let sessions: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_all(&admin)
            .await
            .unwrap();
    let mut ended = 0;
    for pid in sessions {
        let gone: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 10000)")
            .bind(pid)
            .fetch_one(&admin)
            .await
            .unwrap();
        ended += usize::from(gone);
    }
    admin.close().await;
    assert!(ended >= 1, "no session of the store's pool was found");

    let settlement = store
        .finish_refund(
            &refund.id,
            refund.attempt,
            &refund_core::testkit::succeeded(),
            None,
        )
        .await
        .expect("settled on a live session");
    assert_eq!(settlement.refund.id, refund.id);
    store.pool().close().await;
    backend.drop_database().await;
}

/// The pool's `max_lifetime` retires a connection once it is older: sqlx
/// checks it whenever a connection comes back or sits idle. A store busy
/// enough to reuse its kept connections within the second must still
/// leave them to that check, or they are never retired.
#[tokio::test]
async fn a_busy_store_still_retires_connections_at_the_pools_max_lifetime() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let Some(backend) = PostgresBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .max_lifetime(Duration::from_millis(100))
        .after_connect(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
        .connect(&backend.url())
        .await
        .unwrap();
    let store = PgPaymentStore::new(pool).keep_connections(4);
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("lifetime"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    let before = connects.load(Ordering::SeqCst);
    for _ in 0..3 {
        // Each call comes after the last connection outlived its lifetime.
        tokio::time::sleep(Duration::from_millis(400)).await;
        store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    }
    assert!(
        connects.load(Ordering::SeqCst) - before >= 3,
        "calls ran on connections older than the pool's max_lifetime ({} new connections for 3 calls)",
        connects.load(Ordering::SeqCst) - before
    );
    store.pool().close().await;
    backend.drop_database().await;
}

/// A store whose kept connection sits idle must not make its own write
/// wait for (or time out on) the pool: with a pool of 2 and the other
/// connection busy elsewhere, `apply_snapshot` has the idle one.
#[tokio::test]
async fn a_write_is_not_starved_by_the_stores_own_kept_connection() {
    let Some(backend) = PostgresBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&backend.url())
        .await
        .unwrap();
    let store = PgPaymentStore::new(pool.clone()).keep_connections(4);
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("starved"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    // The merchant's own work holds the pool's other connection.
    let held = pool.acquire().await.unwrap();
    let other = paid_payment(&unique("starved"), 20_000, Currency::Krw);
    store
        .apply_snapshot(&other)
        .await
        .expect("the write ran on the connection the store holds idle");
    drop(held);
    pool.close().await;
    backend.drop_database().await;
}

/// "Never more than half the pool" must hold for the pool, not per store:
/// two stores on one pool of 2 (as when each actix worker builds its own
/// from a cloned pool) must leave it a connection while neither runs
/// anything.
#[tokio::test]
async fn idle_stores_sharing_a_pool_leave_it_a_connection() {
    let Some(backend) = PostgresBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&backend.url())
        .await
        .unwrap();
    let first = PgPaymentStore::new(pool.clone()).keep_connections(4);
    let second = PgPaymentStore::new(pool.clone()).keep_connections(4);
    first.migrate().await.unwrap();
    let payment = paid_payment(&unique("shared-pool"), 10_000, Currency::Krw);
    first.apply_snapshot(&payment).await.unwrap();
    first.payment(&payment.merchant_uid).await.unwrap().unwrap();
    second
        .payment(&payment.merchant_uid)
        .await
        .unwrap()
        .unwrap();
    // The connection the second store did not keep goes back through
    // sqlx's release ping, in a task: wait (boundedly) for it to arrive.
    // Kept by both stores, none would ever come back (the stores are idle
    // for less than the second after which they give kept ones back).
    let mut free = pool.try_acquire();
    for _ in 0..50 {
        if free.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        free = pool.try_acquire();
    }
    assert!(
        free.is_some(),
        "two idle stores hold all {} of the pool's connections",
        pool.size()
    );
    drop(free);
    pool.close().await;
    backend.drop_database().await;
}

/// A store dropped outside a runtime (as at the end of a `main` that
/// `block_on`s its server and then drops what it built, the runtime still
/// alive) drops like the pool it wraps, even right after a call and on a
/// pool that keeps `min_connections`.
#[test]
fn a_store_dropped_outside_the_runtime_right_after_a_call_does_not_panic() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let made = runtime.block_on(async {
        let backend = PostgresBackend::fresh().await?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect(&backend.url())
            .await
            .unwrap();
        let store = PgPaymentStore::new(pool).keep_connections(4);
        store.migrate().await.unwrap();
        let payment = paid_payment(&unique("dropped"), 10_000, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
        store.payment(&payment.merchant_uid).await.unwrap().unwrap();
        Some((backend, store))
    });
    let Some((backend, store)) = made else {
        return; // Skipped: the server is missing.
    };
    let pool = store.pool().clone();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(store)));
    runtime.block_on(async {
        pool.close().await;
        backend.drop_database().await;
    });
    assert!(dropped.is_ok(), "dropping the store panicked");
}
