//! The PortOne V2 mode over real HTTP, against the V2 schema's semantics:
//! tokens, both authorization styles, the `Payment` union, cancels and
//! their typed errors, asynchronous cancels, faults, signed webhooks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use common::{Harness, Reply};
use hmac::Mac;
use iamport_sandbox::{
    pay_method, AdminCancel, Api, Currency, DeliveryStatus, Fault, FaultTarget, NewPayment,
    PaymentStatus, SandboxConfig, WebhookTarget, DEFAULT_WEBHOOK_SECRET,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn v2_config() -> SandboxConfig {
    SandboxConfig {
        api: Api::Portone,
        ..SandboxConfig::default()
    }
}

async fn v2() -> Harness {
    Harness::with_config(v2_config()).await
}

/// `Authorization: PortOne <secret>`.
fn secret_auth(h: &Harness) -> String {
    format!("PortOne {}", h.sandbox.api_secret())
}

async fn get_payment(h: &Harness, id: &str) -> Reply {
    h.send(
        h.http
            .get(h.url(&format!("/payments/{id}")))
            .header("authorization", secret_auth(h)),
    )
    .await
}

async fn cancel(h: &Harness, id: &str, body: Value) -> Reply {
    h.send(
        h.http
            .post(h.url(&format!("/payments/{id}/cancel")))
            .header("authorization", secret_auth(h))
            .json(&body),
    )
    .await
}

async fn login(h: &Harness, secret: &str) -> Reply {
    h.send(
        h.http
            .post(h.url("/login/api-secret"))
            .json(&json!({"apiSecret": secret})),
    )
    .await
}

async fn refresh(h: &Harness, token: &str) -> Reply {
    h.send(
        h.http
            .post(h.url("/token/refresh"))
            .json(&json!({"refreshToken": token})),
    )
    .await
}

/// A typed V2 error: this HTTP status and `type`, with a message.
fn assert_error(reply: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["type"], kind, "{}", reply.text);
    assert!(reply.json["message"].is_string(), "{}", reply.text);
}

fn assert_ok(reply: &Reply) -> &Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    &reply.json
}

fn seed_krw(h: &Harness, id: &str, amount: i64) {
    h.seed(NewPayment::new(id, amount, Currency::Krw));
}

const ACCOUNT: &str = "110-123-456789";

