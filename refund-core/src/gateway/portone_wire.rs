//! PortOne V2's JSON shapes, as the V2 schema defines them.
//!
//! Only the fields we use are declared; serde ignores the rest, and every
//! union (`Payment` by `status`, `PaymentCancellation` by `status`,
//! `PaymentMethod` by `type`, the errors by `type`) is read through its
//! discriminator as plain text, so members PortOne adds later never break
//! parsing. Amounts are integers in the currency's minor unit.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::money::{Amount, Currency};
use crate::payment::{CancelEntry, PayMethod, Payment, PaymentStatus};

/// `Payment`: one of its members, told apart by `status`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PaymentBody {
    status: String,
    /// The merchant's `paymentId`.
    id: String,
    #[serde(default)]
    transaction_id: Option<String>,
    #[serde(default)]
    method: Option<MethodBody>,
    amount: AmountBody,
    currency: String,
    #[serde(default)]
    paid_at: Option<String>,
    /// Listed by the cancelled members; read from any member that has it.
    #[serde(default)]
    cancellations: Vec<CancellationBody>,
}

/// `PaymentMethod`, by its `type` alone.
#[derive(Deserialize)]
struct MethodBody {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// `PaymentAmount`: the fields a refund needs.
#[derive(Deserialize)]
struct AmountBody {
    total: i64,
    #[serde(default)]
    cancelled: i64,
}

/// `PaymentCancellation`: one of its members, told apart by `status`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancellationBody {
    pub(super) status: String,
    pub(super) id: String,
    #[serde(default)]
    pg_cancellation_id: Option<String>,
    total_amount: i64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    cancelled_at: Option<String>,
    #[serde(default)]
    requested_at: Option<String>,
    #[serde(default)]
    receipt_url: Option<String>,
}

/// `CancelPaymentResponse`.
#[derive(Deserialize)]
pub(super) struct CancelAnswer {
    pub(super) cancellation: CancellationBody,
}

/// Every typed V2 error: `{type, message?}` plus `pgCode`/`pgMessage` for
/// `PG_PROVIDER`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorBody {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) pg_message: Option<String>,
}

/// `LoginViaApiSecretBody`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginBody<'a> {
    pub(super) api_secret: &'a str,
}

/// `LoginViaApiSecretResponse` (the refresh token is not used: a new login
/// with the secret is as cheap and needs nothing stored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginAnswer {
    pub(super) access_token: String,
}

/// `CancelPaymentBody`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancelBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) store_id: Option<&'a str>,
    pub(super) amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tax_free_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) vat_amount: Option<i64>,
    pub(super) reason: &'a str,
    pub(super) current_cancellable_amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) refund_account: Option<RefundAccountBody<'a>>,
}

/// `CancelPaymentBodyRefundAccount`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefundAccountBody<'a> {
    pub(super) bank: &'a str,
    pub(super) number: &'a str,
    pub(super) holder_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) holder_phone_number: Option<&'a str>,
}

/// A cancellation's `status`, as far as money is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CancellationStatus {
    /// Applied: counted in `amount.cancelled`.
    Succeeded,
    /// Taken, being processed asynchronously.
    Requested,
    /// Did not apply.
    Failed,
    /// A status this client does not know.
    Unknown,
}

impl CancellationBody {
    pub(super) fn status(&self) -> CancellationStatus {
        match self.status.as_str() {
            "SUCCEEDED" => CancellationStatus::Succeeded,
            "REQUESTED" => CancellationStatus::Requested,
            "FAILED" => CancellationStatus::Failed,
            _ => CancellationStatus::Unknown,
        }
    }

