//! A fresh database per test (a SQLite file, or a scratch database on the
//! PostgreSQL, MariaDB or MongoDB server), and the Redis for the shared
//! token cache. The servers, their URLs and the rule for a missing one
//! (a failure under `CI=true`, a loud skip elsewhere) are
//! `refund_core::testkit::services`'.

use std::time::Duration;

#[cfg(any(feature = "postgres", feature = "mysql", feature = "mongo"))]
use refund_core::testkit::services::with_database;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use refund_core::testkit::services::Service;
#[cfg(feature = "mongo")]
use refund_core::testkit::services::MONGODB;
#[cfg(feature = "mysql")]
use refund_core::testkit::services::MYSQL;
#[cfg(feature = "postgres")]
use refund_core::testkit::services::POSTGRES;
use refund_core::testkit::services::{Scratch, REDIS};

use super::feature_missing;

/// Test databases: `refund_rt_<unix seconds>_<random>`, so that a later
/// run drops a crashed run's leftovers by their age.
const SCRATCH: Scratch = Scratch::new("refund_rt_");

/// Which server a [`TestDatabase`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    MariaDb,
    Mongo,
}

impl Engine {
    /// The name reports use.
    pub fn label(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::MariaDb => "MariaDB",
            Engine::Mongo => "MongoDB",
        }
    }
}

/// A database created for one test, dropped by [`TestDatabase::remove`].
pub struct TestDatabase {
    /// What `REFUND_DATABASE_URL` should say.
    pub url: String,
    pub engine: Engine,
    name: String,
    admin_url: String,
    // Keeps a SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A SQLite file in a temporary directory (no server needed).
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("refunds.db").display()
        );
        TestDatabase {
            url,
            engine: Engine::Sqlite,
            name: String::new(),
            admin_url: String::new(),
            _dir: Some(dir),
        }
    }

    /// A fresh database on the PostgreSQL server, or `None` (skip) when
    /// the server (or the `postgres` feature) is missing outside CI.
    #[cfg(not(feature = "postgres"))]
    pub async fn postgres() -> Option<TestDatabase> {
        feature_missing("postgres")
    }

    /// A fresh database on the PostgreSQL server, or `None` (skip) when
    /// the server is missing outside CI.
    #[cfg(feature = "postgres")]
    pub async fn postgres() -> Option<TestDatabase> {
        let listed = format!(
            "SELECT datname::text FROM pg_database WHERE datname LIKE '{}'",
            SCRATCH.like_pattern()
        );
        let drop = |name: &str| format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        fresh_sql_database::<sqlx::Postgres>(&POSTGRES, Engine::Postgres, &listed, drop).await
    }

    /// A fresh database on the MariaDB (or MySQL) server, or `None` (skip)
    /// when the server (or the `mysql` feature) is missing outside CI.
    #[cfg(not(feature = "mysql"))]
    pub async fn mariadb() -> Option<TestDatabase> {
        feature_missing("mysql")
    }

    /// A fresh database on the MariaDB (or MySQL) server, or `None` (skip)
    /// when the server is missing outside CI.
    #[cfg(feature = "mysql")]
    pub async fn mariadb() -> Option<TestDatabase> {
        let listed = format!(
            "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE '{}'",
            SCRATCH.like_pattern()
        );
        let drop = |name: &str| format!("DROP DATABASE IF EXISTS {name}");
        fresh_sql_database::<sqlx::MySql>(&MYSQL, Engine::MariaDb, &listed, drop).await
    }

    /// A fresh database name on the MongoDB server, or `None` (skip) when
    /// the server (or the `mongo` feature) is missing outside CI.
    #[cfg(not(feature = "mongo"))]
    pub async fn mongo() -> Option<TestDatabase> {
        feature_missing("mongo")
    }

    /// A fresh database name on the MongoDB server (created by the server's
    /// first write), or `None` (skip) when the server is missing outside CI.
    /// Listing the databases proves the server answers (the driver connects
    /// lazily); the leftovers among them are dropped.
    #[cfg(feature = "mongo")]
    pub async fn mongo() -> Option<TestDatabase> {
        let (client, names) = MONGODB
            .connect(|url| async move {
                let store = storage_mongo::MongoPaymentStore::connect(&url, "admin")
                    .await
                    .map_err(|error| error.to_string())?;
                let client = store.database().client().clone();
                // Only the kind is printed: the whole error may quote the URL.
                let names = client
                    .list_database_names()
                    .await
                    .map_err(|error| error.kind.to_string())?;
                Ok::<_, String>((client, names))
            })
            .await?;
        for leftover in names.iter().filter(|name| SCRATCH.is_leftover(name)) {
            client
                .database(leftover)
                .drop()
                .await
                .expect("drop a leftover test database");
        }
        let server = MONGODB.url();
        let name = SCRATCH.name();
        Some(TestDatabase {
            url: with_database(&server, &name),
            engine: Engine::Mongo,
            name,
            admin_url: server,
            _dir: None,
        })
    }

    /// Drops the database (a SQLite file goes with its directory).
    pub async fn remove(self) {
        match self.engine {
            #[cfg(feature = "postgres")]
            Engine::Postgres => {
                let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                sqlx::raw_sql(&sql).execute(&admin).await.unwrap();
                admin.close().await;
            }
            #[cfg(feature = "mysql")]
            Engine::MariaDb => {
                let admin = sqlx::MySqlPool::connect(&self.admin_url).await.unwrap();
                let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
                sqlx::raw_sql(&sql).execute(&admin).await.unwrap();
                admin.close().await;
            }
            #[cfg(feature = "mongo")]
            Engine::Mongo => {
                let store = storage_mongo::MongoPaymentStore::connect(&self.url, &self.name)
                    .await
                    .unwrap();
                store.database().drop().await.unwrap();
            }
            _ => {}
        }
    }
}

/// A fresh database on `service` (a `DB` server): connects an admin pool
/// (`None`, a skip, when the server is missing outside CI), drops the
/// leftover test databases `listed` finds (`drop` gives the statement for
/// one) and creates a new one.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn fresh_sql_database<DB: sqlx::Database>(
    service: &Service,
    engine: Engine,
    listed: &str,
    drop: impl Fn(&str) -> String,
) -> Option<TestDatabase>
where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let admin = service
        .connect(|url| async move { sqlx::Pool::<DB>::connect(&url).await })
        .await?;
    let existing: Vec<(String,)> = sqlx::query_as(listed)
        .fetch_all(&admin)
        .await
        .expect("list test databases");
    for (leftover,) in existing.iter().filter(|(name,)| SCRATCH.is_leftover(name)) {
        sqlx::raw_sql(&drop(leftover))
            .execute(&admin)
            .await
            .expect("drop a leftover test database");
    }
    let name = SCRATCH.name();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create a test database");
    admin.close().await;
    let server = service.url();
    Some(TestDatabase {
        url: with_database(&server, &name),
        engine,
        name,
        admin_url: server,
        _dir: None,
    })
}

/// The Redis for the shared token cache ([`REDIS`]), or `None` (skip) when
/// it (or the `redis` feature) is missing outside CI. A TCP connect is
/// enough proof: the servers under test talk to it themselves.
pub fn redis_url() -> Option<String> {
    if !cfg!(feature = "redis") {
        return feature_missing("redis");
    }
    let url = REDIS.url();
    let host = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&host)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)));
    match reachable {
        Some(Ok(_)) => Some(url),
        Some(Err(error)) => REDIS.missing(error),
        None => REDIS.missing("unresolvable address"),
    }
}
