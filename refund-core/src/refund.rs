//! Refund requests and the refund journal.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::actor::Actor;
use crate::money::{Amount, AmountError, Currency, DecimalText};

/// Identifies one refund in the journal (`rf_` and 32 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RefundId(String);

impl RefundId {
    /// A fresh random id.
    pub fn generate() -> Self {
        RefundId(format!("rf_{}", uuid::Uuid::new_v4().simple()))
    }

    /// Wraps an id read back from storage.
    pub fn from_stored(id: impl Into<String>) -> Self {
        RefundId(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RefundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a refund stands, by name: what operators filter on and what the
/// API shows. The full, typed state is [`RefundState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefundStatus {
    /// Written before the gateway call; outcome not known yet.
    Pending,
    /// The gateway cancelled the amount.
    Succeeded,
    /// The gateway definitely did not cancel anything.
    Failed,
    /// The gateway's numbers could not be explained: an operator must look.
    NeedsReview,
}

impl RefundStatus {
    /// Every status, in the order of the journal's life.
    pub const ALL: [RefundStatus; 4] = [
        RefundStatus::Pending,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
        RefundStatus::NeedsReview,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::NeedsReview => "needs_review",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a refund failed: what it proves about the money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The gateway answered and refused it (V1 `code != 0` or a 4xx).
    /// Its idempotency key replays the refusal.
    Rejected,
    /// It never reached the gateway (connection refused, the token
    /// endpoint down). Nothing changed, so its key may try again.
    NotSent,
    /// The gateway answered without applying it (a 5xx, an unreadable
    /// body, then a lookup that showed nothing), or it can no longer be in
    /// flight and the gateway does not show it. Its key may try again. Late
    /// evidence that it applied after all turns it into
    /// [`RefundState::Succeeded`].
    NotApplied,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 3] = [
        FailureKind::Rejected,
        FailureKind::NotSent,
        FailureKind::NotApplied,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Rejected => "rejected",
            FailureKind::NotSent => "not_sent",
            FailureKind::NotApplied => "not_applied",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// True when the refund provably changed nothing at the gateway, so the
    /// same request (same idempotency key and body) may be tried again.
    pub fn frees_the_key(self) -> bool {
        matches!(self, FailureKind::NotSent | FailureKind::NotApplied)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a failed refund failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What the failure proves.
    pub kind: FailureKind,
    /// The gateway's result code, when it gave one (V1's numeric `code`
    /// as text, V2's error type).
    pub code: Option<String>,
    /// The gateway's message (masked) or our explanation.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` with our own explanation and no gateway code.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            code: None,
            message: message.into(),
        }
    }
}

/// Why a refund waits for an operator, and how the operator resolved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    /// What did not add up.
    pub message: String,
    /// The operator's resolution; `None` while the payment is held.
    pub resolution: Option<Resolution>,
}

impl Review {
    /// An open review: `message` says what did not add up.
    pub fn new(message: impl Into<String>) -> Self {
        Review {
            message: message.into(),
            resolution: None,
        }
    }
}

/// An operator's resolution of a review
/// ([`PaymentStore::resolve_review`](crate::PaymentStore::resolve_review)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// Who resolved it.
    pub resolved_by: Actor,
    /// When, unix milliseconds on the store's clock.
    pub resolved_at_ms: i64,
    /// What the operator found or did (1 to 500 characters).
    pub note: String,
}

/// Where a refund stands in the journal, with what each state carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefundState {
    /// Journaled before the gateway call; the outcome is not known yet.
    Pending {
        /// The gateway's id for the cancellation, once it named one (an
        /// asynchronous cancel that is still being processed).
        cancellation_id: Option<String>,
    },
    /// The gateway cancelled the amount.
    Succeeded {
        /// The gateway's cancel entry credited to this refund (V1
        /// `cancellation_id` or `pg_tid`), when the gateway reports one.
        cancellation_id: Option<String>,
    },
    /// Nothing was cancelled.
    Failed(Failure),
    /// The gateway's numbers could not be explained; the payment is held.
    NeedsReview(Review),
}

