//! Test support shared by the per-database test binaries: fresh databases
//! (named, found and skipped by `refund_core::testkit::services`), and the
//! cases every backend runs on top of refund-core's conformance suite.
//!
//! Each binary (`sqlite.rs`, `postgres.rs`, `mysql.rs`) implements
//! [`Backend`] and expands [`backend_tests!`].

#![allow(dead_code)] // Each binary uses the part that fits its backend.

use std::sync::Arc;

use refund_core::testkit::failed;
use refund_core::testkit::services::{with_database, Scratch, Service};
use refund_core::testkit::{paid_payment, pending_refund, unique};
use refund_core::{Currency, FailureKind, PaymentStore, RefundState, StoreError};
use sqlx::pool::PoolOptions;
use sqlx::{Database, Executor, FromRow, IntoArguments, Pool};
use storage_sql::{Dialect, MigrationError, SqlPaymentStore, SqlStoreError, MIGRATIONS_TABLE};
use tokio::sync::OnceCell;

/// This crate's scratch databases (and SQLite directories):
/// `storage_sql_<unix seconds>_<random>`, leftovers of crashed runs told by
/// their age.
pub const SCRATCH: Scratch = Scratch::new("storage_sql_");

/// A database server the tests run against.
pub trait Backend: Sized {
    /// The sqlx database.
    type Db: Dialect;

    /// A new, empty database, or `None` when the server is missing outside
    /// CI.
    async fn fresh() -> Option<Self>;

    /// A URL of this database, for [`SqlPaymentStore::connect`].
    fn url(&self) -> String;

    /// Runs SQL statements that return no rows.
    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error>;

    /// Runs a query whose one row's first column is an integer.
    async fn count(&self, sql: &str) -> Result<i64, sqlx::Error>;

    /// Drops the database.
    async fn drop_database(self);

    /// Keeps the database for the rest of the process (a later run drops
    /// it as a leftover) and gives its URL.
    fn keep(self) -> String;

    /// A store on a new pool of this database.
    async fn store(&self) -> SqlPaymentStore<Self::Db> {
        SqlPaymentStore::connect(&self.url())
            .await
            .expect("connect to the test database")
    }
}

/// A store on the database this test process shares between the
/// conformance cases (they use random ids, so they may share it), created
/// and migrated by the first case that asks.
pub async fn conformance_store<B: Backend>(
    database: &'static OnceCell<Option<String>>,
) -> Option<Arc<dyn PaymentStore>> {
    let url = database
        .get_or_init(|| async {
            let backend = B::fresh().await?;
            let store = backend.store().await;
            store
                .migrate()
                .await
                .expect("migrate the conformance database");
            store.pool().close().await;
            Some(backend.keep())
        })
        .await
        .clone()?;
    let store = SqlPaymentStore::<B::Db>::connect(&url)
        .await
        .expect("connect to the conformance database");
    Some(Arc::new(store))
}

/// A database server (one of testkit's services): which SQL lists and
/// drops its test databases.
pub trait Server {
    /// The sqlx database.
    type Db: Dialect;
    /// Where it runs, and what to say when it does not.
    fn service() -> &'static Service;
    /// Lists the databases whose name is `LIKE '{like}'`.
    fn list_databases(like: &str) -> String;
    /// Drops database `name` even while connections are open.
    fn drop_statement(name: &str) -> String;
}

/// A fresh database on a [`Server`]; `admin` is connected to the URL's own
/// database, to create and drop it.
pub struct ServerBackend<S: Server> {
    admin: Pool<S::Db>,
    pool: Pool<S::Db>,
    url: String,
    name: String,
}

