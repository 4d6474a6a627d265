//! The gateway's book of payments and the rules of cancelling them.
//!
//! This is an independent model of the gateway's behavior, written from the
//! official references and not from our client, so that a client bug is not
//! mirrored here. It is the one book of money for both APIs: V1 and V2 are
//! two wire formats over it, and the few rules where they differ are chosen
//! by [`CancelOrder::api`]. Every cancel runs to completion under the
//! caller's lock: validation and commit are one atomic step, which is what
//! makes the `checksum` / `currentCancellableAmount` guard meaningful under
//! concurrent requests.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};
use time::{macros::offset, OffsetDateTime};

use crate::auth::random_hex;
use crate::config::Api;
use crate::money::{AmountError, Currency};

/// Payment states of the V1 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// Not paid yet (e.g. a virtual account waiting for the deposit).
    Ready,
    /// Paid; stays so through partial cancels.
    Paid,
    /// Fully cancelled.
    Cancelled,
    /// The payment attempt failed.
    Failed,
}

impl PaymentStatus {
    /// The wire name (`ready`, `paid`, `cancelled`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name the API does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for PaymentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Ready, Self::Paid, Self::Cancelled, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Pay methods whose cancel rules differ from a card's.
pub mod pay_method {
    /// Credit card, the default.
    pub const CARD: &str = "card";
    /// Virtual account: refunds need the customer's bank account.
    pub const VBANK: &str = "vbank";
    /// Mobile phone micropayment: no refund after the month of payment.
    pub const PHONE: &str = "phone";
    /// Real-time bank transfer.
    pub const TRANS: &str = "trans";
}

/// The virtual account issued for a `vbank` payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAccount {
    /// Bank standard code.
    pub bank_code: String,
    /// Bank name.
    pub bank_name: String,
    /// Account number the customer deposited to.
    pub number: String,
    /// Account holder shown to the customer.
    pub holder: String,
    /// Deposit deadline (unix seconds).
    pub due_at: i64,
    /// When the account was issued (unix seconds).
    pub issued_at: i64,
}

/// Where a cancellation stands (V2 `PaymentCancellation.status`). V1 only
/// ever sees succeeded ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancellationStatus {
    /// Accepted but not done yet (an asynchronous V2 cancel): listed, not
    /// counted in the cancelled amount, but no longer cancellable.
    Requested,
    /// Done: counted in the cancelled amount.
    Succeeded,
    /// A requested cancel the PG ended up refusing: counts for nothing.
    Failed,
}

impl CancellationStatus {
    /// The V2 wire name (`REQUESTED`, `SUCCEEDED`, `FAILED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }
}

/// Who asked for a cancel (V2 `Trigger`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CancelTrigger {
    /// The merchant's server, through the API.
    #[default]
    Api,
    /// Someone in the admin console (the sandbox's admin-cancel).
    Console,
}

impl CancelTrigger {
    /// The V2 wire name (`API`, `CONSOLE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "API",
            Self::Console => "CONSOLE",
        }
    }
}

/// One (partial) cancel, as listed in V1 `cancel_history` (succeeded ones
/// only) and V2 `cancellations` (all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelEntry {
    /// The PG's cancel transaction id, unique per cancel.
    pub pg_tid: String,
    /// Cancelled amount in minor units.
    pub amount: i64,
    /// Tax-free part of `amount`, minor units.
    pub tax_free: i64,
    /// VAT part of `amount`, minor units (as given, or computed as V2 does).
    pub vat_amount: i64,
    /// Where it stands.
    pub status: CancellationStatus,
    /// Who asked for it.
    pub trigger: CancelTrigger,
    /// When it was asked for (unix seconds).
    pub requested_at: i64,
    /// When it succeeded (unix seconds); 0 while requested or if it failed.
    pub cancelled_at: i64,
    /// Reason given with the cancel (empty when none was).
    pub reason: String,
    /// Gateway-wide unique id of this cancel.
    pub cancellation_id: String,
    /// Cancel receipt.
    pub receipt_url: String,
}

