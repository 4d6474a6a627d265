//! Read-only storage (issue #17): the merchant server on a SQLite file
//! opened read-only (`mode=ro`, as a mounted replica or a full disk's
//! remount would leave it) answers `503 storage_unavailable`, never a 500,
//! calls no gateway for a cancel, and `/healthz` says it is unhealthy.

mod common;

use common::{MerchantServer, SandboxProcess, TestDatabase};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_storage_unavailable_and_unhealthy() {
    let database = TestDatabase::sqlite();
    let sandbox = SandboxProcess::start().await;
    let merchant_uid = format!("read-only-{}", common::random_hex(6));
    let imp_uid = sandbox
        .create_payment(&merchant_uid, "10000", json!({}))
        .await;
    {
        let writable = MerchantServer::start(&sandbox, &database.url, &[]).await;
        writable.import(&imp_uid, &merchant_uid).await;
    }

    let read_only_url = database.url.replace("mode=rwc", "mode=ro");
    assert_ne!(read_only_url, database.url);
    let server = MerchantServer::start_listening(&sandbox, &read_only_url, &[]).await;
    assert_eq!(server.healthz().await, 503, "{}", server.output());
    let view = server.view(&merchant_uid).await;
    assert_eq!(view.status, 200, "reads still work: {}", view.text);

    let before = sandbox.stats().await;
    for body in [
        json!({"merchant_uid": merchant_uid, "cancel_request_amount": 1000}),
        json!({"merchant_uid": merchant_uid}),
    ] {
        let answer = server.cancel(&body, None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (503, "storage_unavailable"),
            "{}",
            answer.text
        );
    }
    let after = sandbox.stats().await;
    assert_eq!(after.cancel, before.cancel, "no cancel reached the gateway");

    // The webhook reads the gateway, then cannot store what it read.
    let notice = server.webhook(&imp_uid, &merchant_uid).await;
    assert_eq!(
        (notice.status, notice.code()),
        (503, "storage_unavailable"),
        "{}",
        notice.text
    );
    let sync = server.sync(&merchant_uid).await;
    assert_eq!(
        (sync.status, sync.code()),
        (503, "storage_unavailable"),
        "{}",
        sync.text
    );
    assert_eq!(sandbox.payment(&imp_uid).await.cancel_amount(), 0);
}