impl<S: Server> Backend for ServerBackend<S>
where
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
    for<'q> <S::Db as Database>::Arguments<'q>: IntoArguments<'q, S::Db>,
{
    type Db = S::Db;

    async fn fresh() -> Option<Self> {
        let admin = S::service()
            .connect(|server| async move {
                PoolOptions::<S::Db>::new()
                    .max_connections(2)
                    .connect(&server)
                    .await
            })
            .await?;
        let existing: Vec<String> = sqlx::query_scalar(&S::list_databases(&SCRATCH.like_pattern()))
            .fetch_all(&admin)
            .await
            .expect("list test databases");
        for leftover in existing.iter().filter(|name| SCRATCH.is_leftover(name)) {
            admin
                .execute(sqlx::raw_sql(&S::drop_statement(leftover)))
                .await
                .expect("drop a leftover test database");
        }
        let name = SCRATCH.name();
        admin
            .execute(sqlx::raw_sql(&format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        let url = with_database(&S::service().url(), &name);
        let pool = Pool::<S::Db>::connect(&url)
            .await
            .expect("connect to the test database");
        Some(ServerBackend {
            admin,
            pool,
            url,
            name,
        })
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.pool.execute(sqlx::raw_sql(sql)).await.map(drop)
    }

    async fn count(&self, sql: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await
    }

    async fn drop_database(self) {
        self.pool.close().await;
        self.admin
            .execute(sqlx::raw_sql(&S::drop_statement(&self.name)))
            .await
            .expect("drop the test database");
        self.admin.close().await;
    }

    fn keep(self) -> String {
        self.url
    }
}

/// Migrating twice changes nothing the second time.
pub async fn migrate_twice_is_a_no_op<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();
    let first = store.applied_migrations().await.unwrap();
    assert!(!first.is_empty());
    assert_eq!(first[0].version, 1);
    assert_eq!(first[0].description, "init");
    store.migrate().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), first);
}

/// Our history goes to our own table and leaves the application's sqlx
/// history alone.
pub async fn migrations_use_their_own_table<B: Backend>(backend: &B) {
    backend
        .exec("CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    backend
        .exec("INSERT INTO _sqlx_migrations (version) VALUES (20240101000000)")
        .await
        .unwrap();
    let store = backend.store().await;
    store.migrate().await.unwrap();
    assert_eq!(MIGRATIONS_TABLE, "refund_schema_migrations");
    let ours = backend
        .count("SELECT COUNT(*) FROM refund_schema_migrations")
        .await
        .unwrap();
    assert_eq!(
        ours,
        i64::try_from(store.applied_migrations().await.unwrap().len()).unwrap()
    );
    let theirs = backend
        .count("SELECT COUNT(*) FROM _sqlx_migrations")
        .await
        .unwrap();
    assert_eq!(
        theirs, 1,
        "the application's migration history is untouched"
    );
}

/// An applied migration whose file changed is refused, and so is a
/// database migrated by a newer build.
pub async fn changed_or_unknown_migrations_are_refused<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();
    backend
        .exec("UPDATE refund_schema_migrations SET checksum = 'edited' WHERE version = 1")
        .await
        .unwrap();
    let error = store.migrate().await.unwrap_err();
    assert!(
        matches!(
            error,
            SqlStoreError::Migration(MigrationError::ChecksumMismatch { version: 1, .. })
        ),
        "{error:?}"
    );

    let checksum = store.applied_migrations().await.unwrap()[0]
        .checksum
        .clone();
    assert_eq!(checksum, "edited");
    backend
        .exec("DELETE FROM refund_schema_migrations WHERE version = 1")
        .await
        .unwrap();
    backend
        .exec(
            "INSERT INTO refund_schema_migrations (version, description, checksum, applied_at_ms) \
             VALUES (9999, 'from_the_future', 'x', 0)",
        )
        .await
        .unwrap();
    let error = store.migrate().await.unwrap_err();
    assert!(
        matches!(
            error,
            SqlStoreError::Migration(MigrationError::UnknownVersion(9999))
        ),
        "{error:?}"
    );
}