/// A payment as the gateway holds it. Amounts are minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Gateway id, `imp_` and 12 digits.
    pub imp_uid: String,
    /// The merchant's order id (unique in the sandbox); V2's `paymentId`.
    pub merchant_uid: String,
    /// V2 `transactionId` (a UUID), which plays `imp_uid`'s part on V2.
    pub transaction_id: String,
    /// Product name.
    pub name: String,
    /// `card`, `vbank`, `phone`, `trans`, ...
    pub pay_method: String,
    /// PG code; always `sandbox` here.
    pub pg_provider: String,
    /// The PG's transaction id.
    pub pg_tid: String,
    /// Settlement currency.
    pub currency: Currency,
    /// Paid amount.
    pub amount: i64,
    /// Tax-free part of `amount`.
    pub tax_free: i64,
    /// Total cancelled so far (succeeded cancels only).
    pub cancel_amount: i64,
    /// Current state.
    pub status: PaymentStatus,
    /// When the payment window opened (unix seconds).
    pub started_at: i64,
    /// When it was paid, 0 if never.
    pub paid_at: i64,
    /// When it failed, 0 if it did not.
    pub failed_at: i64,
    /// When it became fully cancelled, 0 until then.
    pub cancelled_at: i64,
    /// Buyer's name, if given.
    pub buyer_name: Option<String>,
    /// Failure reason of a failed payment.
    pub fail_reason: Option<String>,
    /// Reason of the latest cancel.
    pub cancel_reason: Option<String>,
    /// Sales receipt.
    pub receipt_url: String,
    /// Set for `vbank` payments.
    pub vbank: Option<VirtualAccount>,
    /// Every cancel, oldest first, whatever its status.
    pub cancel_history: Vec<CancelEntry>,
}

impl Payment {
    /// What can still be cancelled: `amount - cancel_amount`, less what
    /// requested (asynchronous) cancels have already claimed.
    pub fn cancelable_amount(&self) -> i64 {
        self.amount - self.cancel_amount - self.requested_amount()
    }

    /// Sum of the cancels still in [`CancellationStatus::Requested`].
    pub fn requested_amount(&self) -> i64 {
        self.entries(CancellationStatus::Requested)
            .map(|e| e.amount)
            .sum()
    }

    /// Tax-free amount cancelled so far (succeeded cancels only).
    pub fn cancelled_tax_free(&self) -> i64 {
        self.entries(CancellationStatus::Succeeded)
            .map(|e| e.tax_free)
            .sum()
    }

    /// The cancels in `status`, oldest first.
    pub fn entries(&self, status: CancellationStatus) -> impl Iterator<Item = &CancelEntry> {
        self.cancel_history
            .iter()
            .filter(move |e| e.status == status)
    }

    /// The cancel with this `cancellation_id`.
    pub fn cancellation(&self, cancellation_id: &str) -> Option<&CancelEntry> {
        self.cancel_history
            .iter()
            .find(|e| e.cancellation_id == cancellation_id)
    }

    fn cancellable_tax_free(&self) -> i64 {
        let claimed: i64 = self
            .cancel_history
            .iter()
            .filter(|e| e.status != CancellationStatus::Failed)
            .map(|e| e.tax_free)
            .sum();
        self.tax_free - claimed
    }
}

/// A payment to seed into the sandbox (what a buyer would have paid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// Must be unique within the sandbox.
    pub merchant_uid: String,
    /// Minor units of `currency`; must be positive.
    pub amount: i64,
    /// Tax-free part of `amount` in minor units; default 0.
    pub tax_free: i64,
    /// Default KRW.
    pub currency: Currency,
    /// Default `card`; `vbank` gets a virtual account.
    pub pay_method: String,
    /// Default `paid`; `ready` and `failed` let tests try to cancel an unpaid
    /// payment. `cancelled` is refused: cancel a paid one instead.
    pub status: PaymentStatus,
    /// Payment time in unix seconds for a `paid` payment; default now.
    pub paid_at: Option<i64>,
    /// Product name; default `sandbox order`.
    pub name: Option<String>,
    /// Buyer's name.
    pub buyer_name: Option<String>,
}

impl NewPayment {
    /// A paid card payment of `amount` minor units.
    pub fn new(merchant_uid: impl Into<String>, amount: i64, currency: Currency) -> Self {
        Self {
            merchant_uid: merchant_uid.into(),
            amount,
            tax_free: 0,
            currency,
            pay_method: pay_method::CARD.to_owned(),
            status: PaymentStatus::Paid,
            paid_at: None,
            name: None,
            buyer_name: None,
        }
    }

    /// Sets the pay method (`card`, `vbank`, `phone`, ...).
    pub fn pay_method(mut self, pay_method: impl Into<String>) -> Self {
        self.pay_method = pay_method.into();
        self
    }

    /// Sets the payment time (unix seconds).
    pub fn paid_at(mut self, paid_at: i64) -> Self {
        self.paid_at = Some(paid_at);
        self
    }

