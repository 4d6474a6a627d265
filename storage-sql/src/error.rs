//! This crate's errors, and how they become refund-core's [`StoreError`].
//!
//! The split that matters to the refund workflow is "the database cannot
//! serve us now" ([`StoreError::Unavailable`]: answer 503, call no gateway)
//! versus "something is wrong" ([`StoreError::Backend`]). The sqlx error is
//! kept as the `source()` either way, so logs show the whole chain.

use refund_core::StoreError;

use crate::dialect::{Dialect, ErrorClass};

/// Why a storage-sql operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlStoreError {
    /// The database could not be reached or cannot serve us now: pool
    /// timeout or closed, I/O or TLS failure, server shutting down, a lock
    /// held past the database's own wait.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Concurrent transactions kept conflicting (deadlock, serialization
    /// failure) after every retry.
    #[error("database too busy: transactions kept conflicting")]
    Contention(#[source] sqlx::Error),
    /// Any other error from the database or the driver.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A stored row does not hold a valid payment or refund.
    #[error("invalid stored data: {0}")]
    Corrupt(String),
    /// The schema history does not match this build's migrations.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// `open` got a URL whose scheme no enabled feature handles.
    #[error("unsupported database URL scheme {0:?} (enable the matching storage-sql feature)")]
    UnsupportedScheme(String),
}

/// Why [`migrate`](crate::SqlPaymentStore::migrate) refused to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// An applied migration's file changed since it was applied. Migrations
    /// are never edited: add a new numbered file instead.
    #[error("refund schema migration {version} ({description}) was changed after it was applied")]
    ChecksumMismatch {
        /// The migration's version.
        version: i64,
        /// The migration's description.
        description: &'static str,
    },
    /// The database has a migration this build does not know: it was
    /// migrated by a newer version of this crate.
    #[error("the database has refund schema migration {0}, which this build does not know")]
    UnknownVersion(i64),
    /// MySQL's `GET_LOCK` timed out while another instance was migrating.
    #[error("could not take the refund schema migration lock")]
    LockNotAcquired,
}

impl SqlStoreError {
    /// Classifies a sqlx error the way `DB` reports it.
    pub(crate) fn from_sqlx<DB: Dialect>(error: sqlx::Error) -> Self {
        match class_of::<DB>(&error) {
            ErrorClass::Unavailable => SqlStoreError::Unavailable(error),
            ErrorClass::Retry => SqlStoreError::Contention(error),
            ErrorClass::Other => SqlStoreError::Database(error),
        }
    }
}

/// How a sqlx error should be handled on `DB`.
pub(crate) fn class_of<DB: Dialect>(error: &sqlx::Error) -> ErrorClass {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorClass::Unavailable,
        sqlx::Error::Database(database) => DB::classify(database.as_ref()),
        _ => ErrorClass::Other,
    }
}

/// True for a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl From<SqlStoreError> for StoreError {
    fn from(error: SqlStoreError) -> Self {
        match error {
            SqlStoreError::Unavailable(_) | SqlStoreError::Contention(_) => {
                StoreError::Unavailable(Box::new(error))
            }
            _ => StoreError::Backend(Box::new(error)),
        }
    }
}