    /// The entry, dated by `cancelledAt` when `completed` and it is given,
    /// else by `requestedAt` (the schema makes `cancelledAt` optional even
    /// on a succeeded cancellation; the request came just before it).
    fn into_entry(self, completed: bool) -> Result<CancelEntry, String> {
        let at = match (completed, &self.cancelled_at) {
            (true, Some(at)) => Some(at.as_str()),
            _ => self.requested_at.as_deref(),
        };
        Ok(CancelEntry {
            pg_tid: self.pg_cancellation_id.map(storable),
            amount: Amount::from_minor(self.total_amount),
            cancelled_at: at.map(unix_seconds).transpose()?.unwrap_or(0),
            reason: self.reason.map(storable),
            cancellation_id: Some(storable(self.id)),
            receipt_url: self.receipt_url.map(storable),
        })
    }
}

impl PaymentBody {
    /// Converts to the domain payment: `paymentId` is our `merchant_uid`,
    /// `transactionId` our `imp_uid`; succeeded cancellations are the
    /// history, requested ones and ones in a status this client does not
    /// know the cancels still in flight (either may yet apply), failed ones
    /// (which moved no money) the failed list. None is dropped: each is
    /// evidence about the refund it belongs to.
    pub(super) fn into_payment(self) -> Result<Payment, String> {
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|e| format!("currency: {e}"))?;
        let mut cancel_history = Vec::new();
        let mut requested_cancels = Vec::new();
        let mut failed_cancels = Vec::new();
        for cancellation in self.cancellations {
            match cancellation.status() {
                CancellationStatus::Succeeded => {
                    cancel_history.push(cancellation.into_entry(true)?);
                }
                CancellationStatus::Requested | CancellationStatus::Unknown => {
                    requested_cancels.push(cancellation.into_entry(false)?);
                }
                CancellationStatus::Failed => {
                    failed_cancels.push(cancellation.into_entry(false)?);
                }
            }
        }
        Ok(Payment {
            imp_uid: storable(self.transaction_id.unwrap_or_default()),
            merchant_uid: storable(self.id),
            pay_method: pay_method(self.method.and_then(|m| m.kind).as_deref()),
            currency,
            amount: Amount::from_minor(self.amount.total),
            cancel_amount: Amount::from_minor(self.amount.cancelled),
            status: status(&self.status),
            paid_at: self
                .paid_at
                .as_deref()
                .map(unix_seconds)
                .transpose()?
                .unwrap_or(0),
            cancel_history,
            requested_cancels,
            failed_cancels,
        })
    }
}

/// V2's payment `status` in our vocabulary (a partly refunded payment stays
/// `paid`); unknown ones kept verbatim.
fn status(v2: &str) -> PaymentStatus {
    match v2 {
        "PAID" | "PARTIAL_CANCELLED" => PaymentStatus::Paid,
        "CANCELLED" => PaymentStatus::Cancelled,
        "READY" | "VIRTUAL_ACCOUNT_ISSUED" | "PAY_PENDING" => PaymentStatus::Ready,
        "FAILED" => PaymentStatus::Failed,
        other => PaymentStatus::Other(other.to_owned()),
    }
}

/// V2's `PaymentMethod` type in our vocabulary; others kept verbatim.
fn pay_method(kind: Option<&str>) -> PayMethod {
    match kind {
        Some("PaymentMethodCard") => PayMethod::Card,
        Some("PaymentMethodVirtualAccount") => PayMethod::Vbank,
        Some("PaymentMethodTransfer") => PayMethod::Trans,
        Some("PaymentMethodMobile") => PayMethod::Phone,
        Some(other) => PayMethod::Other(other.to_owned()),
        None => PayMethod::Other(String::new()),
    }
}

/// An RFC 3339 time as unix seconds.
fn unix_seconds(text: &str) -> Result<i64, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|e| format!("time {text:?}: {e}"))
}

