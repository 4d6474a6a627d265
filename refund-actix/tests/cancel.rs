//! `POST /payments/cancel` against a real `RefundService` and the i'mport
//! sandbox: refunds, idempotency, concurrency and every gateway outcome.

mod common;

use std::rc::Rc;
use std::time::Duration;

use actix_web::test;
use actix_web::App;
use common::{cancel_request, order_id, scope_for, send, sync_request, view_request, Env, Reply};
use iamport_sandbox::{pay_method, AdminCancel, Currency, Fault, FaultTarget, NewPayment};
use serde_json::{json, Value};

fn with_key(body: Value, key: &str) -> actix_web::test::TestRequest {
    cancel_request(body).insert_header(("Idempotency-Key", key))
}

fn refund_id(reply: &Reply) -> String {
    reply.json["refund"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a refund id in {}", reply.text))
        .to_owned()
}

#[actix_web::test]
async fn partial_then_full_refund_answer_the_payment_view() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();

    let first = send(
        &app,
        cancel_request(
            json!({"merchant_uid": uid, "cancel_request_amount": 3000, "reason": "size exchange"}),
        )
        .to_request(),
    )
    .await;
    let view = first.ok();
    assert_eq!(view["merchant_uid"], uid);
    assert_eq!(view["imp_uid"], payment.imp_uid.as_str());
    assert_eq!(view["amount"], 10_000);
    assert_eq!(view["cancel_amount"], 3000);
    assert_eq!(view["cancelable_amount"], 7000);
    assert_eq!(view["currency"], "KRW");
    assert_eq!(view["status"], "paid");
    assert_eq!(view["pay_method"], "card");
    let history = view["cancel_history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["amount"], 3000);
    // The reason sent names the refund, so i'mport's entry is evidence for it.
    let id = refund_id(&first);
    assert_eq!(history[0]["reason"], format!("size exchange ({id})"));
    assert_eq!(history[0]["refund_id"], id.as_str());
    assert!(history[0]["pg_tid"].is_string() && history[0]["receipt_url"].is_string());
    assert!(history[0]["cancelled_at"].is_i64());
    assert_eq!(view["refund"]["amount"], 3000);
    assert_eq!(view["refund"]["status"], "succeeded");
    assert!(refund_id(&first).starts_with("rf_"));
    assert_eq!(view["pending_refunds"], json!([]));

    // No amount: the whole remaining balance.
    let second = send(
        &app,
        cancel_request(json!({"merchant_uid": uid})).to_request(),
    )
    .await;
    let view = second.ok();
    assert_eq!(view["cancel_amount"], 10_000);
    assert_eq!(view["cancelable_amount"], 0);
    assert_eq!(view["status"], "cancelled");
    assert_eq!(view["cancel_history"].as_array().unwrap().len(), 2);
    assert_eq!(view["refund"]["amount"], 7000);
    assert_ne!(refund_id(&first), refund_id(&second));

    let at_gateway = env.sandbox.payment(&payment.imp_uid).unwrap();
    assert_eq!(at_gateway.cancel_amount, 10_000);
    assert_eq!(env.sandbox.stats().cancel.committed, 2);

    let stored = send(&app, view_request(uid).to_request()).await;
    assert_eq!(stored.ok()["cancel_amount"], 10_000);
    assert!(stored.json.get("refund").is_none(), "{}", stored.text);
}

#[actix_web::test]
async fn decimal_currencies_are_refunded_exactly() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env
        .seed(NewPayment::new(order_id(), 1234, Currency::Usd))
        .await;

    let reply = send(
        &app,
        cancel_request(json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 0.1}))
            .to_request(),
    )
    .await;
    reply.ok();
    assert!(reply.text.contains(r#""amount":12.34"#), "{}", reply.text);
    assert!(
        reply.text.contains(r#""cancel_amount":0.1"#),
        "{}",
        reply.text
    );
    assert!(
        reply.text.contains(r#""cancelable_amount":12.24"#),
        "{}",
        reply.text
    );
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        10
    );
}

#[actix_web::test]
async fn a_repeated_idempotency_key_replays_the_first_outcome() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();

    let first = send(
        &app,
        with_key(
            json!({"merchant_uid": uid, "cancel_request_amount": 2000}),
            "click-1",
        )
        .to_request(),
    )
    .await;
    first.ok();
    // The same request, the amount spelled differently.
    for amount in [json!(2000), json!(2000.0)] {
        let again = send(
            &app,
            with_key(
                json!({"merchant_uid": uid, "cancel_request_amount": amount}),
                "click-1",
            )
            .to_request(),
        )
        .await;
        assert_eq!(again.ok()["cancel_amount"], 2000);
        assert_eq!(refund_id(&again), refund_id(&first));
    }
    assert_eq!(env.cancels_attempted(), 1);

    let reused = send(
        &app,
        with_key(
            json!({"merchant_uid": uid, "cancel_request_amount": 1000}),
            "click-1",
        )
        .to_request(),
    )
    .await;
    reused.assert_error(409, "idempotency_key_reused");
    assert_eq!(env.cancels_attempted(), 1);
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        2000
    );
}

