//! Only callers the merchant's authorizer allows reach the workflow; the
//! webhook is the one public route.

mod common;

use std::sync::{Arc, Mutex};

use actix_web::http::header::AUTHORIZATION;
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpRequest};
use common::{order_id, send, Env};
use refund_actix::{async_trait, Action, Actor, Authorizer, Denied, RefundScope};
use serde_json::json;

fn cancel(uid: &str) -> TestRequest {
    TestRequest::post()
        .uri("/payments/cancel")
        .set_json(json!({"merchant_uid": uid, "cancel_request_amount": 1000}))
}

fn view(uid: &str) -> TestRequest {
    TestRequest::get().uri(&format!("/payments/{uid}"))
}

fn sync(uid: &str) -> TestRequest {
    TestRequest::post().uri(&format!("/payments/{uid}/sync"))
}

#[actix_web::test]
async fn callers_without_the_admin_token_are_unauthorized() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let calls = env.gateway_calls();
    let unknown = order_id();

    for credentials in [
        None,
        Some("Bearer wrong-token-wrong-token-wrong"),
        Some("test-admin-token-0123456789abcdef"),
        Some("Basic dGVzdDp0ZXN0"),
    ] {
        // Unknown orders answer 401 too: nothing is revealed before authorization.
        for uid in [payment.merchant_uid.as_str(), unknown.as_str()] {
            for request in [cancel(uid), view(uid), sync(uid)] {
                let request = match credentials {
                    Some(value) => request.insert_header((AUTHORIZATION, value)),
                    None => request,
                };
                let reply = send(&app, request.to_request()).await;
                reply.assert_error(401, "unauthorized");
            }
        }
    }
    assert_eq!(env.gateway_calls(), calls);
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
}

/// Support may look, finance may do anything; records what it was asked.
struct StaffPolicy {
    asked: Arc<Mutex<Vec<String>>>,
}

#[async_trait(?Send)]
impl Authorizer for StaffPolicy {
    async fn authorize(&self, request: &HttpRequest, action: Action<'_>) -> Result<Actor, Denied> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("{}:{}", action.name(), action.merchant_uid()));
        match request
            .headers()
            .get("x-role")
            .and_then(|v| v.to_str().ok())
        {
            None => Err(Denied::Unauthorized),
            Some("finance") => Ok(Actor::new("finance").unwrap()),
            Some("support") if matches!(action, Action::View { .. }) => {
                Ok(Actor::new("support").unwrap())
            }
            Some(_) => Err(Denied::Forbidden),
        }
    }
}

#[actix_web::test]
async fn the_merchant_policy_decides_per_action_and_order() {
    let env = Env::start().await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let policy = StaffPolicy {
        asked: Arc::clone(&asked),
    };
    let app =
        test::init_service(App::new().service(RefundScope::new(env.service.clone(), policy))).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let calls = env.gateway_calls();

    let as_support = |request: TestRequest| request.insert_header(("x-role", "support"));
    send(&app, as_support(view(uid)).to_request()).await.ok();
    send(&app, as_support(cancel(uid)).to_request())
        .await
        .assert_error(403, "forbidden");
    send(&app, as_support(sync(uid)).to_request())
        .await
        .assert_error(403, "forbidden");
    send(&app, cancel(uid).to_request())
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(env.gateway_calls(), calls);

    let as_finance = cancel(uid).insert_header(("x-role", "finance"));
    let reply = send(&app, as_finance.to_request()).await;
    assert_eq!(reply.ok()["cancel_amount"], 1000);
    assert_eq!(env.cancels_attempted(), 1);

    // A cancel asks before its body is read (no order yet), then with the
    // order once the body is valid; refused callers never get that far.
    let with_order = |action: &str| format!("{action}:{uid}");
    assert_eq!(
        *asked.lock().unwrap(),
        [
            with_order("view"),
            "cancel:".to_owned(),
            with_order("sync"),
            "cancel:".to_owned(),
            "cancel:".to_owned(),
            with_order("cancel"),
        ]
    );
}

#[actix_web::test]
async fn the_webhook_needs_no_credentials() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let reply = send(
        &app,
        TestRequest::post()
            .uri("/payments/webhook")
            .set_json(json!({"imp_uid": payment.imp_uid, "merchant_uid": payment.merchant_uid, "status": "paid"}))
            .to_request(),
    )
    .await;
    assert_eq!(reply.ok()["code"], "ok");
}
