//! A database that is down: `storage_unavailable`, and never a gateway call.

mod common;

use actix_web::test;
use actix_web::App;
use common::{cancel_request, send, sync_request, view_request, Env, StoreFault, StoreOp};
use serde_json::json;

#[actix_web::test]
async fn a_database_outage_is_storage_unavailable() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let calls = env.gateway_calls();

    env.store.fail(StoreOp::All, StoreFault::Unavailable);
    let cancel = cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1000}));
    send(&app, cancel.to_request())
        .await
        .assert_error(503, "storage_unavailable");
    send(&app, view_request(uid).to_request())
        .await
        .assert_error(503, "storage_unavailable");
    send(&app, sync_request(uid).to_request())
        .await
        .assert_error(503, "storage_unavailable");
    assert_eq!(env.gateway_calls(), calls);

    env.store.heal();
    let cancel = cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1000}));
    assert_eq!(
        send(&app, cancel.to_request()).await.ok()["cancel_amount"],
        1000
    );
}
