//! MySQL and MariaDB: `?` placeholders, `ON DUPLICATE KEY UPDATE` upserts,
//! binary ids, `GET_LOCK` for migrations.

use std::sync::LazyLock;

use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlDatabaseError, MySqlQueryResult};
use sqlx::MySql;

use super::{Dialect, ErrorClass, Placeholder, Statements, Upsert, Writes};
use crate::migrate::{migrations, Migration};

// Server error numbers.
const ER_CON_COUNT_ERROR: u16 = 1040;
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
const ER_CONNECTION_KILLED: u16 = 1927;
// --read-only / super_read_only: a demoted primary during a failover.
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
const ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: u16 = 1792;

impl super::sealed::Sealed for MySql {}

impl Dialect for MySql {
    const PLACEHOLDER: Placeholder = Placeholder::Question;
    const UPSERT: Upsert = Upsert::OnDuplicateKey;
    // InnoDB's UPDATE reads the latest committed row under its lock
    // whatever the isolation level, which is what the conditional updates
    // rely on; deadlocks are retried.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const WRITES: Writes = Writes::JoinedUpdate;
    const SERIALIZE_WRITES: bool = false;
    const KEEP_CONNECTIONS: usize = crate::warm::MAX_KEPT;
    const BINARY_TEXT: bool = true;
    const NOW_MS: &'static str = "CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED)";
    // Named locks are server-wide: the name includes the database so that
    // databases on one server do not wait on each other.
    const MIGRATION_LOCK: Option<(&'static str, &'static str)> = Some((
        "SELECT GET_LOCK(CONCAT('refund_migrations:', SHA1(DATABASE())), 600) AS locked",
        "SELECT RELEASE_LOCK(CONCAT('refund_migrations:', SHA1(DATABASE())))",
    ));

    fn migrations() -> &'static [Migration] {
        migrations!(
            "mysql",
            "0001_init",
            "0002_typed_state",
            "0003_operators",
            "0004_rolling_upgrade"
        )
    }

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> =
            LazyLock::new(|| Statements::new(MySql::PLACEHOLDER, MySql::UPSERT, MySql::NOW_MS));
        &STATEMENTS
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        // sqlx connects with CLIENT_FOUND_ROWS: rows matched, not changed.
        result.rows_affected()
    }

    fn classify(error: &dyn DatabaseError) -> ErrorClass {
        let number = error
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number);
        match number {
            Some(ER_LOCK_DEADLOCK) => ErrorClass::Retry,
            // A lock wait timeout already waited innodb_lock_wait_timeout.
            Some(
                ER_LOCK_WAIT_TIMEOUT
                | ER_CON_COUNT_ERROR
                | ER_SERVER_SHUTDOWN
                | ER_CONNECTION_KILLED
                | ER_OPTION_PREVENTS_STATEMENT
                | ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
            ) => ErrorClass::Unavailable,
            _ if error.code().is_some_and(|state| state.starts_with("08")) => {
                ErrorClass::Unavailable
            }
            _ => ErrorClass::Other,
        }
    }
}
