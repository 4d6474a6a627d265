//! State shared by the HTTP handlers and the Rust handle.
//!
//! Each part sits behind its own `std::sync::Mutex`. Critical sections are
//! short, synchronous and never span an `.await`; a whole cancel (lookup,
//! checks, commit) runs inside one `ledger` section, so racing cancels are
//! serialized exactly as the gateway's database would serialize them.
//! Webhook notices are queued only after that section has ended.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::http::header::HeaderMap;

use crate::auth::{presented_token, IssuedToken, TokenStore};
use crate::clock::Clock;
use crate::config::{Api, SandboxConfig};
use crate::faults::{ArmedFault, Endpoint, Fault, FaultBoard, FaultTarget};
use crate::ledger::{
    AdminCancel, CancelError, CancelOrder, CancelTrigger, CreatePaymentError, Ledger, NewPayment,
    Payment, PaymentStatus, Target,
};
use crate::portone_auth::{presented_credential, Credential, PortoneTokens, TokenPair};
use crate::portone_wire::{notice_type, Store};
use crate::stats::Stats;
use crate::webhook::{Notice, WebhookDelivery, Webhooks};

#[derive(Debug)]
pub(crate) struct SandboxState {
    pub(crate) api: Api,
    imp_key: String,
    imp_secret: String,
    api_secret: String,
    store_id: String,
    pub(crate) latency: Duration,
    pub(crate) clock: Clock,
    tokens: Mutex<TokenStore>,
    portone_tokens: Mutex<PortoneTokens>,
    ledger: Mutex<Ledger>,
    faults: Mutex<FaultBoard>,
    stats: Mutex<Stats>,
    webhooks: Option<Webhooks>,
}

