//! Input and output hygiene (issue #17): a field outside the contract is
//! refused, never read as "refund everything"; authorization comes before
//! the body; a gateway refusal that echoes the refund account, holder or
//! phone is masked in the answer, the journal and the logs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::test::{self, TestRequest};
use actix_web::App;
use async_trait::async_trait;
use common::{cancel_request, order_id, scope_for, send, CapturedLogs, Env, ADMIN_TOKEN};
use iamport_sandbox::{pay_method, Currency, NewPayment};
use refund_core::{
    CancelCommand, CancelReceipt, GatewayError, IamportClient, IamportConfig, IamportCredentials,
    Payment, PaymentGateway, PaymentRef, PaymentStore, RefundService, RefundStatus,
};
use serde_json::{json, Value};

/// The cancel body as a refund-everything request would look once an
/// unknown field is ignored: the amount the client meant is elsewhere.
async fn assert_refused_without_refund(env: &Env, body: Value, field: &str) {
    let app = test::init_service(App::new().service(env.scope())).await;
    let reply = send(&app, cancel_request(body.clone()).to_request()).await;
    reply.assert_error(400, "invalid_request");
    let message = reply.json["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("unknown field `{field}`")),
        "{body}: {message}"
    );
    // The answer says what is allowed, so the client can fix its body.
    assert!(message.contains("cancel_request_amount"), "{message}");
}

#[actix_web::test]
async fn a_foreign_amount_field_is_refused_and_refunds_nothing() {
    let env = Env::start().await;
    let payment = env.seed_krw(10_000).await;
    // i'mport's own name for the amount: ignored, it would refund all 10 000.
    let body = json!({"merchant_uid": payment.merchant_uid, "amount": 1000});
    assert_refused_without_refund(&env, body, "amount").await;
    assert_eq!(env.cancels_attempted(), 0);
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
}

#[actix_web::test]
async fn a_misspelled_amount_is_refused_and_refunds_nothing() {
    let env = Env::start().await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    for (body, field) in [
        (
            json!({"merchant_uid": uid, "cancel_request_ammount": 1000}),
            "cancel_request_ammount",
        ),
        (
            json!({"merchant_uid": uid, "cancelRequestAmount": 1000}),
            "cancelRequestAmount",
        ),
        // A known field next to an unknown one is refused all the same.
        (
            json!({"merchant_uid": uid, "reason": "x", "Cancel_Request_Amount": 1000}),
            "Cancel_Request_Amount",
        ),
    ] {
        assert_refused_without_refund(&env, body, field).await;
    }
    assert_eq!(env.cancels_attempted(), 0);
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
}

/// The body is flat: every contract value is a string or a number. So
/// "nested" can mean two things: contract fields wrapped in an object
/// under a name the contract does not have (the amount one level down,
/// where it used to be ignored), and an object in place of a contract
/// value (refused by its type).
#[actix_web::test]
async fn nested_unknown_fields_are_refused_and_refund_nothing() {
    let env = Env::start().await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    for (body, field) in [
        (
            json!({"merchant_uid": uid, "request": {"cancel_request_amount": 1000}}),
            "request",
        ),
        // PortOne V2's shapes sent to the V1 contract.
        (
            json!({"merchant_uid": uid, "amount": {"total": 1000}}),
            "amount",
        ),
        (
            json!({"merchant_uid": uid, "cancel_request_amount": 1000,
                   "refundAccount": {"bank": "SHINHAN", "number": "56211105948400", "holderName": "Kim"}}),
            "refundAccount",
        ),
    ] {
        assert_refused_without_refund(&env, body, field).await;
    }

    let app = test::init_service(App::new().service(env.scope())).await;
    for (body, field) in [
        (
            json!({"merchant_uid": uid, "cancel_request_amount": {"amount": 1000}}),
            "cancel_request_amount",
        ),
        (
            json!({"merchant_uid": {"merchant_uid": uid}, "cancel_request_amount": 1000}),
            "merchant_uid",
        ),
        (
            json!({"merchant_uid": uid, "refund_holder": "Kim", "refund_bank": "88",
                   "refund_account": {"number": "56211105948400"}}),
            "refund_account",
        ),
    ] {
        let reply = send(&app, cancel_request(body.clone()).to_request()).await;
        reply.assert_error(400, "invalid_request");
        let message = reply.json["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{body}: {message}"
        );
        assert!(!reply.text.contains("56211105948400"), "{}", reply.text);
    }
    assert_eq!(env.cancels_attempted(), 0);
    assert_eq!(
        env.sandbox.payment(&payment.imp_uid).unwrap().cancel_amount,
        0
    );
}

