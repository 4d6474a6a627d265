//! The simulated V1 endpoints, exercised over real HTTP.

mod common;

use std::time::Duration;

use common::Harness;
use iamport_sandbox::{pay_method, Currency, NewPayment, PaymentStatus, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn token_is_reused_while_live_and_wrong_credentials_get_401() {
    let h = Harness::start().await;
    let url = h.url("/users/getToken");

    let first = h
        .send(
            h.http
                .post(&url)
                .json(&json!({"imp_key": "sandbox_key", "imp_secret": "sandbox_secret"})),
        )
        .await;
    let auth = first.assert_ok();
    let token = auth["access_token"].as_str().unwrap();
    assert_eq!(token.len(), 40);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let now = auth["now"].as_i64().unwrap();
    assert_eq!(auth["expired_at"].as_i64().unwrap(), now + 1800);

    // Form-encoded, as well: same live token, same expiry.
    let again = h
        .send(
            h.http
                .post(&url)
                .form(&[("imp_key", "sandbox_key"), ("imp_secret", "sandbox_secret")]),
        )
        .await;
    assert_eq!(again.assert_ok()["access_token"], auth["access_token"]);
    assert_eq!(again.assert_ok()["expired_at"], auth["expired_at"]);

    for body in [
        json!({"imp_key": "sandbox_key", "imp_secret": "wrong"}),
        json!({"imp_key": "other", "imp_secret": "sandbox_secret"}),
        json!({}),
    ] {
        let refused = h.send(h.http.post(&url).json(&body)).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!((refused.code(), refused.response().is_null()), (-1, true));
    }

    let stats = h.sandbox.stats();
    assert_eq!((stats.get_token.requests, stats.get_token.minted), (5, 1));
    assert_eq!(stats.unauthorized, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_is_extended_in_its_last_minute_and_expires() {
    let h = Harness::with_config(SandboxConfig {
        imp_key: "k".into(),
        imp_secret: "s".into(),
        ..SandboxConfig::default()
    })
    .await;
    let issue = || async {
        h.send(
            h.http
                .post(h.url("/users/getToken"))
                .json(&json!({"imp_key": "k", "imp_secret": "s"})),
        )
        .await
        .assert_ok()
        .clone()
    };
    let first = issue().await;
    let expired_at = first["expired_at"].as_i64().unwrap();

    h.sandbox.advance_clock(Duration::from_secs(1800 - 30));
    let extended = issue().await;
    assert_eq!(extended["access_token"], first["access_token"]);
    assert_eq!(extended["expired_at"].as_i64().unwrap(), expired_at + 300);

    let token = first["access_token"].as_str().unwrap();
    let seeded = h.seed_krw("m-expiry", 1000);
    let path = format!("/payments/{}", seeded.imp_uid);
    h.get(&path, token).await.assert_ok();

    h.sandbox.advance_clock(Duration::from_secs(330));
    let expired = h.get(&path, token).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        expired.json,
        json!({"code": -1, "message": "Unauthorized", "response": null})
    );

    let fresh = issue().await;
    assert_ne!(fresh["access_token"], first["access_token"]);
    assert_eq!(h.sandbox.stats().get_token.minted, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_bare_and_imp_token_headers_are_accepted() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-headers", 1000);
    let url = h.url(&format!("/payments/{}", payment.imp_uid));

    for request in [
        h.http
            .get(&url)
            .header("Authorization", format!("Bearer {token}")),
        h.http.get(&url).header("Authorization", token.as_str()),
        h.http.get(&url).header("X-ImpTokenHeader", token.as_str()),
    ] {
        let reply = h.send(request).await;
        assert_eq!(reply.assert_ok()["imp_uid"], payment.imp_uid.as_str());
    }

    for request in [
        h.http.get(&url),
        h.http.get(&url).header(
            "Authorization",
            "Bearer 0123456789abcdef0123456789abcdef01234567",
        ),
    ] {
        let reply = h.send(request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.json,
            json!({"code": -1, "message": "Unauthorized", "response": null})
        );
    }
    let cancel = h
        .send(
            h.http
                .post(h.url("/payments/cancel"))
                .json(&json!({"imp_uid": payment.imp_uid})),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_accepts_form_bodies_and_tolerates_unknown_fields() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-form", 1000);

    let reply = h
        .send(
            h.http
                .post(h.url("/payments/cancel"))
                .header("Authorization", token.as_str())
                .form(&[
                    ("merchant_uid", "m-form"),
                    ("amount", "300"),
                    ("checksum", "1000"),
                    ("reason", "고객 변심"),
                    ("retain_promotion", "true"),
                    ("extra[requester]", "customer"),
                ]),
        )
        .await;
    let body = reply.assert_ok();
    assert_eq!(body["cancel_amount"], 300);
    assert_eq!(body["cancel_history"][0]["reason"], "고객 변심");

    let reply = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": "200", "checksum": 700,
                   "retain_promotion": false, "extra": {"requester": "admin"}}),
        )
        .await;
    assert_eq!(reply.assert_ok()["cancel_amount"], 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn imp_uid_takes_precedence_over_merchant_uid() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-precedence", 1000);

    h.cancel(
        &token,
        json!({"imp_uid": "imp_000000000000", "merchant_uid": "m-precedence", "amount": 100}),
    )
    .await
    .assert_refused();
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );

    let other = h.seed_krw("m-other", 1000);
    let reply = h
        .cancel(
            &token,
            json!({"imp_uid": other.imp_uid, "merchant_uid": "m-precedence", "amount": 100}),
        )
        .await;
    assert_eq!(reply.assert_ok()["merchant_uid"], "m-other");

    let reply = h
        .cancel(
            &token,
            json!({"merchant_uid": "m-precedence", "amount": 100}),
        )
        .await;
    assert_eq!(reply.assert_ok()["imp_uid"], payment.imp_uid.as_str());

    h.cancel(&token, json!({"amount": 100}))
        .await
        .assert_refused();
    h.cancel(&token, json!({"merchant_uid": "m-missing"}))
        .await
        .assert_refused();
}

#[tokio::test(flavor = "multi_thread")]
async fn checksum_mismatch_fails_without_changing_anything() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-checksum", 1000);
    h.sandbox
        .admin_cancel(
            &payment.imp_uid,
            iamport_sandbox::AdminCancel {
                amount: Some(100),
                reason: None,
            },
        )
        .unwrap();

    // The merchant still believes 1000 is cancelable.
    let reply = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": 100, "checksum": 1000}),
        )
        .await;
    reply.assert_refused();
    let after = h.sandbox.payment(&payment.imp_uid).unwrap();
    assert_eq!((after.cancel_amount, after.cancel_history.len()), (100, 1));
    assert_eq!(
        h.sandbox.stats().cancel,
        iamport_sandbox::CancelStats {
            attempted: 1,
            committed: 0
        }
    );

    let reply = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": 100, "checksum": 900}),
        )
        .await;
    assert_eq!(reply.assert_ok()["cancel_amount"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_then_full_cancel_moves_status_and_records_history() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-partial", 1000);

    let partial = h
        .cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": 300, "checksum": 1000, "reason": "partial"}))
        .await;
    let body = partial.assert_ok().clone();
    assert_eq!(
        (body["status"].as_str(), body["cancel_amount"].as_i64()),
        (Some("paid"), Some(300))
    );
    assert_eq!(body["cancelled_at"], 0);
    assert_eq!(body["cancel_reason"], "partial");
    let entry = &body["cancel_history"][0];
    assert_eq!(entry["amount"], 300);
    assert_eq!(entry["reason"], "partial");
    assert!(entry["cancelled_at"].as_i64().unwrap() > 0);
    for key in ["pg_tid", "cancellation_id", "receipt_url"] {
        assert!(!entry[key].as_str().unwrap().is_empty(), "{key}");
    }

    let full = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": 700, "checksum": 700}),
        )
        .await;
    let body = full.assert_ok().clone();
    assert_eq!(
        (body["status"].as_str(), body["cancel_amount"].as_i64()),
        (Some("cancelled"), Some(1000))
    );
    assert!(body["cancelled_at"].as_i64().unwrap() > 0);
    let history = body["cancel_history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_ne!(history[0]["pg_tid"], history[1]["pg_tid"]);
    assert_ne!(history[0]["cancellation_id"], history[1]["cancellation_id"]);
    assert_eq!(body["cancel_receipt_urls"].as_array().unwrap().len(), 2);
    assert_eq!(body["amount"], 1000);

    // Nothing left: any further cancel fails.
    h.cancel(&token, json!({"imp_uid": payment.imp_uid}))
        .await
        .assert_refused();
    h.cancel(
        &token,
        json!({"imp_uid": payment.imp_uid, "amount": 1, "checksum": 0}),
    )
    .await
    .assert_refused();
    assert_eq!(h.sandbox.stats().cancel.committed, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_the_cancelable_amount_fails() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-over", 1000);
    h.cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": 400}))
        .await
        .assert_ok();

    h.cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": 601}))
        .await
        .assert_refused();
    h.cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": -1}))
        .await
        .assert_refused();
    h.cancel(
        &token,
        json!({"imp_uid": payment.imp_uid, "amount": {"value": 1}}),
    )
    .await
    .assert_refused();
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_zero_amount_cancels_the_whole_balance() {
    let h = Harness::start().await;
    let token = h.token().await;

    let a = h.seed_krw("m-missing-amount", 1000);
    h.cancel(&token, json!({"imp_uid": a.imp_uid, "amount": 250}))
        .await
        .assert_ok();
    let body = h
        .cancel(&token, json!({"imp_uid": a.imp_uid, "checksum": 750}))
        .await;
    let body = body.assert_ok();
    assert_eq!(
        (body["cancel_amount"].as_i64(), body["status"].as_str()),
        (Some(1000), Some("cancelled"))
    );
    assert_eq!(body["cancel_history"][1]["amount"], 750);

    let b = h.seed_krw("m-zero-amount", 5000);
    let body = h
        .cancel(&token, json!({"imp_uid": b.imp_uid, "amount": 0}))
        .await;
    assert_eq!(body.assert_ok()["cancel_amount"], 5000);
}

#[tokio::test(flavor = "multi_thread")]
async fn usd_amounts_are_exact_to_the_cent() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed(NewPayment::new("m-usd", 1006, Currency::Usd));

    let first = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": 10.05, "checksum": 10.06}),
        )
        .await;
    first.assert_ok();
    assert!(
        first
            .text
            .contains(r#""amount":10.06,"cancel_amount":10.05,"currency":"USD""#),
        "{}",
        first.text
    );

    // Not representable in cents, or in won: refused, nothing changes.
    h.cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": 0.001}))
        .await
        .assert_refused();
    h.cancel(
        &token,
        json!({"imp_uid": payment.imp_uid, "amount": 0.01, "checksum": 0.011}),
    )
    .await
    .assert_refused();

    // Exactly what is left, spelled as a string with a trailing zero.
    let last = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": "0.010", "checksum": 0.01}),
        )
        .await;
    assert_eq!(last.assert_ok()["status"], "cancelled");
    assert!(
        last.text.contains(r#""cancel_amount":10.06,"#),
        "{}",
        last.text
    );
    assert!(last.text.contains(r#""amount":0.01,"#), "{}", last.text);
    let stored = h.sandbox.payment(&payment.imp_uid).unwrap();
    assert_eq!(
        (stored.cancel_amount, stored.status),
        (1006, PaymentStatus::Cancelled)
    );

    let krw = h.seed_krw("m-krw-decimals", 1000);
    h.cancel(&token, json!({"imp_uid": krw.imp_uid, "amount": 100.5}))
        .await
        .assert_refused();
    let whole = h
        .cancel(&token, json!({"imp_uid": krw.imp_uid, "amount": 100.0}))
        .await;
    assert_eq!(whole.assert_ok()["cancel_amount"], 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_account_refunds_need_the_refund_account() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment =
        h.seed(NewPayment::new("m-vbank", 30_000, Currency::Krw).pay_method(pay_method::VBANK));

    let looked_up = h
        .get(&format!("/payments/{}", payment.imp_uid), &token)
        .await;
    let body = looked_up.assert_ok();
    assert_eq!(body["pay_method"], "vbank");
    assert!(body["vbank_num"].is_string() && body["vbank_code"].is_string());
    assert!(body["vbank_date"].as_i64().unwrap() > 0);

    h.cancel(
        &token,
        json!({"imp_uid": payment.imp_uid, "amount": 10_000}),
    )
    .await
    .assert_refused();
    h.cancel(
        &token,
        json!({"imp_uid": payment.imp_uid, "amount": 10_000, "refund_holder": "홍길동", "refund_bank": "88"}),
    )
    .await
    .assert_refused();
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );

    let reply = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": 10_000, "refund_holder": "홍길동",
                   "refund_bank": "88", "refund_account": "56211105948400", "refund_tel": "01012345678"}),
        )
        .await;
    assert_eq!(reply.assert_ok()["cancel_amount"], 10_000);

    let card = h.seed_krw("m-card", 1000);
    h.get(&format!("/payments/{}", card.imp_uid), &token)
        .await
        .assert_ok();
    let body = h.cancel(&token, json!({"imp_uid": card.imp_uid})).await;
    assert!(body.assert_ok()["vbank_num"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn phone_payments_cannot_be_cancelled_after_their_month() {
    let h = Harness::start().await;
    let token = h.token().await;
    let forty_days_ago = h.sandbox.now() - 40 * 24 * 3600;
    let old = h.seed(
        NewPayment::new("m-phone-old", 5000, Currency::Krw)
            .pay_method(pay_method::PHONE)
            .paid_at(forty_days_ago),
    );
    h.cancel(&token, json!({"imp_uid": old.imp_uid}))
        .await
        .assert_refused();
    assert_eq!(
        h.sandbox.payment(&old.imp_uid).unwrap().status,
        PaymentStatus::Paid
    );

    let fresh =
        h.seed(NewPayment::new("m-phone-new", 5000, Currency::Krw).pay_method(pay_method::PHONE));
    h.cancel(&token, json!({"imp_uid": fresh.imp_uid}))
        .await
        .assert_ok();

    // A card paid just as long ago is still refundable.
    let card = h.seed(NewPayment::new("m-card-old", 5000, Currency::Krw).paid_at(forty_days_ago));
    h.cancel(&token, json!({"imp_uid": card.imp_uid}))
        .await
        .assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_paid_payments_can_be_cancelled() {
    let h = Harness::start().await;
    let token = h.token().await;
    for (merchant_uid, status) in [
        ("m-ready", PaymentStatus::Ready),
        ("m-failed", PaymentStatus::Failed),
    ] {
        let payment = h.seed(NewPayment::new(merchant_uid, 1000, Currency::Krw).status(status));
        h.cancel(&token, json!({"imp_uid": payment.imp_uid}))
            .await
            .assert_refused();
        assert_eq!(h.sandbox.payment(&payment.imp_uid).unwrap().status, status);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lookups_by_imp_uid_and_merchant_uid() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed(NewPayment {
        name: Some("티셔츠".into()),
        buyer_name: Some("홍길동".into()),
        ..NewPayment::new("m-lookup", 1000, Currency::Krw)
    });

    let by_id = h
        .get(&format!("/payments/{}", payment.imp_uid), &token)
        .await;
    let body = by_id.assert_ok();
    for (key, value) in [
        ("merchant_uid", json!("m-lookup")),
        ("name", json!("티셔츠")),
        ("buyer_name", json!("홍길동")),
        ("status", json!("paid")),
        ("currency", json!("KRW")),
        ("pay_method", json!("card")),
        ("escrow", json!(false)),
        ("cancel_history", json!([])),
        ("cancelled_at", json!(0)),
        ("failed_at", json!(0)),
    ] {
        assert_eq!(body[key], value, "{key}");
    }
    assert!(body["paid_at"].as_i64().unwrap() > 0);
    assert!(body["pg_tid"].is_string() && body["receipt_url"].is_string());

    let missing = h.get("/payments/imp_000000000000", &token).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!((missing.code(), missing.response().is_null()), (-1, true));

    let found = h.get("/payments/find/m-lookup", &token).await;
    assert_eq!(found.assert_ok()["imp_uid"], payment.imp_uid.as_str());
    let found = h
        .get("/payments/find/m-lookup/paid?sorting=-started", &token)
        .await;
    assert_eq!(found.assert_ok()["imp_uid"], payment.imp_uid.as_str());
    let wrong_status = h.get("/payments/find/m-lookup/cancelled", &token).await;
    assert_eq!(wrong_status.status, StatusCode::NOT_FOUND);
    assert_eq!(
        h.get("/payments/find/m-nobody", &token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/payments/find/m-lookup/bogus", &token).await.status,
        StatusCode::BAD_REQUEST
    );

    h.cancel(&token, json!({"imp_uid": payment.imp_uid}))
        .await
        .assert_ok();
    let cancelled = h.get("/payments/find/m-lookup/cancelled", &token).await;
    assert_eq!(cancelled.assert_ok()["status"], "cancelled");

    let stats = h.sandbox.stats();
    assert_eq!((stats.get_payment, stats.find_payment), (2, 6));
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_is_added_to_gateway_calls_only() {
    let h = Harness::with_config(SandboxConfig {
        latency: Duration::from_millis(250),
        ..SandboxConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    h.token().await;
    assert!(started.elapsed() >= Duration::from_millis(250));

    let started = std::time::Instant::now();
    h.control(reqwest::Method::GET, "/sandbox/stats", None)
        .await
        .assert_ok();
    assert!(started.elapsed() < Duration::from_millis(250));
}

#[tokio::test(flavor = "current_thread")]
async fn runs_on_a_current_thread_runtime_and_stops_when_dropped() {
    let sandbox = Sandbox::start(SandboxConfig {
        workers: 1,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/sandbox/stats", sandbox.base_url());
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    drop(sandbox);
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if fresh.get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the sandbox kept serving after being dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_stop_releases_the_port() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let addr = sandbox.addr();
    sandbox.stop().await;
    std::net::TcpListener::bind(addr).expect("the port is free again after stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_workers_is_a_configuration_error() {
    let error = Sandbox::start(SandboxConfig {
        workers: 0,
        ..SandboxConfig::default()
    })
    .await
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}
