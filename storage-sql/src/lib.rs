//! refund-core's [`PaymentStore`] on sqlx 0.8: SQLite, PostgreSQL and
//! MySQL/MariaDB.
//!
//! # Choosing a database
//! Each database is a cargo feature: `sqlite` (the default), `postgres`,
//! `mysql` (MySQL 8 and MariaDB 10.5+). Enable the ones you use:
//!
//! ```toml
//! storage-sql = { version = "0.1", default-features = false, features = ["postgres"] }
//! ```
//!
//! TLS is configured on sqlx itself: enable e.g. `tls-rustls` on your own
//! `sqlx` dependency and cargo turns it on for the pool this crate uses.
//!
//! # Wiring it up
//! Hand the store the pool your application already has (or let
//! [`SqlPaymentStore::connect`] open one), run [`migrate`] once at startup,
//! and give it to the refund service:
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn demo(gateway: std::sync::Arc<dyn refund_core::PaymentGateway>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use refund_core::RefundService;
//! use storage_sql::PgPaymentStore;
//!
//! let pool = sqlx::PgPool::connect("postgres://app@db/shop").await?;
//! let store = PgPaymentStore::new(pool);
//! store.migrate().await?;
//! let service = RefundService::new(Arc::new(store), gateway);
//! # let _ = service; Ok(()) }
//! ```
//!
//! [`open`] does all of that from a URL, choosing the database by its
//! scheme (`sqlite:`, `postgres://`, `mysql://`), as the example server does.
//!
//! # Schema and migrations
//! The crate owns three tables, named so they do not collide with the
//! application's own: `refund_payments` (the last gateway snapshot of each
//! payment plus its refund lock), `refund_journal` (the write-ahead refund
//! journal) and `refund_schema_migrations` (which of our migrations ran).
//! Our history never goes into sqlx's `_sqlx_migrations`, so the
//! application keeps using `sqlx::migrate!` for its own tables.
//!
//! Migrations are SQL files under `migrations/<dialect>/`, numbered
//! `0001_init.sql`, `0002_...`, embedded in the binary. [`migrate`] applies
//! the ones a database lacks, in order, each in its own transaction
//! together with its history row, and does nothing when the schema is
//! current. Upgrading is therefore: deploy the new version, call
//! [`migrate`] as usual. It is safe when several instances start at once
//! (PostgreSQL advisory lock, MySQL `GET_LOCK`, SQLite `BEGIN IMMEDIATE`).
//! It refuses to run when an applied migration's file has changed
//! (migrations are never edited; a change is a new numbered file) or when
//! the database was migrated by a newer build. On MySQL, DDL commits
//! implicitly, so migrations there are written to be re-runnable.
//!
//! Amounts are `BIGINT`s of the currency's minor unit; the cancel history
//! is JSON text whose amounts are integers too. Ids and idempotency keys
//! compare byte for byte on every database: on MySQL they are `VARBINARY`,
//! because its `PAD SPACE` collations (`utf8mb4_bin` included) would match
//! `"key "` with `"key"`. MySQL must run in strict mode
//! (`STRICT_TRANS_TABLES`, its default), or over-long values would be
//! truncated instead of refused.
//!
//! # Concurrency
//! Every operation that decides money runs in one transaction built around
//! a conditional `UPDATE`, so any number of server instances can share the
//! database. A transaction that loses a race (deadlock, serialization
//! failure under `REPEATABLE READ`/`SERIALIZABLE`) is run again, a few
//! times at most. A lock that stays taken past the database's own wait
//! (SQLite's busy timeout, InnoDB's lock wait timeout, PostgreSQL's
//! `lock_timeout`) is reported as
//! [`StoreError::Unavailable`](refund_core::StoreError::Unavailable).
//! PostgreSQL waits forever by default: [`SqlPaymentStore::connect`] sets
//! `lock_timeout` to 5 s; give your own pool a `lock_timeout` too, or one
//! stuck lock holder can tie up every connection. On
//! SQLite, write transactions start with `BEGIN IMMEDIATE` so concurrent
//! writers queue on the file lock instead of failing half way;
//! [`SqlPaymentStore::connect`] turns on WAL and a 10 s busy timeout (set
//! them yourself on a pool you build: sqlx's defaults are WAL and 5 s).
//!
//! # Connections
//! A store on a pool it opened itself ([`SqlPaymentStore::connect`],
//! [`open`]) keeps, on PostgreSQL and MySQL, up to 4 of the pool's
//! connections (never more than half the pool) checked out between its
//! calls: sqlx 0.8 pings every connection handed back to the pool, one
//! more round trip after each store call, and a refund makes three calls
//! back to back. Its next call, write transactions included, runs on a
//! kept connection instead of asking the pool. A kept connection is only
//! one whose statements completed; the pool counts it as in use and gets
//! it back
//! - after a second without use (the store's pool pings a connection idle
//!   that long before handing it out, so keeping skips no check that
//!   pool would have made),
//! - at its next use once it has been out of the pool longer than the
//!   pool's `max_lifetime` or 10 s, whichever is shorter (one ping; the
//!   pool then retires it if it is too old),
//! - at once when the pool has no idle connection and no room to open one
//!   (kept connections never leave the pool nothing to hand out),
//! - as soon as [`Pool::close`](sqlx::Pool::close) starts (so `close`
//!   returns as before).
//!
//! A store on your own pool ([`SqlPaymentStore::new`]) keeps nothing by
//! default: every call goes through the pool, so its
//! `test_before_acquire` (sqlx's default), `before_acquire` and
//! `after_release` see every call. [`SqlPaymentStore::keep_connections`]
//! opts in, at the price described there: within a kept connection's
//! window those checks do not run for it, and a session the server ended
//! meanwhile fails the call on it (`Unavailable`) instead of being
//! replaced first. Only a store made inside a Tokio runtime keeps
//! connections (a task watches the pool; a store dropped outside that
//! runtime hands them back through it); SQLite keeps none.
//!
//! # Errors
//! [`SqlStoreError`] keeps the sqlx error as its source and converts into
//! refund-core's `StoreError`: connection problems (pool timeout, I/O, TLS,
//! server shutting down) become `Unavailable`, everything else `Backend`.
//!
//! # Testing
//! `cargo test -p storage-sql --all-features` runs refund-core's store
//! conformance suite and this crate's own cases on every database: SQLite
//! on files under cargo's test tmp dir, PostgreSQL at
//! `$STORAGE_SQL_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and MySQL/MariaDB at
//! `$STORAGE_SQL_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! Each test process creates its own databases there
//! (`storage_sql_<time>_<random>`) and drops them, or a later run drops
//! them once they are an hour old. A missing server skips its tests with a
//! loud message, and fails them under `CI=true`.
//!
//! [`migrate`]: SqlPaymentStore::migrate
//! [`PaymentStore`]: refund_core::PaymentStore

#![warn(missing_docs, unreachable_pub)]
// Without a database feature only the error types and `open` (which then
// refuses every URL) remain; the shared machinery has nothing to serve.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code, unused_imports, unused_macros)
)]