#[actix_web::test]
async fn unknown_field_names_that_could_be_data_are_not_repeated() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let logs = CapturedLogs::start();
    for key in [
        "56211105948400",
        "acct 562-1110594",
        "line\nbreak",
        "`, expected x",
    ] {
        let mut body = json!({"merchant_uid": order_id()});
        body[key] = json!(1);
        let reply = send(&app, cancel_request(body).to_request()).await;
        reply.assert_error(400, "invalid_request");
        let message = reply.json["message"].as_str().unwrap();
        assert!(message.starts_with("unknown field (its name"), "{message}");
        assert!(!message.contains(key), "{message}");
    }
    let logged = logs.text();
    assert!(!logged.contains("56211105948400"), "{logged}");
    assert!(!logged.contains("1110594"), "{logged}");
    assert_eq!(env.cancels_attempted(), 0);
}

#[actix_web::test]
async fn a_duplicate_field_is_refused() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let body = format!(
        r#"{{"merchant_uid":"{}","cancel_request_amount":1000,"cancel_request_amount":null}}"#,
        payment.merchant_uid
    );
    let request = TestRequest::post()
        .uri("/payments/cancel")
        .insert_header(common::admin())
        .insert_header((CONTENT_TYPE, "application/json"))
        .set_payload(body);
    let reply = send(&app, request.to_request()).await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(
        reply.json["message"],
        "duplicate field `cancel_request_amount`"
    );
    assert_eq!(env.cancels_attempted(), 0);
}

/// Whatever an unauthenticated caller sends, the answer is 401 with the
/// bearer challenge, and nothing about the body.
#[actix_web::test]
async fn unauthenticated_requests_get_401_whatever_their_body() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope().body_limit(1024))).await;
    let payment = env.seed_krw(10_000).await;
    let calls = env.gateway_calls();
    let valid = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 1000});
    let huge = json!({"merchant_uid": payment.merchant_uid, "reason": "x".repeat(4096)});
    let bodies: Vec<(&str, Option<&str>, String)> = vec![
        ("empty object", Some("application/json"), "{}".to_owned()),
        ("valid body", Some("application/json"), valid.to_string()),
        (
            "malformed JSON",
            Some("application/json"),
            r#"{"merchant_uid":"#.to_owned(),
        ),
        (
            "not an object",
            Some("application/json"),
            "[1, 2]".to_owned(),
        ),
        (
            "unknown field",
            Some("application/json"),
            r#"{"merchant_uid":"m","amount":1}"#.to_owned(),
        ),
        ("wrong content type", Some("text/plain"), valid.to_string()),
        ("no content type", None, valid.to_string()),
        ("oversize", Some("application/json"), huge.to_string()),
        ("empty body", Some("application/json"), String::new()),
    ];
    for credentials in [
        None,
        Some("Bearer wrong-token-wrong-token-wrong".to_owned()),
        Some(ADMIN_TOKEN.to_owned()),
    ] {
        for (case, content_type, body) in &bodies {
            let mut request = TestRequest::post()
                .uri("/payments/cancel")
                .set_payload(body.clone());
            if let Some(content_type) = content_type {
                request = request.insert_header((CONTENT_TYPE, *content_type));
            }
            if let Some(credentials) = &credentials {
                request = request.insert_header((AUTHORIZATION, credentials.as_str()));
            }
            let reply = send(&app, request.to_request()).await;
            assert_eq!(reply.status.as_u16(), 401, "{case}: {}", reply.text);
            reply.assert_error(401, "unauthorized");
            assert_eq!(
                reply.headers.get(WWW_AUTHENTICATE).map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{case}"
            );
        }
    }
    // A declared length over the limit is answered 401 before the body is read.
    let declared = TestRequest::post()
        .uri("/payments/cancel")
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CONTENT_LENGTH, "1048576"))
        .set_payload("{}");
    send(&app, declared.to_request())
        .await
        .assert_error(401, "unauthorized");
    for request in [
        TestRequest::get().uri(&format!("/payments/{}", payment.merchant_uid)),
        TestRequest::post()
            .uri(&format!("/payments/{}/sync", payment.merchant_uid))
            .insert_header((CONTENT_TYPE, "text/plain"))
            .set_payload("not json"),
    ] {
        let reply = send(&app, request.to_request()).await;
        reply.assert_error(401, "unauthorized");
        assert_eq!(reply.headers.get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
    assert_eq!(env.gateway_calls(), calls);

    // With the token, the same bodies get their own answers.
    let authorized = |body: &str, content_type: &str| {
        TestRequest::post()
            .uri("/payments/cancel")
            .insert_header(common::admin())
            .insert_header((CONTENT_TYPE, content_type.to_owned()))
            .set_payload(body.to_owned())
            .to_request()
    };
    let reply = send(&app, authorized("{}", "application/json")).await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(reply.json["message"], "missing field `merchant_uid`");
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none());
    send(&app, authorized(&valid.to_string(), "text/plain"))
        .await
        .assert_error(415, "unsupported_media_type");
    send(&app, authorized(&huge.to_string(), "application/json"))
        .await
        .assert_error(413, "payload_too_large");
}

