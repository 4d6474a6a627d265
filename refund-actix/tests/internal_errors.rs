//! A misbehaving database: an opaque `internal_error` for the client, the
//! cause in the log, and never a gateway call.
//!
//! Alone in its test binary: it captures logs with a thread-local
//! subscriber, which tests running beside it on other threads would race.

mod common;

use actix_web::test;
use actix_web::App;
use common::{
    cancel_request, send, view_request, CapturedLogs, Env, StoreFault, StoreOp, BACKEND_CAUSE,
};
use serde_json::json;

#[actix_web::test]
async fn internal_errors_are_opaque_to_clients_and_logged_with_their_cause() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let logs = CapturedLogs::start();

    env.store
        .fail(StoreOp::All, StoreFault::Backend(BACKEND_CAUSE.into()));
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
