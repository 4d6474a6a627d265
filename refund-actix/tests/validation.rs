//! Bad input never reaches the gateway: malformed bodies, wrong types and
//! content types, oversized bodies, bad paths, unrefundable payments.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use actix_web::App;
use common::{
    admin, cancel_request, order_id, send, sync_request, view_request, CapturedLogs, Env,
};
use iamport_sandbox::{pay_method, Currency, NewPayment, PaymentStatus};
use serde_json::{json, Value};

/// An authorized cancel with a raw body and content type.
fn raw_cancel(body: &str, content_type: Option<&str>) -> TestRequest {
    let request = TestRequest::post()
        .uri("/payments/cancel")
        .insert_header(admin())
        .set_payload(body.to_owned());
    match content_type {
        Some(content_type) => request.insert_header((CONTENT_TYPE, content_type)),
        None => request,
    }
}

#[actix_web::test]
async fn malformed_requests_are_invalid_request_and_never_reach_the_gateway() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let account = |holder: &str, bank: &str, number: &str| json!({"merchant_uid": uid, "refund_holder": holder, "refund_bank": bank, "refund_account": number});
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Value)> = vec![
        (
            "amount as a string",
            json!({"merchant_uid": uid, "cancel_request_amount": "2000"}),
        ),
        (
            "negative amount",
            json!({"merchant_uid": uid, "cancel_request_amount": -1000}),
        ),
        (
            "zero amount",
            json!({"merchant_uid": uid, "cancel_request_amount": 0}),
        ),
        (
            "decimals for KRW",
            json!({"merchant_uid": uid, "cancel_request_amount": 10.5}),
        ),
        (
            "amount as a bool",
            json!({"merchant_uid": uid, "cancel_request_amount": true}),
        ),
        (
            "VAT above the amount",
            json!({"merchant_uid": uid, "cancel_request_amount": 100, "vat_amount": 200}),
        ),
        (
            "reason over 256 characters",
            json!({"merchant_uid": uid, "reason": long(257)}),
        ),
        (
            "reason of the wrong type",
            json!({"merchant_uid": uid, "reason": 42}),
        ),
        (
            "holder over 16 characters",
            account(&long(17), "88", "1234"),
        ),
        (
            "account over 16 characters",
            account("Kim", "88", "12345678901234567"),
        ),
        ("account with letters", account("Kim", "88", "1234abcd")),
        ("bank over 4 characters", account("Kim", "12345", "1234")),
        ("bank that is not a code", account("Kim", "8-8", "1234")),
        (
            "missing merchant_uid",
            json!({"cancel_request_amount": 1000}),
        ),
        ("blank merchant_uid", json!({"merchant_uid": "  "})),
        (
            "merchant_uid over 128 characters",
            json!({"merchant_uid": long(129)}),
        ),
        (
            "merchant_uid of the wrong type",
            json!({"merchant_uid": 12}),
        ),
        ("not an object", json!([uid])),
        (
            "an array of every field",
            json!([uid, 1000, null, null, null, null, null, null, null]),
        ),
    ];
    for (case, body) in cases {
        let reply = send(&app, cancel_request(body).to_request()).await;
        assert_eq!(
            reply.json["code"], "invalid_request",
            "{case}: {}",
            reply.text
        );
        reply.assert_error(400, "invalid_request");
    }
    for (case, body) in [
        ("truncated JSON", r#"{"merchant_uid":"#),
        ("empty body", ""),
        ("trailing garbage", r#"{"merchant_uid":"a"} x"#),
    ] {
        let reply = send(
            &app,
            raw_cancel(body, Some("application/json")).to_request(),
        )
        .await;
        assert_eq!(
            reply.json["code"], "invalid_request",
            "{case}: {}",
            reply.text
        );
        reply.assert_error(400, "invalid_request");
    }
    assert_eq!(env.cancels_attempted(), 0);
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
}

#[actix_web::test]
async fn shape_errors_name_the_field_without_echoing_the_value() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let logs = CapturedLogs::start();

    let reply = send(
        &app,
        cancel_request(json!({"merchant_uid": "m", "cancel_request_amount": "2000"})).to_request(),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(
        reply.json["message"],
        "cancel_request_amount: expected a number"
    );

    let account_number = "56211105948400";
    for body in [
        json!({"merchant_uid": "m", "refund_holder": "Kim", "refund_bank": "88", "refund_account": 56211105948400_u64}),
        json!({"merchant_uid": "m", "refund_holder": "Kim", "refund_bank": "88", "refund_account": format!("{account_number}999")}),
    ] {
        let reply = send(&app, cancel_request(body).to_request()).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.json["message"]
                .as_str()
                .unwrap()
                .contains("refund_account"),
            "{}",
            reply.text
        );
        assert!(!reply.text.contains(account_number), "{}", reply.text);
    }
    let missing = send(&app, cancel_request(json!({"reason": "x"})).to_request()).await;
    assert_eq!(missing.json["message"], "missing field `merchant_uid`");
    assert!(!logs.text().contains(account_number), "{}", logs.text());
}