/// Two instances migrating one empty database at once: both succeed and
/// each migration is applied once.
pub async fn concurrent_migrations_apply_once<B: Backend>(backend: &B) {
    let (first, second) = (backend.store().await, backend.store().await);
    let (a, b) = tokio::join!(first.migrate(), second.migrate());
    a.unwrap();
    b.unwrap();
    let applied = first.applied_migrations().await.unwrap();
    let versions: Vec<i64> = applied.iter().map(|m| m.version).collect();
    let mut unique_versions = versions.clone();
    unique_versions.dedup();
    assert_eq!(versions, unique_versions);
    assert_eq!(
        backend
            .count("SELECT COUNT(*) FROM refund_schema_migrations")
            .await
            .unwrap(),
        i64::try_from(applied.len()).unwrap()
    );
    // The schema works.
    let payment = paid_payment(&unique("after-race"), 1_000, Currency::Krw);
    first.apply_snapshot(&payment).await.unwrap();
}

/// Values the schema cannot hold are errors, never panics, and leave
/// nothing behind.
pub async fn values_that_do_not_fit_are_errors<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();

    let too_long = format!("{}-{}", unique("long"), "x".repeat(2_000));
    let payment = paid_payment(&too_long, 1_000, Currency::Krw);
    let error = store.apply_snapshot(&payment).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert!(store.payment(&too_long).await.unwrap().is_none());

    let payment = paid_payment(&unique("long-key"), 1_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 100, Some(&"k".repeat(2_000)));
    let error = store.begin_refund(&refund).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    assert_eq!(stored.pending_refund, None, "a failed begin writes nothing");
    assert!(store.refund(&refund.id).await.unwrap().is_none());

    // A NUL character is valid UTF-8 that PostgreSQL's text cannot hold:
    // either it round-trips exactly or it is refused.
    let nul = format!("{}\u{0}nul", unique("nul"));
    match store
        .apply_snapshot(&paid_payment(&nul, 1_000, Currency::Krw))
        .await
    {
        Ok(stored) => assert_eq!(stored.payment.merchant_uid, nul),
        Err(error) => assert!(matches!(error, StoreError::Backend(_)), "{error:?}"),
    }
}

/// Rows that do not hold a valid payment or refund are reported as
/// corrupt, not guessed at.
pub async fn corrupt_rows_are_errors<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("corrupt"), 1_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 100, None);
    store.begin_refund(&refund).await.unwrap();
    let uid = &payment.merchant_uid;

    backend
        .exec(&format!(
            "UPDATE refund_payments SET currency = 'XYZ' WHERE merchant_uid = '{uid}'"
        ))
        .await
        .unwrap();
    let error = store.payment(uid).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert!(
        error_chain(&error).contains("XYZ"),
        "{}",
        error_chain(&error)
    );

    backend
        .exec(&format!(
            "UPDATE refund_payments SET currency = 'KRW', cancel_history = '[{{\"amount\": 1.5}}]' \
             WHERE merchant_uid = '{uid}'"
        ))
        .await
        .unwrap();
    let error = store.payment(uid).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
}

/// Keys and ids that differ only in case or a trailing space are
/// different keys and ids: they neither match nor collide.
pub async fn ids_differing_in_case_or_trailing_space_are_distinct<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();
    let base = unique("Order-42");
    let variants = [base.clone(), base.to_lowercase(), format!("{base} ")];
    for (i, merchant_uid) in variants.iter().enumerate() {
        let payment = paid_payment(merchant_uid, 1_000 + i as i64, Currency::Krw);
        store.apply_snapshot(&payment).await.unwrap();
    }
    for (i, merchant_uid) in variants.iter().enumerate() {
        let stored = store.payment(merchant_uid).await.unwrap().unwrap();
        assert_eq!(stored.payment.amount.minor(), 1_000 + i as i64);
    }

    let payment = store.payment(&base).await.unwrap().unwrap().payment;
    let failed = failed(FailureKind::Rejected, Some(-1), "no");
    let keys = [
        format!("Order-42/{base}"),
        format!("order-42/{base}"),
        format!("Order-42/{base} "),
    ];
    for key in &keys {
        let refund = pending_refund(&payment, 10, Some(key));
        store.begin_refund(&refund).await.unwrap();
        store
            .finish_refund(&refund.id, refund.attempt, &failed, None)
            .await
            .unwrap();
        let found = store.refund_by_idempotency_key(key).await.unwrap().unwrap();
        assert_eq!(found.id, refund.id, "{key:?}");
    }
}

