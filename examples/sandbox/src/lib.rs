//! A local, faithful simulator of the i'mport (PortOne V1) REST API and,
//! with [`Api::Portone`], of the PortOne V2 API.
//!
//! It serves the endpoints a refund flow uses, over real HTTP, with the
//! official semantics (this crate's `README.md` lists every endpoint and
//! field). V1 ([`Api::Iamport`], the default):
//!
//! - `POST /users/getToken`: 30-minute tokens, reused while live, extended by
//!   five minutes when asked for in their last minute; 401 for wrong keys.
//! - `POST /payments/cancel`: `imp_uid` before `merchant_uid`, `checksum`
//!   verification, partial and full cancels, virtual-account refund fields,
//!   the phone-payment month rule; refusals are HTTP 200 with `code: -1`.
//! - `GET /payments/{imp_uid}`, `GET /payments/find/{merchant_uid}[/{status}]`.
//!
//! V2 ([`Api::Portone`]), over the same book of payments:
//!
//! - `POST /login/api-secret`, `POST /token/refresh`; payment calls take
//!   `Authorization: PortOne <secret>` or `Bearer <access token>`.
//! - `GET /payments/{paymentId}`: the `Payment` union discriminated by
//!   `status`, integer minor-unit amounts, `cancellations` with statuses.
//! - `POST /payments/{paymentId}/cancel`: required `reason`,
//!   `currentCancellableAmount`, the `Bank` enum, typed errors with their
//!   HTTP statuses, asynchronous `REQUESTED` cancels.
//! - Signed webhooks (Standard Webhooks) to [`SandboxConfig::webhook`].
//!
//! plus `/sandbox/...` control endpoints (seed payments, admin-console
//! cancels, completing requested cancels, fault injection, call counters,
//! clock) that mirror the methods of [`Sandbox`].
//!
//! It is deliberately independent of `refund-core`: it models the gateway,
//! not our client, so a client bug cannot hide behind a matching sandbox bug.
//!
//! ```no_run
//! use iamport_sandbox::{Currency, NewPayment, Sandbox, SandboxConfig};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let payment = sandbox
//!     .create_payment(NewPayment::new("order-1", 10_000, Currency::Krw))
//!     .expect("fresh merchant_uid");
//! println!("{} -> {}", sandbox.base_url(), payment.imp_uid);
//! sandbox.stop().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod auth;
mod bank;
mod body;
mod clock;
mod config;
mod faults;
mod ledger;
mod money;
mod portone_auth;
mod portone_wire;
mod routes;
mod state;
mod stats;
mod webhook;
mod wire;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use tokio::task::JoinHandle;

pub use config::{
    Api, SandboxConfig, UnknownApi, WebhookTarget, CLI_DEFAULT_LISTEN, DEFAULT_API_SECRET,
    DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET, DEFAULT_STORE_ID, DEFAULT_TOKEN_TTL,
    DEFAULT_WEBHOOK_SECRET,
};
pub use faults::{ArmedFault, Fault, FaultTarget};
pub use ledger::{
    pay_method, AdminCancel, CancelEntry, CancelError, CancelTrigger, CancellationStatus,
    CreatePaymentError, NewPayment, Payment, PaymentStatus, UnknownStatus, VirtualAccount,
};
pub use money::{format_amount, parse_amount, AmountError, Currency, UnknownCurrency};
pub use stats::{CancelStats, Stats, TokenStats};
pub use webhook::{DeliveryStatus, WebhookDelivery};

use faults::ConnectionCutter;
use ledger::Target;
use state::SandboxState;
use webhook::Webhooks;

