//! `POST /payments/webhook`: never trusted, JSON or form, repeat-safe,
//! optionally limited to i'mport's source addresses.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use actix_web::App;
use common::{order_id, send, view_request, Env};
use iamport_sandbox::{AdminCancel, Currency, NewPayment};
use serde_json::{json, Value};

fn webhook_json(body: Value) -> TestRequest {
    TestRequest::post().uri("/payments/webhook").set_json(body)
}

#[actix_web::test]
async fn a_forged_status_is_ignored_the_gateway_decides() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();

    let forged = json!({"imp_uid": payment.imp_uid, "merchant_uid": uid, "status": "cancelled"});
    let reply = send(&app, webhook_json(forged).to_request()).await;
    assert_eq!(reply.ok()["code"], "ok");
    assert!(reply.json["message"].is_string());
    assert_eq!(
        env.sandbox.stats().get_payment,
        2,
        "seed + webhook each read the gateway"
    );

    let view = send(&app, view_request(uid).to_request()).await;
    assert_eq!(view.ok()["status"], "paid");
    assert_eq!(view.json["cancel_amount"], 0);
}

#[actix_web::test]
async fn a_console_refund_is_picked_up_and_repeats_are_harmless() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    env.sandbox
        .admin_cancel(
            &payment.imp_uid,
            AdminCancel {
                amount: Some(3000),
                reason: None,
            },
        )
        .unwrap();

    let notice = json!({"imp_uid": payment.imp_uid, "merchant_uid": uid, "status": "cancelled"});
    let mut views = Vec::new();
    for _ in 0..3 {
        send(&app, webhook_json(notice.clone()).to_request())
            .await
            .ok();
        views.push(send(&app, view_request(uid).to_request()).await.json);
    }
    assert_eq!(views[0]["cancel_amount"], 3000);
    assert_eq!(views[0]["cancel_history"].as_array().unwrap().len(), 1);
    assert!(views.iter().all(|view| *view == views[0]), "{views:?}");
}

#[actix_web::test]
async fn a_form_urlencoded_webhook_imports_a_new_payment() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    // Paid at the gateway, not yet known to us.
    let payment = env
        .sandbox
        .create_payment(NewPayment::new(order_id(), 7000, Currency::Krw))
        .unwrap();
    send(&app, view_request(&payment.merchant_uid).to_request())
        .await
        .assert_error(404, "payment_not_found");

    let form = TestRequest::post().uri("/payments/webhook").set_form([
        ("imp_uid", payment.imp_uid.as_str()),
        ("merchant_uid", payment.merchant_uid.as_str()),
        ("status", "paid"),
    ]);
    assert_eq!(send(&app, form.to_request()).await.ok()["code"], "ok");
    let charset = TestRequest::post()
        .uri("/payments/webhook")
        .insert_header((
            CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8",
        ))
        .set_payload(format!("imp_uid={}&status=paid", payment.imp_uid));
    send(&app, charset.to_request()).await.ok();

    let view = send(&app, view_request(&payment.merchant_uid).to_request()).await;
    assert_eq!(view.ok()["amount"], 7000);
    assert_eq!(view.json["imp_uid"], payment.imp_uid.as_str());
}

#[actix_web::test]
async fn a_notice_for_a_payment_the_gateway_does_not_know_is_ignored() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let merchant_uid = order_id();
    let notice =
        json!({"imp_uid": "imp_000000000000", "merchant_uid": merchant_uid, "status": "paid"});
    let reply = send(&app, webhook_json(notice).to_request()).await;
    assert_eq!(reply.ok()["code"], "ok");
    send(&app, view_request(&merchant_uid).to_request())
        .await
        .assert_error(404, "payment_not_found");
}

#[actix_web::test]
async fn malformed_webhooks_are_refused_without_a_gateway_call() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let calls = env.gateway_calls();

    let missing = send(&app, webhook_json(json!({"status": "paid"})).to_request()).await;
    missing.assert_error(400, "invalid_request");
    assert_eq!(missing.json["message"], "missing field `imp_uid`");
    let form_missing = TestRequest::post()
        .uri("/payments/webhook")
        .set_form([("status", "paid")]);
    send(&app, form_missing.to_request())
        .await
        .assert_error(400, "invalid_request");
    for imp_uid in [json!(""), json!("x".repeat(200)), json!(12)] {
        send(&app, webhook_json(json!({"imp_uid": imp_uid})).to_request())
            .await
            .assert_error(400, "invalid_request");
    }
    let text = TestRequest::post()
        .uri("/payments/webhook")
        .insert_header((CONTENT_TYPE, "text/plain"))
        .set_payload("imp_uid=imp_1");
    send(&app, text.to_request())
        .await
        .assert_error(415, "unsupported_media_type");
    assert_eq!(env.gateway_calls(), calls);
}

#[actix_web::test]
async fn the_allowlist_refuses_other_sources() {
    let env = Env::start().await;
    let allowed = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let app =
        test::init_service(App::new().service(env.scope().webhook_allowlist([allowed]))).await;
    let payment = env.seed_krw(10_000).await;
    let notice =
        json!({"imp_uid": payment.imp_uid, "merchant_uid": payment.merchant_uid, "status": "paid"});
    let reads = env.sandbox.stats().get_payment;

    let from = |ip: IpAddr| webhook_json(notice.clone()).peer_addr(SocketAddr::new(ip, 40_000));
    let stranger = IpAddr::V4(Ipv4Addr::LOCALHOST);
    send(&app, from(stranger).to_request())
        .await
        .assert_error(403, "forbidden");
    send(&app, webhook_json(notice.clone()).to_request())
        .await
        .assert_error(403, "forbidden");
    assert_eq!(env.sandbox.stats().get_payment, reads);

    send(&app, from(allowed).to_request()).await.ok();
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    send(&app, from(mapped).to_request()).await.ok();
    assert_eq!(env.sandbox.stats().get_payment, reads + 2);
}