/// The typed-state migration maps the first schema's rows: a failure with
/// i'mport's code is a rejection (its code kept, as text), one without is
/// `not_applied`; other states carry over. The operators' migration then
/// gives them their payment's currency and no requester, and they are
/// listed and resolved like new refunds.
pub async fn the_typed_state_migration_maps_existing_refunds<B: Backend>(backend: &B) {
    use sqlx::Database as _;
    let dialect = match B::Db::NAME {
        "SQLite" => "sqlite",
        "PostgreSQL" => "postgres",
        _ => "mysql",
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let init = std::fs::read_to_string(dir.join("0001_init.sql")).unwrap();
    backend.exec(&init).await.unwrap();
    let payment = unique("legacy");
    backend
        .exec(&format!(
            "INSERT INTO refund_payments (merchant_uid, imp_uid, pay_method, currency, amount, \
             cancel_amount, status, paid_at, cancel_history, updated_at_ms) \
             VALUES ('{payment}', 'imp_legacy', 'card', 'KRW', 10000, 1000, 'paid', 1, '[]', 1)"
        ))
        .await
        .unwrap();
    let rows = [
        ("rf_rejected", "'failed'", "-1", "'refused'"),
        (
            "rf_unknown",
            "'failed'",
            "NULL",
            "'the gateway never applied this refund'",
        ),
        ("rf_done", "'succeeded'", "NULL", "NULL"),
        (
            "rf_review",
            "'needs_review'",
            "NULL",
            "'numbers do not add up'",
        ),
        ("rf_open", "'pending'", "NULL", "NULL"),
    ];
    for (id, status, code, message) in rows {
        backend
            .exec(&format!(
                "INSERT INTO refund_journal (id, merchant_uid, imp_uid, amount, \
                 base_cancel_amount, checksum, reason, idempotency_key, fingerprint, \
                 refund_account_masked, status, gateway_code, gateway_message, created_at_ms, \
                 updated_at_ms) VALUES ('{id}', '{payment}', 'imp_legacy', 1000, 0, 10000, \
                 'r', NULL, 'f', NULL, {status}, {code}, {message}, 1, 1)"
            ))
            .await
            .unwrap();
    }
    // Recorded as applied, the way the first release left it.
    let checksum: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(init.replace("\r\n", "\n").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    backend
        .exec(
            "CREATE TABLE refund_schema_migrations (version BIGINT PRIMARY KEY, \
             description VARCHAR(255) NOT NULL, checksum VARCHAR(64) NOT NULL, \
             applied_at_ms BIGINT NOT NULL)",
        )
        .await
        .unwrap();
    backend
        .exec(&format!(
            "INSERT INTO refund_schema_migrations VALUES (1, 'init', '{checksum}', 1)"
        ))
        .await
        .unwrap();
    let store = backend.store().await;
    store.migrate().await.unwrap();
    let state = |id: &'static str| {
        let store = &store;
        async move {
            store
                .refund(&refund_core::RefundId::from_stored(id))
                .await
                .unwrap()
                .unwrap()
                .state
        }
    };
    assert_eq!(
        state("rf_rejected").await,
        failed(FailureKind::Rejected, Some("-1"), "refused")
    );
    assert_eq!(
        state("rf_unknown").await,
        failed(
            FailureKind::NotApplied,
            None::<String>,
            "the gateway never applied this refund"
        )
    );
    assert_eq!(
        state("rf_done").await,
        RefundState::Succeeded {
            cancellation_id: None
        }
    );
    assert_eq!(
        state("rf_review").await,
        refund_core::testkit::review("numbers do not add up")
    );
    assert_eq!(state("rf_open").await, RefundState::PENDING);
    // The operators' migration: existing refunds take their payment's
    // currency, nobody is named as having asked for them, and they are
    // listed and resolved like new ones.
    let filter = refund_core::RefundFilter {
        status: None,
        merchant_uid: Some(payment.clone()),
    };
    let page = store.list_refunds(&filter, 50, None).await.unwrap();
    assert_eq!(page.refunds.len(), 5);
    assert!(page.refunds.iter().all(|r| r.currency == Currency::Krw));
    assert!(page.refunds.iter().all(|r| r.requested_by.is_none()));
    backend
        .exec(&format!(
            "UPDATE refund_payments SET on_hold = TRUE WHERE merchant_uid = '{payment}'"
        ))
        .await
        .unwrap();
    let operator = refund_core::testkit::operator();
    store
        .resolve_review(
            &payment,
            &[refund_core::RefundId::from_stored("rf_review")],
            &operator,
            "legacy review checked",
            None,
        )
        .await
        .unwrap();
    let resolved = state("rf_review").await;
    let resolution = resolved.review().unwrap().resolution.clone().unwrap();
    assert_eq!(resolution.resolved_by, operator);
}

/// A closed pool is reported as unavailable (HTTP 503), not as a bug.
pub async fn a_closed_pool_is_unavailable<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();
    store.pool().close().await;
    let error = store.payment(&unique("closed")).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let payment = paid_payment(&unique("closed"), 1_000, Currency::Krw);
    let error = store.apply_snapshot(&payment).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
}

