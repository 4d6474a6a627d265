//! The generic plumbing between this crate and sqlx: binding parameters,
//! running statements and reading columns, for any sqlx database that
//! supports the few column types the schema uses.
//!
//! sqlx's generic API needs a long list of trait bounds at every use. They
//! are stated once here, on the blanket implementation of [`Driver`], so the
//! store and the migration runner are written once for every dialect with a
//! plain `DB: Dialect` bound.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

/// Statements this process has sent through this crate's stores.
static STATEMENTS_SENT: AtomicU64 = AtomicU64::new(0);

/// How many statements this process's stores have sent to their databases
/// (every statement, `BEGIN`, `COMMIT`, `ROLLBACK` and liveness ping),
/// since the process started, across all stores. For SQLite each is one
/// call into the engine on its connection's thread; on a network database
/// a statement is at least one round trip (sqlx prepares a statement once
/// per connection, which costs one more the first time). For benchmarks.
pub fn statements_sent() -> u64 {
    STATEMENTS_SENT.load(Ordering::Relaxed)
}

/// Counts one statement sent.
pub(crate) fn count_statement() {
    STATEMENTS_SENT.fetch_add(1, Ordering::Relaxed);
}

/// One statement parameter: only the types the schema uses.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// A `TEXT`/`VARCHAR`/`VARBINARY` value.
    Text(&'a str),
    /// A nullable text value.
    OptText(Option<&'a str>),
    /// A `BIGINT` value.
    Int(i64),
    /// A nullable `BIGINT` value.
    OptInt(Option<i64>),
}

/// Runs statements and reads columns on one connection of `Self`.
///
/// Implemented for every database sqlx can drive with our column types;
/// not meant to be implemented by hand.
pub trait Driver: Database {
    /// Runs one statement; gives the driver's result (rows affected).
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param<'c>],
    ) -> impl Future<Output = Result<Self::QueryResult, sqlx::Error>> + Send + 'c;

    /// Runs a query expected to give at most one row.
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param<'c>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c;

    /// Runs a query and collects every row.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param<'c>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;

    /// Runs a script of several statements without parameters (migrations).
    fn execute_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> impl Future<Output = Result<Self::QueryResult, sqlx::Error>> + Send + 'c;

    /// A non-null `BIGINT` column.
    fn int(row: &Self::Row, column: &str) -> Result<i64, sqlx::Error>;

    /// A nullable `BIGINT` column.
    fn opt_int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error>;

    /// A non-null boolean column.
    fn flag(row: &Self::Row, column: &str) -> Result<bool, sqlx::Error>;

    /// A non-null text column. `binary` reads UTF-8 out of a binary column
    /// (MySQL's `VARBINARY`), which sqlx's type check would refuse as text;
    /// invalid UTF-8 is still an error.
    fn text(row: &Self::Row, column: &str, binary: bool) -> Result<String, sqlx::Error>;

    /// A nullable text column; `binary` as for [`text`](Self::text).
    fn opt_text(row: &Self::Row, column: &str, binary: bool)
        -> Result<Option<String>, sqlx::Error>;
}

/// Builds a query with its parameters bound in order.
fn bound<'q, DB>(
    sql: &'q str,
    params: &'q [Param<'q>],
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
{
    params
        .iter()
        .fold(sqlx::query(sql), |query, param| match *param {
            Param::Text(value) => query.bind(value),
            Param::OptText(value) => query.bind(value),
            Param::Int(value) => query.bind(value),
            Param::OptInt(value) => query.bind(value),
        })
}

impl<DB> Driver for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Decode<'a, DB> + Type<DB>,
    for<'a> String: Decode<'a, DB> + Type<DB>,
{
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param<'c>],
    ) -> impl Future<Output = Result<Self::QueryResult, sqlx::Error>> + Send + 'c {
        count_statement();
        bound(sql, params).execute(conn)
    }

    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param<'c>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c {
        count_statement();
        bound(sql, params).fetch_optional(conn)
    }

    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param<'c>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c {
        count_statement();
        bound(sql, params).fetch_all(conn)
    }

    fn execute_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> impl Future<Output = Result<Self::QueryResult, sqlx::Error>> + Send + 'c {
        conn.execute(sqlx::raw_sql(sql))
    }

    fn int(row: &Self::Row, column: &str) -> Result<i64, sqlx::Error> {
        row.try_get(column)
    }

    fn opt_int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }

    fn flag(row: &Self::Row, column: &str) -> Result<bool, sqlx::Error> {
        row.try_get(column)
    }

    fn text(row: &Self::Row, column: &str, binary: bool) -> Result<String, sqlx::Error> {
        if binary {
            row.try_get_unchecked(column)
        } else {
            row.try_get(column)
        }
    }

    fn opt_text(
        row: &Self::Row,
        column: &str,
        binary: bool,
    ) -> Result<Option<String>, sqlx::Error> {
        if binary {
            row.try_get_unchecked(column)
        } else {
            row.try_get(column)
        }
    }
}
