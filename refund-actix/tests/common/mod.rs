//! Shared test harness: an i'mport sandbox on 127.0.0.1, a real
//! `RefundService` over an in-memory store (which can be switched to fail),
//! and helpers to drive the scope through actix's test service.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::{Arc, Mutex, PoisonError};

#[allow(unused_imports)] // for the binaries that make the store fail
pub use refund_core::testkit::{StoreFault, StoreOp};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use iamport_sandbox::{Currency, NewPayment, Payment, Sandbox, SandboxConfig};
use refund_actix::{BearerTokenAuthorizer, RefundScope};
use refund_core::testkit::FaultyStore;
use refund_core::{
    IamportClient, IamportConfig, IamportCredentials, MemoryPaymentStore, RefundService,
};
use serde_json::Value;

/// The admin token every test scope accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A sandbox, a store and a service wired to them.
pub struct Env {
    pub sandbox: Sandbox,
    /// An in-memory store that can be told to fail.
    pub store: Arc<FaultyStore>,
    pub service: Arc<RefundService>,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(SandboxConfig::default()).await
    }

    /// As [`Env::start`], over a sandbox started with `config` (e.g. with
    /// added latency).
    pub async fn start_with(config: SandboxConfig) -> Env {
        let sandbox = Sandbox::start(config)
            .await
            .expect("the sandbox starts on 127.0.0.1");
        let store = Arc::new(FaultyStore::new(Arc::new(MemoryPaymentStore::new())));
        let service = service_over(&sandbox, &store, |config| config);
        Env {
            sandbox,
            store,
            service,
        }
    }

    /// Another service over the same store and sandbox, with a tweaked
    /// client (e.g. a short request timeout).
    pub fn service_with(
        &self,
        tweak: impl FnOnce(IamportConfig) -> IamportConfig,
    ) -> Arc<RefundService> {
        service_over(&self.sandbox, &self.store, tweak)
    }

    /// A service over the same store whose gateway is a closed port.
    pub fn service_with_unreachable_gateway(&self) -> Arc<RefundService> {
        Arc::new(RefundService::new(
            self.store.clone(),
            Arc::new(unreachable_client()),
        ))
    }

    /// The scope under test, guarded by [`ADMIN_TOKEN`].
    pub fn scope(&self) -> RefundScope {
        scope_for(self.service.clone())
    }

    /// Creates a paid payment at the sandbox and records it in our store,
    /// as the merchant's checkout callback would.
    pub async fn seed(&self, new: NewPayment) -> Payment {
        let payment = self
            .sandbox
            .create_payment(new)
            .expect("fresh merchant_uid");
        self.service
            .refresh(&payment.imp_uid)
            .await
            .expect("the payment is recorded")
            .expect("the sandbox knows it");
        payment
    }

    /// A paid card payment of `amount` won.
    pub async fn seed_krw(&self, amount: i64) -> Payment {
        self.seed(NewPayment::new(order_id(), amount, Currency::Krw))
            .await
    }

    /// `POST /payments/cancel` calls that reached the sandbox so far.
    pub fn cancels_attempted(&self) -> u64 {
        self.sandbox.stats().cancel.attempted
    }

    /// Every gateway call so far (token, cancel, lookups).
    pub fn gateway_calls(&self) -> u64 {
        let stats = self.sandbox.stats();
        stats.get_token.requests + stats.cancel.attempted + stats.get_payment + stats.find_payment
    }
}

/// The scope over `service`, guarded by [`ADMIN_TOKEN`].
pub fn scope_for(service: Arc<RefundService>) -> RefundScope {
    RefundScope::new(
        service,
        BearerTokenAuthorizer::new(ADMIN_TOKEN).expect("strong token"),
    )
}

fn service_over(
    sandbox: &Sandbox,
    store: &Arc<FaultyStore>,
    tweak: impl FnOnce(IamportConfig) -> IamportConfig,
) -> Arc<RefundService> {
    let credentials = IamportCredentials::new(sandbox.imp_key(), sandbox.imp_secret());
    let config = tweak(IamportConfig::new(sandbox.base_url(), credentials));
    let client = IamportClient::new(config).expect("client builds");
    Arc::new(RefundService::new(store.clone(), Arc::new(client)))
}

/// An i'mport client pointed at a port nobody listens on.
fn unreachable_client() -> IamportClient {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    let credentials = IamportCredentials::new("key", "secret");
    IamportClient::new(IamportConfig::new(format!("http://{addr}"), credentials))
        .expect("client builds")
}

/// A fresh order id, so tests never share payments.
pub fn order_id() -> String {
    format!("order-{}", uuid::Uuid::new_v4().simple())
}

/// The admin's `Authorization` header.
pub fn admin() -> (actix_web::http::header::HeaderName, String) {
    (AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
}

/// An authorized `POST /payments/cancel` with a JSON body.
pub fn cancel_request(body: Value) -> TestRequest {
    TestRequest::post()
        .uri("/payments/cancel")
        .insert_header(admin())
        .set_json(body)
}

/// An authorized `GET /payments/{merchant_uid}`.
pub fn view_request(merchant_uid: &str) -> TestRequest {
    TestRequest::get()
        .uri(&format!("/payments/{merchant_uid}"))
        .insert_header(admin())
}

/// An authorized `POST /payments/{merchant_uid}/sync`.
pub fn sync_request(merchant_uid: &str) -> TestRequest {
    TestRequest::post()
        .uri(&format!("/payments/{merchant_uid}/sync"))
        .insert_header(admin())
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON, `Null` if it is not JSON.
    pub json: Value,
}

impl Reply {
    /// Asserts DESIGN.md's error shape with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.json["code"], code, "{}", self.text);
        assert!(self.json["message"].is_string(), "{}", self.text);
        let fields = self.json.as_object().expect("an object");
        assert!(
            fields
                .keys()
                .all(|k| ["code", "message", "gateway_message"].contains(&k.as_str())),
            "{}",
            self.text
        );
    }

    /// Asserts a 200 and returns the body.
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        &self.json
    }
}

/// Sends `req` (a `TestRequest::to_request()`) through `app`.
pub async fn send<S, R, B>(app: &S, req: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// The cause of the backend failure: it must reach the logs, never a body.
pub const BACKEND_CAUSE: &str = "relation refunds_v2 is corrupt at page 4711";

/// Everything logged on this thread while the guard lives, as text.
pub struct CapturedLogs {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLogs {
    /// Starts capturing every event and span field at every level.
    pub fn start() -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogSink(Arc::clone(&sink)))
            .finish();
        CapturedLogs {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub fn text(&self) -> String {
        let bytes = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