impl RefundState {
    /// A pending refund not yet named by the gateway.
    pub const PENDING: RefundState = RefundState::Pending {
        cancellation_id: None,
    };

    /// The state's name.
    pub fn status(&self) -> RefundStatus {
        match self {
            RefundState::Pending { .. } => RefundStatus::Pending,
            RefundState::Succeeded { .. } => RefundStatus::Succeeded,
            RefundState::Failed(_) => RefundStatus::Failed,
            RefundState::NeedsReview(_) => RefundStatus::NeedsReview,
        }
    }

    /// The review, for a refund that needs (or needed) one.
    pub fn review(&self) -> Option<&Review> {
        match self {
            RefundState::NeedsReview(review) => Some(review),
            _ => None,
        }
    }

    /// The failure, for a failed refund.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            RefundState::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// The gateway cancellation this refund is (or will be) credited with.
    pub fn cancellation_id(&self) -> Option<&str> {
        match self {
            RefundState::Pending { cancellation_id }
            | RefundState::Succeeded { cancellation_id } => cancellation_id.as_deref(),
            _ => None,
        }
    }

    /// True for a state a refund in `self` may move to: a pending refund
    /// settles into anything but pending; a refund failed as
    /// [`FailureKind::NotApplied`] may still be proven to have succeeded
    /// (late evidence wins), or be put up for review when a retry finds
    /// evidence that neither proves it applied nor that it did not. Nothing
    /// else ever changes (a retry re-opens a refund through
    /// [`PaymentStore::retry_refund`](crate::PaymentStore::retry_refund)).
    pub fn may_become(&self, next: &RefundState) -> bool {
        match (self, next) {
            (RefundState::Pending { .. }, RefundState::Pending { .. }) => false,
            (RefundState::Pending { .. }, _) => true,
            (
                RefundState::Failed(failure),
                RefundState::Succeeded { .. } | RefundState::NeedsReview(_),
            ) => failure.kind == FailureKind::NotApplied,
            _ => false,
        }
    }

    /// True when the refund provably changed nothing, so its idempotency
    /// key is not spent: the same request (same key and body) runs it again
    /// ([`PaymentStore::retry_refund`](crate::PaymentStore::retry_refund)).
    pub fn frees_its_key(&self) -> bool {
        matches!(self, RefundState::Failed(f) if f.kind.frees_the_key())
    }
}

/// One refund in the write-ahead journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    /// The refund's id.
    pub id: RefundId,
    /// The payment's order id.
    pub merchant_uid: String,
    /// The payment's i'mport id.
    pub imp_uid: String,
    /// The payment's currency, the unit of every amount of the refund.
    pub currency: Currency,
    /// Amount to refund, in the payment's minor unit.
    pub amount: Amount,
    /// The payment's `cancel_amount` when the refund began: the gateway's
    /// cancel entries up to this total were there before it.
    pub base_cancel_amount: Amount,
    /// The cancelable amount sent as i'mport's `checksum`.
    pub checksum: Amount,
    /// The reason sent to the gateway (the client's, or one naming this
    /// refund when the client gave none, so its cancel entry names it).
    pub reason: Option<String>,
    /// The client's `Idempotency-Key`: it names this refund for good (a
    /// refund that provably changed nothing runs again as the same row).
    pub idempotency_key: Option<String>,
    /// Hash of the normalized request, to refuse a reused key with another body.
    pub fingerprint: String,
    /// The refund account, masked (`*********8400`); never the full number.
    pub refund_account_masked: Option<String>,
    /// Who asked for it; `None` for refunds journaled before the journal
    /// recorded its actors.
    pub requested_by: Option<Actor>,
    /// Where it stands.
    pub state: RefundState,
    /// When the refund was journaled, unix milliseconds on the store's
    /// clock. Never changes once the refund exists (running it again keeps
    /// it): it is the key listings page on.
    pub created_at_ms: i64,
    /// When its current attempt began, unix milliseconds on the store's
    /// clock: `created_at_ms`, or the last time it was run again
    /// ([`PaymentStore::retry_refund`](crate::PaymentStore::retry_refund)).
    /// The start of its in-flight bound.
    pub attempt_started_at_ms: i64,
    /// Which attempt of the refund is (or was last) sent: 1 for the first,
    /// one more each time it is run again
    /// ([`PaymentStore::retry_refund`](crate::PaymentStore::retry_refund)).
    /// Set by the store. A verdict is about one attempt, and the store
    /// records it only while that attempt is the refund's current one
    /// ([`StoreError::AttemptChanged`](crate::StoreError::AttemptChanged)).
    pub attempt: u32,
    /// Last state change, unix milliseconds on the store's clock.
    pub updated_at_ms: i64,
}

