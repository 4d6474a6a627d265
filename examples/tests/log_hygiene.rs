//! Log hygiene: a full refund flow with the most verbose logging (`debug`
//! everywhere, `trace` for our crates), and afterwards none of the secrets
//! appear anywhere in what the merchant server printed or answered: the
//! REST API secret, every access token the gateway minted for it, the admin
//! token, the refund account numbers, and the account holder's name and
//! phone.
//!
//! The flow covers each place a secret passes: the token fetch, a virtual-
//! account refund with its account, a 401 that forces a token refresh, a
//! refusal from i'mport, an unknown outcome, request validation of a bad
//! account number, a wrong admin token, sync, view and webhook.

mod common;

use common::{Answer, MerchantServer, SandboxProcess, TestDatabase};
use serde_json::{json, Value};

/// Every level of every crate, and `trace` for ours.
const VERBOSE: &str = "debug,merchant_server=trace,refund_examples=trace,refund_core=trace,\
                       refund_actix=trace,storage_sql=trace,tracing_actix_web=trace";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_account_numbers_never_reach_the_output() {
    let database = TestDatabase::sqlite();
    let sandbox = SandboxProcess::start().await;
    let mut server = MerchantServer::start(&sandbox, &database.url, &[("RUST_LOG", VERBOSE)]).await;
    let account = format!(
        "{}",
        10_000_000_000_000u64 + rand::random::<u64>() % 89_999_999_999_999
    );
    // Seventeen digits: one too many.
    let bad_account = format!("{account}777");
    let mut answers: Vec<Answer> = Vec::new();

    let merchant_uid = format!("logs-{}", common::random_hex(6));
    let imp_uid = sandbox
        .create_payment(&merchant_uid, "50000", json!({"pay_method": "vbank"}))
        .await;
    answers.push(server.webhook(&imp_uid, &merchant_uid).await);
    let first_token = sandbox.live_token().await;

    let refund = |amount: i64, account: &str| -> Value {
        json!({
            "merchant_uid": merchant_uid,
            "cancel_request_amount": amount,
            "reason": "log hygiene",
            "refund_holder": "홍길동",
            "refund_bank": "04",
            "refund_account": account,
            "refund_tel": "010-1234-5678",
        })
    };
    let expect = |answer: &Answer, status: u16| {
        assert_eq!(answer.status, status, "{}", answer.text);
    };

    // A virtual-account refund, with an idempotency key and its replay.
    let answer = server.cancel(&refund(1000, &account), Some("logs-1")).await;
    expect(&answer, 200);
    answers.push(answer);
    answers.push(server.cancel(&refund(1000, &account), Some("logs-1")).await);

    // Every token revoked: the next call gets a 401 and refreshes once.
    sandbox.arm(json!({"fault": "revoke_tokens"})).await;
    let answer = server.cancel(&refund(2000, &account), None).await;
    expect(&answer, 200);
    answers.push(answer);
    let second_token = sandbox.live_token().await;
    assert_ne!(first_token, second_token);

    // Refunded in the console meanwhile: i'mport refuses our stale checksum.
    sandbox.admin_cancel(&imp_uid, "500").await;
    let answer = server.cancel(&refund(1000, &account), None).await;
    expect(&answer, 409);
    answers.push(answer);

    // A 5xx before commit: answered, looked up, nothing applied (502).
    sandbox.arm(json!({"fault": "fail_before_commit"})).await;
    let answer = server.cancel(&refund(1000, &account), Some("logs-2")).await;
    expect(&answer, 502);
    answers.push(answer);

    // No answer at all: the outcome is unknown, the refund stays pending.
    sandbox.arm(json!({"fault": "drop_before_commit"})).await;
    let answer = server.cancel(&refund(1000, &account), Some("logs-3")).await;
    expect(&answer, 202);
    answers.push(answer);

    // Refused before any lookup: a malformed account, a wrong admin token.
    let answer = server.cancel(&refund(1000, &bad_account), None).await;
    expect(&answer, 400);
    answers.push(answer);
    let wrong_admin = server
        .anonymous(reqwest::Method::GET, &format!("/payments/{merchant_uid}"))
        .header("Authorization", format!("Bearer {}x", server.admin_token));
    let answer = server.send(wrong_admin).await;
    expect(&answer, 401);
    answers.push(answer);

    answers.push(server.sync(&merchant_uid).await);
    answers.push(server.view(&merchant_uid).await);
    answers.push(server.webhook(&imp_uid, &merchant_uid).await);

    let stats = sandbox.stats().await;
    assert_eq!(stats.get_token.minted, 2, "we know every token minted");
    assert!(stats.unauthorized >= 1, "the revoked token was refused");
    server.kill();
    let output = server.output();
    assert!(output.contains("DEBUG"), "debug logging was on");
    assert!(
        output.contains("refreshing it once"),
        "the 401 refresh happened and was logged"
    );

    let secrets = [
        ("imp_secret", sandbox.imp_secret.as_str()),
        ("first access token", first_token.as_str()),
        ("second access token", second_token.as_str()),
        ("admin token", server.admin_token.as_str()),
        ("refund account", account.as_str()),
        ("malformed refund account", bad_account.as_str()),
        ("account holder", "홍길동"),
        ("holder's phone", "010-1234-5678"),
    ];
    let bodies: String = answers.iter().map(|a| a.text.as_str()).collect();
    for (what, secret) in secrets {
        let line = output.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "the {what} was logged: {}", line.unwrap());
        assert!(
            !bodies.contains(secret),
            "the {what} was in an answer: {bodies}"
        );
    }
    common::report(&format!(
        "log hygiene: {} lines of debug/trace output and {} answers checked for {} values \
         (imp_secret, 2 access tokens, admin token, 2 account numbers, holder, phone): none found",
        output.lines().count(),
        answers.len(),
        secrets.len()
    ));
}