#[actix_web::test]
async fn ten_identical_requests_at_once_make_one_gateway_cancel() {
    let env = Env::start().await;
    let app = Rc::new(test::init_service(App::new().service(env.scope())).await);
    let payment = env.seed_krw(10_000).await;
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 2500});

    let requests: Vec<_> = (0..10)
        .map(|_| {
            let app = Rc::clone(&app);
            let request = with_key(body.clone(), "double-click").to_request();
            actix_web::rt::spawn(async move { send(&*app, request).await })
        })
        .collect();
    let mut ids = Vec::new();
    for request in requests {
        let reply = request.await.expect("the request task completes");
        // The winner answers 200; a twin that arrives while the refund is
        // in flight is told it is pending, then sees the same refund.
        assert!(
            reply.status.as_u16() == 200 || reply.status.as_u16() == 202,
            "{}",
            reply.text
        );
        ids.push(refund_id(&reply));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one refund for all: {ids:?}");
    assert_eq!(env.cancels_attempted(), 1);
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        2500
    );
}

#[actix_web::test]
async fn concurrent_different_refunds_never_overdraw() {
    let env = Env::start().await;
    let app = Rc::new(test::init_service(App::new().service(env.scope())).await);
    let payment = env.seed_krw(10_000).await;

    let requests: Vec<_> = (0..10)
        .map(|i| {
            let app = Rc::clone(&app);
            let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 3000, "reason": format!("request {i}")});
            actix_web::rt::spawn(async move { send(&*app, cancel_request(body).to_request()).await })
        })
        .collect();
    let mut refunded = 0;
    for request in requests {
        let reply = request.await.expect("the request task completes");
        match reply.status.as_u16() {
            200 => refunded += 3000,
            409 => assert!(
                ["refund_in_progress", "amount_exceeds_cancelable"]
                    .contains(&reply.json["code"].as_str().unwrap_or_default()),
                "{}",
                reply.text
            ),
            _ => panic!("unexpected answer {}", reply.text),
        }
    }
    assert!(refunded > 0 && refunded <= 9000, "{refunded}");
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        refunded
    );
    let view = send(&app, view_request(&payment.merchant_uid).to_request()).await;
    assert_eq!(view.ok()["cancel_amount"], refunded);
}

#[actix_web::test]
async fn conflicts_are_refused_without_calling_the_gateway() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();

    let too_much = send(
        &app,
        cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 10_001})).to_request(),
    )
    .await;
    too_much.assert_error(409, "amount_exceeds_cancelable");
    assert_eq!(env.cancels_attempted(), 0);

    send(
        &app,
        cancel_request(json!({"merchant_uid": uid})).to_request(),
    )
    .await
    .ok();
    assert_eq!(env.cancels_attempted(), 1);
    for body in [
        json!({"merchant_uid": uid}),
        json!({"merchant_uid": uid, "cancel_request_amount": 1}),
    ] {
        let reply = send(&app, cancel_request(body).to_request()).await;
        reply.assert_error(409, "already_refunded");
    }
    assert_eq!(env.cancels_attempted(), 1);

    let unknown = send(
        &app,
        cancel_request(json!({"merchant_uid": order_id(), "cancel_request_amount": 1000}))
            .to_request(),
    )
    .await;
    unknown.assert_error(404, "payment_not_found");
    assert_eq!(env.cancels_attempted(), 1);
}