/// The [`Refund::attempt`] of a refund's first attempt (and of rows
/// journaled before attempts were counted).
pub const FIRST_ATTEMPT: u32 = 1;

impl Refund {
    /// Where it stands, by name.
    pub fn status(&self) -> RefundStatus {
        self.state.status()
    }
}

/// The body of `POST /cancel`: the seed guide's request, unchanged.
///
/// Amounts stay verbatim text until the payment's currency is known. Any
/// other field is an error: a misspelled or foreign amount field (`amount`,
/// `cancel_request_ammount`) ignored would read as "the whole balance".
#[derive(Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The order to refund.
    pub merchant_uid: String,
    /// Amount in the major unit; absent means the whole remaining balance.
    pub cancel_request_amount: Option<DecimalText>,
    /// Why (sent to i'mport).
    pub reason: Option<String>,
    /// Refund account holder (virtual accounts).
    pub refund_holder: Option<String>,
    /// Refund account bank code (virtual accounts).
    pub refund_bank: Option<String>,
    /// Refund account number (virtual accounts). Never logged.
    pub refund_account: Option<String>,
    /// Holder's phone (some PGs).
    pub refund_tel: Option<String>,
    /// Tax-free part of the amount.
    pub tax_free: Option<DecimalText>,
    /// VAT part of the amount.
    pub vat_amount: Option<DecimalText>,
}

impl fmt::Debug for CancelRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelRequest")
            .field("merchant_uid", &self.merchant_uid)
            .field("cancel_request_amount", &self.cancel_request_amount)
            .field("reason", &self.reason)
            .field(
                "refund_holder",
                &self.refund_holder.as_ref().map(|_| "<redacted>"),
            )
            .field("refund_bank", &self.refund_bank)
            .field(
                "refund_account",
                &self.refund_account.as_ref().map(|a| mask_account(a)),
            )
            .field(
                "refund_tel",
                &self.refund_tel.as_ref().map(|_| "<redacted>"),
            )
            .field("tax_free", &self.tax_free)
            .field("vat_amount", &self.vat_amount)
            .finish()
    }
}

/// Longest `reason` accepted, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 256;
/// Longest `refund_holder`, in characters.
pub(crate) const MAX_HOLDER_CHARS: usize = 16;
/// Longest `refund_account`, in characters.
pub(crate) const MAX_ACCOUNT_CHARS: usize = 16;
/// Longest `refund_bank` code, in characters.
pub(crate) const MAX_BANK_CHARS: usize = 4;
/// Longest `merchant_uid` and `Idempotency-Key`, in characters.
pub(crate) const MAX_ID_CHARS: usize = 128;

/// The refund account of a virtual-account refund, already validated.
#[derive(Clone, PartialEq, Eq)]
pub struct RefundAccount {
    /// Account holder.
    pub holder: String,
    /// Bank code (its format depends on the PG; only its shape is checked).
    pub bank: String,
    /// Account number.
    pub account: String,
    /// Holder's phone.
    pub tel: Option<String>,
}

impl fmt::Debug for RefundAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundAccount")
            .field("bank", &self.bank)
            .field("account", &mask_account(&self.account))
            .finish_non_exhaustive()
    }
}

/// Masks an account number, showing at most its last four characters (and
/// none of a short one, where four would be most of it).
pub(crate) fn mask_account(account: &str) -> String {
    let chars: Vec<char> = account.chars().collect();
    let shown = if chars.len() >= 8 { 4 } else { 0 };
    let hidden = chars.len() - shown;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < hidden { '*' } else { *c })
        .collect()
}

