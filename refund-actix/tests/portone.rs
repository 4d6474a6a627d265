//! The scope on PortOne V2, over real HTTP end to end: the refund routes
//! served by an actix-web server on 127.0.0.1, the `PortOneClient` talking
//! to the sandbox in V2 mode, and the sandbox delivering signed webhooks
//! back to the server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use iamport_sandbox::{
    AdminCancel, Api, Currency, Fault, FaultTarget, NewPayment, Payment, Sandbox, SandboxConfig,
    WebhookTarget, DEFAULT_WEBHOOK_SECRET,
};
use refund_actix::{BearerTokenAuthorizer, PortOneWebhookSecret, RefundScope};
use refund_core::testkit::ManualClock;
use refund_core::{
    MemoryPaymentStore, PaymentRef, PaymentStore, PortOneAuth, PortOneClient, PortOneConfig,
    RefundId, RefundService, RefundState, RefundStatus,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// How the harness is built.
struct Options {
    /// Sandbox delivers signed webhooks to the server (and the scope checks
    /// them with the sandbox's secret).
    webhooks: bool,
    auth: PortOneAuth,
    token_ttl: Duration,
    /// Added to every sandbox call.
    latency: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            webhooks: true,
            auth: PortOneAuth::ApiSecret,
            token_ttl: Duration::from_secs(30 * 60),
            latency: Duration::ZERO,
        }
    }
}

/// A V2 sandbox, our server in front of a memory store, and a client.
struct V2 {
    sandbox: Sandbox,
    clock: Arc<ManualClock>,
    store: Arc<MemoryPaymentStore>,
    service: Arc<RefundService>,
    base: String,
    http: reqwest::Client,
    server: actix_web::dev::ServerHandle,
}

impl V2 {
    async fn start() -> V2 {
        V2::start_with(Options::default()).await
    }

    async fn start_with(options: Options) -> V2 {
        // The server's port is known before the sandbox starts, so the
        // sandbox can deliver its webhooks there.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let sandbox = Sandbox::start(SandboxConfig {
            api: Api::Portone,
            webhook: options
                .webhooks
                .then(|| WebhookTarget::new(format!("{base}/payments/webhook"))),
            token_ttl: options.token_ttl,
            latency: options.latency,
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        let config = PortOneConfig::new(sandbox.base_url(), sandbox.api_secret())
            .store_id(sandbox.store_id())
            .auth(options.auth)
            .connect_timeout(Duration::from_millis(500))
            .request_timeout(Duration::from_secs(2));
        let clock = Arc::new(ManualClock::now());
        let store = Arc::new(MemoryPaymentStore::with_clock(clock.clone()));
        let client = PortOneClient::new(config).unwrap();
        let service = Arc::new(RefundService::new(store.clone(), Arc::new(client)));
        let mut scope = RefundScope::new(
            service.clone(),
            BearerTokenAuthorizer::new(ADMIN_TOKEN).unwrap(),
        );
        if options.webhooks {
            scope = scope.portone_webhook_secret(
                PortOneWebhookSecret::parse(DEFAULT_WEBHOOK_SECRET).unwrap(),
            );
        }
        let server = HttpServer::new(move || App::new().service(scope.clone()))
            .workers(2)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        V2 {
            sandbox,
            clock,
            store,
            service,
            base,
            http: reqwest::Client::new(),
            server: handle,
        }
    }

    /// Creates a paid payment at the sandbox and records it, as checkout
    /// would (by both of V2's ids).
    async fn seed(&self, new: NewPayment) -> Payment {
        let payment = self.sandbox.create_payment(new).unwrap();
        let at = PaymentRef {
            imp_uid: &payment.transaction_id,
            merchant_uid: &payment.merchant_uid,
        };
        self.service.refresh_payment(at).await.unwrap().unwrap();
        payment
    }

    async fn seed_krw(&self, amount: i64) -> Payment {
        self.seed(NewPayment::new(order_id(), amount, Currency::Krw))
            .await
    }