    /// Sets the initial status.
    pub fn status(mut self, status: PaymentStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the tax-free part (minor units).
    pub fn tax_free(mut self, tax_free: i64) -> Self {
        self.tax_free = tax_free;
        self
    }
}

/// A cancel made outside the merchant's server, as from the i'mport admin
/// console: no checksum and no refund account, but otherwise the same rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminCancel {
    /// Minor units; `None` (or 0) cancels everything that is left.
    pub amount: Option<i64>,
    /// Reason recorded in `cancel_history`.
    pub reason: Option<String>,
}

/// Why a payment could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreatePaymentError {
    /// `merchant_uid` was empty.
    #[error("merchant_uid is required")]
    MissingMerchantUid,
    /// Another payment already uses this `merchant_uid`.
    #[error("merchant_uid {0:?} is already used by another payment")]
    DuplicateMerchantUid(String),
    /// Amount was zero or negative.
    #[error("amount must be positive")]
    NonPositiveAmount,
    /// The tax-free part was negative or larger than the amount.
    #[error("tax_free must be between 0 and the amount")]
    InvalidTaxFree,
    /// Only `paid`, `ready` and `failed` payments can be seeded.
    #[error("a payment cannot be created as {0}")]
    UnsupportedStatus(PaymentStatus),
}

/// Why a cancel was refused. Nothing changes when one is returned.
///
/// On V1 these become `code: -1` with the message text (clients must not
/// parse it: the real gateway's messages are free-form Korean); on V2 each
/// has its typed error (`type`) and HTTP status. Messages never repeat a
/// refund account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// The request is malformed or breaks an input rule (V2
    /// `INVALID_REQUEST`); the text says which field, not its value.
    #[error("{0}")]
    InvalidRequest(String),
    /// Neither `imp_uid` nor `merchant_uid` was given.
    #[error("imp_uid or merchant_uid is required")]
    MissingIdentifier,
    /// No payment has the given id (an unknown `imp_uid` is not retried with
    /// `merchant_uid`).
    #[error("no payment matches the given id")]
    PaymentNotFound,
    /// A request field had an unusable shape.
    #[error("{field} must be a string or a number")]
    InvalidField {
        /// The offending field.
        field: String,
    },
    /// An amount field is not representable in the payment's currency.
    #[error("{field} is invalid: {source}")]
    InvalidAmount {
        /// `amount`, `checksum`, `tax_free` or `vat_amount`.
        field: &'static str,
        /// What is wrong with it.
        source: AmountError,
    },
    /// The payment is not in `paid` state.
    #[error("only paid payments can be cancelled (status is {0})")]
    NotPaid(PaymentStatus),
    /// Nothing is left to cancel.
    #[error("the payment is already fully cancelled")]
    AlreadyCancelled,
    /// The caller's view of the cancelable amount is stale.
    #[error("checksum does not match the cancelable amount")]
    ChecksumMismatch,
    /// More than what is left was requested.
    #[error("the requested amount exceeds the cancelable amount")]
    ExceedsCancelable,
    /// `tax_free` or `vat_amount` is larger than the cancel itself.
    #[error("{0} exceeds the cancelled amount")]
    TaxExceedsAmount(&'static str),
    /// V2: `taxFreeAmount + vatAmount` is larger than the cancel itself.
    #[error("taxFreeAmount and vatAmount together exceed the cancel amount")]
    SumOfPartsExceedsAmount,
    /// V2: more tax-free amount than the payment has left to cancel.
    #[error("taxFreeAmount exceeds the cancellable tax-free amount")]
    TaxFreeExceedsCancellable,
    /// Virtual-account refunds go to a bank account the gateway must be told.
    #[error(
        "refund_holder, refund_bank and refund_account are required to refund a virtual account"
    )]
    RefundAccountRequired,
    /// Mobile phone payments are refundable only within their month (KST).
    #[error("a mobile phone payment cannot be cancelled after the month it was paid in")]
    PhoneMonthPassed,
}

/// How the cancel request names its payment. `imp_uid` wins when both are
/// given, as the gateway documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    ImpUid(String),
    MerchantUid(String),
}

impl Target {
    pub(crate) fn from_ids(
        imp_uid: Option<String>,
        merchant_uid: Option<String>,
    ) -> Result<Self, CancelError> {
        imp_uid
            .map(Self::ImpUid)
            .or(merchant_uid.map(Self::MerchantUid))
            .ok_or(CancelError::MissingIdentifier)
    }
}