/// Text as every store can keep it (no NUL, which PostgreSQL refuses).
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(json: &str) -> Payment {
        serde_json::from_str::<PaymentBody>(json)
            .unwrap()
            .into_payment()
            .unwrap()
    }

    #[test]
    fn a_partly_cancelled_payment_keeps_succeeded_and_requested_apart() {
        let json = r#"{
            "status": "PARTIAL_CANCELLED", "id": "ORD-1", "transactionId": "tx-1",
            "merchantId": "m", "storeId": "store-1", "version": "V2",
            "channel": {"type": "LIVE", "pgProvider": "TOSSPAYMENTS", "brandNew": 1},
            "requestedAt": "2026-01-02T03:04:05Z", "updatedAt": "2026-01-02T03:04:05Z",
            "statusChangedAt": "2026-01-02T03:04:05Z", "orderName": "shoes",
            "amount": {"total": 10000, "taxFree": 0, "discount": 0, "paid": 10000,
                       "cancelled": 3000, "cancelledTaxFree": 0},
            "currency": "KRW", "customer": {}, "disputes": [],
            "method": {"type": "PaymentMethodCard", "card": {}},
            "paidAt": "2026-01-02T03:04:05Z", "cancelledAt": "2026-01-02T04:00:00Z",
            "cancellations": [
                {"status": "SUCCEEDED", "id": "c-1", "pgCancellationId": "pg-1",
                 "totalAmount": 3000, "taxFreeAmount": 0, "vatAmount": 0,
                 "reason": "size (rf_1)", "requestedAt": "2026-01-02T03:59:00Z",
                 "cancelledAt": "2026-01-02T04:00:00+09:00", "receiptUrl": "https://r/1",
                 "trigger": "API"},
                {"status": "REQUESTED", "id": "c-2", "totalAmount": 2000,
                 "taxFreeAmount": 0, "vatAmount": 0, "reason": "refund rf_2",
                 "requestedAt": "2026-01-02T05:00:00Z"},
                {"status": "FAILED", "id": "c-3", "totalAmount": 500, "taxFreeAmount": 0,
                 "vatAmount": 0, "reason": "x", "requestedAt": "2026-01-02T05:00:00Z"},
                {"status": "SOMETHING_NEW", "id": "c-4", "totalAmount": 1, "taxFreeAmount": 0,
                 "vatAmount": 0, "reason": "x", "requestedAt": "2026-01-02T05:00:00Z"}
            ]
        }"#;
        let payment = payment(json);
        assert_eq!(payment.merchant_uid, "ORD-1");
        assert_eq!(payment.imp_uid, "tx-1");
        assert_eq!(payment.status, PaymentStatus::Paid);
        assert_eq!(payment.pay_method, PayMethod::Card);
        assert_eq!(payment.amount, Amount::from_minor(10_000));
        assert_eq!(payment.cancel_amount, Amount::from_minor(3_000));
        assert_eq!(payment.paid_at, 1_767_323_045);
        assert_eq!(payment.cancel_history.len(), 1);
        let entry = &payment.cancel_history[0];
        assert_eq!(entry.cancellation_id.as_deref(), Some("c-1"));
        assert_eq!(entry.pg_tid.as_deref(), Some("pg-1"));
        assert_eq!(entry.amount, Amount::from_minor(3_000));
        // 04:00 in Korea is 19:00 UTC the day before.
        assert_eq!(entry.cancelled_at, 1_767_294_000);
        assert_eq!(entry.reason.as_deref(), Some("size (rf_1)"));
        assert_eq!(entry.receipt_url.as_deref(), Some("https://r/1"));
        // The requested one and the one in an unknown status may yet apply.
        let in_flight: Vec<_> = payment
            .requested_cancels
            .iter()
            .map(|c| c.cancellation_id.as_deref())
            .collect();
        assert_eq!(in_flight, [Some("c-2"), Some("c-4")]);
        assert_eq!(payment.requested_cancels[0].cancelled_at, 1_767_330_000);
        assert_eq!(payment.failed_cancels.len(), 1);
        assert_eq!(
            payment.failed_cancels[0].cancellation_id.as_deref(),
            Some("c-3")
        );
        assert_eq!(payment.failed_cancels[0].amount, Amount::from_minor(500));
    }

    #[test]
    fn a_succeeded_cancellation_without_cancelled_at_is_dated_by_its_request() {
        let json = r#"{"status": "PARTIAL_CANCELLED", "id": "o", "transactionId": "t",
            "amount": {"total": 1000, "cancelled": 100}, "currency": "KRW",
            "cancellations": [{"status": "SUCCEEDED", "id": "c-1", "totalAmount": 100,
                "reason": "r", "requestedAt": "2026-01-02T05:00:00Z"}]}"#;
        let payment = payment(json);
        assert_eq!(payment.cancel_history[0].cancelled_at, 1_767_330_000);
    }

    #[test]
    fn statuses_and_methods_map_to_our_vocabulary() {
        for (v2, ours) in [
            ("PAID", PaymentStatus::Paid),
            ("PARTIAL_CANCELLED", PaymentStatus::Paid),
            ("CANCELLED", PaymentStatus::Cancelled),
            ("READY", PaymentStatus::Ready),
            ("VIRTUAL_ACCOUNT_ISSUED", PaymentStatus::Ready),
            ("PAY_PENDING", PaymentStatus::Ready),
            ("FAILED", PaymentStatus::Failed),
            ("ON_THE_MOON", PaymentStatus::Other("ON_THE_MOON".into())),
        ] {
            assert_eq!(status(v2), ours);
        }
        for (v2, ours) in [
            ("PaymentMethodCard", PayMethod::Card),
            ("PaymentMethodVirtualAccount", PayMethod::Vbank),
            ("PaymentMethodTransfer", PayMethod::Trans),
            ("PaymentMethodMobile", PayMethod::Phone),
            (
                "PaymentMethodEasyPay",
                PayMethod::Other("PaymentMethodEasyPay".into()),
            ),
        ] {
            assert_eq!(pay_method(Some(v2)), ours);
        }
    }

    #[test]
    fn usd_amounts_are_already_cents() {
        let json = r#"{"status": "PAID", "id": "o", "transactionId": "t",
            "amount": {"total": 150, "cancelled": 0}, "currency": "USD",
            "method": {"type": "PaymentMethodVirtualAccount", "accountNumber": "1"}}"#;
        let payment = payment(json);
        assert_eq!(payment.currency, Currency::Usd);
        assert_eq!(payment.amount, Amount::from_minor(150));
        assert_eq!(payment.pay_method, PayMethod::Vbank);
        assert!(payment.cancel_history.is_empty() && payment.requested_cancels.is_empty());
        assert!(payment.failed_cancels.is_empty());
    }

    #[test]
    fn unreadable_payments_are_errors_not_guesses() {
        for json in [
            r#"{"status": "PAID", "id": "o", "amount": {"total": 1.5, "cancelled": 0}, "currency": "KRW"}"#,
            r#"{"status": "PAID", "id": "o", "amount": {"total": 1, "cancelled": 0}, "currency": "XXX"}"#,
            r#"{"status": "PAID", "id": "o", "amount": {"total": 1, "cancelled": 0}, "currency": "KRW", "paidAt": "yesterday"}"#,
        ] {
            let parsed = serde_json::from_str::<PaymentBody>(json)
                .map_err(|e| e.to_string())
                .and_then(PaymentBody::into_payment);
            assert!(parsed.is_err(), "{json}");
        }
    }

    #[test]
    fn the_cancel_body_always_carries_amount_balance_and_reason() {
        let body = CancelBody {
            store_id: Some("store-1"),
            amount: 2_000,
            tax_free_amount: None,
            vat_amount: Some(100),
            reason: "refund rf_1",
            current_cancellable_amount: 10_000,
            refund_account: Some(RefundAccountBody {
                bank: "SHINHAN",
                number: "110123456789",
                holder_name: "Kim",
                holder_phone_number: None,
            }),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "storeId": "store-1", "amount": 2000, "vatAmount": 100,
                "reason": "refund rf_1", "currentCancellableAmount": 10000,
                "refundAccount": {"bank": "SHINHAN", "number": "110123456789", "holderName": "Kim"}
            })
        );
    }
}
