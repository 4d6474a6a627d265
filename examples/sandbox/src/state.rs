//! State shared by the HTTP handlers and the Rust handle.
//!
//! Each part sits behind its own `std::sync::Mutex`. Critical sections are
//! short, synchronous and never span an `.await`; a whole cancel (lookup,
//! checks, commit) runs inside one `ledger` section, so racing cancels are
//! serialized exactly as the gateway's database would serialize them.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::http::header::HeaderMap;

use crate::auth::{presented_token, IssuedToken, TokenStore};
use crate::clock::Clock;
use crate::config::SandboxConfig;
use crate::faults::{ArmedFault, Endpoint, Fault, FaultBoard, FaultTarget};
use crate::ledger::{
    AdminCancel, CancelError, CancelOrder, CreatePaymentError, Ledger, NewPayment, Payment,
    PaymentStatus, Target,
};
use crate::stats::Stats;

#[derive(Debug)]
pub(crate) struct SandboxState {
    imp_key: String,
    imp_secret: String,
    pub(crate) latency: Duration,
    pub(crate) clock: Clock,
    tokens: Mutex<TokenStore>,
    ledger: Mutex<Ledger>,
    faults: Mutex<FaultBoard>,
    stats: Mutex<Stats>,
}

/// Locks without propagating poison: no critical section here can leave its
/// data half-updated (they do not panic between related writes), so a panic
/// elsewhere must not take the whole sandbox down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SandboxState {
    pub(crate) fn new(config: &SandboxConfig) -> Self {
        let ttl_secs = i64::try_from(config.token_ttl.as_secs()).unwrap_or(i64::MAX);
        Self {
            imp_key: config.imp_key.clone(),
            imp_secret: config.imp_secret.clone(),
            latency: config.latency,
            clock: Clock::default(),
            tokens: Mutex::new(TokenStore::new(ttl_secs)),
            ledger: Mutex::new(Ledger::default()),
            faults: Mutex::new(FaultBoard::default()),
            stats: Mutex::new(Stats::default()),
        }
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
    }

    pub(crate) fn create_payment(&self, new: NewPayment) -> Result<Payment, CreatePaymentError> {
        lock(&self.ledger).create(new, self.clock.now())
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

    /// A merchant's `/payments/cancel`; counted as committed on success.
    pub(crate) fn cancel(
        &self,
        target: &Target,
        decode: impl FnOnce(&Payment) -> Result<CancelOrder, CancelError>,
    ) -> Result<Payment, CancelError> {
        let result = lock(&self.ledger).cancel(target, self.clock.now(), decode);
        if result.is_ok() {
            lock(&self.stats).cancel.committed += 1;
        }
        result
    }

    pub(crate) fn admin_cancel(
        &self,
        imp_uid: &str,
        cancel: AdminCancel,
    ) -> Result<Payment, CancelError> {
        let order = CancelOrder {
            amount: cancel.amount,
            reason: cancel.reason,
            require_refund_account: false,
            ..CancelOrder::default()
        };
        lock(&self.ledger).cancel(
            &Target::ImpUid(imp_uid.to_owned()),
            self.clock.now(),
            |_| Ok(order),
        )
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