/// Bank account a virtual-account refund is paid to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RefundAccount {
    pub(crate) holder: Option<String>,
    pub(crate) bank: Option<String>,
    pub(crate) account: Option<String>,
}

impl RefundAccount {
    fn is_complete(&self) -> bool {
        [&self.holder, &self.bank, &self.account]
            .iter()
            .all(|field| field.as_deref().is_some_and(|v| !v.trim().is_empty()))
    }
}

/// A cancel request with amounts already converted to minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CancelOrder {
    /// Whose rules apply where the APIs differ (tax parts, phone payments
    /// after their month).
    pub(crate) api: Api,
    /// V2 `REQUESTED`: record the cancel as pending instead of doing it.
    pub(crate) asynchronous: bool,
    pub(crate) trigger: CancelTrigger,
    /// `None` or `Some(0)`: everything that is left.
    pub(crate) amount: Option<i64>,
    /// When set, must equal the cancelable amount.
    pub(crate) checksum: Option<i64>,
    pub(crate) tax_free: Option<i64>,
    pub(crate) vat_amount: Option<i64>,
    pub(crate) reason: Option<String>,
    pub(crate) refund_account: RefundAccount,
    /// False for admin-console cancels, where the operator deals with the
    /// refund account outside the API.
    pub(crate) require_refund_account: bool,
}

/// Where fake receipts point. `.invalid` never resolves.
const RECEIPT_BASE: &str = "https://sandbox.iamport.invalid/receipts";

/// All payments, indexed by `imp_uid` and by `merchant_uid`.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    payments: HashMap<String, Payment>,
    by_merchant_uid: HashMap<String, String>,
    /// Makes every cancel's `pg_tid` and `cancellation_id` unique.
    cancel_seq: u64,
}

impl Ledger {
    pub(crate) fn create(
        &mut self,
        new: NewPayment,
        now: i64,
    ) -> Result<Payment, CreatePaymentError> {
        if new.merchant_uid.trim().is_empty() {
            return Err(CreatePaymentError::MissingMerchantUid);
        }
        if new.amount <= 0 {
            return Err(CreatePaymentError::NonPositiveAmount);
        }
        if !(0..=new.amount).contains(&new.tax_free) {
            return Err(CreatePaymentError::InvalidTaxFree);
        }
        if self.by_merchant_uid.contains_key(&new.merchant_uid) {
            return Err(CreatePaymentError::DuplicateMerchantUid(new.merchant_uid));
        }
        let (started_at, paid_at, failed_at) = match new.status {
            PaymentStatus::Paid => {
                let paid_at = new.paid_at.unwrap_or(now);
                (paid_at, paid_at, 0)
            }
            PaymentStatus::Ready => (now, 0, 0),
            PaymentStatus::Failed => (now, 0, now),
            PaymentStatus::Cancelled => {
                return Err(CreatePaymentError::UnsupportedStatus(new.status))
            }
        };
        let imp_uid = self.unused_imp_uid();
        let vbank = (new.pay_method == pay_method::VBANK).then(|| VirtualAccount {
            bank_code: "088".to_owned(),
            bank_name: "신한은행".to_owned(),
            number: random_digits(14),
            holder: "(주)샌드박스".to_owned(),
            due_at: started_at + 3 * 24 * 3600,
            issued_at: started_at,
        });
        let payment = Payment {
            pg_tid: format!("sandbox_{}", random_hex(10)),
            receipt_url: format!("{RECEIPT_BASE}/{imp_uid}"),
            imp_uid: imp_uid.clone(),
            merchant_uid: new.merchant_uid.clone(),
            transaction_id: random_uuid(),
            name: new.name.unwrap_or_else(|| "sandbox order".to_owned()),
            pay_method: new.pay_method,
            pg_provider: "sandbox".to_owned(),
            currency: new.currency,
            amount: new.amount,
            tax_free: new.tax_free,
            cancel_amount: 0,
            status: new.status,
            started_at,
            paid_at,
            failed_at,
            cancelled_at: 0,
            buyer_name: new.buyer_name,
            fail_reason: (new.status == PaymentStatus::Failed)
                .then(|| "created as failed in the sandbox".to_owned()),
            cancel_reason: None,
            vbank,
            cancel_history: Vec::new(),
        };
        self.by_merchant_uid
            .insert(new.merchant_uid, imp_uid.clone());
        self.payments.insert(imp_uid, payment.clone());
        Ok(payment)
    }

    pub(crate) fn get(&self, imp_uid: &str) -> Option<&Payment> {
        self.payments.get(imp_uid)
    }

