//! The adapter's error type and how driver errors map onto [`StoreError`].

use mongodb::error::{Error as DriverError, ErrorKind, WriteFailure};
use refund_core::StoreError;

/// The server's code for a violated unique index (`E11000 duplicate key`).
///
/// Matched by number: the message text and `codeName` vary between servers
/// and versions (`codeName` is often absent from write errors).
const DUPLICATE_KEY: i32 = 11000;

/// Command error codes that mean "this node cannot serve you right now": the
/// primary stepped down or the node is shutting down or recovering. A retry
/// a moment later may succeed, so they are reported as unavailability.
const NODE_UNAVAILABLE_CODES: [i32; 8] = [
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    10058, // LegacyNotPrimary
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// A MongoDB driver error, with the store operation that hit it.
///
/// Converts into [`StoreError`] (keeping itself as the `source()`):
/// connection, server-selection and "node unavailable" errors become
/// [`StoreError::Unavailable`], everything else [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
#[error("MongoDB {operation} failed")]
pub struct MongoStoreError {
    operation: &'static str,
    #[source]
    source: DriverError,
}

impl MongoStoreError {
    /// Wraps a driver error from `operation` (a short name such as `begin_refund`).
    pub fn new(operation: &'static str, source: DriverError) -> Self {
        Self { operation, source }
    }

    /// The store operation that failed.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The driver's error.
    pub fn driver_error(&self) -> &DriverError {
        &self.source
    }

    /// True when the server refused a write because of a unique index.
    ///
    /// A plain insert or update reports it as a write error; a
    /// `findOneAndUpdate` or an upsert through it reports it as a command
    /// error. Both are recognized, by code only.
    pub fn is_duplicate_key(&self) -> bool {
        match self.source.kind.as_ref() {
            ErrorKind::Command(error) => error.code == DUPLICATE_KEY,
            ErrorKind::Write(WriteFailure::WriteError(error)) => error.code == DUPLICATE_KEY,
            ErrorKind::InsertMany(error) => error
                .write_errors
                .iter()
                .flatten()
                .any(|e| e.code == DUPLICATE_KEY),
            _ => false,
        }
    }

    /// True when the server could not be reached or cannot serve requests
    /// right now (nothing was decided by it).
    pub fn is_unavailable(&self) -> bool {
        match self.source.kind.as_ref() {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown => true,
            ErrorKind::Command(error) => NODE_UNAVAILABLE_CODES.contains(&error.code),
            _ => false,
        }
    }
}

impl From<MongoStoreError> for StoreError {
    fn from(error: MongoStoreError) -> Self {
        if error.is_unavailable() {
            StoreError::Unavailable(Box::new(error))
        } else {
            StoreError::Backend(Box::new(error))
        }
    }
}

/// Shorthand for `map_err` at each driver call: names the operation and
/// classifies the error.
pub(crate) fn store_error(operation: &'static str) -> impl FnOnce(DriverError) -> StoreError {
    move |source| MongoStoreError::new(operation, source).into()
}
