//! MySQL/MariaDB: the conformance suite and the backend cases, on databases
//! created for this run on the server at `$STORAGE_SQL_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`).

#![cfg(feature = "mysql")]

mod common;

use refund_core::testkit::{paid_payment, unique};
use refund_core::{Currency, PaymentStore};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{Executor, MySql};
use storage_sql::{MySqlPaymentStore, SqlStoreError};
use tokio::sync::OnceCell;

use common::{Backend, Server, ServerBackend};
use refund_core::testkit::services::{Service, MYSQL};

struct MySqlServer;

impl Server for MySqlServer {
    type Db = MySql;

    fn service() -> &'static Service {
        &MYSQL
    }

    fn list_databases(like: &str) -> String {
        format!(
            "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE '{like}'"
        )
    }

    fn drop_statement(name: &str) -> String {
        format!("DROP DATABASE IF EXISTS {name}")
    }
}

type MySqlBackend = ServerBackend<MySqlServer>;

mod conformance {
    use super::*;

    static DATABASE: OnceCell<Option<String>> = OnceCell::const_new();

    refund_core::store_conformance_tests!(common::conformance_store::<MySqlBackend>(&DATABASE));
}

mod backend {
    crate::backend_tests!(super::MySqlBackend);
}

/// A server that is not there is "unavailable", not a bug.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let error = MySqlPaymentStore::connect("mysql://root@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(matches!(error, SqlStoreError::Unavailable(_)), "{error:?}");
}

/// Sessions in read-only transaction mode (`SET SESSION TRANSACTION READ
/// ONLY`; MySQL's error 1792) are unavailable for writes and fail the
/// health ping. The server-wide `read_only` (error 1290, classified the
/// same way) is not toggled here: the server is shared with other tests,
/// and it does not bind the root account these tests use.
#[tokio::test]
async fn a_read_only_session_is_unavailable() {
    let Some(backend) = MySqlBackend::fresh().await else {
        return; // Skipped: the server is missing.
    };
    let writable = backend.store().await;
    writable.migrate().await.unwrap();
    let payment = paid_payment(&unique("read-only"), 10_000, Currency::Krw);
    writable.apply_snapshot(&payment).await.unwrap();
    writable.ping().await.unwrap();

    let pool = MySqlPoolOptions::new()
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                Ok(())
            })
        })
        .connect(&backend.url())
        .await
        .unwrap();
    let read_only = MySqlPaymentStore::new(pool);
    common::assert_read_only_is_unavailable(&read_only, &payment).await;
    read_only.pool().close().await;
    writable.pool().close().await;
    backend.drop_database().await;
}
