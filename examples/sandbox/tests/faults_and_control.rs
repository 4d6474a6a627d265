//! Fault injection, control endpoints and concurrency, over real HTTP.

mod common;

use std::time::Duration;

use common::Harness;
use iamport_sandbox::{Fault, FaultTarget, PaymentStatus};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn hold_after_commit_commits_then_delays_the_reply() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-hold", 1000);
    h.control(
        Method::POST,
        "/sandbox/faults",
        Some(json!({"fault": "hold_after_commit", "hold_ms": 600})),
    )
    .await
    .assert_ok();

    let outcome = h
        .http
        .post(h.url("/payments/cancel"))
        .bearer_auth(&token)
        .json(&json!({"imp_uid": payment.imp_uid, "amount": 100, "checksum": 1000}))
        .timeout(Duration::from_millis(150))
        .send()
        .await;
    assert!(outcome.is_err_and(|e| e.is_timeout()));
    // The client gave up, yet the gateway has cancelled (polled, in case the
    // machine is so loaded that the commit lags the client's timeout).
    let mut committed = 0;
    for _ in 0..100 {
        committed = h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount;
        if committed != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(committed, 100);
    assert_eq!(h.sandbox.stats().cancel.committed, 1);

    // Only one call was held: the next one answers at once.
    let reply = h
        .get(&format!("/payments/{}", payment.imp_uid), &token)
        .await;
    assert_eq!(reply.assert_ok()["cancel_amount"], 100);
    let reply = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": 100, "checksum": 900}),
        )
        .await;
    assert_eq!(reply.assert_ok()["cancel_amount"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_before_commit_answers_503_and_changes_nothing() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-fail-before", 1000);
    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);

    let reply = h
        .cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": 100}))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );

    let reply = h
        .cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": 100}))
        .await;
    assert_eq!(reply.assert_ok()["cancel_amount"], 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_after_commit_answers_500_but_the_cancel_stands() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-fail-after", 1000);
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);

    let reply = h
        .cancel(
            &token,
            json!({"imp_uid": payment.imp_uid, "amount": 100, "checksum": 1000}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let stored = h.sandbox.payment(&payment.imp_uid).unwrap();
    assert_eq!(
        (stored.cancel_amount, stored.cancel_history.len()),
        (100, 1)
    );

    // A blind retry with the same checksum is stopped by the gateway.
    h.cancel(
        &token,
        json!({"imp_uid": payment.imp_uid, "amount": 100, "checksum": 1000}),
    )
    .await
    .assert_refused();
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_after_commit_closes_the_connection_without_a_reply() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-drop-after", 1000);
    h.control(
        Method::POST,
        "/sandbox/faults",
        Some(json!({"fault": "drop_after_commit"})),
    )
    .await
    .assert_ok();

    let outcome = h
        .http
        .post(h.url("/payments/cancel"))
        .bearer_auth(&token)
        .json(&json!({"imp_uid": payment.imp_uid, "amount": 300}))
        .send()
        .await;
    let error = outcome.expect_err("no reply must arrive");
    assert!(!error.is_timeout(), "{error:?}");
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        300
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_before_commit_closes_the_connection_and_changes_nothing() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-drop-before", 1000);
    h.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 1);

    let outcome = h
        .http
        .post(h.url("/payments/cancel"))
        .bearer_auth(&token)
        .json(&json!({"imp_uid": payment.imp_uid}))
        .send()
        .await;
    assert!(outcome.is_err());
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
    assert_eq!(
        h.sandbox.stats().cancel,
        iamport_sandbox::CancelStats {
            attempted: 1,
            committed: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_tokens_is_immediate() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-revoke", 1000);
    let path = format!("/payments/{}", payment.imp_uid);
    h.get(&path, &token).await.assert_ok();

    let reply = h
        .control(
            Method::POST,
            "/sandbox/faults",
            Some(json!({"fault": "revoke_tokens"})),
        )
        .await;
    assert_eq!(reply.assert_ok()["armed"], json!([]));
    assert_eq!(h.get(&path, &token).await.status, StatusCode::UNAUTHORIZED);
    h.cancel(&token, json!({"imp_uid": payment.imp_uid})).await;
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );

    let fresh = h.token().await;
    assert_ne!(fresh, token);
    h.get(&path, &fresh).await.assert_ok();

    h.sandbox.revoke_tokens();
    assert_eq!(h.get(&path, &fresh).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_is_a_200_that_is_not_json() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-garbage", 1000);
    h.control(
        Method::POST,
        "/sandbox/faults",
        Some(json!({"fault": "garbage", "endpoint": "any", "times": 2})),
    )
    .await
    .assert_ok();

    let reply = h.cancel(&token, json!({"imp_uid": payment.imp_uid})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<serde_json::Value>(&reply.text).is_err(),
        "{}",
        reply.text
    );
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );

    let reply = h
        .get(&format!("/payments/{}", payment.imp_uid), &token)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json.is_null(), "{}", reply.text);

    h.get(&format!("/payments/{}", payment.imp_uid), &token)
        .await
        .assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_target_endpoints_count_down_and_can_be_cleared() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-targets", 1000);
    let path = format!("/payments/{}", payment.imp_uid);

    h.control(
        Method::POST,
        "/sandbox/faults",
        Some(json!({"fault": "fail_before_commit", "endpoint": "get", "times": 2})),
    )
    .await
    .assert_ok();
    // A cancel is not a GET: it goes through untouched.
    h.cancel(&token, json!({"imp_uid": payment.imp_uid, "amount": 10}))
        .await
        .assert_ok();
    assert_eq!(
        h.get(&path, &token).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let listed = h.control(Method::GET, "/sandbox/faults", None).await;
    assert_eq!(
        listed.assert_ok()["armed"],
        json!([{"fault": "fail_before_commit", "endpoint": "get", "remaining": 1}])
    );
    assert_eq!(
        h.get("/payments/find/m-targets", &token).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.get(&path, &token).await.assert_ok();

    // Unauthenticated calls do not use faults up.
    h.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Any, 5);
    assert_eq!(h.get(&path, "nope").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.sandbox.armed_faults()[0].remaining, 5);
    let cleared = h.control(Method::DELETE, "/sandbox/faults", None).await;
    assert_eq!(cleared.assert_ok()["armed"], json!([]));
    h.get(&path, &token).await.assert_ok();

    // getToken can be targeted as well.
    h.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Token, 1);
    let reply = h
        .send(
            h.http
                .post(h.url("/users/getToken"))
                .json(&json!({"imp_key": "sandbox_key", "imp_secret": "sandbox_secret"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    let bad = h
        .control(
            Method::POST,
            "/sandbox/faults",
            Some(json!({"fault": "meteor"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_cancels_with_the_same_checksum_commit_exactly_once() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed_krw("m-race", 10_000);

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = h
            .http
            .post(h.url("/payments/cancel"))
            .bearer_auth(&token)
            .json(&json!({"imp_uid": payment.imp_uid, "amount": 1000, "checksum": 10_000}));
        attempts.spawn(async move {
            let reply = request.send().await.expect("request completes");
            assert_eq!(reply.status(), StatusCode::OK);
            let body: serde_json::Value = reply.json().await.expect("JSON reply");
            body["code"].as_i64().expect("code")
        });
    }
    let codes = attempts.join_all().await;
    let succeeded = codes.iter().filter(|&&code| code == 0).count();
    assert_eq!((succeeded, codes.len()), (1, 50));

    let stored = h.sandbox.payment(&payment.imp_uid).unwrap();
    assert_eq!(
        (stored.cancel_amount, stored.cancel_history.len()),
        (1000, 1)
    );
    let stats = h.sandbox.stats();
    assert_eq!((stats.cancel.attempted, stats.cancel.committed), (50, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn control_endpoints_seed_cancel_and_count() {
    let h = Harness::start().await;
    let created = h
        .control(
            Method::POST,
            "/sandbox/payments",
            Some(
                json!({"merchant_uid": "m-http", "amount": 12.5, "currency": "USD",
                        "pay_method": "card", "name": "mug", "buyer_name": "Kim"}),
            ),
        )
        .await;
    let body = created.assert_ok().clone();
    let imp_uid = body["imp_uid"].as_str().unwrap().to_owned();
    assert!(imp_uid.starts_with("imp_") && imp_uid.len() == 16);
    assert!(
        created
            .text
            .contains(r#""amount":12.5,"cancel_amount":0,"currency":"USD""#),
        "{}",
        created.text
    );
    assert_eq!(
        (body["status"].as_str(), body["name"].as_str()),
        (Some("paid"), Some("mug"))
    );

    let duplicate = h
        .control(
            Method::POST,
            "/sandbox/payments",
            Some(json!({"merchant_uid": "m-http", "amount": 1})),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_ne!(duplicate.code(), 0);
    for invalid in [
        json!({"merchant_uid": "m-x", "amount": 10.001, "currency": "USD"}),
        json!({"merchant_uid": "m-x", "amount": 1, "currency": "XYZ"}),
        json!({"amount": 1}),
        json!({"merchant_uid": "m-x", "amount": 0}),
    ] {
        let reply = h
            .control(Method::POST, "/sandbox/payments", Some(invalid))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }

    let paid_at = h.sandbox.now() - 3600;
    let vbank = h
        .control(
            Method::POST,
            "/sandbox/payments",
            Some(json!({"merchant_uid": "m-http-vbank", "amount": 5000, "pay_method": "vbank", "paid_at": paid_at})),
        )
        .await;
    assert_eq!(vbank.assert_ok()["paid_at"], paid_at);

    // An admin-console cancel: no checksum, no refund account needed.
    let admin_path = format!("/sandbox/payments/{imp_uid}/admin-cancel");
    let cancelled = h
        .control(
            Method::POST,
            &admin_path,
            Some(json!({"amount": 2.25, "reason": "console"})),
        )
        .await;
    assert!(
        cancelled.text.contains(r#""cancel_amount":2.25,"#),
        "{}",
        cancelled.text
    );
    let over = h
        .control(Method::POST, &admin_path, Some(json!({"amount": 100})))
        .await;
    assert_eq!(over.status, StatusCode::CONFLICT);
    let rest = h.control(Method::POST, &admin_path, None).await;
    assert_eq!(rest.assert_ok()["status"], "cancelled");
    let unknown = h
        .control(
            Method::POST,
            "/sandbox/payments/imp_000000000000/admin-cancel",
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        h.sandbox.payment_by_merchant_uid("m-http").unwrap().status,
        PaymentStatus::Cancelled
    );

    let token = h.token().await;
    h.get(&format!("/payments/{imp_uid}"), &token)
        .await
        .assert_ok();
    let stats = h.control(Method::GET, "/sandbox/stats", None).await;
    assert_eq!(
        stats.assert_ok(),
        &json!({"get_token": {"requests": 1, "minted": 1}, "cancel": {"attempted": 0, "committed": 0},
                "get_payment": 1, "find_payment": 0, "unauthorized": 0})
    );
    let reset = h.control(Method::POST, "/sandbox/reset-stats", None).await;
    assert_eq!(reset.assert_ok()["get_payment"], 1);
    assert_eq!(h.sandbox.stats(), iamport_sandbox::Stats::default());

    let clock = h
        .control(
            Method::POST,
            "/sandbox/clock",
            Some(json!({"advance_secs": 1000})),
        )
        .await;
    assert_eq!(clock.assert_ok()["offset_secs"], 1000);
    assert_eq!(
        h.get(&format!("/payments/{imp_uid}"), &token).await.status,
        StatusCode::OK
    );
    h.control(
        Method::POST,
        "/sandbox/clock",
        Some(json!({"advance_secs": 1000})),
    )
    .await
    .assert_ok();
    assert_eq!(
        h.get(&format!("/payments/{imp_uid}"), &token).await.status,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        h.control(Method::GET, "/nowhere", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_account_refuses_repeating_the_refund_account() {
    let h = Harness::start().await;
    let token = h.token().await;
    let payment = h.seed(
        iamport_sandbox::NewPayment::new("m-echo", 1000, iamport_sandbox::Currency::Krw)
            .pay_method(iamport_sandbox::pay_method::VBANK),
    );
    h.control(
        Method::POST,
        "/sandbox/faults",
        Some(json!({"fault": "echo_account"})),
    )
    .await
    .assert_ok();
    let body = json!({"imp_uid": payment.imp_uid, "refund_holder": "홍길동",
                      "refund_bank": "088", "refund_account": "110123456789"});
    let reply = h.cancel(&token, body.clone()).await;
    reply.assert_refused();
    let message = reply.json["message"].as_str().unwrap();
    assert!(message.contains("110123456789") && message.contains("홍길동"));
    assert_eq!(
        h.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
    // A lookup does not use the fault up; the next cancel does and succeeds.
    h.sandbox
        .inject_fault(Fault::EchoAccount, FaultTarget::Any, 1);
    h.get(&format!("/payments/{}", payment.imp_uid), &token)
        .await
        .assert_ok();
    h.cancel(&token, body.clone()).await.assert_refused();
    assert_eq!(
        h.cancel(&token, body).await.assert_ok()["cancel_amount"],
        1000
    );
}
