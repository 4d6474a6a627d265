//! Payments as i'mport reports them, and as the store keeps them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::{Amount, Currency};
use crate::refund::RefundId;

/// How the buyer paid. Unknown methods are kept verbatim: i'mport adds new
/// ones over time and a refund must not fail because of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PayMethod {
    /// Credit or debit card.
    Card,
    /// Real-time bank transfer.
    Trans,
    /// Virtual account: refunds need the buyer's bank account.
    Vbank,
    /// Mobile phone micropayment: no refund in a later month than paid.
    Phone,
    /// Any other method i'mport reports.
    Other(String),
}

impl PayMethod {
    /// The code i'mport uses.
    pub fn as_str(&self) -> &str {
        match self {
            PayMethod::Card => "card",
            PayMethod::Trans => "trans",
            PayMethod::Vbank => "vbank",
            PayMethod::Phone => "phone",
            PayMethod::Other(code) => code,
        }
    }
}

impl From<&str> for PayMethod {
    fn from(code: &str) -> Self {
        match code {
            "card" => PayMethod::Card,
            "trans" => PayMethod::Trans,
            "vbank" => PayMethod::Vbank,
            "phone" => PayMethod::Phone,
            other => PayMethod::Other(other.to_owned()),
        }
    }
}

/// Where a payment stands at the gateway. Unknown states are kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Not paid yet (e.g. a virtual account awaiting deposit).
    Ready,
    /// Paid; refundable while something is left.
    Paid,
    /// Fully cancelled.
    Cancelled,
    /// The payment failed.
    Failed,
    /// Any other status i'mport reports.
    Other(String),
}

impl PaymentStatus {
    /// The code i'mport uses.
    pub fn as_str(&self) -> &str {
        match self {
            PaymentStatus::Ready => "ready",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Other(code) => code,
        }
    }
}

impl From<&str> for PaymentStatus {
    fn from(code: &str) -> Self {
        match code {
            "ready" => PaymentStatus::Ready,
            "paid" => PaymentStatus::Paid,
            "cancelled" => PaymentStatus::Cancelled,
            "failed" => PaymentStatus::Failed,
            other => PaymentStatus::Other(other.to_owned()),
        }
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(<$ty>::from(String::deserialize(d)?.as_str()))
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
string_serde!(PayMethod);
string_serde!(PaymentStatus);

/// One (partial) cancellation in a payment's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelEntry {
    /// The PG's cancellation transaction id.
    pub pg_tid: Option<String>,
    /// Amount cancelled, in the payment's currency.
    pub amount: Amount,
    /// When, in unix seconds.
    pub cancelled_at: i64,
    /// The reason given.
    pub reason: Option<String>,
    /// i'mport's id for this cancellation.
    pub cancellation_id: Option<String>,
    /// The cancellation receipt.
    pub receipt_url: Option<String>,
}

/// A payment as the gateway last reported it: the source of truth for money.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// i'mport's id of the payment.
    pub imp_uid: String,
    /// The merchant's order id.
    pub merchant_uid: String,
    /// How it was paid.
    pub pay_method: PayMethod,
    /// The currency of every amount below.
    pub currency: Currency,
    /// Amount paid.
    pub amount: Amount,
    /// Sum of all cancellations so far.
    pub cancel_amount: Amount,
    /// Status at the gateway.
    pub status: PaymentStatus,
    /// When it was paid, in unix seconds (0 if not paid).
    pub paid_at: i64,
    /// Every cancellation, oldest first.
    pub cancel_history: Vec<CancelEntry>,
    /// Cancellations the gateway has taken but not finished (PortOne V2
    /// `REQUESTED` ones, and ones in a status this client does not know:
    /// either may still apply; `cancelled_at` is when they were requested).
    /// Not counted in `cancel_amount`. Only ever filled from a gateway
    /// answer, for the verdict to see a refund still in flight: stores need
    /// not keep it (a stored payment may come back with it empty), and
    /// i'mport V1 has none.
    pub requested_cancels: Vec<CancelEntry>,
    /// Cancellations the gateway reports as failed (PortOne V2 `FAILED`):
    /// they moved no money and are not counted in `cancel_amount`, but a
    /// refund accepted under one of their ids is proven not applied by it
    /// alone. Filled from gateway answers only, like `requested_cancels`.
    pub failed_cancels: Vec<CancelEntry>,
}

impl Payment {
    /// What can still be refunded: `amount - cancel_amount`, never negative.
    pub fn cancelable(&self) -> Amount {
        self.amount.saturating_remaining(self.cancel_amount)
    }
}

/// A payment as the [`PaymentStore`](crate::PaymentStore) keeps it: the last
/// gateway snapshot plus the refund lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPayment {
    /// The last gateway snapshot applied.
    pub payment: Payment,
    /// The refund currently in flight, if any (at most one per payment).
    pub pending_refund: Option<RefundId>,
    /// Set when reconciliation could not explain the gateway's numbers: no
    /// automatic refund until an operator syncs the payment.
    pub on_hold: bool,
}
