//! refund-core's [`PaymentStore`](refund_core::PaymentStore) on MongoDB,
//! through the official `mongodb` driver (3.x, BSON 2).
//!
//! # Using it
//! ```no_run
//! use std::sync::Arc;
//! use refund_core::{PaymentStore, StoreError};
//! use storage_mongo::MongoPaymentStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MongoPaymentStore::connect("mongodb://127.0.0.1:27017/?w=majority", "refunds").await?;
//! store.ensure_indexes().await?; // idempotent: run it at every startup
//! store.ping().await?;
//! let store: Arc<dyn PaymentStore> = Arc::new(store);
//! # let _ = store; Ok(()) }
//! ```
//! With a client of your own (shared pool, your own options), use
//! [`MongoPaymentStore::new`] with a `mongodb::Database`.
//!
//! # How it stays correct without transactions
//! Everything about one payment lives in ONE document of the `payments`
//! collection, keyed by `_id = merchant_uid`: the last gateway snapshot,
//! the id of the refund in flight (`pending_refund_id`), the review hold
//! (`on_hold`) and the refund journal, embedded as an array (a payment has
//! few refunds). MongoDB writes one document atomically on every deployment,
//! so each money-deciding operation is a single conditional update:
//!
//! - `begin_refund` is one `findOneAndUpdate` with an update pipeline
//!   whose filter holds every precondition (no pending refund, not on hold,
//!   `cancel_amount` as read, the idempotency key held by no refund of this
//!   payment) and which appends the pending refund, stamped with the
//!   server's `$$NOW`, and takes the slot. Of any number of racing callers
//!   on any number of servers, exactly one matches. Across payments, a
//!   unique index on each refund's `key_slot` (its idempotency key, or a
//!   value no key can take) makes a key name one refund in the same atomic
//!   write.
//! - `retry_refund` (the same request run again after its refund failed
//!   `not_sent` or `not_applied`) is one `findOneAndUpdate` whose filter
//!   holds the element's state and the payment's preconditions and whose
//!   pipeline re-opens that element as pending and takes the slot.
//! - `finish_refund` is one `findOneAndUpdate` with an update pipeline whose
//!   filter admits only the moves `RefundState::may_become` allows (from
//!   `pending`; to `succeeded` also from a `not_applied` failure), and which
//!   writes the new state's fields and `updated_at_ms` (`$$NOW`), frees the
//!   slot if it names this refund, applies the snapshot unless it would
//!   lower `cancel_amount`, and sets the hold for `needs_review`.
//! - `apply_snapshot` is one upsert with an update pipeline that never lowers
//!   `cancel_amount` and never changes the refund state.
//!
//! When such an update matches nothing, the document is read once afterwards
//! only to report the precise [`StoreError`](refund_core::StoreError).
//! Multi-document transactions are never used, so a standalone server works
//! as well as a replica set.
//!
//! # Whose clock
//! The database server's, never the calling instance's: journal timestamps
//! are `$$NOW` (as `$toLong` milliseconds) inside the update that writes
//! them, `stale_pending_refunds` computes its cutoff from `$$NOW` in the same
//! aggregation that filters, and [`PaymentStore::now_ms`](refund_core::PaymentStore::now_ms)
//! is the `localTime` of a `hello` sent to the primary (one round trip the
//! server answers from memory). Writes and `hello` both go to the primary,
//! so on a standalone server or a replica set they read one clock. Through
//! `mongos`, `hello` reads that router's clock: keep the cluster's clocks
//! synchronized (NTP), as MongoDB requires anyway.
//!
//! # Stored refund states
//! Each refund stores its state explicitly: `status` plus `failure_kind`,
//! `failure_code` and `gateway_message` for a failure, `gateway_message`
//! for a review, `cancellation_id` for pending and succeeded refunds, and
//! `null` in every field the state does not carry (the full document shape
//! is documented in `src/document.rs`). Refunds written before
//! states were typed (`status` with an Int64-or-null `gateway_code`) are
//! still read, and behave as they read: a failure with a code is
//! `rejected` (its key stays spent), one without is `not_applied`.
//!
//! Amounts (and every timestamp) are stored as BSON `Int64` in the
//! currency's minor unit, never as doubles. Caller-supplied values are
//! always bound as BSON values in filters, and wrapped in `$literal` inside
//! update pipelines, so an id such as `{"$ne": null}` or `$where` is just
//! text.
//!
//! # Deploying it
//! - **MongoDB 4.2.10 or later** (update pipelines and `$$NOW` are 4.2;
//!   the `hello` command arrived in 4.2.10). No text, hashed or wildcard
//!   indexes, `$where`, map-reduce, transactions or wire compression are
//!   needed.
//! - Call [`MongoPaymentStore::ensure_indexes`] at startup: it creates the
//!   lookup indexes on `refunds.id` and on
//!   `refunds.status` + `refunds.created_at_ms` (the reconciliation sweep),
//!   and the unique partial index on `refunds.key_slot` that idempotency
//!   keys rely on across payments. Uniqueness of a payment needs no index:
//!   it is the `_id`.
//! - On a replica set, use **write concern `majority`** (`?w=majority` in
//!   the URI, Atlas's default): a refund recorded only on a primary that
//!   then fails over could be rolled back and the refund journal lose it.
//!   The store always reads from the primary, whatever the client's read
//!   preference, so it never sees its own writes late.
//! - Give the application user `readWrite` on the database. Use a database
//!   of its own (e.g. `refunds`) if your application already has a
//!   `payments` collection.
//! - `mongodb+srv://` URIs need the driver's `dns-resolver` feature:
//!   add `mongodb = { version = "3", features = ["dns-resolver"] }` to
//!   your application (this crate keeps its feature set lean).
//! - [`MongoPaymentStore::connect`] answers "unavailable" after
//!   [`DEFAULT_SERVER_SELECTION_TIMEOUT`] unless the URI sets
//!   `serverSelectionTimeoutMS`.
//!
//! # Errors
//! Driver errors become [`MongoStoreError`], which converts into
//! `StoreError` keeping itself as the source: connection, server-selection
//! and "node not primary / shutting down" errors are
//! `StoreError::Unavailable` (the refund endpoint answers 503 and makes no
//! gateway call), everything else `StoreError::Backend`.
//!
//! # Testing
//! `cargo test -p storage-mongo` runs refund-core's conformance suite and
//! this crate's own tests against the server at `MONGODB_URL` (default
//! `mongodb://127.0.0.1:27017`), each test binary in a fresh database.
//! `scripts/mongo-test-server.sh` starts a MongoDB-wire-compatible test
//! server (SecantusDB, as a separate process) when nothing answers there.

#![warn(missing_docs, unreachable_pub)]

mod document;
mod error;
mod store;

pub use error::MongoStoreError;
pub use store::{MongoPaymentStore, DEFAULT_SERVER_SELECTION_TIMEOUT, PAYMENTS_COLLECTION};