    /// The payment of `merchant_uid`, if it is in `status` (any when `None`).
    /// merchant_uid is unique here, so the gateway's "most recent first"
    /// ordering among duplicates never has more than one candidate.
    pub(crate) fn find(
        &self,
        merchant_uid: &str,
        status: Option<PaymentStatus>,
    ) -> Option<&Payment> {
        self.by_merchant_uid
            .get(merchant_uid)
            .and_then(|imp_uid| self.payments.get(imp_uid))
            .filter(|p| status.is_none_or(|s| p.status == s))
    }

    /// Validates and commits one cancel atomically.
    ///
    /// `decode` turns the request into a [`CancelOrder`] once the payment is
    /// known, because amounts can only be parsed in the payment's currency.
    /// Returns the payment as it stands after the commit.
    pub(crate) fn cancel(
        &mut self,
        target: &Target,
        now: i64,
        decode: impl FnOnce(&Payment) -> Result<CancelOrder, CancelError>,
    ) -> Result<Payment, CancelError> {
        let imp_uid = match target {
            Target::ImpUid(imp_uid) => imp_uid,
            Target::MerchantUid(merchant_uid) => self
                .by_merchant_uid
                .get(merchant_uid)
                .ok_or(CancelError::PaymentNotFound)?,
        };
        let payment = self
            .payments
            .get_mut(imp_uid)
            .ok_or(CancelError::PaymentNotFound)?;
        let order = decode(payment)?;
        let Checked {
            amount,
            tax_free,
            vat_amount,
        } = check_cancel(payment, &order, now)?;

        self.cancel_seq += 1;
        let cancellation_id = format!("cxl_{:06}{}", self.cancel_seq, random_hex(6));
        let status = if order.asynchronous {
            CancellationStatus::Requested
        } else {
            CancellationStatus::Succeeded
        };
        payment.cancel_history.push(CancelEntry {
            pg_tid: format!("sandbox_cancel_{:06}_{}", self.cancel_seq, random_hex(4)),
            amount,
            tax_free,
            vat_amount,
            status,
            trigger: order.trigger,
            requested_at: now,
            cancelled_at: 0,
            reason: order.reason.unwrap_or_default(),
            receipt_url: format!(
                "{RECEIPT_BASE}/{}/cancel/{cancellation_id}",
                payment.imp_uid
            ),
            cancellation_id,
        });
        if status == CancellationStatus::Succeeded {
            let index = payment.cancel_history.len() - 1;
            settle(payment, index, now);
        }
        Ok(payment.clone())
    }

    /// Completes every requested (asynchronous) cancel: each succeeds
    /// (counted, `cancelled_at` set) or fails (counts for nothing). Returns,
    /// per completed cancel, its id and the payment right after it.
    pub(crate) fn complete_requested(&mut self, succeed: bool, now: i64) -> Vec<(Payment, String)> {
        let mut completed = Vec::new();
        let mut payments: Vec<&mut Payment> = self.payments.values_mut().collect();
        // Oldest payment first, so the order of completions is stable.
        payments.sort_by(|a, b| (a.started_at, &a.imp_uid).cmp(&(b.started_at, &b.imp_uid)));
        for payment in payments {
            for index in 0..payment.cancel_history.len() {
                if payment.cancel_history[index].status != CancellationStatus::Requested {
                    continue;
                }
                if succeed {
                    settle(payment, index, now);
                } else {
                    payment.cancel_history[index].status = CancellationStatus::Failed;
                }
                let id = payment.cancel_history[index].cancellation_id.clone();
                completed.push((payment.clone(), id));
            }
        }
        completed
    }

    fn unused_imp_uid(&self) -> String {
        loop {
            let candidate = format!("imp_{}", random_digits(12));
            if !self.payments.contains_key(&candidate) {
                return candidate;
            }
        }
    }
}

/// Marks cancel `index` succeeded and counts it; the payment becomes
/// `cancelled` when nothing is left.
fn settle(payment: &mut Payment, index: usize, now: i64) {
    let entry = &mut payment.cancel_history[index];
    entry.status = CancellationStatus::Succeeded;
    entry.cancelled_at = now;
    payment.cancel_amount += entry.amount;
    payment.cancel_reason = Some(entry.reason.clone()).filter(|r| !r.is_empty());
    if payment.cancel_amount == payment.amount {
        payment.status = PaymentStatus::Cancelled;
        payment.cancelled_at = now;
    }
}

/// What a valid cancel takes from the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checked {
    amount: i64,
    tax_free: i64,
    vat_amount: i64,
}

