//! SQLite: `?` placeholders, `ON CONFLICT` upserts, `BEGIN IMMEDIATE`.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteQueryResult};
use sqlx::{Pool, Sqlite};

use super::{Dialect, ErrorClass, Placeholder, Statements, Upsert, Writes};
use crate::migrate::{migrations, Migration};

/// How long a connection waits for another writer's transaction before it
/// gives up (SQLite allows one writer at a time).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

// Primary result codes (the low byte of SQLite's extended codes).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
/// A write to a database opened read-only (`mode=ro`, a file or directory
/// the process may not write, a read-only medium).
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
/// A WAL read snapshot went stale before its transaction could write.
const SQLITE_BUSY_SNAPSHOT: i64 = SQLITE_BUSY | (2 << 8);

impl super::sealed::Sealed for Sqlite {}

impl Dialect for Sqlite {
    const PLACEHOLDER: Placeholder = Placeholder::Question;
    const UPSERT: Upsert = Upsert::OnConflict;
    // Takes the database's write lock at the start (waiting up to the busy
    // timeout), so concurrent write transactions run one after another
    // instead of failing with SQLITE_BUSY when they first write.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const WRITES: Writes = Writes::Transaction;
    const SERIALIZE_WRITES: bool = true;
    const KEEP_CONNECTIONS: usize = 0;
    const BINARY_TEXT: bool = false;
    // The process's clock, to the millisecond (SQLite has no server).
    const NOW_MS: &'static str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    // Each migration runs in its own BEGIN IMMEDIATE transaction and checks
    // again inside it whether it was applied meanwhile.
    const MIGRATION_LOCK: Option<(&'static str, &'static str)> = None;

    fn migrations() -> &'static [Migration] {
        migrations!(
            "sqlite",
            "0001_init",
            "0002_typed_state",
            "0003_operators",
            "0004_rolling_upgrade"
        )
    }

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> =
            LazyLock::new(|| Statements::new(Sqlite::PLACEHOLDER, Sqlite::UPSERT, Sqlite::NOW_MS));
        &STATEMENTS
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn classify(error: &dyn DatabaseError) -> ErrorClass {
        let Some(code) = error.code().and_then(|code| code.parse::<i64>().ok()) else {
            return ErrorClass::Other;
        };
        match (code, code & 0xff) {
            (SQLITE_BUSY_SNAPSHOT, _) | (_, SQLITE_LOCKED) => ErrorClass::Retry,
            // A plain SQLITE_BUSY comes after the busy timeout was spent
            // waiting for another writer: waiting again would only make the
            // caller wait longer.
            // A read-only database cannot take refunds now, like a
            // PostgreSQL or MySQL server in read-only mode: 503, not a bug.
            (_, SQLITE_BUSY | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN) => {
                ErrorClass::Unavailable
            }
            _ => ErrorClass::Other,
        }
    }

    /// File databases get WAL (readers never block the writer) and a busy
    /// timeout, and are created if missing. An in-memory database lives
    /// only as long as its connections, so its pool keeps exactly one.
    async fn connect_pool(url: &str) -> Result<Pool<Sqlite>, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = super::pool_options::<Sqlite>();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            pool.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool
        };
        pool.connect_with(options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::list_variant;
    use crate::SqlPaymentStore;

    /// Every listing statement is served by an index that also gives its
    /// order (no full scan, no sort of the journal), on the migrated schema.
    #[tokio::test]
    async fn every_listing_walks_an_index_in_order() {
        let store = SqlPaymentStore::<Sqlite>::connect("sqlite::memory:")
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let statements = Sqlite::statements();
        for status in [false, true] {
            for merchant_uid in [false, true] {
                for cursor in [false, true] {
                    let sql = &statements.list_refunds[list_variant(status, merchant_uid, cursor)];
                    let plan: Vec<(i64, i64, i64, String)> =
                        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                            .fetch_all(store.pool())
                            .await
                            .unwrap();
                    let plan: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
                    let shown = format!("{sql}: {plan:?}");
                    assert!(
                        plan.iter()
                            .any(|step| step.contains("refund_journal_listing")),
                        "{shown}"
                    );
                    assert!(
                        !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                        "sorted by the index, not afterwards: {shown}"
                    );
                }
            }
        }
    }
}
