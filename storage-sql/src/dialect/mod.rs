//! What differs between SQLite, PostgreSQL and MySQL/MariaDB: placeholders,
//! upsert syntax, how a write transaction starts, how the migration runner
//! locks, and which error codes mean "retry" or "unavailable". Everything
//! else (the statements' text, the store's logic) is shared.

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::pool::{PoolConnectionMetadata, PoolOptions};
use sqlx::{Connection, Database, Pool};

use crate::driver::Driver;
use crate::migrate::Migration;

/// How long [`connect`](crate::SqlPaymentStore::connect)'s pool waits for a
/// free connection before the store reports itself unavailable.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

mod sealed {
    pub trait Sealed {}
}

/// A database this crate can store payments in: [`sqlx::Sqlite`],
/// [`sqlx::Postgres`] or [`sqlx::MySql`], each behind its cargo feature.
///
/// Sealed: the statements and migrations are written for these three.
pub trait Dialect: Driver + sealed::Sealed {
    /// How parameters are written in statements.
    #[doc(hidden)]
    const PLACEHOLDER: Placeholder;

    /// How "insert or update" is written.
    #[doc(hidden)]
    const UPSERT: Upsert;

    /// The statement that starts a transaction that will write. SQLite
    /// needs `BEGIN IMMEDIATE` so that concurrent writers queue on the
    /// database lock up front instead of failing when a reader upgrades.
    #[doc(hidden)]
    const BEGIN_WRITE: &'static str;

    /// How `begin_refund` and `finish_refund` are written.
    #[doc(hidden)]
    const WRITES: Writes;

    /// True when write transactions queue in the process before they ask
    /// the database (SQLite: one writer at a time; a writer that waits in
    /// SQLite's busy handler sleeps in growing steps, which makes a long
    /// tail under load, while one in a fair in-process queue starts as
    /// soon as its turn comes).
    #[doc(hidden)]
    const SERIALIZE_WRITES: bool;

    /// How many connections a store keeps checked out between its
    /// statements ([`crate::warm`]): network databases, where sqlx's
    /// release ping is a round trip; 0 for SQLite (an in-memory database
    /// lives in its pool's one connection).
    #[doc(hidden)]
    const KEEP_CONNECTIONS: usize;

    /// True when text columns are binary (MySQL's `VARBINARY` ids).
    #[doc(hidden)]
    const BINARY_TEXT: bool;

    /// The database server's clock in unix milliseconds, as an SQL
    /// expression: the store's clock, which decides every time-bound verdict.
    #[doc(hidden)]
    const NOW_MS: &'static str;

    /// Statements that take and release the migration lock on one
    /// connection, the lock one giving a row with `locked = 1` once held;
    /// `None` where each migration's write transaction is lock enough.
    #[doc(hidden)]
    const MIGRATION_LOCK: Option<(&'static str, &'static str)>;

    /// This dialect's embedded migrations, oldest first.
    #[doc(hidden)]
    fn migrations() -> &'static [Migration];

    /// The statements, rendered for this dialect once.
    #[doc(hidden)]
    fn statements() -> &'static Statements;

    /// Rows a statement matched.
    #[doc(hidden)]
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// What a database error means for the caller.
    #[doc(hidden)]
    fn classify(error: &dyn DatabaseError) -> ErrorClass;

    /// Opens a pool on `url` with settings that suit this crate.
    #[doc(hidden)]
    fn connect_pool(url: &str) -> impl Future<Output = Result<Pool<Self>, sqlx::Error>> + Send {
        pool_options::<Self>().connect(url)
    }
}

/// A connection idle for less than this is handed out without a ping.
pub(crate) const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool settings every dialect starts from: the acquire timeout, and a
/// liveness ping only for connections that sat idle. sqlx pings every
/// connection it hands out by default: one more round trip per store call,
/// on the request's path (refund-bench measured it at about 12 % of the
/// server's CPU per refund on PostgreSQL). A connection used within the
/// last second is known good; one idle longer (a restarted server, a
/// dropped idle connection) is still checked and replaced before use. A
/// busy connection that broke meanwhile fails its statement like one that
/// breaks mid-query (`Unavailable`), and sqlx then drops it.
pub(crate) fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(ping_if_idle::<DB>)
}