fn refund_account(bank: &str) -> Value {
    json!({"bank": bank, "number": ACCOUNT, "holderName": "홍길동", "holderPhoneNumber": "01012345678"})
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refresh_and_expiry() {
    let h = Harness::with_config(SandboxConfig {
        token_ttl: Duration::from_secs(60),
        ..v2_config()
    })
    .await;
    seed_krw(&h, "p-login", 1000);

    assert_error(
        &login(&h, "wrong").await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    );
    let missing = h
        .send(h.http.post(h.url("/login/api-secret")).json(&json!({})))
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "INVALID_REQUEST");

    let first = login(&h, h.sandbox.api_secret()).await;
    let first = assert_ok(&first).clone();
    let access = first["accessToken"].as_str().unwrap().to_owned();
    let refresh_token = first["refreshToken"].as_str().unwrap().to_owned();
    // A JWT whose `exp` is the expiry.
    let claims = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), h.sandbox.now() + 60);

    let with_bearer = |token: &str| {
        h.http
            .get(h.url("/payments/p-login"))
            .bearer_auth(token.to_owned())
    };
    assert_ok(&h.send(with_bearer(&access)).await);

    h.sandbox.advance_clock(Duration::from_secs(61));
    assert_error(
        &h.send(with_bearer(&access)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    );

    let second = refresh(&h, &refresh_token).await;
    let second = assert_ok(&second).clone();
    let access2 = second["accessToken"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_ok(&h.send(with_bearer(access2)).await);
    // A refresh token works once: the refresh retired it.
    assert_error(
        &refresh(&h, &refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    );
    // A login retires the live refresh token too.
    let refresh2 = second["refreshToken"].as_str().unwrap();
    assert_ok(&login(&h, h.sandbox.api_secret()).await);
    assert_error(
        &refresh(&h, refresh2).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    );

    let stats = h.sandbox.stats();
    assert_eq!(stats.get_token.requests, 7);
    assert_eq!(stats.get_token.minted, 3);
    assert_eq!(stats.get_payment, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_expire_after_a_day() {
    let h = v2().await;
    let pair = login(&h, h.sandbox.api_secret()).await;
    let token = pair.json["refreshToken"].as_str().unwrap().to_owned();
    h.sandbox.advance_clock(Duration::from_secs(24 * 3600));
    assert_error(
        &refresh(&h, &token).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn both_authorization_styles_and_refusals() {
    let h = v2().await;
    seed_krw(&h, "p-auth", 1000);
    let get = |auth: Option<String>| {
        let mut request = h.http.get(h.url("/payments/p-auth"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request
    };
    assert_ok(&h.send(get(Some(secret_auth(&h)))).await);
    assert_ok(
        &h.send(get(Some(format!("portone {}", h.sandbox.api_secret()))))
            .await,
    );
    let token = login(&h, h.sandbox.api_secret()).await.json["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ok(&h.send(get(Some(format!("Bearer {token}")))).await);

    for auth in [
        None,
        Some("PortOne wrong".to_owned()),
        Some(h.sandbox.api_secret().to_owned()),
        Some(format!("Basic {}", h.sandbox.api_secret())),
        Some("Bearer not-a-token".to_owned()),
        // The secret is not a bearer token, nor a token a secret.
        Some(format!("Bearer {}", h.sandbox.api_secret())),
        Some(format!("PortOne {token}")),
    ] {
        let reply = h.send(get(auth.clone())).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        assert!(!reply.text.contains(h.sandbox.api_secret()), "{auth:?}");
    }

    // Revocation ends tokens, not the secret.
    h.sandbox.revoke_tokens();
    let reply = h.send(get(Some(format!("Bearer {token}")))).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_ok(&h.send(get(Some(secret_auth(&h)))).await);
    assert_eq!(h.sandbox.stats().unauthorized, 8);

    let cancel = h
        .send(
            h.http
                .post(h.url("/payments/p-auth/cancel"))
                .json(&json!({"reason": "r"})),
        )
        .await;
    assert_error(&cancel, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(
        h.sandbox
            .payment_by_merchant_uid("p-auth")
            .unwrap()
            .cancel_amount,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_payment_has_the_paid_shape() {
    let h = v2().await;
    let seeded = h.seed(NewPayment {
        name: Some("티셔츠".into()),
        buyer_name: Some("홍길동".into()),
        ..NewPayment::new("p-shape", 10_000, Currency::Krw)
    });
    let reply = get_payment(&h, "p-shape").await;
    let body = assert_ok(&reply);
    assert_eq!(body["status"], "PAID");
    assert_eq!(body["id"], "p-shape");
    assert_eq!(body["transactionId"], seeded.transaction_id.as_str());
    assert_ne!(body["transactionId"], seeded.imp_uid.as_str());
    assert_eq!(body["storeId"], h.sandbox.store_id());
    assert!(body["merchantId"].is_string());
    assert_eq!(body["version"], "V2");
    assert_eq!(body["orderName"], "티셔츠");
    assert_eq!(body["customer"]["name"], "홍길동");
    assert_eq!(body["currency"], "KRW");
    assert_eq!(body["method"]["type"], "PaymentMethodCard");
    assert_eq!(body["channel"]["type"], "TEST");
    assert_eq!(
        body["amount"],
        json!({"total": 10_000, "taxFree": 0, "vat": 909, "supply": 9091, "discount": 0,
               "paid": 10_000, "cancelled": 0, "cancelledTaxFree": 0})
    );
    for field in ["requestedAt", "updatedAt", "statusChangedAt", "paidAt"] {
        let at = body[field].as_str().unwrap();
        assert!(at.ends_with('Z') && at.contains('T'), "{field}: {at}");
    }
    assert_eq!(body["disputes"], json!([]));
    assert!(body.get("cancellations").is_none());

    // The paymentId is the merchant's id; the V1 imp_uid is not a V2 id.
    assert_error(
        &get_payment(&h, &seeded.imp_uid).await,
        StatusCode::NOT_FOUND,
        "PAYMENT_NOT_FOUND",
    );
    assert_error(
        &cancel(&h, "nope", json!({"reason": "r"})).await,
        StatusCode::NOT_FOUND,
        "PAYMENT_NOT_FOUND",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_then_full_cancel_moves_the_status() {
    let h = v2().await;
    seed_krw(&h, "p-partial", 10_000);

    let reply = cancel(
        &h,
        "p-partial",
        json!({"reason": "고객 요청", "amount": 3000, "currentCancellableAmount": 10_000,
               "requester": "CUSTOMER", "promotionDiscountRetainOption": "RELEASE",
               "someFutureField": {"nested": true}}),
    )
    .await;
    let first = assert_ok(&reply)["cancellation"].clone();
    assert_eq!(first["status"], "SUCCEEDED");
    assert_eq!(first["totalAmount"], 3000);
    assert_eq!(first["taxFreeAmount"], 0);
    assert_eq!(first["vatAmount"], 272);
    assert_eq!(first["reason"], "고객 요청");
    assert_eq!(first["trigger"], "API");
    for field in [
        "id",
        "pgCancellationId",
        "cancelledAt",
        "requestedAt",
        "receiptUrl",
    ] {
        assert!(first[field].is_string(), "{field}: {first}");
    }

    let body = get_payment(&h, "p-partial").await.json;
    assert_eq!(body["status"], "PARTIAL_CANCELLED");
    assert_eq!(body["amount"]["cancelled"], 3000);
    assert_eq!(body["cancellations"], json!([first]));
    assert_eq!(body["cancelledAt"], first["cancelledAt"]);

    // No amount: everything that is left.
    let reply = cancel(
        &h,
        "p-partial",
        json!({"reason": "rest", "currentCancellableAmount": 7000}),
    )
    .await;
    let second = assert_ok(&reply)["cancellation"].clone();
    assert_eq!(
        (&second["status"], &second["totalAmount"]),
        (&json!("SUCCEEDED"), &json!(7000))
    );
    assert_ne!(second["id"], first["id"]);

    let body = get_payment(&h, "p-partial").await.json;
    assert_eq!(body["status"], "CANCELLED");
    assert_eq!(body["amount"]["cancelled"], 10_000);
    assert_eq!(body["cancellations"].as_array().unwrap().len(), 2);
    assert!(body["cancelledAt"].is_string());

    let again = cancel(&h, "p-partial", json!({"reason": "again"})).await;
    assert_error(&again, StatusCode::CONFLICT, "PAYMENT_ALREADY_CANCELLED");
    let stats = h.sandbox.stats();
    assert_eq!((stats.cancel.attempted, stats.cancel.committed), (3, 2));
    assert_eq!(stats.get_payment, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_cancellable_amount_or_too_much_changes_nothing() {
    let h = v2().await;
    seed_krw(&h, "p-stale", 10_000);
    let stale = cancel(
        &h,
        "p-stale",
        json!({"reason": "r", "amount": 100, "currentCancellableAmount": 9_999}),
    )
    .await;
    assert_error(
        &stale,
        StatusCode::CONFLICT,
        "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
    );
    let too_much = cancel(&h, "p-stale", json!({"reason": "r", "amount": 10_001})).await;
    assert_error(
        &too_much,
        StatusCode::CONFLICT,
        "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
    );
    let parts = cancel(
        &h,
        "p-stale",
        json!({"reason": "r", "amount": 100, "taxFreeAmount": 60, "vatAmount": 50}),
    )
    .await;
    assert_error(
        &parts,
        StatusCode::CONFLICT,
        "SUM_OF_PARTS_EXCEEDS_CANCEL_AMOUNT",
    );
    let tax_free = cancel(
        &h,
        "p-stale",
        json!({"reason": "r", "amount": 100, "taxFreeAmount": 10}),
    )
    .await;
    assert_error(
        &tax_free,
        StatusCode::CONFLICT,
        "CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT",
    );
    let payment = h.sandbox.payment_by_merchant_uid("p-stale").unwrap();
    assert_eq!(
        (payment.cancel_amount, payment.cancel_history.len()),
        (0, 0)
    );
    assert_eq!(h.sandbox.stats().cancel.committed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn input_rules_answer_invalid_request() {
    let h = v2().await;
    seed_krw(&h, "p-input", 10_000);
    for body in [
        json!({"amount": 100}),
        json!({"reason": "", "amount": 100}),
        json!({"reason": "r", "amount": 10.5}),
        json!({"reason": "r", "amount": "100"}),
        json!({"reason": "r", "amount": -1}),
        json!({"reason": "r", "requester": "ROBOT"}),
        json!({"reason": "r", "refundAccount": refund_account("NOT_A_BANK")}),
        // V1-style numeric bank codes are not V2 Bank values.
        json!({"reason": "r", "refundAccount": refund_account("088")}),
        json!({"reason": "r", "refundAccount": {"bank": "SHINHAN", "number": ACCOUNT}}),
    ] {
        let reply = cancel(&h, "p-input", body.clone()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
        assert!(!reply.text.contains(ACCOUNT), "{body}: {}", reply.text);
    }
    let not_json = h
        .send(
            h.http
                .post(h.url("/payments/p-input/cancel"))
                .header("authorization", secret_auth(&h))
                .header("content-type", "application/json")
                .body("reason=r"),
        )
        .await;
    assert_error(&not_json, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    assert_eq!(
        h.sandbox
            .payment_by_merchant_uid("p-input")
            .unwrap()
            .cancel_amount,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_account_refunds_need_a_refund_account_with_a_bank_name() {
    let h = v2().await;
    h.seed(NewPayment::new("p-vbank", 10_000, Currency::Krw).pay_method(pay_method::VBANK));
    let body = get_payment(&h, "p-vbank").await.json;
    assert_eq!(body["status"], "PAID");
    assert_eq!(body["method"]["type"], "PaymentMethodVirtualAccount");
    assert!(body["method"]["accountNumber"].is_string());

    let without = cancel(&h, "p-vbank", json!({"reason": "r", "amount": 1000})).await;
    assert_error(&without, StatusCode::BAD_REQUEST, "INVALID_REQUEST");

    let with = cancel(
        &h,
        "p-vbank",
        json!({"reason": "r", "amount": 1000, "currentCancellableAmount": 10_000,
               "refundAccount": refund_account("SHINHAN")}),
    )
    .await;
    assert_eq!(assert_ok(&with)["cancellation"]["status"], "SUCCEEDED");
    let body = get_payment(&h, "p-vbank").await.json;
    assert_eq!(body["method"]["refundStatus"], "COMPLETED");
}

#[tokio::test(flavor = "multi_thread")]
async fn usd_amounts_are_integer_cents() {
    let h = v2().await;
    // The control endpoint takes major units, as V1's does.
    let created = h
        .control(
            Method::POST,
            "/sandbox/payments",
            Some(json!({"payment_id": "p-usd", "amount": 12.5, "currency": "USD"})),
        )
        .await;
    let created = assert_ok(&created);
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["amount"]["total"], 1250);

    let reply = cancel(
        &h,
        "p-usd",
        json!({"reason": "r", "amount": 250, "currentCancellableAmount": 1250}),
    )
    .await;
    assert_eq!(assert_ok(&reply)["cancellation"]["totalAmount"], 250);
    let body = get_payment(&h, "p-usd").await.json;
    assert_eq!(body["amount"]["cancelled"], 250);
    assert_eq!(
        h.sandbox
            .payment_by_merchant_uid("p-usd")
            .unwrap()
            .cancel_amount,
        250
    );
    let decimal = cancel(&h, "p-usd", json!({"reason": "r", "amount": 2.5})).await;
    assert_error(&decimal, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn unpaid_payments_are_not_cancellable() {
    let h = v2().await;
    h.seed(NewPayment::new("p-ready", 1000, Currency::Krw).status(PaymentStatus::Ready));
    h.seed(
        NewPayment::new("p-va-ready", 1000, Currency::Krw)
            .pay_method(pay_method::VBANK)
            .status(PaymentStatus::Ready),
    );
    h.seed(NewPayment::new("p-failed", 1000, Currency::Krw).status(PaymentStatus::Failed));
    for (id, status) in [
        ("p-ready", "READY"),
        ("p-va-ready", "VIRTUAL_ACCOUNT_ISSUED"),
        ("p-failed", "FAILED"),
    ] {
        let body = get_payment(&h, id).await.json;
        assert_eq!(body["status"], status);
        assert_eq!(body["amount"]["paid"], 0);
        assert!(body.get("paidAt").is_none());
        let reply = cancel(&h, id, json!({"reason": "r"})).await;
        assert_error(&reply, StatusCode::CONFLICT, "PAYMENT_NOT_PAID");
    }
    let failed = get_payment(&h, "p-failed").await.json;
    assert!(failed["failedAt"].is_string() && failed["failure"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_store_is_forbidden() {
    let h = Harness::with_config(SandboxConfig {
        store_id: Some("store-mine".into()),
        ..v2_config()
    })
    .await;
    seed_krw(&h, "p-store", 1000);
    let get = |store: &str| {
        h.http
            .get(h.url(&format!("/payments/p-store?storeId={store}")))
            .header("authorization", secret_auth(&h))
    };
    assert_eq!(
        assert_ok(&h.send(get("store-mine")).await)["storeId"],
        "store-mine"
    );
    assert_error(
        &h.send(get("store-other")).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    );
    let foreign = cancel(
        &h,
        "p-store",
        json!({"reason": "r", "storeId": "store-other"}),
    )
    .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "FORBIDDEN");
    let own = cancel(
        &h,
        "p-store",
        json!({"reason": "r", "storeId": "store-mine", "amount": 10}),
    )
    .await;
    assert_ok(&own);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pg_refusal_echoes_the_refund_account_and_changes_nothing() {
    let h = v2().await;
    h.seed(NewPayment::new("p-echo", 10_000, Currency::Krw).pay_method(pay_method::VBANK));
    h.control(
        Method::POST,
        "/sandbox/faults",
        Some(json!({"fault": "echo_account"})),
    )
    .await;
    let reply = cancel(
        &h,
        "p-echo",
        json!({"reason": "r", "refundAccount": refund_account("KOOKMIN")}),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_GATEWAY, "PG_PROVIDER");
    assert!(reply.json["pgCode"].is_string());
    let pg_message = reply.json["pgMessage"].as_str().unwrap();
    assert!(pg_message.contains(ACCOUNT) && pg_message.contains("홍길동"));
    let payment = h.sandbox.payment_by_merchant_uid("p-echo").unwrap();
    assert_eq!(
        (payment.cancel_amount, payment.cancel_history.len()),
        (0, 0)
    );
    // Used up: the next cancel goes through.
    let reply = cancel(
        &h,
        "p-echo",
        json!({"reason": "r", "refundAccount": refund_account("KOOKMIN")}),
    )
    .await;
    assert_ok(&reply);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requested_cancel_claims_the_balance_then_succeeds() {
    let h = v2().await;
    seed_krw(&h, "p-async", 10_000);
    h.sandbox
        .inject_fault(Fault::Requested, FaultTarget::Cancel, 1);
    let reply = cancel(
        &h,
        "p-async",
        json!({"reason": "r", "amount": 4000, "currentCancellableAmount": 10_000}),
    )
    .await;
    let requested = assert_ok(&reply)["cancellation"].clone();
    assert_eq!(requested["status"], "REQUESTED");
    assert_eq!(requested["totalAmount"], 4000);
    assert!(requested["id"].is_string() && requested["requestedAt"].is_string());
    assert!(requested.get("cancelledAt").is_none());

    let body = get_payment(&h, "p-async").await.json;
    assert_eq!(body["status"], "PAID");
    assert_eq!(body["amount"]["cancelled"], 0);
    assert_eq!(body["cancellations"], json!([requested]));

    // What is cancellable no longer includes the requested amount.
    let stale = cancel(
        &h,
        "p-async",
        json!({"reason": "r", "amount": 1000, "currentCancellableAmount": 10_000}),
    )
    .await;
    assert_error(
        &stale,
        StatusCode::CONFLICT,
        "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
    );
    let too_much = cancel(&h, "p-async", json!({"reason": "r", "amount": 6001})).await;
    assert_error(
        &too_much,
        StatusCode::CONFLICT,
        "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
    );

    let completed = h
        .control(
            Method::POST,
            "/sandbox/cancellations/complete",
            Some(json!({})),
        )
        .await;
    let completed = assert_ok(&completed)["completed"].clone();
    assert_eq!(completed.as_array().unwrap().len(), 1);
    assert_eq!(completed[0]["paymentId"], "p-async");
    assert_eq!(completed[0]["cancellation"]["status"], "SUCCEEDED");
    assert_eq!(completed[0]["cancellation"]["id"], requested["id"]);

    let body = get_payment(&h, "p-async").await.json;
    assert_eq!(body["status"], "PARTIAL_CANCELLED");
    assert_eq!(body["amount"]["cancelled"], 4000);
    assert_eq!(body["cancellations"][0]["status"], "SUCCEEDED");
    assert!(body["cancellations"][0]["cancelledAt"].is_string());
    assert_eq!(h.sandbox.complete_requested_cancels(true), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requested_cancel_that_fails_gives_the_balance_back() {
    let h = v2().await;
    seed_krw(&h, "p-async-fail", 10_000);
    h.control(
        Method::POST,
        "/sandbox/faults",
        Some(json!({"fault": "requested"})),
    )
    .await;
    let reply = cancel(&h, "p-async-fail", json!({"reason": "r"})).await;
    assert_eq!(assert_ok(&reply)["cancellation"]["status"], "REQUESTED");
    let nothing_left = cancel(&h, "p-async-fail", json!({"reason": "r"})).await;
    assert_error(
        &nothing_left,
        StatusCode::CONFLICT,
        "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
    );

    let completed = h
        .control(
            Method::POST,
            "/sandbox/cancellations/complete",
            Some(json!({"succeed": false})),
        )
        .await;
    assert_eq!(
        assert_ok(&completed)["completed"][0]["cancellation"]["status"],
        "FAILED"
    );
    let body = get_payment(&h, "p-async-fail").await.json;
    assert_eq!(body["status"], "PAID");
    assert_eq!(body["amount"]["cancelled"], 0);
    assert_eq!(body["cancellations"][0]["status"], "FAILED");
    let full = cancel(
        &h,
        "p-async-fail",
        json!({"reason": "r", "currentCancellableAmount": 10_000}),
    )
    .await;
    assert_eq!(assert_ok(&full)["cancellation"]["totalAmount"], 10_000);
}

/// The 5xx faults come in two voices: `fail_*` answer plain text, as a
/// proxy in front of PortOne would (no typed body); `error_*` answer
/// PortOne's own typed error. Either way, `*_after_commit` applied the
/// cancel and `*_before_commit` did nothing.
#[tokio::test(flavor = "multi_thread")]
async fn five_hundreds_come_untyped_from_a_proxy_or_typed_from_portone() {
    let h = v2().await;
    seed_krw(&h, "p-5xx", 10_000);
    let cancelled = || {
        h.sandbox
            .payment_by_merchant_uid("p-5xx")
            .unwrap()
            .cancel_amount
    };
    let body = |cancellable: i64| json!({"reason": "r", "amount": 100, "currentCancellableAmount": cancellable});
    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);
    let proxy = cancel(&h, "p-5xx", body(10_000)).await;
    assert_eq!(proxy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(proxy.json.is_null(), "not JSON: {}", proxy.text);
    h.sandbox
        .inject_fault(Fault::ErrorBeforeCommit, FaultTarget::Cancel, 1);
    let before = cancel(&h, "p-5xx", body(10_000)).await;
    assert_error(
        &before,
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_SERVER_ERROR",
    );
    assert_eq!(cancelled(), 0);
    h.sandbox
        .inject_fault(Fault::ErrorAfterCommit, FaultTarget::Cancel, 1);
    let after = cancel(&h, "p-5xx", body(10_000)).await;
    assert_error(
        &after,
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_SERVER_ERROR",
    );
    assert_eq!(cancelled(), 100);
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    let lost = cancel(&h, "p-5xx", body(9_900)).await;
    assert_eq!(lost.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(lost.json.is_null(), "not JSON: {}", lost.text);
    assert_eq!(cancelled(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_apply_to_v2_calls() {
    let h = v2().await;
    seed_krw(&h, "p-faults", 10_000);

    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);
    // A refused (401) call does not use the fault up.
    let unauthorized = h
        .send(
            h.http
                .post(h.url("/payments/p-faults/cancel"))
                .json(&json!({"reason": "r"})),
        )
        .await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    let before = cancel(&h, "p-faults", json!({"reason": "r", "amount": 100})).await;
    assert_eq!(before.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        h.sandbox
            .payment_by_merchant_uid("p-faults")
            .unwrap()
            .cancel_amount,
        0
    );

    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    let after = cancel(
        &h,
        "p-faults",
        json!({"reason": "r", "amount": 100, "currentCancellableAmount": 10_000}),
    )
    .await;
    assert_eq!(after.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        h.sandbox
            .payment_by_merchant_uid("p-faults")
            .unwrap()
            .cancel_amount,
        100
    );
    // The blind retry is stopped by the balance check.
    let retry = cancel(
        &h,
        "p-faults",
        json!({"reason": "r", "amount": 100, "currentCancellableAmount": 10_000}),
    )
    .await;
    assert_error(
        &retry,
        StatusCode::CONFLICT,
        "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
    );

    h.sandbox.inject_fault(Fault::Garbage, FaultTarget::Get, 1);
    let garbage = get_payment(&h, "p-faults").await;
    assert_eq!(garbage.status, StatusCode::OK);
    assert!(garbage.json.is_null(), "{}", garbage.text);

    h.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Token, 1);
    let dropped = h
        .http
        .post(h.url("/login/api-secret"))
        .json(&json!({"apiSecret": h.sandbox.api_secret()}))
        .send()
        .await;
    assert!(dropped.is_err(), "{dropped:?}");

    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Token, 1);
    let pair = login(&h, h.sandbox.api_secret()).await;
    assert_eq!(pair.status, StatusCode::SERVICE_UNAVAILABLE);
    let pair = login(&h, h.sandbox.api_secret()).await;
    let refresh_token = assert_ok(&pair)["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Token, 1);
    let lost = refresh(&h, &refresh_token).await;
    assert_eq!(lost.status, StatusCode::INTERNAL_SERVER_ERROR);
    // The refresh happened: the old refresh token is spent.
    assert_error(
        &refresh(&h, &refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    );

    h.sandbox.inject_fault(
        Fault::HoldAfterCommit(Duration::from_millis(600)),
        FaultTarget::Cancel,
        1,
    );
    let held = h
        .http
        .post(h.url("/payments/p-faults/cancel"))
        .header("authorization", secret_auth(&h))
        .json(&json!({"reason": "r", "amount": 100}))
        .timeout(Duration::from_millis(150))
        .send()
        .await;
    assert!(held.is_err_and(|e| e.is_timeout()));
    let mut cancelled = 0;
    for _ in 0..100 {
        cancelled = h
            .sandbox
            .payment_by_merchant_uid("p-faults")
            .unwrap()
            .cancel_amount;
        if cancelled == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cancelled, 200);

    // Cancel-only faults cannot be armed for other calls.
    let refused = h
        .control(
            Method::POST,
            "/sandbox/faults",
            Some(json!({"fault": "requested", "endpoint": "get"})),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    assert!(h.sandbox.armed_faults().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_cancels_with_the_same_balance_commit_once() {
    let h = Arc::new(v2().await);
    seed_krw(&h, "p-race", 10_000);
    let mut calls = Vec::new();
    for _ in 0..20 {
        let h = Arc::clone(&h);
        calls.push(tokio::spawn(async move {
            cancel(
                &h,
                "p-race",
                json!({"reason": "r", "amount": 1000, "currentCancellableAmount": 10_000}),
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    for call in calls {
        let status = call.await.unwrap();
        if status == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(status, StatusCode::CONFLICT);
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        h.sandbox
            .payment_by_merchant_uid("p-race")
            .unwrap()
            .cancel_amount,
        1000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn control_endpoints_speak_v2() {
    let h = v2().await;
    let created = h
        .control(
            Method::POST,
            "/sandbox/payments",
            Some(json!({"payment_id": "p-ctl", "amount": "5000", "method": "virtual_account"})),
        )
        .await;
    let created = assert_ok(&created);
    assert_eq!(created["id"], "p-ctl");
    assert_eq!(created["status"], "PAID");
    assert_eq!(created["method"]["type"], "PaymentMethodVirtualAccount");
    for (method, kind) in [
        ("transfer", "PaymentMethodTransfer"),
        ("mobile", "PaymentMethodMobile"),
    ] {
        let reply = h
            .control(
                Method::POST,
                "/sandbox/payments",
                Some(json!({"payment_id": format!("p-{method}"), "amount": 100, "method": method})),
            )
            .await;
        assert_eq!(assert_ok(&reply)["method"]["type"], kind);
    }
    let duplicate = h
        .control(
            Method::POST,
            "/sandbox/payments",
            Some(json!({"payment_id": "p-ctl", "amount": 1})),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    let bad_method = h
        .control(
            Method::POST,
            "/sandbox/payments",
            Some(json!({"payment_id": "p-x", "amount": 1, "method": "vbank"})),
        )
        .await;
    assert_error(&bad_method, StatusCode::BAD_REQUEST, "INVALID_REQUEST");

    // A console cancel: no balance check, no refund account, not a merchant call.
    let console = h
        .control(
            Method::POST,
            "/sandbox/payments/p-ctl/admin-cancel",
            Some(json!({"amount": 1500, "reason": "콘솔 취소"})),
        )
        .await;
    let console = assert_ok(&console);
    assert_eq!(console["status"], "PARTIAL_CANCELLED");
    assert_eq!(console["cancellations"][0]["trigger"], "CONSOLE");
    assert_eq!(console["cancellations"][0]["reason"], "콘솔 취소");
    let seeded = h.sandbox.payment_by_merchant_uid("p-ctl").unwrap();
    h.sandbox
        .admin_cancel(&seeded.imp_uid, AdminCancel::default())
        .unwrap();
    assert_eq!(get_payment(&h, "p-ctl").await.json["status"], "CANCELLED");
    let unknown = h
        .control(Method::POST, "/sandbox/payments/nope/admin-cancel", None)
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "PAYMENT_NOT_FOUND");

    let stats = h.control(Method::GET, "/sandbox/stats", None).await;
    let stats = assert_ok(&stats);
    assert_eq!(stats["cancel"]["committed"], 0);
    assert_eq!(stats["get_payment"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_api_serves_only_its_own_routes() {
    let v2 = v2().await;
    seed_krw(&v2, "p-routes", 1000);
    let token = v2
        .send(v2.http.post(v2.url("/users/getToken")).json(&json!({
            "imp_key": v2.sandbox.imp_key(), "imp_secret": v2.sandbox.imp_secret()})))
        .await;
    assert_eq!(token.status, StatusCode::NOT_FOUND);
    let find = v2
        .send(
            v2.http
                .get(v2.url("/payments/find/p-routes/paid"))
                .header("authorization", secret_auth(&v2)),
        )
        .await;
    assert_eq!(find.status, StatusCode::NOT_FOUND);
    let v1_cancel = v2
        .send(
            v2.http
                .post(v2.url("/payments/cancel"))
                .header("authorization", secret_auth(&v2))
                .json(&json!({"merchant_uid": "p-routes"})),
        )
        .await;
    assert!(v1_cancel.status.is_client_error(), "{}", v1_cancel.text);
    assert_eq!(
        v2.sandbox
            .payment_by_merchant_uid("p-routes")
            .unwrap()
            .cancel_amount,
        0
    );

    let v1 = Harness::start().await;
    v1.seed_krw("p-routes", 1000);
    let login = v1
        .send(
            v1.http
                .post(v1.url("/login/api-secret"))
                .json(&json!({"apiSecret": v1.sandbox.api_secret()})),
        )
        .await;
    assert_eq!(login.status, StatusCode::NOT_FOUND);
    let v2_cancel = v1
        .send(
            v1.http
                .post(v1.url("/payments/p-routes/cancel"))
                .header(
                    "authorization",
                    format!("PortOne {}", v1.sandbox.api_secret()),
                )
                .json(&json!({"reason": "r"})),
        )
        .await;
    assert_eq!(v2_cancel.status, StatusCode::NOT_FOUND);
    // V1 has no asynchronous cancels to arm.
    let requested = v1
        .control(
            Method::POST,
            "/sandbox/faults",
            Some(json!({"fault": "requested"})),
        )
        .await;
    assert_eq!(requested.status, StatusCode::BAD_REQUEST);
}

/// Webhooks received by the test's own server: headers and raw body.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

#[derive(Default)]
struct Receiver {
    received: Mutex<Vec<Received>>,
    /// How many of the first deliveries to refuse with 500.
    refuse_first: Mutex<u32>,
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Receiver>) -> HttpResponse {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    state.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let mut refuse = state.refuse_first.lock().unwrap();
    if *refuse > 0 {
        *refuse -= 1;
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok().finish()
}

/// A tiny actix receiver on an ephemeral port: its URL and what it got.
async fn start_receiver(refuse_first: u32) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver {
        received: Mutex::default(),
        refuse_first: Mutex::new(refuse_first),
    });
    let data = web::Data::from(Arc::clone(&receiver));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://{addr}/hook"), receiver)
}

/// Standard Webhooks verification written from the specification, not
/// from the sandbox: HMAC-SHA256 over `id.timestamp.body` under the key
/// after `whsec_`, compared with each `v1,` signature of the header.
fn verifies(secret: &str, delivery: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!("{}.{}.{}", delivery.id, delivery.timestamp, delivery.body);
    delivery.signature.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature).is_ok()
    })
}

async fn wait_for(receiver: &Receiver, count: usize) -> Vec<Received> {
    for _ in 0..200 {
        let received = receiver.received.lock().unwrap().clone();
        if received.len() >= count {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "expected {count} webhooks, got {:?}",
        receiver.received.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_are_delivered_as_signed_webhooks() {
    let (url, receiver) = start_receiver(0).await;
    let secret = "whsec_c2VjcmV0LWZvci10aGUtd2ViaG9vay10ZXN0cw==";
    let h = Harness::with_config(SandboxConfig {
        store_id: Some("store-hooks".into()),
        webhook: Some(WebhookTarget {
            url,
            secret: secret.into(),
        }),
        ..v2_config()
    })
    .await;
    let paid = h.seed(NewPayment::new("p-hooks", 10_000, Currency::Krw));
    let partial = cancel(&h, "p-hooks", json!({"reason": "r", "amount": 1000})).await;
    let partial_id = partial.json["cancellation"]["id"].clone();
    h.sandbox
        .inject_fault(Fault::Requested, FaultTarget::Cancel, 1);
    let requested = cancel(&h, "p-hooks", json!({"reason": "r"})).await;
    let requested_id = requested.json["cancellation"]["id"].clone();
    assert_eq!(h.sandbox.complete_requested_cancels(true), 1);

    let received = wait_for(&receiver, 4).await;
    let now = h.sandbox.now();
    let mut ids = Vec::new();
    for delivery in &received {
        assert!(verifies(secret, delivery), "{delivery:?}");
        assert!(!verifies(DEFAULT_WEBHOOK_SECRET, delivery));
        let at: i64 = delivery.timestamp.parse().unwrap();
        assert!((at - now).abs() < 300, "{at} vs {now}");
        ids.push(delivery.id.clone());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "webhook ids are unique");

    let bodies: Vec<Value> = received
        .iter()
        .map(|d| serde_json::from_str(&d.body).unwrap())
        .collect();
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "Transaction.Paid",
            "Transaction.PartialCancelled",
            "Transaction.CancelPending",
            "Transaction.Cancelled"
        ]
    );
    for body in &bodies {
        assert_eq!(body["data"]["paymentId"], "p-hooks");
        assert_eq!(body["data"]["storeId"], "store-hooks");
        assert_eq!(body["data"]["transactionId"], paid.transaction_id.as_str());
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert!(bodies[0]["data"].get("cancellationId").is_none());
    assert_eq!(bodies[1]["data"]["cancellationId"], partial_id);
    assert_eq!(bodies[2]["data"]["cancellationId"], requested_id);
    assert_eq!(bodies[3]["data"]["cancellationId"], requested_id);

    for _ in 0..100 {
        if h.sandbox
            .deliveries()
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliveries = h.sandbox.deliveries();
    assert_eq!(deliveries.len(), 4);
    for (delivery, received) in deliveries.iter().zip(&received) {
        assert_eq!(delivery.status, DeliveryStatus::Delivered);
        assert_eq!(
            (delivery.attempts, delivery.last_http_status),
            (1, Some(200))
        );
        assert_eq!(delivery.body, received.body);
        assert_eq!(delivery.webhook_id, received.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_webhook_is_retried_with_the_same_id() {
    let (url, receiver) = start_receiver(2).await;
    let h = Harness::with_config(SandboxConfig {
        webhook: Some(WebhookTarget::new(url)),
        ..v2_config()
    })
    .await;
    seed_krw(&h, "p-retry", 1000);
    let received = wait_for(&receiver, 3).await;
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|d| d.id == received[0].id));
    assert!(received.iter().all(|d| d.body == received[0].body));
    assert!(received.iter().all(|d| verifies(DEFAULT_WEBHOOK_SECRET, d)));
    let mut delivery = None;
    for _ in 0..100 {
        delivery = h.sandbox.deliveries().pop();
        if delivery
            .as_ref()
            .is_some_and(|d| d.status == DeliveryStatus::Delivered)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery = delivery.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    assert_eq!(delivery.attempts, 3);
    assert_eq!(delivery.event_type, "Transaction.Paid");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_need_the_v2_api_and_a_valid_secret() {
    for config in [
        SandboxConfig {
            webhook: Some(WebhookTarget::new("http://127.0.0.1:9/hook")),
            ..SandboxConfig::default()
        },
        SandboxConfig {
            webhook: Some(WebhookTarget {
                url: "http://127.0.0.1:9/hook".into(),
                secret: "not-a-whsec".into(),
            }),
            ..v2_config()
        },
    ] {
        let error = iamport_sandbox::Sandbox::start(config).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
}