#[actix_web::test]
async fn a_malformed_idempotency_key_is_invalid_request() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 100});
    for key in ["x".repeat(129), "with space".to_owned(), "한글".to_owned()] {
        let request = TestRequest::post()
            .uri("/payments/cancel")
            .insert_header(admin())
            .insert_header((
                "Idempotency-Key",
                actix_web::http::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
            ))
            .set_json(body.clone());
        let reply = send(&app, request.to_request()).await;
        reply.assert_error(400, "invalid_request");
    }
    assert_eq!(env.cancels_attempted(), 0);
}

#[actix_web::test]
async fn virtual_account_refunds_need_the_refund_account() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env
        .seed(NewPayment::new(order_id(), 30_000, Currency::Krw).pay_method(pay_method::VBANK))
        .await;
    let uid = payment.merchant_uid.as_str();
    let logs = CapturedLogs::start();

    for body in [
        json!({"merchant_uid": uid, "cancel_request_amount": 1000}),
        json!({"merchant_uid": uid, "refund_bank": "88"}),
        json!({"merchant_uid": uid, "refund_holder": "Kim", "refund_account": "56211105948400"}),
    ] {
        let reply = send(&app, cancel_request(body).to_request()).await;
        reply.assert_error(400, "refund_account_required");
    }
    assert_eq!(env.cancels_attempted(), 0);

    let reply = send(
        &app,
        cancel_request(json!({
            "merchant_uid": uid, "cancel_request_amount": 1000,
            "refund_holder": "Kim", "refund_bank": "88", "refund_account": "56211105948400"
        }))
        .to_request(),
    )
    .await;
    assert_eq!(reply.ok()["cancel_amount"], 1000);
    assert!(!reply.text.contains("56211105948400"), "{}", reply.text);
    let logged = logs.text();
    assert!(
        logged.contains("refund settled"),
        "logs are captured: {logged}"
    );
    assert!(!logged.contains("56211105948400"), "{logged}");
    assert_eq!(env.cancels_attempted(), 1);
}

#[actix_web::test]
async fn bodies_over_the_limit_are_payload_too_large() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let huge = json!({"merchant_uid": payment.merchant_uid, "reason": "x".repeat(20_000)});
    send(&app, cancel_request(huge).to_request())
        .await
        .assert_error(413, "payload_too_large");

    let tight = test::init_service(App::new().service(env.scope().body_limit(64))).await;
    let small = json!({"merchant_uid": payment.merchant_uid, "reason": "just a bit more than sixty-four bytes"});
    send(&tight, cancel_request(small).to_request())
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(env.cancels_attempted(), 0);
}

#[actix_web::test]
async fn bodies_that_are_not_json_are_unsupported_media_type() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let body = json!({"merchant_uid": payment.merchant_uid}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let reply = send(&app, raw_cancel(&body, content_type).to_request()).await;
        assert_eq!(
            reply.status.as_u16(),
            415,
            "{content_type:?}: {}",
            reply.text
        );
        reply.assert_error(415, "unsupported_media_type");
    }
    let padded = format!("\n  {body}\n");
    let charset = raw_cancel(&padded, Some("application/json; charset=utf-8"));
    send(&app, charset.to_request()).await.ok();
    assert_eq!(env.cancels_attempted(), 1);
}

#[actix_web::test]
async fn unrefundable_payments_are_not_refundable() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let last_month = i64::try_from(now).unwrap() - 40 * 24 * 60 * 60;
    let phone = NewPayment::new(order_id(), 5000, Currency::Krw)
        .pay_method(pay_method::PHONE)
        .paid_at(last_month);
    let unpaid = NewPayment::new(order_id(), 5000, Currency::Krw).status(PaymentStatus::Ready);
    let failed = NewPayment::new(order_id(), 5000, Currency::Krw).status(PaymentStatus::Failed);
    for new in [phone, unpaid, failed] {
        let payment = env.seed(new).await;
        let reply = send(
            &app,
            cancel_request(json!({"merchant_uid": payment.merchant_uid})).to_request(),
        )
        .await;
        reply.assert_error(422, "not_refundable");
    }
    assert_eq!(env.cancels_attempted(), 0);
}

#[actix_web::test]
async fn unknown_payments_are_payment_not_found() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let unknown = order_id();
    let cancel = cancel_request(json!({"merchant_uid": unknown, "cancel_request_amount": 1000}));
    send(&app, cancel.to_request())
        .await
        .assert_error(404, "payment_not_found");
    send(&app, view_request(&unknown).to_request())
        .await
        .assert_error(404, "payment_not_found");
    // Sync asks the gateway, which does not know it either.
    send(&app, sync_request(&unknown).to_request())
        .await
        .assert_error(404, "payment_not_found");
    assert_eq!(env.cancels_attempted(), 0);
}

#[actix_web::test]
async fn malformed_paths_are_invalid_request() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let calls = env.gateway_calls();
    let long = "x".repeat(129);
    send(&app, view_request(&long).to_request())
        .await
        .assert_error(400, "invalid_request");
    send(&app, sync_request(&long).to_request())
        .await
        .assert_error(400, "invalid_request");
    send(&app, sync_request("%0Aorder").to_request())
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(env.gateway_calls(), calls);
}
