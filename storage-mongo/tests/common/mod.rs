//! Connects the tests to the MongoDB server of `refund_core::testkit`'s
//! [`MONGODB`] (`$MONGODB_URL`, default `mongodb://127.0.0.1:27017`), each
//! in a scratch database.
//!
//! A missing server fails the test under `CI=true`; elsewhere the test is
//! skipped with a loud message (start one with
//! `storage-mongo/scripts/mongo-test-server.sh`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::Client;
use refund_core::testkit::services::{Scratch, MONGODB};
use storage_mongo::MongoPaymentStore;

/// This crate's scratch databases: `refund_test_<unix seconds>_<random>`.
pub const SCRATCH: Scratch = Scratch::new("refund_test_");

/// A store on database `name` (indexes ensured), or `None` to skip the test
/// because no server answers (outside CI only).
pub async fn store(name: &str) -> Option<MongoPaymentStore> {
    let client = MONGODB.connect(connect).await?;
    drop_leftover_databases(&client).await;
    let store = MongoPaymentStore::new(client.database(name));
    store.ensure_indexes().await.expect("ensure_indexes");
    Some(store)
}

/// A client on `url` whose server answered a ping.
async fn connect(url: String) -> Result<Client, mongodb::error::ErrorKind> {
    let mut options = ClientOptions::parse(&url)
        .await
        .expect("MONGODB_URL must be a valid MongoDB URI");
    // Fail fast when no server runs, instead of the driver's 30 s.
    options
        .server_selection_timeout
        .get_or_insert(Duration::from_secs(2));
    let client = Client::with_options(options).expect("client options");
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        // Only the kind is printed: the whole error may quote the URL.
        .map_err(|error| *error.kind)?;
    Ok(client)
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
    for name in names.iter().filter(|name| SCRATCH.is_leftover(name)) {
        client
            .database(name)
            .drop()
            .await
            .expect("drop leftover test database");
    }
}
