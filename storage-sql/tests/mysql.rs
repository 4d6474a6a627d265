//! MySQL/MariaDB: the conformance suite and the backend cases, on databases
//! created for this run on the server at `$STORAGE_SQL_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`).

#![cfg(feature = "mysql")]

mod common;

use sqlx::MySql;
use storage_sql::{MySqlPaymentStore, SqlStoreError};
use tokio::sync::OnceCell;

use common::{Server, ServerBackend};

struct MySqlServer;

impl Server for MySqlServer {
    type Db = MySql;
    const NAME: &'static str = "MySQL/MariaDB";
    const ENV: &'static str = "STORAGE_SQL_MYSQL_URL";
    const DEFAULT_URL: &'static str = "mysql://root@127.0.0.1:3306/test";
    const LIST_TEST_DATABASES: &'static str = "SELECT CAST(SCHEMA_NAME AS CHAR) \
         FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'storage\\_sql\\_%'";

    fn drop_statement(name: &str) -> String {
        format!("DROP DATABASE IF EXISTS {name}")
    }
}

type MySqlBackend = ServerBackend<MySqlServer>;

mod conformance {
    use super::*;

    static DATABASE: OnceCell<Option<String>> = OnceCell::const_new();

    refund_core::store_conformance_tests!(crate::or_skip!(
        common::conformance_store::<MySqlBackend>(&DATABASE)
    ));
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
