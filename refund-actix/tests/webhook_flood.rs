//! A webhook flood must not become a gateway flood (DESIGN.md, "HTTP
//! contract"): 2,000 notices sent at once, in three shapes, against a
//! sandbox that takes 40 ms per call. The figures are printed (run with
//! `--nocapture`); the assertions are on gateway calls counted by the
//! sandbox, never on time.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::App;
use async_trait::async_trait;
use common::{order_id, scope_for, Env};
use iamport_sandbox::SandboxConfig;
use refund_core::{
    CancelCommand, CancelReceipt, GatewayError, GatewayKind, IamportClient, IamportConfig,
    IamportCredentials, Payment, PaymentGateway, PaymentRef, RefundService,
};
use serde_json::json;

const NOTICES: usize = 2_000;

fn notice(imp_uid: &str) -> TestRequest {
    TestRequest::post()
        .uri("/payments/webhook")
        .set_json(json!({"imp_uid": imp_uid, "status": "paid"}))
}

/// The real i'mport client, with the most lookups it ever had running at
/// once recorded.
struct PeakLookups {
    inner: IamportClient,
    running: AtomicU64,
    peak: AtomicU64,
}

#[async_trait]
impl PaymentGateway for PeakLookups {
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        self.inner.cancel(command).await
    }

    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let answer = self.inner.payment(at).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        self.inner.find_payment(merchant_uid).await
    }

    fn max_in_flight(&self) -> Duration {
        self.inner.max_in_flight()
    }

    fn kind(&self) -> GatewayKind {
        self.inner.kind()
    }
}

async fn slow_env() -> Env {
    Env::start_with(SandboxConfig {
        latency: Duration::from_millis(40),
        ..SandboxConfig::default()
    })
    .await
}

/// What a flood cost: gateway lookups made, and the answers by status.
#[derive(Debug, Default)]
struct Flood {
    lookups: u64,
    ok: usize,
    overloaded: usize,
    other: usize,
}

/// Sends every id in `ids` as a notice, all at once, and counts.
async fn flood<S>(env: &Env, app: &S, ids: Vec<String>, shape: &str) -> Flood
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let before = env.sandbox.stats().get_payment;
    let started = Instant::now();
    let answers = futures_util::future::join_all(
        ids.iter()
            .map(|id| test::call_service(app, notice(id).to_request())),
    )
    .await;
    let mut flood = Flood {
        lookups: env.sandbox.stats().get_payment - before,
        ..Flood::default()
    };
    for answer in answers {
        match answer.status().as_u16() {
            200 => flood.ok += 1,
            503 => {
                let body: serde_json::Value = test::read_body_json(answer).await;
                assert_eq!(body["code"], "overloaded");
                flood.overloaded += 1;
            }
            _ => flood.other += 1,
        }
    }
    println!(
        "webhook flood, {shape}: {} notices -> {} gateway lookups in {:?} ({} answered 200, {} answered 503 overloaded, {} other)",
        ids.len(),
        flood.lookups,
        started.elapsed(),
        flood.ok,
        flood.overloaded,
        flood.other
    );
    flood
}

#[actix_web::test]
async fn duplicates_of_one_real_payment_share_their_lookups() {
    let env = slow_env().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let payment = env.seed_krw(10_000).await;

    let flood = flood(
        &env,
        &app,
        vec![payment.imp_uid.clone(); NOTICES],
        "duplicates of one real imp_uid",
    )
    .await;
    assert_eq!(flood.other, 0, "{flood:?}");
    assert_eq!(
        flood.overloaded, 0,
        "notices that share a lookup never wait for a permit: {flood:?}"
    );
    // One lookup for the notices that arrived together, and at most one
    // more for those that arrived while it ran (so that every notice is
    // followed by a lookup that started after it).
    assert!(flood.lookups <= 2, "{flood:?}");
}

