//! The schema migration runner.
//!
//! sqlx's own `Migrator` always records into `_sqlx_migrations`, the table
//! the merchant's application most likely uses for its own migrations, and
//! cannot be pointed elsewhere. This small runner keeps our history in
//! `refund_schema_migrations` instead: version, description, checksum and
//! when it was applied.
//!
//! Concurrent runs (several instances starting at once) are safe: on
//! PostgreSQL and MySQL the whole run holds a lock on one connection
//! (`pg_advisory_lock`, `GET_LOCK`); on SQLite every migration runs in its
//! own `BEGIN IMMEDIATE` transaction that first checks again whether it was
//! applied meanwhile. Each migration and its history row are written in one
//! transaction (MySQL commits DDL implicitly, so its migrations are written
//! to be re-runnable instead).

use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Pool};

use crate::dialect::Dialect;
use crate::driver::Param;
use crate::error::{MigrationError, SqlStoreError};

/// The history table: ours alone, never the application's.
pub const MIGRATIONS_TABLE: &str = "refund_schema_migrations";

/// The same on every dialect: plain types, no STRICT, no engine options.
const CREATE_HISTORY: &str = "CREATE TABLE IF NOT EXISTS refund_schema_migrations (
    version BIGINT PRIMARY KEY,
    description VARCHAR(255) NOT NULL,
    checksum VARCHAR(64) NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";

/// One embedded migration file, `migrations/<dialect>/<name>.sql`, where
/// `<name>` is a four-digit version, `_` and a description: `0001_init`.
#[doc(hidden)]
#[derive(Debug)]
pub struct Migration {
    pub(crate) name: &'static str,
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
}

impl Migration {
    /// The part of the file name after the version.
    pub(crate) fn description(&self) -> &'static str {
        self.name
            .split_once('_')
            .map_or(self.name, |(_, rest)| rest)
    }

    /// SHA-256 of the file, hex; line endings normalized so a checkout that
    /// converts them does not look like an edited migration.
    pub(crate) fn checksum(&self) -> String {
        let normalized = self.sql.replace("\r\n", "\n");
        Sha256::digest(normalized.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The version in a migration's name: its leading digits. Evaluated at
/// compile time, so a misnamed file fails the build.
pub(crate) const fn version_of(name: &str) -> i64 {
    let bytes = name.as_bytes();
    let mut version = 0;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        version = version * 10 + (bytes[i] - b'0') as i64;
        i += 1;
    }
    assert!(
        i > 0 && i < bytes.len() && bytes[i] == b'_',
        "a migration is named <version>_<description>"
    );
    version
}

/// Embeds a dialect's migration files, oldest first:
/// `migrations!("postgres", "0001_init", "0002_add_x")`.
macro_rules! migrations {
    ($dialect:literal, $($name:literal),+ $(,)?) => {{
        static MIGRATIONS: &[$crate::migrate::Migration] = &[$(
            $crate::migrate::Migration {
                name: $name,
                version: $crate::migrate::version_of($name),
                sql: include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"), "/migrations/", $dialect, "/", $name, ".sql"
                )),
            }
        ),+];
        MIGRATIONS
    }};
}
pub(crate) use migrations;

/// A migration recorded in the history table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its number, from the file name.
    pub version: i64,
    /// Its description, from the file name.
    pub description: String,
    /// SHA-256 of the file when it was applied.
    pub checksum: String,
    /// When it was applied, unix milliseconds.
    pub applied_at_ms: i64,
}

/// Applies every embedded migration the database lacks, in order.
pub(crate) async fn run<DB: Dialect>(pool: &Pool<DB>) -> Result<(), SqlStoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(SqlStoreError::from_sqlx::<DB>)?;
    let Some((lock, unlock)) = DB::MIGRATION_LOCK else {
        return apply_missing::<DB>(&mut conn).await;
    };
    let row = DB::fetch_optional(&mut conn, lock, &[])
        .await
        .map_err(SqlStoreError::from_sqlx::<DB>)?;
    let locked = row
        .map(|row| DB::opt_int(&row, "locked"))
        .transpose()
        .map_err(SqlStoreError::from_sqlx::<DB>)?;
    if locked.flatten() != Some(1) {
        return Err(MigrationError::LockNotAcquired.into());
    }
    let result = apply_missing::<DB>(&mut conn).await;
    if let Err(error) = DB::execute(&mut conn, unlock, &[]).await {
        // The lock belongs to the session: closing the connection frees it,
        // where returning it to the pool would keep it held.
        tracing::warn!(dialect = DB::NAME, %error, "releasing the migration lock failed; closing the connection");
        conn.close_on_drop();
    }
    result
}