#[actix_web::test]
async fn an_unknown_outcome_answers_202_and_is_reconciled_by_sync() {
    let env = Env::start().await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    // The gateway commits the cancel, then holds its reply past our timeout.
    let impatient = env.service_with(|config| config.request_timeout(Duration::from_secs(2)));
    impatient
        .refresh(&payment.imp_uid)
        .await
        .expect("token fetched");
    let app = test::init_service(App::new().service(scope_for(impatient))).await;
    env.sandbox.inject_fault(
        Fault::HoldAfterCommit(Duration::from_secs(120)),
        FaultTarget::Cancel,
        1,
    );

    let body = json!({"merchant_uid": uid, "cancel_request_amount": 4000});
    let pending = send(&app, with_key(body.clone(), "k-pending").to_request()).await;
    assert_eq!(pending.status.as_u16(), 202, "{}", pending.text);
    assert_eq!(pending.json["code"], "refund_pending");
    assert!(pending.json["message"].is_string());
    assert_eq!(pending.json["refund"]["amount"], 4000);
    assert_eq!(pending.json["refund"]["status"], "pending");
    let id = refund_id(&pending);

    // Retrying with the key tells the same story; another refund waits.
    let replay = send(&app, with_key(body.clone(), "k-pending").to_request()).await;
    assert_eq!(replay.status.as_u16(), 202, "{}", replay.text);
    assert_eq!(refund_id(&replay), id);
    let other = send(
        &app,
        cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1000})).to_request(),
    )
    .await;
    other.assert_error(409, "refund_in_progress");
    assert_eq!(env.cancels_attempted(), 1);

    let view = send(&app, view_request(uid).to_request()).await;
    assert_eq!(view.ok()["pending_refunds"][0]["id"], id.as_str());

    let synced = send(&app, sync_request(uid).to_request()).await;
    let view = synced.ok();
    assert_eq!(view["cancel_amount"], 4000);
    assert_eq!(view["pending_refunds"], json!([]));

    let settled = send(&app, with_key(body, "k-pending").to_request()).await;
    assert_eq!(settled.ok()["refund"]["status"], "succeeded");
    assert_eq!(refund_id(&settled), id);
    assert_eq!(env.cancels_attempted(), 1);
}

#[actix_web::test]
async fn a_refund_made_behind_our_back_is_payment_out_of_sync() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    env.sandbox
        .admin_cancel(
            &payment.imp_uid,
            AdminCancel {
                amount: Some(1000),
                reason: Some("refunded in the console".to_owned()),
            },
        )
        .unwrap();

    let stale = send(
        &app,
        cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 2000})).to_request(),
    )
    .await;
    stale.assert_error(409, "payment_out_of_sync");
    let stats = env.sandbox.stats().cancel;
    assert_eq!((stats.attempted, stats.committed), (1, 0));

    // The payment was re-synced: a retry goes through on fresh numbers.
    let view = send(&app, view_request(uid).to_request()).await;
    assert_eq!(view.ok()["cancel_amount"], 1000);
    let retry = send(
        &app,
        cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 2000})).to_request(),
    )
    .await;
    assert_eq!(retry.ok()["cancel_amount"], 3000);
}

#[actix_web::test]
async fn a_gateway_refusal_is_gateway_rejected_with_its_message() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env
        .seed(NewPayment::new(order_id(), 5000, Currency::Krw).pay_method(pay_method::PHONE))
        .await;
    // For the gateway it is now a later month; for us the payment is fresh,
    // so only the gateway can refuse.
    env.sandbox
        .advance_clock(Duration::from_secs(40 * 24 * 60 * 60));

    let reply = send(
        &app,
        cancel_request(json!({"merchant_uid": payment.merchant_uid})).to_request(),
    )
    .await;
    reply.assert_error(502, "gateway_rejected");
    let gateway_message = reply.json["gateway_message"].as_str().unwrap_or_default();
    assert!(!gateway_message.is_empty(), "{}", reply.text);
    assert_eq!(env.sandbox.stats().cancel.committed, 0);

    let view = send(&app, view_request(&payment.merchant_uid).to_request()).await;
    assert_eq!(view.ok()["cancel_amount"], 0);
    assert_eq!(view.json["pending_refunds"], json!([]));
}

#[actix_web::test]
async fn an_unreachable_gateway_is_gateway_error_and_refunds_nothing() {
    let env = Env::start().await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let offline =
        test::init_service(App::new().service(scope_for(env.service_with_unreachable_gateway())))
            .await;
    let body = json!({"merchant_uid": uid, "cancel_request_amount": 1000});

    let reply = send(&offline, cancel_request(body.clone()).to_request()).await;
    reply.assert_error(502, "gateway_error");
    send(&offline, sync_request(uid).to_request())
        .await
        .assert_error(502, "gateway_error");
    let view = send(&offline, view_request(uid).to_request()).await;
    assert_eq!(view.ok()["cancel_amount"], 0);
    assert_eq!(view.json["pending_refunds"], json!([]));
    assert_eq!(env.cancels_attempted(), 0);

    // Nothing is left pending: once the gateway is back, the refund goes through.
    let online = test::init_service(App::new().service(env.scope())).await;
    let reply = send(&online, cancel_request(body).to_request()).await;
    assert_eq!(reply.ok()["cancel_amount"], 1000);
}