mod dialect;
mod driver;
mod error;
mod migrate;
mod rows;
mod store;
mod warm;

use std::sync::Arc;

use refund_core::PaymentStore;

pub use dialect::Dialect;
pub use driver::statements_sent;
pub use error::{MigrationError, SqlStoreError};
pub use migrate::{AppliedMigration, MIGRATIONS_TABLE};
pub use store::SqlPaymentStore;

/// The store on SQLite.
#[cfg(feature = "sqlite")]
pub type SqlitePaymentStore = SqlPaymentStore<sqlx::Sqlite>;

/// The store on PostgreSQL.
#[cfg(feature = "postgres")]
pub type PgPaymentStore = SqlPaymentStore<sqlx::Postgres>;

/// The store on MySQL or MariaDB.
#[cfg(feature = "mysql")]
pub type MySqlPaymentStore = SqlPaymentStore<sqlx::MySql>;

/// Connects to the database `url` names (by scheme, among the enabled
/// features), migrates it, and returns the store.
///
/// For applications that pick their database from configuration; the
/// error never repeats the URL, which may hold a password.
pub async fn open(url: &str) -> Result<Arc<dyn PaymentStore>, SqlStoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => open_with::<sqlx::Sqlite>(url).await,
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => open_with::<sqlx::Postgres>(url).await,
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => open_with::<sqlx::MySql>(url).await,
        other => Err(SqlStoreError::UnsupportedScheme(other.to_owned())),
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
async fn open_with<DB: Dialect>(url: &str) -> Result<Arc<dyn PaymentStore>, SqlStoreError> {
    let store = SqlPaymentStore::<DB>::connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}