    async fn cancel(&self, body: Value, key: Option<&str>) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/payments/cancel", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        Reply::of(request.send().await.unwrap()).await
    }

    async fn view(&self, merchant_uid: &str) -> Reply {
        let request = self
            .http
            .get(format!("{}/payments/{merchant_uid}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        Reply::of(request.send().await.unwrap()).await
    }

    async fn webhook(&self, body: &[u8], headers: &[(&str, String)]) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/payments/webhook", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Reply::of(request.send().await.unwrap()).await
    }

    fn cancels_attempted(&self) -> u64 {
        self.sandbox.stats().cancel.attempted
    }

    fn lookups(&self) -> u64 {
        self.sandbox.stats().get_payment
    }

    fn gateway_cancelled(&self, payment: &Payment) -> i64 {
        self.sandbox
            .payment(&payment.imp_uid)
            .unwrap()
            .cancel_amount
    }

    /// The newest refund of an order, as journaled.
    async fn newest_refund(&self, merchant_uid: &str) -> refund_core::Refund {
        self.store
            .refunds_of(merchant_uid, 1)
            .await
            .unwrap()
            .into_iter()
            .next()
            .expect("a refund")
    }

    async fn stop(self) {
        self.server.stop(false).await;
        self.sandbox.stop().await;
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    json: Value,
}

impl Reply {
    async fn of(response: reqwest::Response) -> Reply {
        let status = response.status();
        let text = response.text().await.unwrap();
        Reply {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.json);
        &self.json
    }

    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.json);
        assert_eq!(self.json["code"], code, "{}", self.json);
    }
}

fn order_id() -> String {
    format!("order-{}", uuid::Uuid::new_v4().simple())
}

/// Standard Webhooks headers for `body`, signed with `key` at `timestamp`.
fn signed(body: &[u8], key: &[u8], timestamp: i64) -> Vec<(&'static str, String)> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ]
}

fn sandbox_key() -> Vec<u8> {
    STANDARD
        .decode(DEFAULT_WEBHOOK_SECRET.trim_start_matches("whsec_"))
        .unwrap()
}

fn now_s() -> i64 {
    refund_core::now_ms() / 1000
}

