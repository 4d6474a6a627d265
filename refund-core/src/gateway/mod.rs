//! The payment gateway behind a trait, and its clients: i'mport V1 and
//! PortOne V2.

mod bank;
mod iamport;
mod portone;
mod portone_wire;
mod wire;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::money::Amount;
use crate::payment::Payment;
use crate::refund::RefundAccount;
use crate::store::BoxError;

pub use bank::{is_portone_bank, PORTONE_BANKS};
pub use iamport::{IamportClient, IamportConfig, IamportCredentials};
pub use portone::{PortOneAuth, PortOneClient, PortOneConfig};

/// One cancellation to ask of the gateway. Always carries an explicit amount
/// and checksum: i'mport reads a missing amount as "cancel everything".
#[derive(Clone, Debug)]
pub struct CancelCommand {
    /// The payment's i'mport id.
    pub imp_uid: String,
    /// The merchant's order id (sent too; i'mport prefers `imp_uid`).
    pub merchant_uid: String,
    /// Amount to cancel, in the payment's currency.
    pub amount: Amount,
    /// What we believe is still cancelable; i'mport refuses on mismatch.
    pub checksum: Amount,
    /// Tax-free part of `amount`.
    pub tax_free: Option<Amount>,
    /// VAT part of `amount`.
    pub vat_amount: Option<Amount>,
    /// Reason shown in i'mport's history.
    pub reason: Option<String>,
    /// Refund account for virtual-account payments.
    pub account: Option<RefundAccount>,
    /// The payment's currency, for converting amounts to i'mport's numbers.
    pub currency: crate::money::Currency,
}

/// Why a gateway call did not return a payment.
///
/// The variants split by what we know happened: [`is_definite`](Self::is_definite)
/// errors guarantee nothing changed at the gateway; [`GatewayError::Garbled`]
/// and [`GatewayError::Unknown`] may have changed something and must be
/// reconciled, the first at once (the gateway answered, so it is no longer
/// working on the request), the second once the request can no longer be in
/// flight.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The gateway answered and refused (`code != 0`, or an HTTP 4xx).
    #[error("gateway refused (code {code:?})")]
    Rejected {
        /// The gateway's result code, when it sent one (V1's numeric
        /// `code` as text).
        code: Option<String>,
        /// i'mport's message (free text; never parsed).
        message: String,
    },
    /// The gateway refused our credentials, even with a fresh token.
    #[error("gateway refused our credentials")]
    Unauthorized,
    /// The request never left (connection refused, DNS, TLS handshake).
    #[error("gateway unreachable")]
    Unreachable(#[source] BoxError),
    /// The gateway answered a cancel, but not with a usable result (an
    /// HTTP 5xx of its own, an unreadable body). It is no longer working on
    /// the request, which it may or may not have applied: one lookup tells.
    /// (PortOne V2: only a 5xx with a typed PortOne error body is PortOne's
    /// own; an untyped one came from a proxy in front of it and is
    /// [`GatewayError::Unknown`].)
    #[error("gateway answered without a usable result")]
    Garbled(#[source] BoxError),
    /// The request may have arrived but no answer came back (timeout after
    /// sending, connection reset, a 504 or a proxy's 5xx): it may still be
    /// in flight.
    #[error("gateway outcome unknown")]
    Unknown(#[source] BoxError),
    /// A read-only call got an answer we cannot understand.
    #[error("gateway sent an invalid response")]
    InvalidResponse(#[source] BoxError),
}

impl GatewayError {
    /// True when the gateway surely did not act on the request.
    pub fn is_definite(&self) -> bool {
        !matches!(self, GatewayError::Unknown(_) | GatewayError::Garbled(_))
    }
}

/// What a refusal's code means for the answer (the workflow's one place
/// that reads gateway codes; V1 codes are numbers and never match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalMeaning {
    /// Any refusal: `gateway_rejected` (or `payment_out_of_sync` when the
    /// lookup that follows shows our copy was stale).
    Refused,
    /// PortOne V2 `PAYMENT_NOT_PAID`: the payment cannot be refunded
    /// (`not_refundable`).
    NotPaid,
}

impl RefusalMeaning {
    /// The meaning of a refusal with this code.
    pub(crate) fn of(code: Option<&str>) -> Self {
        match code {
            Some("PAYMENT_NOT_PAID") => RefusalMeaning::NotPaid,
            _ => RefusalMeaning::Refused,
        }
    }
}

/// What the gateway said to a cancel it took.
///
/// The two cases decide money differently, so they are typed: a payment
/// afterwards can credit the refund at once; a cancellation taken under an
/// id (PortOne V2's asynchronous `REQUESTED` cancels, one in a status the
/// client does not know, or a `SUCCEEDED` one whose payment could not be
/// read back) keeps the refund pending with that id until a lookup of the
/// payment shows the cancellation's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelReceipt {
    /// The cancel applied: the payment read afterwards.
    Applied {
        /// The payment afterwards.
        payment: Payment,
        /// The gateway's id of the cancellation the answer reported
        /// (PortOne V2); `None` where the answer names none (i'mport V1).
        /// With an id, the refund is credited by the entry with that id
        /// alone: a payment that does not list it yet (a lagging read)
        /// keeps the refund pending under it.
        cancellation_id: Option<String>,
    },
    /// The gateway took the cancel under this id; its outcome is read from
    /// the payment later (its `cancellations`, a webhook, the sweep).
    Accepted {
        /// The gateway's id of the cancellation.
        cancellation_id: String,
    },
}

/// Which payment to look up: both ids, since the gateways key payments
/// differently. i'mport V1 looks payments up by `imp_uid`; PortOne V2 by
/// `paymentId`, the merchant's order id (`merchant_uid`), and reports the
/// attempt's `transactionId` as `imp_uid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentRef<'a> {
    /// The gateway's id of the payment attempt (V1 `imp_uid`, V2
    /// `transactionId`); may be empty where it is not known (V2 only).
    pub imp_uid: &'a str,
    /// The merchant's order id (V2 `paymentId`); may be empty where it is
    /// not known (V1 only).
    pub merchant_uid: &'a str,
}

/// A payment gateway: i'mport V1 or PortOne V2; test doubles plug in too.
///
/// Implementations report money in exact [`Amount`]s and classify failures
/// by whether the gateway may have acted (see [`GatewayError`]).
#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Cancels (part of) a payment: [`CancelReceipt::Applied`] with the
    /// payment afterwards, or [`CancelReceipt::Accepted`] when the gateway
    /// took it under an id whose outcome is known only later.
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError>;

    /// The payment these ids name, or `None` if the gateway has none. A V2
    /// gateway may answer another attempt of the same order (another
    /// `transactionId`): callers compare `imp_uid` before trusting it.
    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError>;

    /// The payment of this order id to refund: its paid attempt if any,
    /// else its most recent one; `None` if there is none.
    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError>;

    /// The longest a call can take before the client gives up on it. A
    /// pending refund older than this is no longer on the wire, so if the
    /// gateway does not show it, it never happened.
    fn max_in_flight(&self) -> Duration;

    /// Which API this gateway speaks: it picks the webhook shape the scope
    /// accepts and names the gateway in views and metrics.
    fn kind(&self) -> GatewayKind;
}

/// The gateway APIs the plugin speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum GatewayKind {
    /// The classic i'mport REST API (PortOne V1).
    Iamport,
    /// The PortOne V2 API.
    Portone,
}

impl GatewayKind {
    /// The name used in views, metrics and configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Iamport => "iamport",
            GatewayKind::Portone => "portone",
        }
    }
}

impl fmt::Display for GatewayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret string: shown as `<redacted>` in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
