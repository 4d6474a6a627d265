//! The HTTP answers the tests read: the merchant server's payment views and
//! the sandbox's i'mport envelopes, amounts kept exact.

use refund_core::{Currency, DecimalText};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// An HTTP answer: status, raw text (amounts must be read from the text to
/// stay exact) and the parsed JSON (`Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub(super) async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, text, json }
    }

    /// The error code of an error answer (`""` when there is none).
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or_default()
    }

    /// The body as `T`, panicking with the body when it does not fit.
    pub fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("unexpected body ({error}): {}", self.text))
    }

    /// The payment view in a 200 answer.
    pub fn view(&self) -> View {
        assert_eq!(self.status, 200, "expected a payment view: {}", self.text);
        self.parse()
    }
}

/// The payment view the refund routes answer, amounts kept exact.
#[derive(Debug, Deserialize)]
pub struct View {
    pub merchant_uid: String,
    pub imp_uid: String,
    pub currency: Currency,
    pub status: String,
    amount: DecimalText,
    cancel_amount: DecimalText,
    pub cancel_history: Vec<HistoryEntry>,
    pub refund: Option<RefundRef>,
    pub pending_refunds: Vec<RefundRef>,
}

impl View {
    /// The amount paid, in minor units.
    pub fn amount(&self) -> i64 {
        minor(&self.amount, self.currency)
    }

    /// The amount refunded so far, in minor units.
    pub fn cancel_amount(&self) -> i64 {
        minor(&self.cancel_amount, self.currency)
    }
}

/// One cancellation in a view.
#[derive(Debug, Deserialize)]
pub struct HistoryEntry {
    pub amount: DecimalText,
}

/// A refund in a view (`refund`, `pending_refunds`) or a 202 answer.
#[derive(Debug, Deserialize)]
pub struct RefundRef {
    pub id: String,
    pub amount: DecimalText,
    pub status: String,
}

/// `text` in `currency`'s minor unit.
pub fn minor(text: &DecimalText, currency: Currency) -> i64 {
    currency
        .parse_major(text.as_str())
        .unwrap_or_else(|error| panic!("{} is not a {currency} amount: {error}", text.as_str()))
        .minor()
}

/// i'mport's envelope `{code, message, response}`.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<T> {
    pub(super) code: i64,
    pub(super) response: Option<T>,
}

/// The sandbox's copy of a payment (the fields the tests compare).
#[derive(Debug, Deserialize)]
pub struct GatewayPayment {
    pub imp_uid: String,
    pub merchant_uid: String,
    pub currency: Currency,
    pub status: String,
    amount: DecimalText,
    cancel_amount: DecimalText,
}

impl GatewayPayment {
    /// A PortOne V2 `Payment`, in the plugin's vocabulary (`transactionId`
    /// as `imp_uid`, statuses as the views name them).
    pub fn from_portone(json: &Value) -> GatewayPayment {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let currency: Currency = text(&json["currency"]).parse().expect("a currency");
        let major = |v: &Value| {
            let minor = v
                .as_i64()
                .unwrap_or_else(|| panic!("not an amount: {json}"));
            DecimalText::new(currency.format_major(refund_core::Amount::from_minor(minor)))
                .expect("a decimal")
        };
        let status = match json["status"].as_str() {
            Some("PAID" | "PARTIAL_CANCELLED") => "paid",
            Some("CANCELLED") => "cancelled",
            Some("FAILED") => "failed",
            _ => "ready",
        };
        GatewayPayment {
            imp_uid: text(&json["transactionId"]),
            merchant_uid: text(&json["id"]),
            currency,
            status: status.to_owned(),
            amount: major(&json["amount"]["total"]),
            cancel_amount: major(&json["amount"]["cancelled"]),
        }
    }

    /// The amount paid, in minor units.
    pub fn amount(&self) -> i64 {
        minor(&self.amount, self.currency)
    }

    /// The amount refunded at the gateway, in minor units.
    pub fn cancel_amount(&self) -> i64 {
        minor(&self.cancel_amount, self.currency)
    }
}