#[actix_web::test]
async fn repeats_of_one_forged_id_cost_one_lookup() {
    let env = slow_env().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let forged = format!("imp_{}", order_id());

    let first = flood(
        &env,
        &app,
        vec![forged.clone(); NOTICES],
        "repeats of one forged imp_uid",
    )
    .await;
    assert_eq!(first.other + first.overloaded, 0, "{first:?}");
    assert!(first.lookups <= 2, "{first:?}");
    // The gateway said it does not know the id: it is remembered.
    let again = flood(
        &env,
        &app,
        vec![forged; NOTICES],
        "the same forged imp_uid again",
    )
    .await;
    assert_eq!(again.lookups, 0, "{again:?}");
    assert_eq!(again.ok, NOTICES, "{again:?}");
}

#[actix_web::test]
async fn distinct_forged_ids_are_bounded_and_the_rest_told_to_come_back() {
    let env = slow_env().await;
    let credentials = IamportCredentials::new(env.sandbox.imp_key(), env.sandbox.imp_secret());
    let gateway = Arc::new(PeakLookups {
        inner: IamportClient::new(IamportConfig::new(env.sandbox.base_url(), credentials)).unwrap(),
        running: AtomicU64::new(0),
        peak: AtomicU64::new(0),
    });
    let service = Arc::new(RefundService::new(env.store.clone(), gateway.clone()));
    let limit = 4;
    let app = test::init_service(
        App::new().service(
            scope_for(service)
                .webhook_lookups(limit)
                .webhook_lookup_wait(Duration::from_millis(200)),
        ),
    )
    .await;
    let ids = (0..NOTICES)
        .map(|_| format!("imp_{}", order_id()))
        .collect();

    let flood = flood(&env, &app, ids, "distinct forged imp_uids").await;
    let peak = gateway.peak.load(Ordering::SeqCst);
    println!("at most {peak} lookups ran at once (limit {limit})");
    assert_eq!(flood.other, 0, "{flood:?}");
    assert_eq!(
        flood.ok as u64, flood.lookups,
        "each answered notice made one lookup: {flood:?}"
    );
    assert!(
        flood.overloaded > 0,
        "a queue longer than the wait is refused: {flood:?}"
    );
    assert!(
        peak <= limit as u64,
        "at most {limit} lookups at once, saw {peak}"
    );
}

/// The real i'mport client whose first payment lookup panics (a bug
/// anywhere below the webhook: the store, its driver, reconciliation), the
/// way a lookup task dies when its worker's runtime goes away.
struct PanicsOnce {
    inner: IamportClient,
    panicked: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl PaymentGateway for PanicsOnce {
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        self.inner.cancel(command).await
    }

    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("a lookup that dies half way");
        }
        self.inner.payment(at).await
    }

    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        self.inner.find_payment(merchant_uid).await
    }

    fn max_in_flight(&self) -> Duration {
        self.inner.max_in_flight()
    }

    fn kind(&self) -> GatewayKind {
        self.inner.kind()
    }
}

#[actix_web::test]
async fn a_lookup_that_dies_does_not_wedge_later_notices_for_its_payment() {
    let env = Env::start().await;
    let payment = env.seed_krw(10_000).await;
    let credentials = IamportCredentials::new(env.sandbox.imp_key(), env.sandbox.imp_secret());
    let gateway = Arc::new(PanicsOnce {
        inner: IamportClient::new(IamportConfig::new(env.sandbox.base_url(), credentials)).unwrap(),
        panicked: std::sync::atomic::AtomicBool::new(false),
    });
    let service = Arc::new(RefundService::new(env.store.clone(), gateway));
    let app = test::init_service(App::new().service(scope_for(service))).await;

    // The first notice's lookup dies; whatever that notice is answered (or
    // if its caller gives up), the payment's later notices must still be
    // looked up: the gateway resends, and each resend must get an answer.
    let first = tokio::time::timeout(
        Duration::from_secs(3),
        test::call_service(&app, notice(&payment.imp_uid).to_request()),
    )
    .await;
    drop(first);
    let resend = tokio::time::timeout(
        Duration::from_secs(5),
        test::call_service(&app, notice(&payment.imp_uid).to_request()),
    )
    .await;
    let resend = resend.expect(
        "a notice for a payment whose earlier lookup died is never answered: \
         the payment's webhooks hang until the process restarts",
    );
    assert_eq!(resend.status().as_u16(), 200);
}