/// A request that passed every check that needs no payment.
#[derive(Clone, Debug)]
pub struct ValidRequest {
    /// The order to refund.
    pub merchant_uid: String,
    amount: Option<DecimalText>,
    /// Reason, trimmed; `None` when blank.
    pub reason: Option<String>,
    /// All of holder, bank and account, when given.
    pub account: Option<RefundAccount>,
    tax_free: Option<DecimalText>,
    vat_amount: Option<DecimalText>,
}

/// What is wrong with a request, for `invalid_request` and friends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A field is malformed; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// Some but not all of holder, bank and account were given.
    #[error("refund_holder, refund_bank and refund_account go together")]
    PartialAccount,
}

impl CancelRequest {
    /// [`validate_for`](Self::validate_for) i'mport V1.
    pub fn validate(self) -> Result<ValidRequest, RequestError> {
        self.validate_for(crate::gateway::GatewayKind::Iamport)
    }

    /// Checks everything that does not need the payment: lengths, shapes,
    /// the account fields, and `refund_bank` as the gateway `kind` names
    /// banks: on i'mport V1 the PG's code (at most 4 letters or digits), on
    /// PortOne V2 a name of its `Bank` enum ([`PORTONE_BANKS`](crate::PORTONE_BANKS)).
    pub fn validate_for(
        self,
        kind: crate::gateway::GatewayKind,
    ) -> Result<ValidRequest, RequestError> {
        let invalid = |m: &str| Err(RequestError::Invalid(m.to_owned()));
        validate_payment_id("merchant_uid", &self.merchant_uid)?;
        let reason = self
            .reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return invalid("reason is longer than 256 characters");
        }
        if reason.as_ref().is_some_and(|r| has_control(r)) {
            return invalid("reason must not contain control characters");
        }
        for (amount, field) in [
            (&self.cancel_request_amount, "cancel_request_amount"),
            (&self.tax_free, "tax_free"),
            (&self.vat_amount, "vat_amount"),
        ] {
            if amount.as_ref().is_some_and(DecimalText::is_negative) {
                return Err(RequestError::Invalid(format!(
                    "{field} must not be negative"
                )));
            }
        }
        if self
            .cancel_request_amount
            .as_ref()
            .is_some_and(DecimalText::is_zero)
        {
            return invalid("cancel_request_amount must be greater than 0");
        }
        let blank_to_none =
            |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let holder = blank_to_none(self.refund_holder);
        let bank = blank_to_none(self.refund_bank);
        let account_number = blank_to_none(self.refund_account);
        let tel = blank_to_none(self.refund_tel);
        if holder
            .as_ref()
            .is_some_and(|h| h.chars().count() > MAX_HOLDER_CHARS)
        {
            return invalid("refund_holder is longer than 16 characters");
        }
        if holder.as_ref().is_some_and(|h| has_control(h)) {
            return invalid("refund_holder must not contain control characters");
        }
        if let Some(bank) = &bank {
            check_bank(bank, kind)?;
        }
        if account_number.as_ref().is_some_and(|a| {
            a.chars().count() > MAX_ACCOUNT_CHARS
                || !a.chars().all(|c| c.is_ascii_digit() || c == '-')
        }) {
            return invalid("refund_account must be at most 16 digits");
        }
        if tel.as_ref().is_some_and(|t| {
            t.chars().count() > 20
                || !t
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
        }) {
            return invalid("refund_tel must be a phone number");
        }
        let account = match (holder, bank, account_number) {
            (Some(holder), Some(bank), Some(account)) => Some(RefundAccount {
                holder,
                bank,
                account,
                tel,
            }),
            (None, None, None) => None,
            _ => return Err(RequestError::PartialAccount),
        };
        Ok(ValidRequest {
            merchant_uid: self.merchant_uid,
            amount: self.cancel_request_amount,
            reason,
            account,
            tax_free: self.tax_free,
            vat_amount: self.vat_amount,
        })
    }
}