/// Every message in an error's source chain, for assertions.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages.join(": ")
}

/// A rolling upgrade: after the migrations, an instance of the release
/// before `0003_operators` still journals refunds (its `begin_refund`,
/// column for column: no currency, actor or attempt start) and runs them
/// again (it restamps `created_at_ms`). This release reads, lists, sweeps
/// and settles them.
pub async fn the_previous_release_journals_beside_the_migrated_schema<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("rolling"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let (uid, imp) = (&payment.merchant_uid, &payment.imp_uid);
    let id = "rf_0123456789abcdef0123456789abcdef";
    backend
        .exec(&format!(
            "INSERT INTO refund_journal (id, merchant_uid, imp_uid, amount, base_cancel_amount, \
             checksum, reason, idempotency_key, fingerprint, refund_account_masked, status, \
             created_at_ms, updated_at_ms) \
             VALUES ('{id}', '{uid}', '{imp}', 1000, 0, 10000, 'refund', NULL, 'fp', NULL, \
             'pending', 1764000000000, 1764000000000)"
        ))
        .await
        .expect("the previous release's insert is accepted by the migrated schema");
    backend
        .exec(&format!(
            "UPDATE refund_payments SET pending_refund_id = '{id}' WHERE merchant_uid = '{uid}'"
        ))
        .await
        .unwrap();
    let refund_id = refund_core::RefundId::from_stored(id);
    let read = store.refund(&refund_id).await.unwrap().unwrap();
    assert_eq!(read.currency, Currency::Krw, "the payment's currency");
    assert_eq!(read.requested_by, None);
    assert_eq!(read.created_at_ms, 1_764_000_000_000);
    assert_eq!(read.attempt_started_at_ms, read.created_at_ms);
    assert_eq!(read.attempt, 1, "no count: its first attempt");
    let listed = store
        .list_refunds(&refund_core::RefundFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(listed.refunds, vec![read.clone()]);
    let stale = store
        .stale_pending_refunds(std::time::Duration::from_secs(60), None, 10)
        .await
        .unwrap();
    assert_eq!(stale, vec![read.clone()]);
    // The previous release runs a refund this release began again: it
    // restamps created_at_ms and knows nothing of the attempt's start.
    let ours = pending_refund(&payment, 500, None);
    let settled = store
        .finish_refund(
            &refund_id,
            1,
            &RefundState::Succeeded {
                cancellation_id: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(settled.refund.currency, Currency::Krw);
    assert!(settled
        .recent_refunds
        .iter()
        .all(|r| r.currency == Currency::Krw));
    store.begin_refund(&ours).await.unwrap();
    let began = store.refund(&ours.id).await.unwrap().unwrap();
    store
        .finish_refund(
            &ours.id,
            ours.attempt,
            &failed(FailureKind::NotSent, None::<String>, "down"),
            None,
        )
        .await
        .unwrap();
    let later = began.created_at_ms + 3_600_000;
    backend
        .exec(&format!(
            "UPDATE refund_journal SET status = 'pending', failure_kind = NULL, \
             failure_code = NULL, gateway_message = NULL, created_at_ms = {later}, \
             updated_at_ms = {later} WHERE id = '{}'",
            ours.id
        ))
        .await
        .unwrap();
    let rerun = store.refund(&ours.id).await.unwrap().unwrap();
    assert_eq!(
        rerun.attempt_started_at_ms, later,
        "the restamped time is the attempt's start"
    );
    assert_eq!(
        rerun.attempt, began.attempt,
        "the previous release does not count the attempts it runs"
    );
    // An hour ahead of the store's clock: not stale yet.
    let stale = store
        .stale_pending_refunds(std::time::Duration::ZERO, None, 10)
        .await
        .unwrap();
    assert!(stale.iter().all(|r| r.id != ours.id), "{stale:?}");
}

/// A rolling upgrade, the other way round: while an instance of the
/// release before `0003_operators` still runs, it sweeps and judges pending
/// refunds by `created_at_ms` (its sweep statement is `status = 'pending'
/// AND created_at_ms < <store clock> - <settle age>`, and its in-flight
/// bound runs from `created_at_ms`), and it restamps `created_at_ms` when it
/// runs a refund again. A refund this release runs again keeps the
/// `created_at_ms` it was journaled with, an hour ago: the older instance
/// must not take the attempt just sent for one past its in-flight bound
/// (it would settle it `not_applied` while it may still be on the wire).
pub async fn a_refund_run_again_here_is_not_stale_to_the_previous_release<B: Backend>(backend: &B) {
    let store = backend.store().await;
    store.migrate().await.unwrap();
    let payment = paid_payment(&unique("rerun-mixed"), 10_000, Currency::Krw);
    store.apply_snapshot(&payment).await.unwrap();
    let refund = pending_refund(&payment, 1_000, None);
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
    // Journaled (and first tried) an hour ago.
    backend
        .exec(&format!(
            "UPDATE refund_journal SET created_at_ms = created_at_ms - 3600000, \
             attempt_started_at_ms = attempt_started_at_ms - 3600000, \
             updated_at_ms = updated_at_ms - 3600000 WHERE id = '{}'",
            refund.id
        ))
        .await
        .unwrap();
    let stored = store.payment(&payment.merchant_uid).await.unwrap().unwrap();
    let retried = store
        .retry_refund(
            &refund.id,
            stored.payment.cancel_amount,
            stored.payment.cancelable(),
        )
        .await
        .unwrap();
    let now = store.now_ms().await.unwrap();
    let settle_age_ms = 60_000;
    // This release: the attempt just began, not stale.
    assert!(now - retried.attempt_started_at_ms < settle_age_ms);
    let stale = store
        .stale_pending_refunds(std::time::Duration::from_millis(60_000), None, 10_000)
        .await
        .unwrap();
    assert!(stale.iter().all(|r| r.id != refund.id), "{stale:?}");
    // The previous release, on the same rows: its sweep statement, and its
    // in-flight bound (`now - created_at_ms < settle age`).
    let swept_by_previous = backend
        .count(&format!(
            "SELECT COUNT(*) FROM refund_journal WHERE status = 'pending' \
             AND created_at_ms < {} AND id = '{}'",
            now - settle_age_ms,
            refund.id
        ))
        .await
        .unwrap();
    let created_at_ms = backend
        .count(&format!(
            "SELECT created_at_ms FROM refund_journal WHERE id = '{}'",
            refund.id
        ))
        .await
        .unwrap();
    assert_eq!(
        (swept_by_previous, now - created_at_ms < settle_age_ms),
        (0, true),
        "an instance of the previous release takes the attempt begun {} ms ago for one \
         begun {} ms ago, past its in-flight bound",
        now - retried.attempt_started_at_ms,
        now - created_at_ms
    );
}

/// One `#[tokio::test]` per backend case, each on its own fresh database
/// that is dropped afterwards.
#[macro_export]
macro_rules! backend_tests {
    ($backend:ty) => {
        $crate::backend_tests!(@cases $backend;
            migrate_twice_is_a_no_op,
            migrations_use_their_own_table,
            changed_or_unknown_migrations_are_refused,
            concurrent_migrations_apply_once,
            values_that_do_not_fit_are_errors,
            corrupt_rows_are_errors,
            ids_differing_in_case_or_trailing_space_are_distinct,
            a_closed_pool_is_unavailable,
            the_typed_state_migration_maps_existing_refunds,
            the_previous_release_journals_beside_the_migrated_schema,
        );
        $crate::backend_tests!(@ignored $backend;
            "known gap: the release before 0003/0004 judges a refund run again here by its kept created_at_ms, so it may settle it not_applied early during a rolling upgrade (see README)";
            a_refund_run_again_here_is_not_stale_to_the_previous_release,
        );
    };
    (@ignored $backend:ty; $reason:literal; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $reason]
            async fn $case() {
                use $crate::common::Backend as _;
                let Some(backend) = <$backend>::fresh().await else {
                    return; // Skipped: the server is missing.
                };
                $crate::common::$case(&backend).await;
                backend.drop_database().await;
            }
        )*
    };
    (@cases $backend:ty; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                use $crate::common::Backend as _;
                let Some(backend) = <$backend>::fresh().await else {
                    return; // Skipped: the server is missing.
                };
                $crate::common::$case(&backend).await;
                backend.drop_database().await;
            }
        )*
    };
}