/// How long a graceful [`Sandbox::stop`] waits for in-flight calls (a held
/// reply, for instance) before closing them.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// A running sandbox. Dropping it stops the server (without waiting).
#[derive(Debug)]
pub struct Sandbox {
    state: Arc<SandboxState>,
    config: SandboxConfig,
    addr: SocketAddr,
    handle: ServerHandle,
    server: Option<JoinHandle<io::Result<()>>>,
    /// The webhook delivery task (V2 with a webhook target).
    webhooks: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `config.listen` and serves in the background.
    ///
    /// Must be called inside a Tokio runtime (`#[tokio::main]`,
    /// `#[tokio::test]` of either flavor, or actix's own); the server's
    /// workers run on their own threads, so a busy test runtime does not
    /// starve them.
    pub async fn start(config: SandboxConfig) -> io::Result<Self> {
        let invalid = |message: &str| io::Error::new(io::ErrorKind::InvalidInput, message);
        if config.workers == 0 {
            return Err(invalid("the sandbox needs at least one worker"));
        }
        let webhook_key = match (&config.webhook, config.api) {
            (None, _) => None,
            (Some(_), Api::Iamport) => return Err(invalid(
                "signed webhooks are a PortOne V2 feature: start the sandbox with the portone API",
            )),
            (Some(target), Api::Portone) => Some(
                webhook::secret_key(&target.secret).map_err(|error| invalid(&error.to_string()))?,
            ),
        };
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let (webhooks, webhook_task) = match (&config.webhook, webhook_key) {
            (Some(target), Some(key)) => {
                let (webhooks, task) = Webhooks::start(target.clone(), key);
                (Some(webhooks), Some(task))
            }
            _ => (None, None),
        };
        let state = Arc::new(SandboxState::new(&config, webhooks));

        let data = web::Data::from(Arc::clone(&state));
        let api = config.api;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(|cfg| routes::configure(cfg, api))
        })
        .workers(config.workers)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .on_connect(ConnectionCutter::capture);
        if !config.handle_signals {
            server = server.disable_signals();
        }
        let mut server = Box::pin(server.listen(listener)?.run());
        let handle = server.handle();
        // actix-server does its setup (accept thread, workers, signal
        // handlers) on the first poll. Poll once here so that `start`
        // returns a sandbox that is really serving, and setup errors become
        // `start`'s error instead of a failed background task.
        let first_poll = std::future::poll_fn(|cx| Poll::Ready(server.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = first_poll {
            result?;
            return Err(io::Error::other(
                "the sandbox server stopped while starting",
            ));
        }
        let server = tokio::spawn(server);
        tracing::info!(%addr, api = %config.api, "sandbox listening");

        Ok(Self {
            state,
            config,
            addr,
            handle,
            server: Some(server),
            webhooks: webhook_task,
        })
    }

    /// The bound address (with the real port when `listen` used port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL to give an i'mport or PortOne client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Which API it serves.
    pub fn api(&self) -> Api {
        self.config.api
    }

    /// The accepted V2 API secret.
    pub fn api_secret(&self) -> &str {
        &self.config.api_secret
    }

    /// The V2 store id payments belong to (the configured one, or
    /// [`DEFAULT_STORE_ID`]).
    pub fn store_id(&self) -> &str {
        self.config.effective_store_id()
    }

    /// The accepted REST API key.
    pub fn imp_key(&self) -> &str {
        &self.config.imp_key
    }

    /// The accepted REST API secret.
    pub fn imp_secret(&self) -> &str {
        &self.config.imp_secret
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// A few lines for a human starting the sandbox by hand: where it
    /// listens, which credentials it takes and how to drive it.
    pub fn banner(&self) -> String {
        match self.config.api {
            Api::Iamport => self.iamport_banner(),
            Api::Portone => self.portone_banner(),
        }
    }

    fn portone_banner(&self) -> String {
        let base = self.base_url();
        let webhook = match &self.config.webhook {
            Some(target) => format!(
                "signed webhooks to {} (secret: {})",
                target.url, target.secret
            ),
            None => "no webhooks (give --webhook-url to get them)".to_owned(),
        };
        format!(
            "PortOne V2 sandbox listening on {base}\n\
             \x20 API secret: {secret} (Authorization: PortOne <secret>, or POST /login/api-secret)\n\
             \x20 store id:   {store}\n\
             \x20 webhooks:   {webhook}\n\
             \x20 token TTL:  {ttl}s, added latency: {latency}ms\n\
             \x20 seed a payment: curl -X POST {base}/sandbox/payments -H 'content-type: application/json' \
             -d '{{\"payment_id\":\"order-1\",\"amount\":10000}}'\n\
             \x20 control: /sandbox/payments, /sandbox/payments/{{paymentId}}/admin-cancel, \
             /sandbox/cancellations/complete, /sandbox/faults, /sandbox/stats, /sandbox/reset-stats, /sandbox/clock",
            secret = self.config.api_secret,
            store = self.store_id(),
            ttl = self.config.token_ttl.as_secs(),
            latency = self.config.latency.as_millis(),
        )
    }

    fn iamport_banner(&self) -> String {
        let base = self.base_url();
        format!(
            "i'mport sandbox listening on {base}\n\
             \x20 imp_key:    {key}\n\
             \x20 imp_secret: {secret}\n\
             \x20 token TTL:  {ttl}s, added latency: {latency}ms\n\
             \x20 seed a payment: curl -X POST {base}/sandbox/payments -H 'content-type: application/json' \
             -d '{{\"merchant_uid\":\"order-1\",\"amount\":10000}}'\n\
             \x20 control: /sandbox/payments, /sandbox/payments/{{imp_uid}}/admin-cancel, \
             /sandbox/faults, /sandbox/stats, /sandbox/reset-stats, /sandbox/clock",
            key = self.config.imp_key,
            secret = self.config.imp_secret,
            ttl = self.config.token_ttl.as_secs(),
            latency = self.config.latency.as_millis(),
        )
    }

    /// Seeds a payment (paid by default), as if a buyer had just paid. In
    /// V2 mode `merchant_uid` is the `paymentId` (and a `transactionId` is
    /// generated), and a configured webhook target is notified.
    pub fn create_payment(&self, new: NewPayment) -> Result<Payment, CreatePaymentError> {
        self.state.create_payment(new)
    }

    /// The gateway's current copy of a payment.
    pub fn payment(&self, imp_uid: &str) -> Option<Payment> {
        self.state.payment(imp_uid)
    }

    /// The payment with this `merchant_uid`.
    pub fn payment_by_merchant_uid(&self, merchant_uid: &str) -> Option<Payment> {
        self.state.find_payment(merchant_uid, None)
    }

    /// Cancels outside the merchant's server, as the admin console would:
    /// no checksum, no refund account, otherwise the gateway's rules (V2:
    /// trigger `CONSOLE`, and a webhook). Takes the `imp_uid` in both modes.
    pub fn admin_cancel(&self, imp_uid: &str, cancel: AdminCancel) -> Result<Payment, CancelError> {
        self.state
            .admin_cancel(&Target::ImpUid(imp_uid.to_owned()), cancel)
    }

    /// Completes every `REQUESTED` (asynchronous) cancel: with `succeed`,
    /// each becomes `SUCCEEDED` (counted in the cancelled amount,
    /// `cancelledAt` set); otherwise `FAILED` (its amount is cancellable
    /// again). Each completion is notified by webhook. Returns how many were
    /// completed.
    pub fn complete_requested_cancels(&self, succeed: bool) -> usize {
        self.state.complete_requested(succeed).len()
    }

    /// The webhooks sent so far (oldest first, at most the last 10,000),
    /// with their attempts and status. Empty without a webhook target.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.state.deliveries()
    }

    /// Makes the next `times` calls to `target` suffer `fault`. Faults queue
    /// up in the order they are armed. [`Fault::EchoAccount`] and
    /// [`Fault::Requested`] are only drawn by cancel calls.
    pub fn inject_fault(&self, fault: Fault, target: FaultTarget, times: u32) {
        self.state.arm_fault(fault, target, times);
    }

    /// Faults still waiting for calls.
    pub fn armed_faults(&self) -> Vec<ArmedFault> {
        self.state.armed_faults()
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Invalidates every live token at once: the next authenticated call
    /// gets 401 and the next `getToken` mints a new token.
    pub fn revoke_tokens(&self) {
        self.state.revoke_tokens();
    }

    /// Call counters since start or the last reset.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Zeroes the counters, returning what they were.
    pub fn reset_stats(&self) -> Stats {
        self.state.reset_stats()
    }

    /// The sandbox's current time (unix seconds), which is what `now` in
    /// `getToken` and every timestamp it writes are based on.
    pub fn now(&self) -> i64 {
        self.state.clock.now()
    }

    /// Moves the sandbox clock forward, e.g. past a token's expiry.
    pub fn advance_clock(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// Stops gracefully: in-flight calls get up to two seconds to finish.
    /// Webhooks not delivered yet are dropped.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(webhooks) = self.webhooks.take() {
            webhooks.abort();
        }
        if let Some(server) = self.server.take() {
            // The server future has returned once stop() resolves; the
            // join only collects its result.
            if let Ok(Err(error)) = server.await {
                tracing::warn!(%error, "sandbox server ended with an error");
            }
        }
    }

    /// Waits until the server stops (for the standalone binary with
    /// [`SandboxConfig::handle_signals`], that is on SIGINT or SIGTERM).
    pub async fn wait(mut self) -> io::Result<()> {
        match self.server.take() {
            Some(server) => server.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // `stop` sends its command eagerly and dropping the returned future
        // does not cancel it, so this never blocks. Sending it to a server
        // that already stopped is a no-op.
        drop(self.handle.stop(false));
        if let Some(webhooks) = self.webhooks.take() {
            webhooks.abort();
        }
    }
}