/// The gateway's cancel rules; returns what to cancel.
fn check_cancel(payment: &Payment, order: &CancelOrder, now: i64) -> Result<Checked, CancelError> {
    match payment.status {
        PaymentStatus::Paid => {}
        PaymentStatus::Cancelled => return Err(CancelError::AlreadyCancelled),
        status => return Err(CancelError::NotPaid(status)),
    }
    let cancelable = payment.cancelable_amount();
    if order
        .checksum
        .is_some_and(|checksum| checksum != cancelable)
    {
        return Err(CancelError::ChecksumMismatch);
    }
    let amount = order.amount.filter(|&a| a != 0).unwrap_or(cancelable);
    // Nothing left while requested cancels are still pending: any cancel,
    // even "all of it", asks for more than there is.
    if amount > cancelable || amount == 0 {
        return Err(CancelError::ExceedsCancelable);
    }
    let tax_free = order.tax_free.unwrap_or(0);
    let vat_amount = match order.api {
        Api::Iamport => {
            for (field, value) in [
                ("tax_free", order.tax_free),
                ("vat_amount", order.vat_amount),
            ] {
                if value.is_some_and(|v| v > amount) {
                    return Err(CancelError::TaxExceedsAmount(field));
                }
            }
            order.vat_amount.unwrap_or(0)
        }
        Api::Portone => {
            // V2 computes the VAT of the taxable part when it is not given.
            let vat_amount = order.vat_amount.unwrap_or((amount - tax_free) / 11);
            if tax_free + vat_amount > amount {
                return Err(CancelError::SumOfPartsExceedsAmount);
            }
            if tax_free > payment.cancellable_tax_free() {
                return Err(CancelError::TaxFreeExceedsCancellable);
            }
            vat_amount
        }
    };
    let account_given = order.refund_account.is_complete();
    if order.require_refund_account && payment.pay_method == pay_method::VBANK && !account_given {
        return Err(CancelError::RefundAccountRequired);
    }
    if payment.pay_method == pay_method::PHONE && !same_or_earlier_kst_month(now, payment.paid_at) {
        // V1 refuses; V2 refunds to a bank account instead ("휴대폰 익월
        // 환불" in the V2 refundAccount field's description).
        match order.api {
            Api::Iamport => return Err(CancelError::PhoneMonthPassed),
            Api::Portone if order.require_refund_account && !account_given => {
                return Err(CancelError::RefundAccountRequired)
            }
            Api::Portone => {}
        }
    }
    Ok(Checked {
        amount,
        tax_free,
        vat_amount,
    })
}

/// Whether `now` falls in the calendar month (Korea time) of `paid_at`, or
/// before it. Unrepresentable timestamps count as a later month.
fn same_or_earlier_kst_month(now: i64, paid_at: i64) -> bool {
    let kst_month = |ts: i64| {
        OffsetDateTime::from_unix_timestamp(ts)
            .ok()
            .map(|t| t.to_offset(offset!(+9)))
            .map(|t| (t.year(), u8::from(t.month())))
    };
    matches!((kst_month(now), kst_month(paid_at)), (Some(now), Some(paid)) if now <= paid)
}