/// Waits (up to 10 s) until `check` holds.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the condition never held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_then_full_refund_with_explicit_amounts() {
    let v2 = V2::start().await;
    let payment = v2.seed_krw(10_000).await;
    let first = v2
        .cancel(
            json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 3000, "reason": "size"}),
            None,
        )
        .await;
    let view = first.ok();
    assert_eq!(view["cancel_amount"], 3000);
    assert_eq!(view["cancelable_amount"], 7000);
    assert_eq!(view["status"], "paid");
    assert_eq!(view["refund"]["status"], "succeeded");
    assert_eq!(view["imp_uid"], payment.transaction_id.as_str());
    // No amount: the whole remaining balance, sent explicitly.
    let rest = v2
        .cancel(json!({"merchant_uid": payment.merchant_uid}), None)
        .await;
    assert_eq!(rest.ok()["cancel_amount"], 10_000);
    assert_eq!(rest.ok()["status"], "cancelled");
    assert_eq!(v2.gateway_cancelled(&payment), 10_000);
    assert_eq!(v2.cancels_attempted(), 2);
    // What PortOne recorded: our amounts, and reasons that name each refund.
    let at_gateway = v2.sandbox.payment(&payment.imp_uid).unwrap();
    let amounts: Vec<i64> = at_gateway.cancel_history.iter().map(|c| c.amount).collect();
    assert_eq!(amounts, [3000, 7000]);
    let first_id = view["refund"]["id"].as_str().unwrap();
    assert_eq!(
        at_gateway.cancel_history[0].reason,
        format!("size ({first_id})")
    );
    assert!(at_gateway.cancel_history[1]
        .reason
        .starts_with("refund rf_"));
    // The journal credits each refund with its V2 cancellation id.
    let refund = v2
        .store
        .refund(&RefundId::from_stored(first_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        refund.state,
        RefundState::Succeeded {
            cancellation_id: Some(at_gateway.cancel_history[0].cancellation_id.clone())
        }
    );
    // Nothing left: refused with no call.
    let none_left = v2
        .cancel(json!({"merchant_uid": payment.merchant_uid}), None)
        .await;
    none_left.assert_error(409, "already_refunded");
    assert_eq!(v2.cancels_attempted(), 2);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_refund_is_found_by_the_balance_check_and_the_retry_works() {
    // No webhooks: our copy of the payment stays stale.
    let v2 = V2::start_with(Options {
        webhooks: false,
        ..Options::default()
    })
    .await;
    let payment = v2.seed_krw(10_000).await;
    v2.sandbox
        .admin_cancel(
            &payment.imp_uid,
            AdminCancel {
                amount: Some(2_000),
                reason: Some("console".into()),
            },
        )
        .unwrap();
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 3000});
    let stale = v2.cancel(body.clone(), None).await;
    stale.assert_error(409, "payment_out_of_sync");
    assert_eq!(
        v2.gateway_cancelled(&payment),
        2_000,
        "nothing more was cancelled"
    );
    let refund = v2.newest_refund(&payment.merchant_uid).await;
    assert_eq!(
        refund.state.failure().and_then(|f| f.code.as_deref()),
        Some("CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN")
    );
    // Re-synced: the console refund shows, and the retry goes through.
    let view = v2.view(&payment.merchant_uid).await;
    assert_eq!(view.ok()["cancel_amount"], 2_000);
    let retry = v2.cancel(body, None).await;
    assert_eq!(retry.ok()["cancel_amount"], 5_000);
    assert_eq!(v2.gateway_cancelled(&payment), 5_000);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_refusal_is_gateway_rejected_with_its_message_masked() {
    let v2 = V2::start().await;
    let payment = v2
        .seed(NewPayment::new(order_id(), 30_000, Currency::Krw).pay_method("vbank"))
        .await;
    v2.sandbox
        .inject_fault(Fault::EchoAccount, FaultTarget::Cancel, 1);
    let reply = v2
        .cancel(
            json!({"merchant_uid": payment.merchant_uid, "refund_holder": "홍길동",
                   "refund_bank": "SHINHAN", "refund_account": "110123456789",
                   "refund_tel": "01012345678"}),
            None,
        )
        .await;
    reply.assert_error(502, "gateway_rejected");
    let shown = reply.json.to_string();
    assert!(reply.json["gateway_message"].is_string(), "{shown}");
    for secret in ["110123456789", "홍길동", "01012345678"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let refund = v2.newest_refund(&payment.merchant_uid).await;
    let failure = refund.state.failure().unwrap();
    assert_eq!(failure.code.as_deref(), Some("PG_PROVIDER"));
    assert!(
        !failure.message.contains("110123456789"),
        "{}",
        failure.message
    );
    assert_eq!(v2.gateway_cancelled(&payment), 0);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_accounts_need_a_v2_bank_name_checked_before_any_call() {
    let v2 = V2::start().await;
    let payment = v2
        .seed(NewPayment::new(order_id(), 30_000, Currency::Krw).pay_method("vbank"))
        .await;
    let account = |bank: &str| {
        json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 10000,
               "refund_holder": "Kim", "refund_bank": bank, "refund_account": "110-123-456789"})
    };
    let missing = v2
        .cancel(json!({"merchant_uid": payment.merchant_uid}), None)
        .await;
    missing.assert_error(400, "refund_account_required");
    for bank in ["88", "088", "shinhan", "NOT_A_BANK"] {
        let refused = v2.cancel(account(bank), None).await;
        refused.assert_error(400, "invalid_request");
        assert!(
            refused.json["message"]
                .as_str()
                .unwrap()
                .contains("refund_bank"),
            "{}",
            refused.json
        );
    }
    assert_eq!(
        v2.cancels_attempted(),
        0,
        "no call for a request we can reject"
    );
    let refunded = v2.cancel(account("SHINHAN"), None).await;
    assert_eq!(refunded.ok()["cancel_amount"], 10_000);
    assert_eq!(refunded.ok()["pay_method"], "vbank");
    assert_eq!(v2.gateway_cancelled(&payment), 10_000);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollars_are_refunded_in_cents() {
    let v2 = V2::start().await;
    let payment = v2
        .seed(NewPayment::new(order_id(), 2_550, Currency::Usd))
        .await;
    let reply = v2
        .cancel(
            json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 10.25}),
            None,
        )
        .await;
    let view = reply.ok();
    assert_eq!(view["currency"], "USD");
    assert_eq!(view["cancel_amount"].to_string(), "10.25");
    assert_eq!(view["cancelable_amount"].to_string(), "15.25");
    assert_eq!(v2.gateway_cancelled(&payment), 1_025);
    let too_precise = v2
        .cancel(
            json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 0.001}),
            None,
        )
        .await;
    too_precise.assert_error(400, "invalid_request");
    assert_eq!(v2.cancels_attempted(), 1);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_cancel_waits_for_its_signed_webhook_then_the_key_replays_it() {
    let v2 = V2::start().await;
    let payment = v2.seed_krw(10_000).await;
    v2.sandbox
        .inject_fault(Fault::Requested, FaultTarget::Cancel, 1);
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 4000});
    let accepted = v2.cancel(body.clone(), Some("click-async")).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.json);
    assert_eq!(accepted.json["code"], "refund_pending");
    let refund = v2.newest_refund(&payment.merchant_uid).await;
    let at_gateway = v2.sandbox.payment(&payment.imp_uid).unwrap();
    let requested = &at_gateway.cancel_history[0];
    assert_eq!(
        refund.state,
        RefundState::Pending {
            cancellation_id: Some(requested.cancellation_id.clone())
        }
    );
    // However old it gets, an in-flight cancel is never judged not applied
    // (which would let it run again): sync and the sweep leave it pending,
    // and another refund of the payment waits.
    v2.clock.advance(Duration::from_secs(6 * 3600));
    let synced = v2
        .http
        .post(format!(
            "{}/payments/{}/sync",
            v2.base, payment.merchant_uid
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(synced.status(), StatusCode::OK);
    v2.service.sweep().await.unwrap();
    assert_eq!(
        v2.newest_refund(&payment.merchant_uid).await.status(),
        RefundStatus::Pending
    );
    let other = v2
        .cancel(
            json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 1000}),
            None,
        )
        .await;
    other.assert_error(409, "refund_in_progress");
    let replay = v2.cancel(body.clone(), Some("click-async")).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.json);
    assert_eq!(v2.cancels_attempted(), 1);
    // PortOne completes it and says so in a signed webhook: settled.
    assert_eq!(v2.sandbox.complete_requested_cancels(true), 1);
    eventually(|| async {
        v2.newest_refund(&payment.merchant_uid).await.status() == RefundStatus::Succeeded
    })
    .await;
    let replay = v2.cancel(body, Some("click-async")).await;
    let view = replay.ok();
    assert_eq!(view["refund"]["status"], "succeeded");
    assert_eq!(view["cancel_amount"], 4000);
    assert_eq!(
        v2.cancels_attempted(),
        1,
        "the key replays, it never sends again"
    );
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_asynchronous_cancel_frees_the_payment_once_reported() {
    let v2 = V2::start().await;
    let payment = v2.seed_krw(10_000).await;
    v2.sandbox
        .inject_fault(Fault::Requested, FaultTarget::Cancel, 1);
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 4000});
    let accepted = v2.cancel(body.clone(), Some("click-fails")).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.json);
    v2.clock.advance(Duration::from_secs(3600));
    assert_eq!(v2.sandbox.complete_requested_cancels(false), 1);
    // The webhook cannot fail a refund (no clock read); the sweep can, now
    // that PortOne shows no cancellation of it in progress.
    v2.service.sweep().await.unwrap();
    let refund = v2.newest_refund(&payment.merchant_uid).await;
    assert_eq!(
        refund.state.failure().map(|f| f.kind),
        Some(refund_core::FailureKind::NotApplied)
    );
    // It changed nothing, so the same key runs it again.
    let again = v2.cancel(body, Some("click-fails")).await;
    assert_eq!(again.ok()["cancel_amount"], 4000);
    assert_eq!(v2.gateway_cancelled(&payment), 4000);
    v2.stop().await;
}

