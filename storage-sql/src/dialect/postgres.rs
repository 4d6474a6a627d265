//! PostgreSQL: `$n` placeholders, `ON CONFLICT` upserts, advisory lock for
//! migrations.

use std::str::FromStr;
use std::sync::LazyLock;

use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgQueryResult};
use sqlx::{Pool, Postgres};

use super::{Dialect, ErrorClass, Placeholder, Statements, Upsert, Writes};

/// How long a statement waits for a row lock before giving up (PostgreSQL
/// waits forever by default): a stuck lock holder then costs one payment a
/// 503, not the whole pool.
const LOCK_TIMEOUT: &str = "5s";
use crate::migrate::{migrations, Migration};

impl super::sealed::Sealed for Postgres {}

impl Dialect for Postgres {
    const PLACEHOLDER: Placeholder = Placeholder::Numbered;
    const UPSERT: Upsert = Upsert::OnConflict;
    // READ COMMITTED is enough: every decision is a conditional UPDATE, which
    // PostgreSQL re-checks against the latest row after waiting on its lock.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const WRITES: Writes = Writes::Cte;
    const SERIALIZE_WRITES: bool = false;
    const KEEP_CONNECTIONS: usize = crate::warm::MAX_KEPT;
    const BINARY_TEXT: bool = false;
    // The statement's start on the server's clock: one value per statement
    // (stable, so the sweep's cutoff can use the `(status, created_at_ms)`
    // index).
    const NOW_MS: &'static str =
        "CAST(FLOOR(EXTRACT(EPOCH FROM statement_timestamp()) * 1000) AS BIGINT)";
    // A session-level advisory lock, per database; the key is the first
    // eight bytes of SHA-256("refund_schema_migrations"), big-endian, signed.
    const MIGRATION_LOCK: Option<(&'static str, &'static str)> = Some((
        "SELECT CAST(1 AS BIGINT) AS locked FROM pg_advisory_lock(-343143001964748910)",
        "SELECT pg_advisory_unlock(-343143001964748910)",
    ));

    fn migrations() -> &'static [Migration] {
        migrations!(
            "postgres",
            "0001_init",
            "0002_typed_state",
            "0003_operators",
            "0004_rolling_upgrade"
        )
    }

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> = LazyLock::new(|| {
            Statements::new(Postgres::PLACEHOLDER, Postgres::UPSERT, Postgres::NOW_MS)
        });
        &STATEMENTS
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn classify(error: &dyn DatabaseError) -> ErrorClass {
        match error.code().as_deref() {
            // serialization_failure, deadlock_detected
            Some("40001" | "40P01") => ErrorClass::Retry,
            // connection exceptions; too many connections; lock_timeout or
            // statement_timeout spent; the server shutting down or starting;
            // a read-only (demoted) primary during a failover.
            Some(code) if code.starts_with("08") => ErrorClass::Unavailable,
            Some("53300" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "25006") => {
                ErrorClass::Unavailable
            }
            _ => ErrorClass::Other,
        }
    }

    async fn connect_pool(url: &str) -> Result<Pool<Postgres>, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.options([("lock_timeout", LOCK_TIMEOUT)]);
        super::pool_options::<Postgres>()
            .connect_with(options)
            .await
    }
}