/// Reads the history table, oldest first.
pub(crate) async fn applied<DB: Dialect>(
    conn: &mut DB::Connection,
) -> Result<Vec<AppliedMigration>, SqlStoreError> {
    let rows = DB::fetch_all(conn, &DB::statements().applied_migrations, &[])
        .await
        .map_err(SqlStoreError::from_sqlx::<DB>)?;
    rows.iter()
        .map(|row| {
            Ok(AppliedMigration {
                version: DB::int(row, "version")?,
                description: DB::text(row, "description", DB::BINARY_TEXT)?,
                checksum: DB::text(row, "checksum", DB::BINARY_TEXT)?,
                applied_at_ms: DB::int(row, "applied_at_ms")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(SqlStoreError::from_sqlx::<DB>)
}

async fn apply_missing<DB: Dialect>(conn: &mut PoolConnection<DB>) -> Result<(), SqlStoreError> {
    let sql_error = SqlStoreError::from_sqlx::<DB>;
    DB::execute_script(conn, CREATE_HISTORY)
        .await
        .map_err(sql_error)?;
    let known = DB::migrations();
    let history = applied::<DB>(conn).await?;
    for done in &history {
        check_unchanged(known, done.version, &done.checksum)?;
    }
    for migration in known {
        if history.iter().any(|done| done.version == migration.version) {
            continue;
        }
        let mut tx = conn.begin_with(DB::BEGIN_WRITE).await.map_err(sql_error)?;
        // Another process may have applied it since the history was read
        // (SQLite has no lock around the whole run).
        let recorded = DB::fetch_optional(
            &mut tx,
            &DB::statements().migration_checksum,
            &[Param::Int(migration.version)],
        )
        .await
        .map_err(sql_error)?;
        if let Some(row) = recorded {
            let checksum = DB::text(&row, "checksum", DB::BINARY_TEXT).map_err(sql_error)?;
            check_unchanged(known, migration.version, &checksum)?;
            continue;
        }
        DB::execute_script(&mut tx, migration.sql)
            .await
            .map_err(sql_error)?;
        DB::execute(
            &mut tx,
            &DB::statements().record_migration,
            &[
                Param::Int(migration.version),
                Param::Text(migration.description()),
                Param::Text(&migration.checksum()),
                Param::Int(refund_core::now_ms()),
            ],
        )
        .await
        .map_err(sql_error)?;
        tx.commit().await.map_err(sql_error)?;
        tracing::info!(
            dialect = DB::NAME,
            version = migration.version,
            description = migration.description(),
            "applied refund schema migration"
        );
    }
    Ok(())
}

/// Refuses a database whose history does not match the embedded files.
fn check_unchanged(
    known: &[Migration],
    version: i64,
    checksum: &str,
) -> Result<(), MigrationError> {
    let migration = known
        .iter()
        .find(|m| m.version == version)
        .ok_or(MigrationError::UnknownVersion(version))?;
    if migration.checksum() != checksum {
        return Err(MigrationError::ChecksumMismatch {
            version,
            description: migration.description(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The migration files of a dialect's folder, by name, in order.
    fn files(dialect: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dialect);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .map(|name| name.strip_suffix(".sql").unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_dialect_has_the_same_numbered_migrations() {
        let sqlite = files("sqlite");
        assert_eq!(files("postgres"), sqlite);
        assert_eq!(files("mysql"), sqlite);
        for (i, name) in sqlite.iter().enumerate() {
            assert_eq!(version_of(name), i64::try_from(i + 1).unwrap(), "{name}");
            assert!(name.starts_with(&format!("{:04}_", i + 1)), "{name}");
        }
    }

    /// A new file that is not listed in its dialect's `migrations!` would
    /// silently never run.
    #[test]
    fn every_migration_file_is_embedded() {
        fn embedded<DB: Dialect>() -> Vec<String> {
            DB::migrations().iter().map(|m| m.name.to_owned()).collect()
        }
        #[cfg(feature = "sqlite")]
        assert_eq!(embedded::<sqlx::Sqlite>(), files("sqlite"));
        #[cfg(feature = "postgres")]
        assert_eq!(embedded::<sqlx::Postgres>(), files("postgres"));
        #[cfg(feature = "mysql")]
        assert_eq!(embedded::<sqlx::MySql>(), files("mysql"));
    }

    #[test]
    fn checksums_ignore_line_endings_only() {
        let unix = Migration {
            name: "0001_init",
            version: 1,
            sql: "CREATE TABLE t (x BIGINT);\nSELECT 1;\n",
        };
        let windows = Migration {
            sql: "CREATE TABLE t (x BIGINT);\r\nSELECT 1;\r\n",
            ..unix
        };
        let edited = Migration {
            sql: "CREATE TABLE t (x INTEGER);\nSELECT 1;\n",
            ..unix
        };
        assert_eq!(unix.checksum(), windows.checksum());
        assert_ne!(unix.checksum(), edited.checksum());
        assert_eq!(unix.checksum().len(), 64);
        assert_eq!(unix.description(), "init");
    }
}