/// The sandbox's 5xx faults answer in plain text, as a proxy or CDN in
/// front of PortOne would: that is no answer from PortOne (it may still be
/// working on the cancel), so the refund stays pending (202) until it can
/// no longer be in flight; then the sweep credits the one that applied and
/// frees the payment of the one that did not, for the same key to run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untyped_5xx_is_no_answer_and_the_sweep_settles_it() {
    let v2 = V2::start().await;
    let payment = v2.seed_krw(10_000).await;
    let body = |amount: i64| json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": amount});
    v2.sandbox
        .inject_fault(Fault::FailAfterCommit, FaultTarget::Cancel, 1);
    let committed = v2.cancel(body(2000), Some("click-5xx-after")).await;
    assert_eq!(committed.status, StatusCode::ACCEPTED, "{}", committed.json);
    v2.clock.advance(Duration::from_secs(3600));
    v2.service.sweep().await.unwrap();
    let replay = v2.cancel(body(2000), Some("click-5xx-after")).await;
    assert_eq!(replay.ok()["refund"]["status"], "succeeded");
    assert_eq!(replay.ok()["cancel_amount"], 2000);
    v2.sandbox
        .inject_fault(Fault::FailBeforeCommit, FaultTarget::Cancel, 1);
    let refused = v2.cancel(body(3000), Some("click-5xx")).await;
    assert_eq!(refused.status, StatusCode::ACCEPTED, "{}", refused.json);
    assert_eq!(v2.gateway_cancelled(&payment), 2000);
    v2.clock.advance(Duration::from_secs(3600));
    v2.service.sweep().await.unwrap();
    // Proven not applied: the same key runs it again.
    let again = v2.cancel(body(3000), Some("click-5xx")).await;
    assert_eq!(again.ok()["cancel_amount"], 5000);
    assert_eq!(v2.gateway_cancelled(&payment), 5000);
    assert_eq!(v2.cancels_attempted(), 3);
    v2.stop().await;
}

