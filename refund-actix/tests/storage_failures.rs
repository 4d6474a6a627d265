//! A failing database: `storage_unavailable` when it is down, an opaque
//! `internal_error` (cause logged, never shown) when it misbehaves; never a
//! gateway call either way.

mod common;

use actix_web::test;
use actix_web::App;
use common::{
    cancel_request, send, sync_request, view_request, CapturedLogs, Env, Failure, BACKEND_CAUSE,
};
use serde_json::json;

#[actix_web::test]
async fn a_database_outage_is_storage_unavailable() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let calls = env.gateway_calls();

    env.store.fail_with(Some(Failure::Unavailable));
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

    env.store.fail_with(None);
    let cancel = cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1000}));
    assert_eq!(
        send(&app, cancel.to_request()).await.ok()["cancel_amount"],
        1000
    );
}

#[actix_web::test]
async fn internal_errors_are_opaque_to_clients_and_logged_with_their_cause() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let logs = CapturedLogs::start();

    env.store.fail_with(Some(Failure::Backend));
    let cancel = cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1000}));
    for request in [cancel, view_request(uid)] {
        let reply = send(&app, request.to_request()).await;
        reply.assert_error(500, "internal_error");
        assert_eq!(reply.json["message"], "internal error");
        assert!(!reply.text.contains(BACKEND_CAUSE), "{}", reply.text);
        assert!(!reply.text.contains("storage"), "{}", reply.text);
    }
    assert_eq!(env.cancels_attempted(), 0);

    let logged = logs.text();
    assert!(
        logged.contains(BACKEND_CAUSE),
        "the cause is logged: {logged}"
    );
    assert!(logged.contains(uid), "with the order in the span: {logged}");
}