/// The one place that decides what a `refund_bank` may be, per gateway:
/// i'mport V1 takes the PG's bank code (its format differs per PG, so only
/// its shape is checked: at most 4 letters or digits); PortOne V2 takes a
/// name of its `Bank` enum ([`PORTONE_BANKS`](crate::PORTONE_BANKS)), so a
/// V1-style numeric code is refused there before any call.
pub(crate) fn check_bank(
    bank: &str,
    kind: crate::gateway::GatewayKind,
) -> Result<(), RequestError> {
    use crate::gateway::GatewayKind;
    let ok = match kind {
        GatewayKind::Iamport => {
            bank.chars().count() <= MAX_BANK_CHARS
                && bank.chars().all(|c| c.is_ascii_alphanumeric())
        }
        GatewayKind::Portone => crate::gateway::is_portone_bank(bank),
    };
    if ok {
        return Ok(());
    }
    Err(RequestError::Invalid(
        match kind {
            GatewayKind::Iamport => {
                "refund_bank must be a bank code of at most 4 letters or digits"
            }
            GatewayKind::Portone => {
                "refund_bank must be a PortOne V2 bank name (for example SHINHAN)"
            }
        }
        .to_owned(),
    ))
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Amounts of a request converted into the payment's currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestAmounts {
    /// The amount asked for; `None` for the whole remaining balance.
    pub amount: Option<Amount>,
    /// Tax-free part.
    pub tax_free: Option<Amount>,
    /// VAT part.
    pub vat_amount: Option<Amount>,
}

impl RequestAmounts {
    /// Checks that the tax-free and VAT parts fit in the refund `amount`.
    pub fn check_parts(&self, amount: Amount) -> Result<(), RequestError> {
        let parts = [(self.tax_free, "tax_free"), (self.vat_amount, "vat_amount")];
        for (part, field) in parts {
            if part.is_some_and(|p| p.minor() < 0 || p > amount) {
                return Err(RequestError::Invalid(format!(
                    "{field} must be between 0 and the refund amount"
                )));
            }
        }
        let sum = self
            .tax_free
            .unwrap_or(Amount::ZERO)
            .checked_add(self.vat_amount.unwrap_or(Amount::ZERO));
        if sum.is_none_or(|s| s > amount) {
            return Err(RequestError::Invalid(
                "tax_free and vat_amount together exceed the refund amount".into(),
            ));
        }
        Ok(())
    }
}

impl ValidRequest {
    /// Converts the amounts exactly into `currency`. Signs were checked by
    /// [`CancelRequest::validate`]; bounds against the refund amount are
    /// checked once it is resolved ([`RequestAmounts::check_parts`]).
    pub fn amounts(&self, currency: Currency) -> Result<RequestAmounts, RequestError> {
        let convert =
            |text: &Option<DecimalText>, field: &str| -> Result<Option<Amount>, RequestError> {
                text.as_ref()
                    .map(|t| {
                        currency.parse_major(t.as_str()).map_err(|e| {
                            let why = match e {
                                AmountError::TooPrecise => {
                                    format!("has more decimals than {currency} allows")
                                }
                                _ => "is not a valid amount".to_owned(),
                            };
                            RequestError::Invalid(format!("{field} {why}"))
                        })
                    })
                    .transpose()
            };
        let amount = convert(&self.amount, "cancel_request_amount")?;
        if amount.is_some_and(|a| !a.is_positive()) {
            return Err(RequestError::Invalid(
                "cancel_request_amount must be greater than 0".into(),
            ));
        }
        Ok(RequestAmounts {
            amount,
            tax_free: convert(&self.tax_free, "tax_free")?,
            vat_amount: convert(&self.vat_amount, "vat_amount")?,
        })
    }