/// A 5xx with PortOne's own typed error body is PortOne's answer: it is no
/// longer working on the cancel, so the cancel path reconciles at once with
/// one lookup (DESIGN step 6, unlike the untyped 5xx above): 200 when the
/// cancel applied; else 502 `gateway_error`, the refund `not_applied`, and
/// the payment refundable again at once, with no clock advance (one
/// harmless 5xx never locks it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_5xx_is_reconciled_at_once_and_never_locks_the_payment() {
    let v2 = V2::start().await;
    let payment = v2.seed_krw(10_000).await;
    let body = |amount: i64| json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": amount});
    v2.sandbox
        .inject_fault(Fault::ErrorAfterCommit, FaultTarget::Cancel, 1);
    let applied = v2.cancel(body(2000), Some("typed-5xx-after")).await;
    assert_eq!(applied.ok()["refund"]["status"], "succeeded");
    assert_eq!(applied.ok()["cancel_amount"], 2000);
    v2.sandbox
        .inject_fault(Fault::ErrorBeforeCommit, FaultTarget::Cancel, 1);
    let refused = v2.cancel(body(3000), Some("typed-5xx-before")).await;
    refused.assert_error(502, "gateway_error");
    let refund = v2
        .store
        .refund_by_idempotency_key("typed-5xx-before")
        .await
        .unwrap()
        .expect("the refund is journaled");
    assert!(
        matches!(
            &refund.state,
            RefundState::Failed(failure) if failure.kind == refund_core::FailureKind::NotApplied
        ),
        "{:?}",
        refund.state
    );
    let stored = v2
        .store
        .payment(&payment.merchant_uid)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.pending_refund.is_none() && !stored.on_hold,
        "{stored:?}"
    );
    assert_eq!(v2.gateway_cancelled(&payment), 2000);
    // Not locked: another refund goes out at once, and the same key runs
    // the one that did not apply again.
    let next = v2.cancel(body(1000), Some("typed-5xx-next")).await;
    assert_eq!(next.ok()["cancel_amount"], 3000);
    let again = v2.cancel(body(3000), Some("typed-5xx-before")).await;
    assert_eq!(again.ok()["refund"]["status"], "succeeded");
    assert_eq!(again.ok()["cancel_amount"], 6000);
    assert_eq!(v2.gateway_cancelled(&payment), 6000);
    assert_eq!(v2.cancels_attempted(), 4);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_clicks_make_one_refund() {
    let v2 = Arc::new(V2::start().await);
    let payment = v2.seed_krw(10_000).await;
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 1000});
    let clicks: Vec<_> = (0..20)
        .map(|_| {
            let v2 = v2.clone();
            let body = body.clone();
            tokio::spawn(async move { v2.cancel(body, Some("double-click")).await })
        })
        .collect();
    let mut ids = Vec::new();
    for click in clicks {
        let reply = click.await.unwrap();
        // The winner answers 200; a twin that arrives while the refund is
        // in flight is told it is pending (202) or, without a key match
        // yet, that a refund is in progress (409).
        let refund_id = match reply.status.as_u16() {
            200 | 202 => reply.json["refund"]["id"].as_str().map(str::to_owned),
            _ => {
                assert_eq!(reply.json["code"], "refund_in_progress", "{reply:?}");
                None
            }
        };
        ids.extend(refund_id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one refund for all: {ids:?}");
    assert_eq!(v2.cancels_attempted(), 1);
    assert_eq!(v2.gateway_cancelled(&payment), 1000);
    assert_eq!(v2.sandbox.stats().cancel.committed, 1);
    let replay = v2.cancel(body, Some("double-click")).await;
    assert_eq!(replay.ok()["cancel_amount"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_are_cached_and_renewed_once_when_refused() {
    let v2 = V2::start_with(Options {
        auth: PortOneAuth::LoginToken,
        ..Options::default()
    })
    .await;
    let payment = v2.seed_krw(10_000).await;
    let body = |amount: i64| json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": amount});
    assert_eq!(
        v2.cancel(body(1000), None).await.ok()["cancel_amount"],
        1000
    );
    assert_eq!(
        v2.cancel(body(1000), None).await.ok()["cancel_amount"],
        2000
    );
    assert_eq!(
        v2.sandbox.stats().get_token.requests,
        1,
        "one login for every call"
    );
    // Revoked (or expired) at PortOne: one 401, one fresh login, success.
    v2.sandbox.revoke_tokens();
    assert_eq!(
        v2.cancel(body(1000), None).await.ok()["cancel_amount"],
        3000
    );
    assert_eq!(v2.sandbox.stats().get_token.requests, 2);
    assert_eq!(v2.gateway_cancelled(&payment), 3000);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_stale_or_foreign_notices_get_401_and_no_gateway_call() {
    let v2 = V2::start_with(Options {
        webhooks: true,
        ..Options::default()
    })
    .await;
    let payment = v2.seed_krw(10_000).await;
    // The sandbox's own deliveries (the seed's Transaction.Paid) land first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = json!({"type": "Transaction.Cancelled", "timestamp": "2026-01-01T00:00:00Z",
                      "data": {"paymentId": payment.merchant_uid, "storeId": v2.sandbox.store_id(),
                               "transactionId": payment.transaction_id}})
    .to_string();
    let body = body.as_bytes();
    let before = v2.lookups();
    let mut hostile: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("unsigned", vec![]),
        ("foreign key", signed(body, b"someone else's key", now_s())),
        ("stale", signed(body, &sandbox_key(), now_s() - 301)),
        ("future", signed(body, &sandbox_key(), now_s() + 301)),
    ];
    let mut garbled = signed(body, &sandbox_key(), now_s());
    garbled[2].1 = "v1,!!!not-base64!!!".to_owned();
    hostile.push(("garbage signature", garbled));
    let mut no_id = signed(body, &sandbox_key(), now_s());
    no_id.remove(0);
    hostile.push(("missing webhook-id", no_id));
    for (what, headers) in hostile {
        let reply = v2.webhook(body, &headers).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.json
        );
        assert_eq!(reply.json["code"], "invalid_signature", "{what}");
    }
    // A tampered body under a valid signature of the original.
    let headers = signed(body, &sandbox_key(), now_s());
    let tampered = String::from_utf8_lossy(body).replace("Cancelled", "Paid");
    let reply = v2.webhook(tampered.as_bytes(), &headers).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        v2.lookups(),
        before,
        "no gateway call for a notice that does not verify"
    );
    // Correctly signed: confirmed by one lookup. Redelivered: harmless.
    let reply = v2.webhook(body, &headers).await;
    assert_eq!(reply.ok()["code"], "ok");
    let reply = v2.webhook(body, &headers).await;
    assert_eq!(reply.ok()["code"], "ok");
    assert_eq!(v2.lookups(), before + 2);
    // Types we do not handle are acknowledged with no call.
    let billing = br#"{"type":"BillingKey.Issued","timestamp":"2026-01-01T00:00:00Z","data":{"storeId":"s","billingKey":"b"}}"#;
    let reply = v2
        .webhook(billing, &signed(billing, &sandbox_key(), now_s()))
        .await;
    assert_eq!(reply.ok()["code"], "ok");
    assert_eq!(v2.lookups(), before + 2);
    // JSON only on V2.
    let form = v2
        .http
        .post(format!("{}/payments/webhook", v2.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("imp_uid=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandboxs_signed_webhooks_pick_up_console_refunds() {
    let v2 = V2::start().await;
    let payment = v2.seed_krw(10_000).await;
    v2.sandbox
        .admin_cancel(
            &payment.imp_uid,
            AdminCancel {
                amount: Some(2_500),
                reason: Some("console".into()),
            },
        )
        .unwrap();
    eventually(|| async { v2.view(&payment.merchant_uid).await.json["cancel_amount"] == 2_500 })
        .await;
    // Our copy is current, so the next refund's balance check holds.
    let reply = v2
        .cancel(
            json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 500}),
            None,
        )
        .await;
    assert_eq!(reply.ok()["cancel_amount"], 3_000);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_with_no_answer_stays_pending_until_it_cannot_be_on_the_wire() {
    let v2 = V2::start_with(Options {
        webhooks: false,
        ..Options::default()
    })
    .await;
    let payment = v2.seed_krw(10_000).await;
    v2.sandbox
        .inject_fault(Fault::DropAfterCommit, FaultTarget::Cancel, 1);
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 2500});
    let unknown = v2.cancel(body.clone(), Some("click-drop")).await;
    assert_eq!(unknown.status, StatusCode::ACCEPTED, "{}", unknown.json);
    assert_eq!(
        v2.newest_refund(&payment.merchant_uid).await.state,
        RefundState::PENDING
    );
    // Once it cannot be on the wire, the sweep finds it applied.
    v2.clock.advance(Duration::from_secs(3600));
    v2.service.sweep().await.unwrap();
    let replay = v2.cancel(body, Some("click-drop")).await;
    assert_eq!(replay.ok()["refund"]["status"], "succeeded");
    assert_eq!(v2.gateway_cancelled(&payment), 2500);
    assert_eq!(v2.cancels_attempted(), 1);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bank_name_we_accept_is_one_portone_accepts() {
    // The sandbox transcribes the V2 schema's Bank enum on its own: each
    // name we let through must be one it takes.
    let v2 = V2::start_with(Options {
        webhooks: false,
        ..Options::default()
    })
    .await;
    let payment = v2
        .seed(NewPayment::new(order_id(), 1_000_000, Currency::Krw).pay_method("vbank"))
        .await;
    for bank in refund_core::PORTONE_BANKS {
        let reply = v2
            .cancel(
                json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 100,
                       "refund_holder": "Kim", "refund_bank": bank, "refund_account": "1101234567"}),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{bank}: {}", reply.json);
    }
    let count = i64::try_from(refund_core::PORTONE_BANKS.len()).unwrap();
    assert_eq!(v2.gateway_cancelled(&payment), 100 * count);
    v2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_notices_for_one_payment_shares_its_lookups_whatever_their_transaction_ids() {
    // No webhook secret: a notice is only a cue to look the payment up.
    let v2 = V2::start_with(Options {
        webhooks: false,
        latency: Duration::from_millis(40),
        ..Options::default()
    })
    .await;
    let payment = v2.seed_krw(10_000).await;
    let before = v2.lookups();
    // PortOne is asked by paymentId alone, so notices for one payment ask
    // the same question whatever `transactionId` they carry (anyone who
    // knows an order id can make them up).
    let notices = (0..200).map(|i| {
        let body = json!({
            "type": "Transaction.Paid",
            "timestamp": "2026-12-01T00:00:00Z",
            "data": {"paymentId": payment.merchant_uid, "transactionId": format!("tx-{i}")},
        })
        .to_string();
        let v2 = &v2;
        async move { v2.webhook(body.as_bytes(), &[]).await.status }
    });
    let answers = futures_util::future::join_all(notices).await;
    let lookups = v2.lookups() - before;
    let overloaded = answers
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    // Over real HTTP the 200 arrive spread over a few lookups' time: each
    // lookup answers every notice that arrived before it started (and the
    // ones during it share the next), so a handful of lookups, not 200.
    assert!(
        lookups <= 20 && overloaded == 0,
        "200 concurrent notices for one payment made {lookups} PortOne lookups and \
         {overloaded} were answered 503: notices are shared by paymentId and \
         transactionId, but looked up by paymentId alone"
    );
    v2.stop().await;
}