/// A store on a database that answers reads but refuses writes: every
/// write, and the health ping, is `Unavailable` (HTTP 503, and
/// `begin_refund` failing means no gateway call), never `Backend` (500),
/// and nothing is written. `seeded` was stored before the database became
/// read-only.
pub async fn assert_read_only_is_unavailable<DB: Dialect>(
    read_only: &SqlPaymentStore<DB>,
    seeded: &refund_core::Payment,
) {
    let stored = read_only.payment(&seeded.merchant_uid).await.unwrap();
    assert!(stored.is_some(), "reads still work");
    let ping = read_only.ping().await;
    assert!(
        matches!(ping, Err(StoreError::Unavailable(_))),
        "the health ping must fail on a read-only database: {ping:?}"
    );
    let begin = read_only
        .begin_refund(&pending_refund(seeded, 100, Some(&unique("ro-key"))))
        .await;
    assert!(
        matches!(begin, Err(StoreError::Unavailable(ref e)) if error_chain(e.as_ref()).to_lowercase().contains("read")),
        "{begin:?}"
    );
    let fresh = paid_payment(&unique("read-only"), 1_000, Currency::Krw);
    let snapshot = read_only.apply_snapshot(&fresh).await;
    assert!(
        matches!(snapshot, Err(StoreError::Unavailable(_))),
        "{snapshot:?}"
    );
    let release = read_only
        .resolve_review(
            &seeded.merchant_uid,
            &[],
            &refund_core::testkit::operator(),
            "checked",
            None,
        )
        .await;
    assert!(
        matches!(release, Err(StoreError::Unavailable(_))),
        "{release:?}"
    );
    assert!(read_only
        .payment(&fresh.merchant_uid)
        .await
        .unwrap()
        .is_none());
    let after = read_only.payment(&seeded.merchant_uid).await.unwrap();
    assert_eq!(after.and_then(|p| p.pending_refund), None);
}
