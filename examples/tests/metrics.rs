//! `GET /metrics` of a running `merchant-server`: every metric DESIGN.md
//! names moves when its event happens, in Prometheus' text format.
//!
//! The flow: a webhook imports a payment (token fetch, payment lookup,
//! webhook), a refund succeeds (cancel answered, settled via `answer`), an
//! unknown order is refused (`payment_not_found`), a cancel whose reply is
//! dropped stays pending (202 `refund_pending`) and a sync settles it
//! (settled via `sync`).

mod common;

use common::{MerchantServer, SandboxProcess, TestDatabase};
use reqwest::Method;
use serde_json::json;

/// The value of the sample `name{labels}` (labels in the exporter's
/// order), or 0 when the series does not exist yet.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

async fn scrape(server: &MerchantServer) -> String {
    let answer = server.send(server.anonymous(Method::GET, "/metrics")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_moves_with_its_event() {
    let database = TestDatabase::sqlite();
    let sandbox = SandboxProcess::start().await;
    let server = MerchantServer::start(&sandbox, &database.url, &[]).await;

    let started = scrape(&server).await;
    assert!(
        sample(&started, r#"refund_token_fetches_total{gateway="iamport"}"#) >= 1.0,
        "the start-up credential check fetched a token:\n{started}"
    );

    let merchant_uid = format!("metrics-{}", common::random_hex(6));
    let imp_uid = sandbox
        .create_payment(&merchant_uid, "10000", json!({}))
        .await;
    server.import(&imp_uid, &merchant_uid).await;
    let body = |amount: i64| json!({"merchant_uid": merchant_uid, "cancel_request_amount": amount});
    assert_eq!(server.cancel(&body(1000), None).await.status, 200);
    let unknown = json!({"merchant_uid": "metrics-nobody"});
    assert_eq!(
        server.cancel(&unknown, None).await.code(),
        "payment_not_found"
    );
    sandbox.arm(json!({"fault": "drop_after_commit"})).await;
    assert_eq!(server.cancel(&body(2000), None).await.status, 202);
    assert_eq!(server.sync(&merchant_uid).await.status, 200);

    let text = scrape(&server).await;
    let expect = |series: &str, at_least: f64| {
        let value = sample(&text, series);
        assert!(
            value >= at_least,
            "{series} = {value}, expected >= {at_least}:\n{text}"
        );
    };
    expect(r#"refund_cancel_requests_total{code="ok"}"#, 1.0);
    expect(
        r#"refund_cancel_requests_total{code="payment_not_found"}"#,
        1.0,
    );
    expect(
        r#"refund_cancel_requests_total{code="refund_pending"}"#,
        1.0,
    );
    expect(
        r#"refund_settlements_total{status="succeeded",via="answer"}"#,
        1.0,
    );
    expect(
        r#"refund_settlements_total{status="succeeded",via="sync"}"#,
        1.0,
    );
    expect(
        r#"refund_gateway_requests_total{gateway="iamport",operation="cancel",outcome="ok"}"#,
        1.0,
    );
    expect(
        r#"refund_gateway_requests_total{gateway="iamport",operation="cancel",outcome="unknown"}"#,
        1.0,
    );
    expect(
        r#"refund_gateway_requests_total{gateway="iamport",operation="payment",outcome="ok"}"#,
        2.0,
    );
    expect(
        r#"refund_gateway_requests_total{gateway="iamport",operation="token",outcome="ok"}"#,
        1.0,
    );
    expect(r#"refund_token_fetches_total{gateway="iamport"}"#, 1.0);
    expect(
        r#"refund_webhooks_total{gateway="iamport",outcome="ok"}"#,
        1.0,
    );
    expect(
        r#"refund_gateway_request_duration_seconds_count{gateway="iamport",operation="cancel"}"#,
        2.0,
    );
    expect(
        r#"refund_gateway_request_duration_seconds_bucket{gateway="iamport",operation="cancel",le="+Inf"}"#,
        2.0,
    );
    assert!(
        text.contains("# TYPE refund_gateway_request_duration_seconds histogram"),
        "{text}"
    );
    // No series is labelled with an id.
    assert!(
        !text.contains(&merchant_uid) && !text.contains(&imp_uid),
        "{text}"
    );
}