fn ping_if_idle<DB: Database>(
    connection: &mut DB::Connection,
    meta: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if meta.idle_for >= PING_IF_IDLE_FOR {
            crate::driver::count_statement();
            connection.ping().await?;
        }
        Ok(true)
    })
}

/// How a database error should be handled.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The server cannot serve us now (shutting down, too many clients, a
    /// lock held past its wait).
    Unavailable,
    /// The transaction lost a race (serialization failure, deadlock, stale
    /// SQLite snapshot) and may succeed if run again.
    Retry,
    /// Anything else.
    Other,
}

/// How statement parameters are written.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `?`, in order (SQLite, MySQL).
    Question,
    /// `$1`, `$2`, ... (PostgreSQL).
    Numbered,
}

/// How "insert a payment, or update it if the snapshot is not older" is
/// written.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// `ON CONFLICT (...) DO UPDATE SET ... WHERE ...` (SQLite, PostgreSQL).
    OnConflict,
    /// `ON DUPLICATE KEY UPDATE col = IF(...)` (MySQL, MariaDB).
    OnDuplicateKey,
}

/// Columns read for a stored payment.
const PAYMENT_COLUMNS: &str = "merchant_uid, imp_uid, pay_method, currency, amount, \
     cancel_amount, status, paid_at, cancel_history, pending_refund_id, on_hold";

/// Columns of a refund written by `begin_refund`, in bind order; the store's
/// clock fills [`STAMPED_REFUND_COLUMNS`].
const NEW_REFUND_COLUMNS: &str = "id, merchant_uid, imp_uid, amount, base_cancel_amount, \
     checksum, reason, idempotency_key, fingerprint, refund_account_masked, status, currency, \
     requested_by";

/// The columns of a new refund the store fills: its clock's
/// `created_at_ms`, `attempt_started_at_ms` and `updated_at_ms`, then its
/// first `attempt`, in order.
const STAMPED_REFUND_COLUMNS: &str = "created_at_ms, attempt_started_at_ms, updated_at_ms, attempt";

/// Columns of a refund, as read. The state is `status` with, by state:
/// `cancellation_id` (pending, succeeded); `failure_kind`, `failure_code`
/// and `gateway_message` (failed); `gateway_message` and, once resolved,
/// `resolved_by`, `resolved_at_ms` and `review_note` (needs review).
const REFUND_COLUMNS: &str = "id, merchant_uid, imp_uid, amount, base_cancel_amount, checksum, \
     reason, idempotency_key, fingerprint, refund_account_masked, status, failure_kind, \
     failure_code, gateway_message, cancellation_id, created_at_ms, updated_at_ms, currency, \
     requested_by, resolved_by, resolved_at_ms, review_note, attempt_started_at_ms, attempt";

/// A refund's currency as read from `journal` (the table or its alias):
/// its own, or its payment's for a row an instance of the release before
/// migration 0003 journaled during a rolling upgrade (it does not write
/// the column). Rows of this release always carry it, and `COALESCE`
/// evaluates the lookup only for those that do not.
fn refund_currency(journal: &str) -> String {
    format!(
        "COALESCE({journal}.currency, (SELECT rp.currency FROM refund_payments AS rp \
         WHERE rp.merchant_uid = {journal}.merchant_uid)) AS currency"
    )
}

