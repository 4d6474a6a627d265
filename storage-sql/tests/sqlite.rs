//! SQLite: the conformance suite and the backend cases, each on a database
//! file in a fresh directory under cargo's test tmp dir.

#![cfg(feature = "sqlite")]

mod common;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use refund_core::testkit::services::skip_or_fail;
use refund_core::testkit::{paid_payment, unique};
use refund_core::Payment;
use refund_core::{Currency, PaymentStore, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor, Sqlite, SqlitePool};
use storage_sql::{SqlStoreError, SqlitePaymentStore};
use tokio::sync::OnceCell;

use common::{error_chain, Backend, SCRATCH};

/// A database file in its own directory.
struct SqliteBackend {
    dir: PathBuf,
    pool: SqlitePool,
}

impl SqliteBackend {
    fn parent() -> PathBuf {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("storage-sql")
    }

    /// Removes directories that crashed runs left behind.
    fn remove_leftovers() {
        let Ok(entries) = std::fs::read_dir(Self::parent()) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|name| SCRATCH.is_leftover(name))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Backend for SqliteBackend {
    type Db = Sqlite;

    async fn fresh() -> Option<Self> {
        Self::remove_leftovers();
        let dir = Self::parent().join(SCRATCH.name());
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let url = format!("sqlite://{}?mode=rwc", dir.join("refunds.db").display());
        let pool = SqlitePool::connect(&url).await.expect("open the test file");
        Some(SqliteBackend { dir, pool })
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.dir.join("refunds.db").display())
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.pool.execute(sqlx::raw_sql(sql)).await.map(drop)
    }

    async fn count(&self, sql: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await
    }

    async fn drop_database(self) {
        self.pool.close().await;
        std::fs::remove_dir_all(&self.dir).expect("remove the test directory");
    }

    fn keep(self) -> String {
        self.url()
    }
}

mod conformance {
    use super::*;

    static DATABASE: OnceCell<Option<String>> = OnceCell::const_new();

    refund_core::store_conformance_tests!(common::conformance_store::<SqliteBackend>(&DATABASE));
}

mod backend {
    crate::backend_tests!(super::SqliteBackend);
}

/// `connect` puts file databases in WAL mode, so readers never wait for
/// the writer.
#[tokio::test]
async fn connect_uses_wal_for_files() {
    let backend = SqliteBackend::fresh().await.unwrap();
    let store = SqlitePaymentStore::connect(&backend.url()).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    store.pool().close().await;
    backend.drop_database().await;
}

/// An in-memory database works through `open` (its pool keeps the one
/// connection that holds the data).
#[tokio::test]
async fn open_works_in_memory() {
    let store = storage_sql::open("sqlite::memory:").await.unwrap();
    refund_core::testkit::refunds_round_trip_newest_first(store).await;
}

/// Another writer holding the file past the busy timeout: the store reports
/// the database unavailable (HTTP 503, no gateway call), not a bug, and
/// writes nothing; once the lock is gone it works again.
#[tokio::test]
async fn a_file_locked_by_another_writer_is_unavailable() {
    let backend = SqliteBackend::fresh().await.unwrap();
    let store = SqlitePaymentStore::connect(&backend.url()).await.unwrap();
    store.migrate().await.unwrap();
    let impatient = SqliteConnectOptions::from_str(&backend.url())
        .unwrap()
        .busy_timeout(Duration::ZERO);
    let impatient = SqlitePaymentStore::new(
        SqlitePoolOptions::new()
            .connect_with(impatient)
            .await
            .unwrap(),
    );
    let payment = paid_payment(&unique("locked"), 1_000, Currency::Krw);

    let mut holder = backend.pool.acquire().await.unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    let error = impatient.apply_snapshot(&payment).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        error_chain(&error).contains("database is locked"),
        "{}",
        error_chain(&error)
    );
    assert!(impatient
        .payment(&payment.merchant_uid)
        .await
        .unwrap()
        .is_none());
    holder.execute("ROLLBACK").await.unwrap();
    drop(holder);

    impatient.apply_snapshot(&payment).await.unwrap();
    impatient.pool().close().await;
    store.pool().close().await;
    backend.drop_database().await;
}

