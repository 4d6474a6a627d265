//! Connects the tests to the MongoDB server at `MONGODB_URL` (default
//! `mongodb://127.0.0.1:27017`), each in a fresh database.
//!
//! A missing server fails the test under `CI=true`; elsewhere the test is
//! skipped with a loud message (start one with
//! `storage-mongo/scripts/mongo-test-server.sh`).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::Client;
use storage_mongo::MongoPaymentStore;

const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017";

/// Every test database is named `refund_test_<unix seconds>_<random>`.
const DATABASE_PREFIX: &str = "refund_test_";

/// Test databases older than this are left over from earlier runs (no test
/// binary runs this long) and are dropped.
const LEFTOVER_AGE_SECS: u64 = 3600;

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A database name no other test (or run) uses.
pub fn database_name() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{DATABASE_PREFIX}{}_{}", unix_secs(), &random[..12])
}

/// A store on database `name` (indexes ensured), or `None` to skip the test
/// because no server answers (outside CI only).
pub async fn store(name: &str) -> Option<MongoPaymentStore> {
    let url = std::env::var("MONGODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let mut options = ClientOptions::parse(&url)
        .await
        .expect("MONGODB_URL must be a valid MongoDB URI");
    // Fail fast when no server runs, instead of the driver's 30 s.
    options
        .server_selection_timeout
        .get_or_insert(Duration::from_secs(2));
    let client = Client::with_options(options).expect("client options");
    if let Err(error) = client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
    {
        // The URL is not printed: it may carry a password.
        let message = format!(
            "no MongoDB server answers at MONGODB_URL (default {DEFAULT_URL}): {}; \
             start one with storage-mongo/scripts/mongo-test-server.sh",
            error.kind
        );
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{message}");
        }
        // Straight to stderr: the test harness hides eprintln! of passing tests.
        let _ = writeln!(std::io::stderr(), "\n!!!!! SKIPPED: {message} !!!!!\n");
        return None;
    }
    drop_leftover_databases(&client).await;
    let store = MongoPaymentStore::new(client.database(name));
    store.ensure_indexes().await.expect("ensure_indexes");
    Some(store)
}

/// Drops test databases left by earlier runs (once per test binary): the
/// conformance binary shares one database across its cases and has no hook
/// to drop it when the last one ends.
async fn drop_leftover_databases(client: &Client) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let names = client.list_database_names().await.expect("listDatabases");
    let cutoff = unix_secs().saturating_sub(LEFTOVER_AGE_SECS);
    for name in names {
        let created = name
            .strip_prefix(DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs < cutoff) {
            client
                .database(&name)
                .drop()
                .await
                .expect("drop leftover test database");
        }
    }
}