/// A random version-4 UUID, as V2 `transactionId`s are.
fn random_uuid() -> String {
    let hex = random_hex(16);
    // Version nibble 4 and variant bits 10xx, as RFC 9562 asks.
    let variant = ["8", "9", "a", "b"][rand::thread_rng().gen_range(0..4)];
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn random_digits(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-01-31 23:30 KST and 2024-02-01 00:30 KST.
    const JAN_31_LATE_KST: i64 = 1_706_711_400;
    const FEB_1_EARLY_KST: i64 = 1_706_715_000;

    fn paid(ledger: &mut Ledger, new: NewPayment) -> Payment {
        ledger.create(new, JAN_31_LATE_KST).unwrap()
    }

    fn order(amount: Option<i64>, checksum: Option<i64>) -> CancelOrder {
        CancelOrder {
            amount,
            checksum,
            require_refund_account: true,
            ..CancelOrder::default()
        }
    }

    #[test]
    fn kst_month_boundary_is_not_utc() {
        // Both instants are on 2024-01-31 in UTC, but in different months in KST.
        assert!(same_or_earlier_kst_month(
            JAN_31_LATE_KST,
            JAN_31_LATE_KST - 3600
        ));
        assert!(!same_or_earlier_kst_month(FEB_1_EARLY_KST, JAN_31_LATE_KST));
    }

    #[test]
    fn partial_then_full_cancel() {
        let mut ledger = Ledger::default();
        let p = paid(&mut ledger, NewPayment::new("m1", 1000, Currency::Krw));
        let target = Target::ImpUid(p.imp_uid.clone());

        let after = ledger
            .cancel(&target, 10, |_| Ok(order(Some(300), Some(1000))))
            .unwrap();
        assert_eq!(
            (after.cancel_amount, after.status, after.cancelled_at),
            (300, PaymentStatus::Paid, 0)
        );

        let stale = ledger.cancel(&target, 11, |_| Ok(order(Some(300), Some(1000))));
        assert_eq!(stale, Err(CancelError::ChecksumMismatch));

        let rest = ledger
            .cancel(&target, 12, |_| Ok(order(None, Some(700))))
            .unwrap();
        assert_eq!(
            (rest.cancel_amount, rest.status, rest.cancelled_at),
            (1000, PaymentStatus::Cancelled, 12)
        );
        assert_eq!(rest.cancel_history.len(), 2);
        assert_ne!(rest.cancel_history[0].pg_tid, rest.cancel_history[1].pg_tid);
        assert_ne!(
            rest.cancel_history[0].cancellation_id,
            rest.cancel_history[1].cancellation_id
        );

        let again = ledger.cancel(&target, 13, |_| Ok(order(None, None)));
        assert_eq!(again, Err(CancelError::AlreadyCancelled));
    }

    #[test]
    fn merchant_uid_lookup_and_unknown_ids() {
        let mut ledger = Ledger::default();
        paid(&mut ledger, NewPayment::new("m1", 1000, Currency::Krw));
        let by_merchant = Target::MerchantUid("m1".to_owned());
        assert!(ledger
            .cancel(&by_merchant, 1, |_| Ok(order(Some(1), None)))
            .is_ok());
        let unknown = Target::ImpUid("imp_000000000000".to_owned());
        assert_eq!(
            ledger.cancel(&unknown, 1, |_| Ok(order(None, None))),
            Err(CancelError::PaymentNotFound)
        );
        assert_eq!(
            Target::from_ids(None, None),
            Err(CancelError::MissingIdentifier)
        );
        assert_eq!(
            Target::from_ids(Some("a".into()), Some("b".into())),
            Ok(Target::ImpUid("a".into()))
        );
    }

    #[test]
    fn phone_payments_expire_with_their_month() {
        let mut ledger = Ledger::default();
        let p = paid(
            &mut ledger,
            NewPayment::new("m1", 1000, Currency::Krw)
                .pay_method(pay_method::PHONE)
                .paid_at(JAN_31_LATE_KST),
        );
        let target = Target::ImpUid(p.imp_uid);
        assert_eq!(
            ledger.cancel(&target, FEB_1_EARLY_KST, |_| Ok(order(None, None))),
            Err(CancelError::PhoneMonthPassed)
        );
        assert!(ledger
            .cancel(&target, JAN_31_LATE_KST + 60, |_| Ok(order(None, None)))
            .is_ok());
    }

    fn v2(amount: Option<i64>, checksum: Option<i64>, asynchronous: bool) -> CancelOrder {
        CancelOrder {
            api: Api::Portone,
            asynchronous,
            ..order(amount, checksum)
        }
    }

    #[test]
    fn requested_cancels_claim_the_balance_until_completed() {
        let mut ledger = Ledger::default();
        let p = paid(&mut ledger, NewPayment::new("m1", 1000, Currency::Krw));
        let target = Target::MerchantUid("m1".to_owned());
        let pending = ledger
            .cancel(&target, 10, |_| Ok(v2(Some(400), Some(1000), true)))
            .unwrap();
        assert_eq!(
            (pending.cancel_amount, pending.cancelable_amount()),
            (0, 600)
        );
        assert_eq!(
            pending.cancel_history[0].status,
            CancellationStatus::Requested
        );
        assert_eq!(pending.cancel_history[0].cancelled_at, 0);
        // The balance check sees what the pending cancel claimed.
        assert_eq!(
            ledger.cancel(&target, 11, |_| Ok(v2(Some(100), Some(1000), false))),
            Err(CancelError::ChecksumMismatch)
        );
        let rest = ledger
            .cancel(&target, 12, |_| Ok(v2(None, Some(600), false)))
            .unwrap();
        assert_eq!(
            (rest.cancel_amount, rest.status),
            (600, PaymentStatus::Paid)
        );
        assert_eq!(
            ledger.cancel(&target, 13, |_| Ok(v2(None, None, false))),
            Err(CancelError::ExceedsCancelable)
        );

        let completed = ledger.complete_requested(true, 20);
        assert_eq!(completed.len(), 1);
        let done = ledger.get(&p.imp_uid).unwrap();
        assert_eq!(
            (done.cancel_amount, done.status, done.cancelled_at),
            (1000, PaymentStatus::Cancelled, 20)
        );
        assert_eq!(done.cancel_history[0].cancelled_at, 20);
        assert!(ledger.complete_requested(true, 21).is_empty());
    }

    #[test]
    fn a_failed_requested_cancel_gives_its_amount_back() {
        let mut ledger = Ledger::default();
        let p = paid(&mut ledger, NewPayment::new("m1", 1000, Currency::Krw));
        let target = Target::ImpUid(p.imp_uid.clone());
        ledger
            .cancel(&target, 10, |_| Ok(v2(None, None, true)))
            .unwrap();
        assert_eq!(ledger.get(&p.imp_uid).unwrap().cancelable_amount(), 0);
        ledger.complete_requested(false, 11);
        let after = ledger.get(&p.imp_uid).unwrap();
        assert_eq!(
            (after.cancel_amount, after.cancelable_amount(), after.status),
            (0, 1000, PaymentStatus::Paid)
        );
        assert_eq!(after.cancel_history[0].status, CancellationStatus::Failed);
    }

    #[test]
    fn v2_tax_parts_and_phone_refunds_follow_v2_rules() {
        let mut ledger = Ledger::default();
        paid(
            &mut ledger,
            NewPayment::new("m1", 1100, Currency::Krw).tax_free(100),
        );
        let target = Target::MerchantUid("m1".to_owned());
        let with_tax = |tax_free, vat| CancelOrder {
            tax_free,
            vat_amount: vat,
            ..v2(Some(500), None, false)
        };
        assert_eq!(
            ledger.cancel(&target, 1, |_| Ok(with_tax(Some(300), Some(300)))),
            Err(CancelError::SumOfPartsExceedsAmount)
        );
        assert_eq!(
            ledger.cancel(&target, 1, |_| Ok(with_tax(Some(200), None))),
            Err(CancelError::TaxFreeExceedsCancellable)
        );
        let after = ledger
            .cancel(&target, 1, |_| Ok(with_tax(Some(100), None)))
            .unwrap();
        // VAT computed from the taxable part when not given.
        assert_eq!(after.cancel_history[0].vat_amount, 36);
        assert_eq!(after.cancelled_tax_free(), 100);

        let phone = paid(
            &mut ledger,
            NewPayment::new("m2", 1000, Currency::Krw)
                .pay_method(pay_method::PHONE)
                .paid_at(JAN_31_LATE_KST),
        );
        let target = Target::ImpUid(phone.imp_uid);
        assert_eq!(
            ledger.cancel(&target, FEB_1_EARLY_KST, |_| Ok(v2(None, None, false))),
            Err(CancelError::RefundAccountRequired)
        );
        let to_account = CancelOrder {
            refund_account: RefundAccount {
                holder: Some("Hong".into()),
                bank: Some("SHINHAN".into()),
                account: Some("110".into()),
            },
            ..v2(None, None, false)
        };
        assert!(ledger
            .cancel(&target, FEB_1_EARLY_KST, |_| Ok(to_account))
            .is_ok());
    }

    #[test]
    fn transaction_ids_are_v4_uuids() {
        let id = random_uuid();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn duplicate_and_invalid_creations_are_refused() {
        let mut ledger = Ledger::default();
        paid(&mut ledger, NewPayment::new("m1", 1000, Currency::Krw));
        assert_eq!(
            ledger.create(NewPayment::new("m1", 5, Currency::Krw), 0),
            Err(CreatePaymentError::DuplicateMerchantUid("m1".into()))
        );
        assert_eq!(
            ledger.create(NewPayment::new("m2", 0, Currency::Krw), 0),
            Err(CreatePaymentError::NonPositiveAmount)
        );
        assert_eq!(
            ledger.create(NewPayment::new(" ", 5, Currency::Krw), 0),
            Err(CreatePaymentError::MissingMerchantUid)
        );
        let p = paid(&mut ledger, NewPayment::new("m3", 5, Currency::Krw));
        assert!(p.imp_uid.starts_with("imp_") && p.imp_uid.len() == 16);
        assert!(p.imp_uid[4..].bytes().all(|b| b.is_ascii_digit()));
    }
}