/// [`REFUND_COLUMNS`] as read from `journal` (the table or its alias),
/// each qualified, the currency as [`refund_currency`] reads it.
fn refund_read_columns(journal: &str) -> String {
    REFUND_COLUMNS
        .split(',')
        .map(|c| match c.trim() {
            "currency" => refund_currency(journal),
            c => format!("{journal}.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns a gateway snapshot writes after `merchant_uid`, in bind order.
/// `cancel_amount` comes last: MySQL evaluates `ON DUPLICATE KEY UPDATE`
/// assignments in order, and every other column's condition must still
/// see the old `cancel_amount`.
pub(crate) const SNAPSHOT_COLUMNS: [&str; 9] = [
    "imp_uid",
    "pay_method",
    "currency",
    "amount",
    "status",
    "paid_at",
    "cancel_history",
    "updated_at_ms",
    "cancel_amount",
];

/// The snapshot columns that hold integers.
pub(crate) const INT_SNAPSHOT_COLUMNS: [&str; 4] =
    ["amount", "paid_at", "updated_at_ms", "cancel_amount"];

/// The prefix of the payment's columns in a settlement row (a refund's
/// columns beside its payment's).
pub(crate) const SETTLED_PAYMENT_PREFIX: &str = "p_";

/// How a dialect runs `begin_refund` and `finish_refund`, from the fewest
/// round trips it allows.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// One statement each (data-modifying CTEs with `RETURNING`:
    /// PostgreSQL): atomic on its own, no explicit transaction.
    Cte,
    /// `finish_refund` as one multi-table `UPDATE` (atomic on its own) and
    /// one read; `begin_refund` as a transaction (MySQL, MariaDB: no writes
    /// in CTEs, no `RETURNING`).
    JoinedUpdate,
    /// Explicit transactions of single-table statements (SQLite: its CTEs
    /// cannot write and `UPDATE` touches one table; each statement is a
    /// call into the in-process engine, not a network round trip).
    Transaction,
}

/// The payment's assignments when a refund settles, for an `UPDATE` whose
/// target columns are written `{left}column` and read `{right}column`:
/// frees the slot if it names the refund `free_id` (an SQL expression),
/// sets the hold if asked, and applies the snapshot's columns if a snapshot
/// is given for this payment and is not older (`cancel_amount` not lower).
///
/// Every condition reads only columns the assignments leave alone or
/// cannot flip (`cancel_amount <= x` still holds once `cancel_amount` is
/// `x`), so the result is the same whatever order a database assigns in
/// (MySQL's multi-table `UPDATE` promises none). Parameters, in order:
/// [`settle_payment_params`](crate::rows::settle_payment_params).
pub(crate) fn settle_payment_set(left: &str, right: &str, free_id: &str) -> String {
    let mut set = vec![
        format!(
            "{left}pending_refund_id = CASE WHEN {right}pending_refund_id = {free_id} \
             THEN NULL ELSE {right}pending_refund_id END"
        ),
        format!("{left}on_hold = ({right}on_hold OR ? = 1)"),
        format!("{left}updated_at_ms = ?"),
    ];
    for column in SNAPSHOT_COLUMNS.iter().filter(|c| **c != "updated_at_ms") {
        set.push(format!(
            "{left}{column} = CASE WHEN (? = 1 AND {right}merchant_uid = ? \
             AND {right}cancel_amount <= ?) THEN ? ELSE {right}{column} END"
        ));
    }
    set.join(", ")
}

/// The settlement read: the refund `id` with its payment's columns (the
/// prefixed ones), then the payment's newest refunds (limit bound last)
/// with those columns NULL. Parameters: id, id, limit. `null` renders a
/// NULL of an SQL type (PostgreSQL wants UNION branches typed).
fn settlement_read(null: &dyn Fn(&str) -> String) -> String {
    let refund_columns = |alias: &str| {
        REFUND_COLUMNS
            .split(',')
            .map(|c| format!("{alias}.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT {}, {} FROM refund_journal AS r \
         LEFT JOIN refund_payments AS p ON p.merchant_uid = r.merchant_uid WHERE r.id = ? \
         UNION ALL \
         SELECT {}, {} FROM (SELECT {} FROM refund_journal \
         WHERE merchant_uid = (SELECT merchant_uid FROM refund_journal WHERE id = ?) \
         ORDER BY created_at_ms DESC, id DESC LIMIT ?) AS recent",
        refund_read_columns("r"),
        prefixed_payment_columns("p"),
        refund_columns("recent"),
        null_payment_columns(null),
        refund_read_columns("refund_journal"),
    )
}

/// `alias.column AS p_column` for every payment column.
fn prefixed_payment_columns(alias: &str) -> String {
    PAYMENT_COLUMNS
        .split(',')
        .map(|c| {
            let c = c.trim();
            format!("{alias}.{c} AS {SETTLED_PAYMENT_PREFIX}{c}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A typed NULL for every payment column, in `PAYMENT_COLUMNS` order.
fn null_payment_columns(null: &dyn Fn(&str) -> String) -> String {
    PAYMENT_COLUMNS
        .split(',')
        .map(|c| {
            let ty = match c.trim() {
                "amount" | "cancel_amount" | "paid_at" => "BIGINT",
                "on_hold" => "BOOLEAN",
                "cancel_history" => "TEXT",
                _ => "VARCHAR",
            };
            null(ty)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// PostgreSQL's `begin_refund` in one statement: takes the payment's slot
/// (only if free, not held and unchanged) and inserts the pending refund,
/// all or nothing (a key another refund holds fails the insert's unique
/// check, which undoes the claim too). Gives `began` = 1, or 0 when the
/// slot was not taken (nothing written). Parameters: slot (id, now,
/// merchant_uid, cancel_amount), then the refund's values.
fn begin_refund_cte(now_ms: &str) -> String {
    let refund_values = vec!["?"; NEW_REFUND_COLUMNS.split(',').count()].join(", ");
    format!(
        "WITH claimed AS (\
         UPDATE refund_payments SET pending_refund_id = ?, updated_at_ms = ? \
         WHERE merchant_uid = ? AND pending_refund_id IS NULL \
         AND on_hold = FALSE AND cancel_amount = ? RETURNING merchant_uid), \
         inserted AS (\
         INSERT INTO refund_journal ({NEW_REFUND_COLUMNS}, {STAMPED_REFUND_COLUMNS}) \
         SELECT {refund_values}, {now_ms}, {now_ms}, {now_ms}, 1 FROM claimed RETURNING id) \
         SELECT CAST(COUNT(*) AS BIGINT) AS began FROM inserted"
    )
}

/// PostgreSQL's `finish_refund` in one statement: settles the refund if
/// it may move, updates its payment ([`settle_payment_set`]) in the same
/// statement, and answers the settlement rows (as [`settlement_read`]
/// does, the payment's other refunds as of just before the statement: the
/// store puts the settled one in their place). No row: nothing matched.
/// Parameters: the state's five columns, id, attempt, late-success flag,
/// the payment assignments', limit.
fn finish_refund_cte(now_ms: &str, null: &dyn Fn(&str) -> String) -> String {
    // The settled refund's currency falls back on its payment's, as
    // `refund_currency` reads it elsewhere.
    let settled_columns = REFUND_COLUMNS
        .split(',')
        .map(|c| match c.trim() {
            "currency" => {
                format!("COALESCE(s.currency, paid.{SETTLED_PAYMENT_PREFIX}currency) AS currency")
            }
            c => format!("s.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let returned_payment = PAYMENT_COLUMNS
        .split(',')
        .map(|c| format!("{SETTLED_PAYMENT_PREFIX}{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH settled AS (\
         UPDATE refund_journal \
         SET status = ?, failure_kind = ?, failure_code = ?, gateway_message = ?, \
         cancellation_id = ?, updated_at_ms = {now_ms} \
         WHERE id = ? AND COALESCE(attempt, 1) = ? AND (status = 'pending' \
         OR (? = 1 AND status = 'failed' AND failure_kind = 'not_applied')) \
         RETURNING {REFUND_COLUMNS}), \
         paid AS (\
         UPDATE refund_payments AS p SET {} FROM settled AS s \
         WHERE p.merchant_uid = s.merchant_uid RETURNING {}) \
         SELECT {settled_columns}, {returned_payment} FROM settled AS s LEFT JOIN paid ON TRUE \
         UNION ALL \
         SELECT {REFUND_COLUMNS}, {} FROM (SELECT {} FROM refund_journal \
         WHERE merchant_uid = (SELECT merchant_uid FROM settled) \
         ORDER BY created_at_ms DESC, id DESC LIMIT ?) AS recent",
        settle_payment_set("", "p.", "s.id"),
        prefixed_payment_columns("p"),
        null_payment_columns(null),
        refund_read_columns("refund_journal"),
    )
}

/// MySQL's `finish_refund` write, one multi-table `UPDATE`: the refund's
/// state if it may move, and its payment ([`settle_payment_set`]), atomic
/// as one statement. Parameters: the state's five columns, the payment
/// assignments', id, attempt, late-success flag.
fn finish_refund_joined(now_ms: &str) -> String {
    format!(
        "UPDATE refund_journal AS j JOIN refund_payments AS p ON p.merchant_uid = j.merchant_uid \
         SET j.status = ?, j.failure_kind = ?, j.failure_code = ?, j.gateway_message = ?, \
         j.cancellation_id = ?, j.updated_at_ms = {now_ms}, {} \
         WHERE j.id = ? AND COALESCE(j.attempt, 1) = ? AND (j.status = 'pending' \
         OR (? = 1 AND j.status = 'failed' AND j.failure_kind = 'not_applied'))",
        settle_payment_set("p.", "p.", "j.id"),
    )
}

/// Every statement the store runs, rendered for one dialect.
#[doc(hidden)]
#[derive(Debug)]
pub struct Statements {
    pub(crate) select_payment: String,
    pub(crate) upsert_payment: String,
    pub(crate) claim_payment: String,
    pub(crate) lift_hold: String,
    pub(crate) open_reviews: String,
    pub(crate) resolve_reviews: String,
    /// By [`list_variant`]: which filters and whether a cursor are bound.
    pub(crate) list_refunds: [String; 8],
    pub(crate) insert_refund: String,
    pub(crate) settle_refund: String,
    pub(crate) select_refund: String,
    pub(crate) refund_by_key: String,
    pub(crate) refunds_of: String,
    pub(crate) stale_pending: String,
    pub(crate) now: String,
    pub(crate) reopen_refund: String,
    pub(crate) note_cancellation: String,
    pub(crate) begin_refund_cte: String,
    pub(crate) finish_refund_cte: String,
    pub(crate) finish_refund_joined: String,
    pub(crate) settle_payment: String,
    pub(crate) settlement: String,
    pub(crate) ping: String,
    pub(crate) applied_migrations: String,
    pub(crate) migration_checksum: String,
    pub(crate) record_migration: String,
}

impl Statements {
    /// Renders the shared statement text for a dialect whose clock reads
    /// `now_ms`.
    pub(crate) fn new(placeholder: Placeholder, upsert: Upsert, now_ms: &str) -> Self {
        let render = |sql: String| match placeholder {
            Placeholder::Question => sql,
            Placeholder::Numbered => numbered_placeholders(&sql),
        };
        // PostgreSQL types each UNION branch; the others take a bare NULL.
        let typed_null = |ty: &str| format!("CAST(NULL AS {ty})");
        let bare_null = |_: &str| "NULL".to_owned();
        let null: &dyn Fn(&str) -> String = match placeholder {
            Placeholder::Numbered => &typed_null,
            Placeholder::Question => &bare_null,
        };
        let refund_values = vec!["?"; NEW_REFUND_COLUMNS.split(',').count()].join(", ");
        let read = refund_read_columns("refund_journal");
        Statements {
            select_payment: render(format!(
                "SELECT {PAYMENT_COLUMNS} FROM refund_payments WHERE merchant_uid = ?"
            )),
            upsert_payment: render(upsert_payment(upsert)),
            // The heart of begin_refund: takes the payment's pending slot
            // only if it is free, not held, and unchanged since it was read.
            claim_payment: render(
                "UPDATE refund_payments SET pending_refund_id = ?, updated_at_ms = ? \
                 WHERE merchant_uid = ? AND pending_refund_id IS NULL \
                 AND on_hold = FALSE AND cancel_amount = ?"
                    .to_owned(),
            ),
            // An operator's resolution: lifts the hold only while there is
            // one (of racing resolutions, one matches) and no refund of the
            // payment is pending (it could still apply).
            lift_hold: render(
                "UPDATE refund_payments SET on_hold = FALSE, updated_at_ms = ? \
                 WHERE merchant_uid = ? AND on_hold = TRUE AND pending_refund_id IS NULL"
                    .to_owned(),
            ),
            // The payment's reviews without a resolution: the ones an
            // operator's resolution must have seen.
            open_reviews: render(
                "SELECT id FROM refund_journal \
                 WHERE merchant_uid = ? AND status = 'needs_review' AND resolved_by IS NULL"
                    .to_owned(),
            ),
            resolve_reviews: render(format!(
                "UPDATE refund_journal SET resolved_by = ?, resolved_at_ms = {now_ms}, \
                 review_note = ?, updated_at_ms = {now_ms} \
                 WHERE merchant_uid = ? AND status = 'needs_review' AND resolved_by IS NULL"
            )),
            list_refunds: std::array::from_fn(|variant| render(list_refunds(variant))),
            insert_refund: render(format!(
                "INSERT INTO refund_journal ({NEW_REFUND_COLUMNS}, {STAMPED_REFUND_COLUMNS}) \
                 VALUES ({refund_values}, {now_ms}, {now_ms}, {now_ms}, 1)"
            )),
            // Runs a refund that provably changed nothing again, as the
            // same row: only while it is failed, not sent or not applied.
            // A new attempt begins (counted on from the first for a row
            // without a count); its place in listings (created_at_ms) stays.
            reopen_refund: render(format!(
                "UPDATE refund_journal SET status = 'pending', failure_kind = NULL, \
                 failure_code = NULL, gateway_message = NULL, cancellation_id = NULL, \
                 base_cancel_amount = ?, checksum = ?, attempt_started_at_ms = {now_ms}, \
                 attempt = COALESCE(attempt, 1) + 1, updated_at_ms = {now_ms} \
                 WHERE id = ? AND status = 'failed' \
                 AND failure_kind IN ('not_sent', 'not_applied')"
            )),
            // Names the gateway's cancellation of a refund's attempt only
            // while that attempt is current and pending; its start and the
            // slot stay.
            note_cancellation: render(format!(
                "UPDATE refund_journal SET cancellation_id = ?, updated_at_ms = {now_ms} \
                 WHERE id = ? AND COALESCE(attempt, 1) = ? AND status = 'pending'"
            )),
            // Settles a refund only while it is pending, or (late evidence)
            // moves a not-applied failure to success or review: a second
            // settlement matches no row. Only the attempt the verdict is
            // about (NULL: a row journaled before attempts were counted,
            // its first): a verdict about an earlier one matches no row.
            settle_refund: render(format!(
                "UPDATE refund_journal \
                 SET status = ?, failure_kind = ?, failure_code = ?, gateway_message = ?, \
                 cancellation_id = ?, updated_at_ms = {now_ms} \
                 WHERE id = ? AND COALESCE(attempt, 1) = ? AND (status = 'pending' \
                 OR (? = 1 AND status = 'failed' AND failure_kind = 'not_applied'))"
            )),
            begin_refund_cte: render(begin_refund_cte(now_ms)),
            finish_refund_cte: render(finish_refund_cte(now_ms, null)),
            finish_refund_joined: render(finish_refund_joined(now_ms)),
            settle_payment: render(format!(
                "UPDATE refund_payments SET {} \
                 WHERE merchant_uid = (SELECT merchant_uid FROM refund_journal WHERE id = ?)",
                settle_payment_set("", "", "?")
            )),
            settlement: render(settlement_read(null)),
            select_refund: render(format!("SELECT {read} FROM refund_journal WHERE id = ?")),
            refund_by_key: render(format!(
                "SELECT {read} FROM refund_journal WHERE idempotency_key = ?"
            )),
            refunds_of: render(format!(
                "SELECT {read} FROM refund_journal WHERE merchant_uid = ? \
                 ORDER BY created_at_ms DESC, id DESC LIMIT ?"
            )),
            // Pending refunds whose attempt began before the cutoff (bound
            // twice). An attempt starts no earlier than its refund was
            // journaled; a NULL start (a row the release before migration
            // 0004 wrote) is its journal time, which that release also
            // restamps when it runs a refund again.
            stale_pending: render(format!(
                "SELECT {read} FROM refund_journal \
                 WHERE status = 'pending' AND created_at_ms < {now_ms} - ? \
                 AND (attempt_started_at_ms IS NULL OR attempt_started_at_ms < {now_ms} - ?) \
                 AND (created_at_ms > ? OR (created_at_ms = ? AND id > ?)) \
                 ORDER BY created_at_ms, id LIMIT ?"
            )),
            now: format!("SELECT {now_ms} AS now_ms"),
            // The health probe must prove the database accepts writes, not
            // only that it answers: a write statement that matches no row
            // (no ids are empty) and so changes nothing, takes no row
            // lock and commits nothing. Each database refuses a write to
            // a read-only database or transaction before it looks at any
            // row (SQLite's SQLITE_READONLY, PostgreSQL's 25006 under
            // default_transaction_read_only or on a standby, MySQL's 1290
            // under read_only and 1792 in a read-only transaction), so
            // this fails exactly when begin_refund would.
            ping: render(
                "UPDATE refund_payments SET merchant_uid = merchant_uid WHERE merchant_uid = ?"
                    .to_owned(),
            ),
            applied_migrations: "SELECT version, description, checksum, applied_at_ms \
                 FROM refund_schema_migrations ORDER BY version"
                .to_owned(),
            migration_checksum: render(
                "SELECT checksum FROM refund_schema_migrations WHERE version = ?".to_owned(),
            ),
            record_migration: render(
                "INSERT INTO refund_schema_migrations \
                 (version, description, checksum, applied_at_ms) VALUES (?, ?, ?, ?)"
                    .to_owned(),
            ),
        }
    }
}

/// Which [`Statements::list_refunds`] statement serves a listing.
pub(crate) fn list_variant(status: bool, merchant_uid: bool, cursor: bool) -> usize {
    usize::from(status) | usize::from(merchant_uid) << 1 | usize::from(cursor) << 2
}

/// A listing newest first, keyset-paginated on `(created_at_ms, id)`, for
/// one [`list_variant`]. Parameters, in order: the status, the order id,
/// the cursor's time twice and its id (each when the variant binds it),
/// then the limit. The cursor's condition is written as a range on
/// `created_at_ms` (which every index of the listing starts with, after
/// its equality filters) narrowed by the tie-break, so every database
/// scans the index from the cursor on instead of filtering rows.
fn list_refunds(variant: usize) -> String {
    let read = refund_read_columns("refund_journal");
    let mut conditions = Vec::new();
    if variant & 1 != 0 {
        conditions.push("status = ?");
    }
    if variant & 2 != 0 {
        conditions.push("merchant_uid = ?");
    }
    if variant & 4 != 0 {
        conditions.push("created_at_ms <= ? AND (created_at_ms < ? OR id < ?)");
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    format!(
        "SELECT {read} FROM refund_journal {filter}\
         ORDER BY created_at_ms DESC, id DESC LIMIT ?"
    )
}

/// Inserts a payment, or updates it unless the stored `cancel_amount` is
/// higher than the snapshot's (an older snapshot never rolls money back).
/// The refund lock columns keep their stored (or default) values.
fn upsert_payment(upsert: Upsert) -> String {
    let columns = SNAPSHOT_COLUMNS.join(", ");
    let values = vec!["?"; SNAPSHOT_COLUMNS.len() + 1].join(", ");
    let insert = format!("INSERT INTO refund_payments (merchant_uid, {columns}) VALUES ({values})");
    let assignments = |assign: &dyn Fn(&str) -> String| {
        SNAPSHOT_COLUMNS
            .iter()
            .map(|column| assign(column))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match upsert {
        Upsert::OnConflict => format!(
            "{insert} ON CONFLICT (merchant_uid) DO UPDATE SET {} \
             WHERE refund_payments.cancel_amount <= excluded.cancel_amount",
            assignments(&|c| format!("{c} = excluded.{c}"))
        ),
        Upsert::OnDuplicateKey => format!(
            "{insert} ON DUPLICATE KEY UPDATE {}",
            assignments(&|c| format!(
                "{c} = IF(cancel_amount <= VALUES(cancel_amount), VALUES({c}), {c})"
            ))
        ),
    }
}

/// Rewrites `?` placeholders as `$1`, `$2`, ... (our statements contain no
/// `?` inside string literals).
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 0;
    for c in sql.chars() {
        if c == '?' {
            next += 1;
            out.push('$');
            out.push_str(&next.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
    }

    #[test]
    fn mysql_upsert_updates_cancel_amount_last() {
        let sql = upsert_payment(Upsert::OnDuplicateKey);
        let last = sql.rfind("cancel_amount = IF").unwrap();
        for column in SNAPSHOT_COLUMNS.iter().filter(|c| **c != "cancel_amount") {
            let at = sql.find(&format!("{column} = IF")).unwrap();
            assert!(at < last, "{column} must be assigned before cancel_amount");
        }
    }

    #[test]
    fn every_parameter_has_a_placeholder() {
        let statements = Statements::new(Placeholder::Numbered, Upsert::OnConflict, "now()");
        assert!(statements
            .insert_refund
            .ends_with("$13, now(), now(), now(), 1)"));
        assert!(statements.list_refunds[list_variant(true, true, true)].ends_with("LIMIT $6"));
        assert!(statements.list_refunds[list_variant(false, false, false)]
            .ends_with("FROM refund_journal ORDER BY created_at_ms DESC, id DESC LIMIT $1"));
        assert!(statements.upsert_payment.contains("$10)"));
        assert!(!statements.upsert_payment.contains("$11"));
    }
}