/// `open` picks the database by scheme and never echoes the URL, which may
/// carry a password.
#[tokio::test]
async fn open_refuses_schemes_it_was_not_built_for() {
    let Err(error) = storage_sql::open("mongodb://user:secret@127.0.0.1/x").await else {
        panic!("a mongodb URL must be refused");
    };
    assert!(matches!(error, SqlStoreError::UnsupportedScheme(ref s) if s == "mongodb"));
    assert!(!error.to_string().contains("secret"));
}

/// A migrated database file holding one payment, with every pool closed.
async fn seeded_file() -> (SqliteBackend, Payment) {
    let backend = SqliteBackend::fresh().await.unwrap();
    let writable = SqlitePaymentStore::connect(&backend.url()).await.unwrap();
    writable.migrate().await.unwrap();
    let payment = paid_payment(&unique("read-only"), 10_000, Currency::Krw);
    writable.apply_snapshot(&payment).await.unwrap();
    writable.ping().await.unwrap();
    writable.pool().close().await;
    (backend, payment)
}

/// A database opened read-only (`?mode=ro`) reads but refuses writes with
/// SQLITE_READONLY: unavailable (503), never a backend error (500), and
/// the health ping fails.
#[tokio::test]
async fn a_database_opened_read_only_is_unavailable() {
    let (backend, payment) = seeded_file().await;
    let url = format!("{}?mode=ro", backend.url());
    let read_only = SqlitePaymentStore::connect(&url).await.unwrap();
    read_only
        .migrate()
        .await
        .expect("a migrated schema needs no write");
    common::assert_read_only_is_unavailable(&read_only, &payment).await;
    read_only.pool().close().await;
    backend.drop_database().await;
}

/// A database file the process may not write (its permissions, or, for
/// root, whom permissions do not bind, the immutable attribute) behaves
/// like one opened read-only.
#[tokio::test]
async fn a_read_only_database_file_is_unavailable() {
    let (backend, payment) = seeded_file().await;
    let file = backend.dir.join("refunds.db");
    // Out of WAL mode first: a WAL database opened from a read-only file
    // still finds its `-wal` and `-shm` files writable, which makes what
    // the test observes depend on their state; a rollback-journal file is
    // read-only, and only that, once its own file is.
    {
        let writable = SqlitePaymentStore::connect(&backend.url()).await.unwrap();
        sqlx::query("PRAGMA journal_mode = DELETE")
            .execute(writable.pool())
            .await
            .unwrap();
        writable.pool().close().await;
    }
    let Some(guard) = ReadOnlyFile::make(&file) else {
        skip_or_fail::<()>("cannot make a file read-only for this user (root without chattr)");
        backend.drop_database().await;
        return;
    };
    // Opening it may already refuse (the pool sets WAL mode, a write):
    // unavailable, never a backend error. If it opens, every write must be.
    match SqlitePaymentStore::connect(&backend.url()).await {
        Err(error) => assert!(matches!(error, SqlStoreError::Unavailable(_)), "{error:?}"),
        Ok(read_only) => {
            common::assert_read_only_is_unavailable(&read_only, &payment).await;
            read_only.pool().close().await;
        }
    }
    drop(guard);
    backend.drop_database().await;
}

/// Makes a file unwritable for this process and writable again on drop.
struct ReadOnlyFile {
    path: PathBuf,
    immutable: bool,
}

impl ReadOnlyFile {
    fn make(path: &std::path::Path) -> Option<ReadOnlyFile> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).ok()?;
        let mut guard = ReadOnlyFile {
            path: path.to_owned(),
            immutable: false,
        };
        if guard.writable() {
            // Root ignores permissions; the immutable attribute binds it.
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .ok()?;
            guard.immutable = status.success();
            if !guard.immutable || guard.writable() {
                return None;
            }
        }
        Some(guard)
    }

    fn writable(&self) -> bool {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .is_ok()
    }
}

impl Drop for ReadOnlyFile {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.path)
                .status();
        }
        let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o644));
    }
}