    /// A stable hash of the normalized request: equal for the same refund
    /// asked twice (`2000` and `2000.0` alike), different for any change.
    pub fn fingerprint(&self, amounts: &RequestAmounts) -> String {
        let minor = |a: Option<Amount>| a.map_or_else(|| "-".to_owned(), |a| a.minor().to_string());
        let mut hasher = Sha256::new();
        let account = self.account.as_ref();
        for part in [
            self.merchant_uid.as_str(),
            &minor(amounts.amount),
            self.reason.as_deref().unwrap_or("-"),
            account.map_or("-", |a| a.holder.as_str()),
            account.map_or("-", |a| a.bank.as_str()),
            account.map_or("-", |a| a.account.as_str()),
            account.and_then(|a| a.tel.as_deref()).unwrap_or("-"),
            &minor(amounts.tax_free),
            &minor(amounts.vat_amount),
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        lower_hex(&hasher.finalize())
    }
}

/// `bytes` in lower-case hex, two digits each (without a `format!` per
/// byte: this runs on every refund request).
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Checks a payment id from a client (`merchant_uid`, or a webhook's
/// `imp_uid`) before it is looked up: not blank, at most 128 characters, no
/// control characters. `field` names it in the error.
pub(crate) fn validate_payment_id(field: &str, id: &str) -> Result<(), RequestError> {
    if id.trim().is_empty() {
        return Err(RequestError::Invalid(format!("{field} is required")));
    }
    if id.chars().count() > MAX_ID_CHARS || has_control(id) {
        return Err(RequestError::Invalid(format!("{field} is malformed")));
    }
    Ok(())
}

/// Checks an `Idempotency-Key` header: 1 to 128 visible ASCII characters.
pub(crate) fn validate_idempotency_key(key: &str) -> Result<(), RequestError> {
    if key.is_empty() || key.len() > MAX_ID_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::Invalid(
            "Idempotency-Key must be 1 to 128 visible ASCII characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> CancelRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn masks_all_but_last_four() {
        assert_eq!(mask_account("56211105948400"), "**********8400");
        assert_eq!(mask_account("12345678"), "****5678");
        assert_eq!(mask_account("1234567"), "*******");
        assert_eq!(mask_account("123"), "***");
    }

    #[test]
    fn debug_never_shows_the_account_number() {
        let req = body(
            r#"{"merchant_uid":"m","refund_holder":"Kim","refund_bank":"88","refund_account":"56211105948400"}"#,
        );
        let shown = format!("{req:?} {:?}", req.clone().validate().unwrap());
        assert!(!shown.contains("56211105948400"), "{shown}");
        assert!(!shown.contains("Kim"), "{shown}");
    }

    #[test]
    fn validates_lengths_and_shapes() {
        let long = "x".repeat(257);
        for bad in [
            r#"{"merchant_uid":""}"#.to_owned(),
            format!(r#"{{"merchant_uid":"m","reason":"{long}"}}"#),
            r#"{"merchant_uid":"m","refund_holder":"12345678901234567","refund_bank":"88","refund_account":"1"}"#.to_owned(),
            r#"{"merchant_uid":"m","refund_holder":"a","refund_bank":"88888","refund_account":"1"}"#.to_owned(),
            r#"{"merchant_uid":"m","refund_holder":"a","refund_bank":"8-","refund_account":"1"}"#.to_owned(),
            r#"{"merchant_uid":"m","refund_holder":"a","refund_bank":"88","refund_account":"12345678901234567"}"#.to_owned(),
            r#"{"merchant_uid":"m\u0000"}"#.to_owned(),
            r#"{"merchant_uid":"m","reason":"a\u0000b"}"#.to_owned(),
            r#"{"merchant_uid":"m","cancel_request_amount":-1}"#.to_owned(),
            r#"{"merchant_uid":"m","cancel_request_amount":0.0}"#.to_owned(),
            r#"{"merchant_uid":"m","tax_free":-1}"#.to_owned(),
        ] {
            assert!(matches!(body(&bad).validate(), Err(RequestError::Invalid(_))), "{bad}");
        }
        assert_eq!(
            body(r#"{"merchant_uid":"m","refund_bank":"88"}"#)
                .validate()
                .unwrap_err(),
            RequestError::PartialAccount
        );
        let reason = "가".repeat(256);
        assert!(
            body(&format!(r#"{{"merchant_uid":"m","reason":"{reason}"}}"#))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn payment_ids_are_checked_before_any_lookup() {
        assert!(validate_payment_id("imp_uid", "imp_123456789012").is_ok());
        assert!(validate_payment_id("imp_uid", &"가".repeat(128)).is_ok());
        for bad in ["", "  ", "a\nb", &"x".repeat(129)] {
            let error = validate_payment_id("imp_uid", bad).unwrap_err();
            assert!(error.to_string().starts_with("imp_uid is"), "{error}");
        }
    }

    #[test]
    fn amounts_are_exact_and_positive() {
        let valid = |json: &str| body(json).validate().unwrap();
        let req = valid(r#"{"merchant_uid":"m","cancel_request_amount":2000.0}"#);
        assert_eq!(
            req.amounts(Currency::Krw).unwrap().amount,
            Some(Amount::from_minor(2000))
        );
        let req = valid(r#"{"merchant_uid":"m","cancel_request_amount":20.5}"#);
        assert!(req.amounts(Currency::Krw).is_err());
        assert_eq!(
            req.amounts(Currency::Usd).unwrap().amount,
            Some(Amount::from_minor(2050))
        );
        // Below the minor unit: not a valid amount once converted.
        let req = valid(r#"{"merchant_uid":"m","cancel_request_amount":1e-9}"#);
        assert!(req.amounts(Currency::Usd).is_err());
        let req = valid(r#"{"merchant_uid":"m","cancel_request_amount":10,"vat_amount":11}"#);
        let amounts = req.amounts(Currency::Krw).unwrap();
        assert!(amounts.check_parts(Amount::from_minor(10)).is_err());
        let req = valid(r#"{"merchant_uid":"m","tax_free":6,"vat_amount":5}"#);
        let amounts = req.amounts(Currency::Krw).unwrap();
        assert!(amounts.check_parts(Amount::from_minor(10)).is_err());
        assert!(amounts.check_parts(Amount::from_minor(11)).is_ok());
    }

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(lower_hex(&[]), "");
    }

    #[test]
    fn fingerprint_ignores_number_spelling_but_not_content() {
        let fp = |json: &str| {
            let req = body(json).validate().unwrap();
            let amounts = req.amounts(Currency::Krw).unwrap();
            req.fingerprint(&amounts)
        };
        assert_eq!(
            fp(r#"{"merchant_uid":"m","cancel_request_amount":2000}"#),
            fp(r#"{"merchant_uid":"m","cancel_request_amount":2000.00}"#)
        );
        assert_ne!(
            fp(r#"{"merchant_uid":"m","cancel_request_amount":2000}"#),
            fp(r#"{"merchant_uid":"m","cancel_request_amount":2001}"#)
        );
        assert_ne!(
            fp(r#"{"merchant_uid":"m"}"#),
            fp(r#"{"merchant_uid":"m","reason":"x"}"#)
        );
    }

    #[test]
    fn bank_names_follow_the_gateway() {
        use crate::gateway::GatewayKind;
        let with_bank = |bank: &str| {
            body(&format!(
                r#"{{"merchant_uid":"m","refund_holder":"Kim","refund_bank":"{bank}","refund_account":"1101234"}}"#
            ))
        };
        assert!(with_bank("SHINHAN")
            .validate_for(GatewayKind::Portone)
            .is_ok());
        assert!(with_bank("88").validate_for(GatewayKind::Iamport).is_ok());
        // V1's numeric codes, lower case and unknown names are refused on V2,
        // and V2's long names on V1 (4 characters at most there).
        for bank in ["88", "088", "shinhan", "SHINHAN_BANK"] {
            let error = with_bank(bank)
                .validate_for(GatewayKind::Portone)
                .unwrap_err();
            assert!(matches!(&error, RequestError::Invalid(m) if m.contains("refund_bank")));
        }
        assert!(with_bank("SHINHAN")
            .validate_for(GatewayKind::Iamport)
            .is_err());
        assert!(with_bank("KAKAO_PAY_SECURITIES")
            .validate_for(GatewayKind::Portone)
            .is_ok());
    }
}
