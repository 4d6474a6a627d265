//! i'mport V1's JSON shapes, as the official schema defines them.
//!
//! Only the fields we use are declared; serde ignores the rest, so fields
//! i'mport adds later never break parsing.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::money::{Currency, DecimalText};
use crate::payment::{CancelEntry, PayMethod, Payment, PaymentStatus};

/// Every V1 answer: `code == 0` with a `response`, or a failure message.
#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "none")]
    pub response: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// `AuthAnnotation`.
#[derive(Deserialize)]
pub(super) struct Auth {
    pub access_token: String,
    pub expired_at: i64,
    pub now: i64,
}

/// The credentials posted to `/users/getToken`.
#[derive(Serialize)]
pub(super) struct TokenRequest<'a> {
    pub imp_key: &'a str,
    pub imp_secret: &'a str,
}

/// `PaymentAnnotation`, the fields a refund needs.
#[derive(Deserialize)]
pub(super) struct PaymentAnnotation {
    imp_uid: String,
    merchant_uid: String,
    #[serde(default)]
    pay_method: Option<String>,
    amount: DecimalText,
    cancel_amount: DecimalText,
    currency: String,
    status: String,
    #[serde(default)]
    paid_at: Option<i64>,
    #[serde(default)]
    cancel_history: Option<Vec<CancelAnnotation>>,
}

/// `PaymentCancelAnnotation`.
#[derive(Deserialize)]
struct CancelAnnotation {
    #[serde(default)]
    pg_tid: Option<String>,
    amount: DecimalText,
    #[serde(default)]
    cancelled_at: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    cancellation_id: Option<String>,
    #[serde(default)]
    receipt_url: Option<String>,
}

impl PaymentAnnotation {
    /// Converts to the domain payment, amounts exact in its currency.
    pub(super) fn into_payment(self) -> Result<Payment, String> {
        let currency: Currency = self.currency.parse().map_err(|e| format!("{e}"))?;
        let amount = |text: &DecimalText, field: &str| {
            currency
                .parse_major(text.as_str())
                .map_err(|e| format!("{field}: {e}"))
        };
        let cancel_history = self
            .cancel_history
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                Ok(CancelEntry {
                    amount: amount(&c.amount, "cancel_history.amount")?,
                    pg_tid: c.pg_tid.map(storable),
                    cancelled_at: c.cancelled_at.unwrap_or(0),
                    reason: c.reason.map(storable),
                    cancellation_id: c.cancellation_id.map(storable),
                    receipt_url: c.receipt_url.map(storable),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Payment {
            amount: amount(&self.amount, "amount")?,
            cancel_amount: amount(&self.cancel_amount, "cancel_amount")?,
            imp_uid: storable(self.imp_uid),
            merchant_uid: storable(self.merchant_uid),
            pay_method: PayMethod::from(self.pay_method.as_deref().unwrap_or("")),
            currency,
            status: PaymentStatus::from(self.status.as_str()),
            paid_at: self.paid_at.unwrap_or(0),
            cancel_history,
            // i'mport V1 applies cancels synchronously.
            requested_cancels: Vec::new(),
            failed_cancels: Vec::new(),
        })
    }
}

/// Text as every store can keep it: without NUL characters, which
/// PostgreSQL refuses in `text` and `jsonb`.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    }
}

/// The body of `POST /payments/cancel`.
#[derive(Serialize)]
pub(super) struct CancelBody<'a> {
    pub imp_uid: &'a str,
    pub merchant_uid: &'a str,
    pub amount: Box<RawValue>,
    pub checksum: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_free: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vat_amount: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_holder: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_bank: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_tel: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;

    #[test]
    fn tolerates_unknown_fields_and_values() {
        let json = r#"{"code":0,"message":null,"response":{
            "imp_uid":"imp_1","merchant_uid":"m","pay_method":"crypto","amount":10.05,
            "cancel_amount":0.01,"currency":"USD","status":"partial_refunded","paid_at":1700000000,
            "brand_new_field":{"x":[1,2]},"cancel_history":[{"pg_tid":"t","amount":0.01,
            "cancelled_at":1700000100,"reason":null,"cancellation_id":"c","extra":true}]}}"#;
        let envelope: Envelope<PaymentAnnotation> = serde_json::from_str(json).unwrap();
        let payment = envelope.response.unwrap().into_payment().unwrap();
        assert_eq!(payment.amount, Amount::from_minor(1005));
        assert_eq!(payment.cancel_amount, Amount::from_minor(1));
        assert_eq!(payment.pay_method, PayMethod::Other("crypto".into()));
        assert_eq!(
            payment.status,
            PaymentStatus::Other("partial_refunded".into())
        );
        assert_eq!(payment.cancel_history[0].amount, Amount::from_minor(1));
    }

    #[test]
    fn failure_envelope_has_no_response() {
        let envelope: Envelope<PaymentAnnotation> = serde_json::from_str(
            r#"{"code":-1,"message":"이미 취소된 거래입니다","response":null}"#,
        )
        .unwrap();
        assert_eq!(envelope.code, -1);
        assert!(envelope.response.is_none());
    }

    #[test]
    fn refuses_inexact_amounts() {
        let json = r#"{"imp_uid":"i","merchant_uid":"m","amount":1000.5,"cancel_amount":0,"currency":"KRW","status":"paid"}"#;
        let annotation: PaymentAnnotation = serde_json::from_str(json).unwrap();
        assert!(annotation.into_payment().is_err());
    }
}