/// Locks without propagating poison: no critical section here can leave its
/// data half-updated (they do not panic between related writes), so a panic
/// elsewhere must not take the whole sandbox down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SandboxState {
    pub(crate) fn new(config: &SandboxConfig, webhooks: Option<Webhooks>) -> Self {
        let ttl_secs = i64::try_from(config.token_ttl.as_secs()).unwrap_or(i64::MAX);
        Self {
            api: config.api,
            imp_key: config.imp_key.clone(),
            imp_secret: config.imp_secret.clone(),
            api_secret: config.api_secret.clone(),
            store_id: config.effective_store_id().to_owned(),
            latency: config.latency,
            clock: Clock::default(),
            tokens: Mutex::new(TokenStore::new(ttl_secs)),
            portone_tokens: Mutex::new(PortoneTokens::new(ttl_secs)),
            ledger: Mutex::new(Ledger::default()),
            faults: Mutex::new(FaultBoard::default()),
            stats: Mutex::new(Stats::default()),
            webhooks,
        }
    }

    /// The V2 store every payment belongs to.
    pub(crate) fn store(&self) -> Store<'_> {
        Store {
            store_id: &self.store_id,
        }
    }

    /// Whether a request's `storeId` (when it names one) is this store.
    pub(crate) fn store_matches(&self, store_id: Option<&str>) -> bool {
        store_id.is_none_or(|id| id == self.store_id)
    }

    pub(crate) fn api_secret_matches(&self, api_secret: &str) -> bool {
        api_secret == self.api_secret
    }

    /// `/login/api-secret`: a fresh V2 token pair.
    pub(crate) fn portone_login(&self) -> TokenPair {
        let pair = lock(&self.portone_tokens).login(self.clock.now());
        lock(&self.stats).get_token.minted += 1;
        pair
    }

    /// `/token/refresh`: a fresh pair for the live refresh token.
    pub(crate) fn portone_refresh(&self, refresh_token: &str) -> Option<TokenPair> {
        let pair = lock(&self.portone_tokens).refresh(refresh_token, self.clock.now());
        if pair.is_some() {
            lock(&self.stats).get_token.minted += 1;
        }
        pair
    }

    /// A V2 call's credential: the API secret, or a live access token.
    pub(crate) fn portone_authorized(&self, headers: &HeaderMap) -> bool {
        match presented_credential(headers) {
            Some(Credential::ApiSecret(secret)) => self.api_secret_matches(secret),
            Some(Credential::Bearer(token)) => {
                lock(&self.portone_tokens).is_valid(token, self.clock.now())
            }
            None => false,
        }
    }

    /// Queues the V2 webhook for a change to `payment` (a cancel's, when
    /// `cancellation_id` is given). Called after the ledger lock is released.
    fn notify(&self, payment: &Payment, cancellation_id: Option<&str>) {
        let Some(webhooks) = &self.webhooks else {
            return;
        };
        let cancellation = cancellation_id.and_then(|id| payment.cancellation(id));
        webhooks.send(Notice {
            event_type: notice_type(payment, cancellation),
            payment_id: payment.merchant_uid.clone(),
            transaction_id: payment.transaction_id.clone(),
            store_id: self.store_id.clone(),
            cancellation_id: cancellation.map(|c| c.cancellation_id.clone()),
            at: self.clock.now(),
        });
    }

    /// Notifies the cancel a successful cancel call just added.
    fn notify_cancel(&self, result: &Result<Payment, CancelError>) {
        if let Ok(payment) = result {
            let id = payment
                .cancel_history
                .last()
                .map(|e| e.cancellation_id.as_str());
            self.notify(payment, id);
        }
    }

    pub(crate) fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.webhooks
            .as_ref()
            .map(Webhooks::deliveries)
            .unwrap_or_default()
    }

    pub(crate) fn credentials_match(&self, imp_key: &str, imp_secret: &str) -> bool {
        imp_key == self.imp_key && imp_secret == self.imp_secret
    }

    /// The live token, or a fresh one (see [`TokenStore::issue`]).
    pub(crate) fn issue_token(&self) -> IssuedToken {
        let issued = lock(&self.tokens).issue(self.clock.now());
        if issued.minted {
            lock(&self.stats).get_token.minted += 1;
        }
        issued
    }

    pub(crate) fn is_authorized(&self, headers: &HeaderMap) -> bool {
        presented_token(headers)
            .is_some_and(|token| lock(&self.tokens).is_valid(token, self.clock.now()))
    }

    pub(crate) fn revoke_tokens(&self) {
        lock(&self.tokens).revoke_all();
        lock(&self.portone_tokens).revoke_all();
    }

    pub(crate) fn create_payment(&self, new: NewPayment) -> Result<Payment, CreatePaymentError> {
        let created = lock(&self.ledger).create(new, self.clock.now());
        if let Ok(payment) = &created {
            self.notify(payment, None);
        }
        created
    }

    pub(crate) fn payment(&self, imp_uid: &str) -> Option<Payment> {
        lock(&self.ledger).get(imp_uid).cloned()
    }

    pub(crate) fn find_payment(
        &self,
        merchant_uid: &str,
        status: Option<PaymentStatus>,
    ) -> Option<Payment> {
        lock(&self.ledger).find(merchant_uid, status).cloned()
    }

    /// A merchant's cancel call; counted as committed on success (a
    /// requested one included: it changed the payment).
    pub(crate) fn cancel(
        &self,
        target: &Target,
        decode: impl FnOnce(&Payment) -> Result<CancelOrder, CancelError>,
    ) -> Result<Payment, CancelError> {
        let result = lock(&self.ledger).cancel(target, self.clock.now(), decode);
        if result.is_ok() {
            lock(&self.stats).cancel.committed += 1;
        }
        self.notify_cancel(&result);
        result
    }

    /// A cancel from the admin console: no balance check, no refund account.
    pub(crate) fn admin_cancel(
        &self,
        target: &Target,
        cancel: AdminCancel,
    ) -> Result<Payment, CancelError> {
        let order = CancelOrder {
            api: self.api,
            trigger: CancelTrigger::Console,
            amount: cancel.amount,
            reason: cancel.reason,
            require_refund_account: false,
            ..CancelOrder::default()
        };
        let result = lock(&self.ledger).cancel(target, self.clock.now(), |_| Ok(order));
        self.notify_cancel(&result);
        result
    }

    /// Completes every requested cancel; returns how each payment stood
    /// after its cancel, with the cancel's id.
    pub(crate) fn complete_requested(&self, succeed: bool) -> Vec<(Payment, String)> {
        let completed = lock(&self.ledger).complete_requested(succeed, self.clock.now());
        for (payment, id) in &completed {
            self.notify(payment, Some(id));
        }
        completed
    }

    pub(crate) fn arm_fault(&self, fault: Fault, target: FaultTarget, times: u32) {
        lock(&self.faults).arm(fault, target, times);
    }

    pub(crate) fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        lock(&self.faults).take(endpoint)
    }

    pub(crate) fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    pub(crate) fn armed_faults(&self) -> Vec<ArmedFault> {
        lock(&self.faults).armed()
    }

    pub(crate) fn record_call(&self, endpoint: Endpoint) {
        lock(&self.stats).record_call(endpoint);
    }

    pub(crate) fn record_unauthorized(&self) {
        lock(&self.stats).unauthorized += 1;
    }

    pub(crate) fn stats(&self) -> Stats {
        *lock(&self.stats)
    }

    pub(crate) fn reset_stats(&self) -> Stats {
        std::mem::take(&mut *lock(&self.stats))
    }
}