/// A gateway whose cancel refusals echo the refund account, holder and
/// phone it was sent, as some PGs do; lookups go to the sandbox.
struct EchoingGateway {
    lookups: IamportClient,
}

#[async_trait]
impl PaymentGateway for EchoingGateway {
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        let account = command
            .account
            .as_ref()
            .expect("the refund account is sent");
        let tel = account.tel.as_deref().unwrap_or_default();
        Err(GatewayError::Rejected {
            code: Some("1".into()),
            message: format!(
                "[PG] 환불계좌({}) 예금주 {} 불일치. 연락처 {} / acct {} / {}",
                account.account,
                account.holder,
                tel,
                account.account.replace('-', ""),
                account.holder.to_uppercase(),
            ),
        })
    }

    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        self.lookups.payment(at).await
    }

    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        self.lookups.find_payment(merchant_uid).await
    }

    fn max_in_flight(&self) -> Duration {
        self.lookups.max_in_flight()
    }

    fn kind(&self) -> refund_core::GatewayKind {
        self.lookups.kind()
    }
}

#[actix_web::test]
async fn an_echoed_account_is_masked_in_the_answer_the_journal_and_the_logs() {
    let env = Env::start().await;
    let payment = env
        .seed(NewPayment::new(order_id(), 10_000, Currency::Krw).pay_method(pay_method::VBANK))
        .await;
    let credentials = IamportCredentials::new(env.sandbox.imp_key(), env.sandbox.imp_secret());
    let lookups =
        IamportClient::new(IamportConfig::new(env.sandbox.base_url(), credentials)).unwrap();
    let service = Arc::new(RefundService::new(
        env.store.clone(),
        Arc::new(EchoingGateway { lookups }),
    ));
    let app = test::init_service(App::new().service(scope_for(service))).await;
    let logs = CapturedLogs::start();

    let account = "562-1110594-8400";
    let reply = send(
        &app,
        cancel_request(json!({
            "merchant_uid": payment.merchant_uid,
            "cancel_request_amount": 1000,
            "refund_holder": "Kim Minsu",
            "refund_bank": "88",
            "refund_account": account,
            "refund_tel": "010-2345-6789",
        }))
        .to_request(),
    )
    .await;
    reply.assert_error(502, "gateway_rejected");
    let shown = reply.json["gateway_message"].as_str().unwrap();
    assert!(shown.starts_with("[PG] 환불계좌("), "{shown}");

    let refunds = env
        .store
        .refunds_of(&payment.merchant_uid, 50)
        .await
        .unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status(), RefundStatus::Failed);
    let stored = refunds[0].state.failure().unwrap().message.clone();
    assert_eq!(stored, shown, "the journal keeps what the client was shown");

    let logged = logs.text();
    assert!(logged.contains("refused"), "logs are captured: {logged}");
    let secrets = [
        account,
        "56211105948400",
        "1110594",
        "Kim Minsu",
        "KIM MINSU",
        "Minsu",
        "010-2345-6789",
        "01023456789",
    ];
    for (place, text) in [
        ("answer", reply.text.as_str()),
        ("journal", &stored),
        ("logs", &logged),
    ] {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} in the {place}: {text}");
        }
    }
    // Not even the last digits: the message is ours to show, and ids or
    // timestamps in logs could contain four digits by chance, so only the
    // message itself is checked for them.
    for fragment in ["8400", "0594", "2345", "6789", "562"] {
        assert!(!shown.contains(fragment), "{fragment} in {shown}");
    }
}

/// Gateways add fields to their notices: the webhook stays tolerant.
#[actix_web::test]
async fn webhook_notices_with_extra_fields_are_accepted() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;
    let notice = json!({
        "imp_uid": payment.imp_uid,
        "merchant_uid": payment.merchant_uid,
        "status": "paid",
        "cancellation_id": "c-1",
        "tx_id": {"nested": true},
    });
    let request = TestRequest::post()
        .uri("/payments/webhook")
        .set_json(notice);
    assert_eq!(send(&app, request.to_request()).await.ok()["code"], "ok");
}
