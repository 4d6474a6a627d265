//! JSON shapes of the PortOne V2 API, built from the shared ledger.
//!
//! Amounts are JSON integers in the currency's minor unit (USD 12.50 is
//! `1250`); times are RFC 3339. Errors are `{type, message}` with the HTTP
//! status the schema gives each type (`PG_PROVIDER` adds `pgCode` and
//! `pgMessage`).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use crate::clock::rfc3339;
use crate::ledger::{
    pay_method, CancelEntry, CancelError, CancellationStatus, Payment, PaymentStatus,
};

/// `merchantId` of every V2 payment (the sandbox has one merchant).
pub(crate) const MERCHANT_ID: &str = "merchant-00000000-0000-4000-8000-000000000000";

/// A V2 payment status (the `Payment` union's discriminator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum V2Status {
    Ready,
    VirtualAccountIssued,
    Paid,
    PartialCancelled,
    Cancelled,
    Failed,
}

impl V2Status {
    /// How the shared ledger's state reads on V2: a paid payment with
    /// succeeded cancels is `PARTIAL_CANCELLED`; an unpaid virtual account
    /// has been issued.
    pub(crate) fn of(payment: &Payment) -> Self {
        match payment.status {
            PaymentStatus::Paid if payment.cancel_amount > 0 => Self::PartialCancelled,
            PaymentStatus::Paid => Self::Paid,
            PaymentStatus::Cancelled => Self::Cancelled,
            PaymentStatus::Ready if payment.vbank.is_some() => Self::VirtualAccountIssued,
            PaymentStatus::Ready => Self::Ready,
            PaymentStatus::Failed => Self::Failed,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "READY",
            Self::VirtualAccountIssued => "VIRTUAL_ACCOUNT_ISSUED",
            Self::Paid => "PAID",
            Self::PartialCancelled => "PARTIAL_CANCELLED",
            Self::Cancelled => "CANCELLED",
            Self::Failed => "FAILED",
        }
    }

    /// The webhook `type` announcing that a payment reached this status.
    pub(crate) fn notice_type(self) -> &'static str {
        match self {
            Self::Ready => "Transaction.Ready",
            Self::VirtualAccountIssued => "Transaction.VirtualAccountIssued",
            Self::Paid => "Transaction.Paid",
            Self::PartialCancelled => "Transaction.PartialCancelled",
            Self::Cancelled => "Transaction.Cancelled",
            Self::Failed => "Transaction.Failed",
        }
    }
}

/// The webhook `type` for a change: a requested cancel is
/// `Transaction.CancelPending`; anything else announces the status the
/// payment is in afterwards (so a requested cancel that failed reads
/// `Transaction.Paid` or `Transaction.PartialCancelled` again, and a
/// receiver that fetches the payment sees the failed cancellation).
pub(crate) fn notice_type(payment: &Payment, cancellation: Option<&CancelEntry>) -> &'static str {
    match cancellation.map(|c| c.status) {
        Some(CancellationStatus::Requested) => "Transaction.CancelPending",
        _ => V2Status::of(payment).notice_type(),
    }
}

/// The V2 method names `POST /sandbox/payments` takes, and the ledger's
/// (V1) pay methods they are stored as.
pub(crate) const METHODS: [(&str, &str); 4] = [
    ("card", pay_method::CARD),
    ("virtual_account", pay_method::VBANK),
    ("transfer", pay_method::TRANS),
    ("mobile", pay_method::PHONE),
];

/// The ledger pay method of a V2 method name.
pub(crate) fn pay_method_of(method: &str) -> Option<&'static str> {
    METHODS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, pay_method)| *pay_method)
}

/// The store a V2 answer speaks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Store<'a> {
    pub(crate) store_id: &'a str,
}

/// `PaymentCancellation` (discriminated by `status`): only a succeeded one
/// has `cancelledAt` and `receiptUrl`.
pub(crate) fn cancellation(entry: &CancelEntry) -> Value {
    let mut out = json!({
        "status": entry.status.as_str(),
        "id": entry.cancellation_id,
        "pgCancellationId": entry.pg_tid,
        "totalAmount": entry.amount,
        "taxFreeAmount": entry.tax_free,
        "vatAmount": entry.vat_amount,
        "reason": entry.reason,
        "requestedAt": rfc3339(entry.requested_at),
        "trigger": entry.trigger.as_str(),
    });
    if entry.status == CancellationStatus::Succeeded {
        out["cancelledAt"] = json!(rfc3339(entry.cancelled_at));
        out["receiptUrl"] = json!(entry.receipt_url);
    }
    out
}

/// The `PaymentMethod` union member of a pay method, when V2 has one.
fn method(payment: &Payment) -> Option<Value> {
    Some(match payment.pay_method.as_str() {
        pay_method::CARD => json!({
            "type": "PaymentMethodCard",
            "card": {
                "publisher": "361",
                "issuer": "361",
                "brand": "LOCAL",
                "type": "CREDIT",
                "ownerType": "PERSONAL",
                "bin": "53275000",
                "name": "Sandbox card",
                "number": "53275000****123*",
            },
            "approvalNumber": "30012345",
            "pointUsed": false,
        }),
        pay_method::VBANK => {
            let account = payment.vbank.as_ref()?;
            let mut out = json!({
                "type": "PaymentMethodVirtualAccount",
                "bank": "SHINHAN",
                "accountNumber": account.number,
                "accountType": "NORMAL",
                "remitteeName": account.holder,
                "expiredAt": rfc3339(account.due_at),
                "issuedAt": rfc3339(account.issued_at),
            });
            if let Some(buyer) = &payment.buyer_name {
                out["remitterName"] = json!(buyer);
            }
            let refund_status = if payment.requested_amount() > 0 {
                Some("PENDING")
            } else if payment.cancel_amount > 0 {
                Some("COMPLETED")
            } else {
                None
            };
            if let Some(status) = refund_status {
                out["refundStatus"] = json!(status);
            }
            out
        }
        pay_method::TRANS => json!({"type": "PaymentMethodTransfer", "bank": "KOOKMIN"}),
        pay_method::PHONE => json!({"type": "PaymentMethodMobile", "phoneNumber": "01000000000"}),
        _ => return None,
    })
}

/// The `PaymentAmount` of a payment. Only succeeded cancels count as
/// cancelled; VAT is the taxable part's tenth-of-1.1, as V2 computes it.
fn amount(payment: &Payment) -> Value {
    let vat = (payment.amount - payment.tax_free) / 11;
    let paid = match payment.status {
        PaymentStatus::Paid | PaymentStatus::Cancelled => payment.amount,
        PaymentStatus::Ready | PaymentStatus::Failed => 0,
    };
    json!({
        "total": payment.amount,
        "taxFree": payment.tax_free,
        "vat": vat,
        "supply": payment.amount - payment.tax_free - vat,
        "discount": 0,
        "paid": paid,
        "cancelled": payment.cancel_amount,
        "cancelledTaxFree": payment.cancelled_tax_free(),
    })
}

/// When the latest succeeded cancel happened, if any did.
fn last_cancelled_at(payment: &Payment) -> Option<i64> {
    payment
        .entries(CancellationStatus::Succeeded)
        .map(|e| e.cancelled_at)
        .max()
}

/// The V2 `Payment`, in the union member its status selects, with the
/// fields that member requires.
///
/// One liberty beyond the schema: a `PAID` payment lists its
/// `cancellations` when it has any (a pending `REQUESTED` one, or a
/// `FAILED` one), because `PaidPayment` has no such property and a client
/// must still be able to see them; unknown fields are tolerated by V2
/// clients.
pub(crate) fn payment(payment: &Payment, store: Store<'_>) -> Value {
    let status = V2Status::of(payment);
    let latest_event = payment
        .cancel_history
        .iter()
        .map(|e| e.requested_at.max(e.cancelled_at))
        .chain([payment.started_at, payment.paid_at, payment.failed_at])
        .max()
        .unwrap_or(payment.started_at);
    let status_changed_at = match status {
        V2Status::Ready | V2Status::VirtualAccountIssued => payment.started_at,
        V2Status::Paid => payment.paid_at,
        V2Status::PartialCancelled => last_cancelled_at(payment).unwrap_or(payment.paid_at),
        V2Status::Cancelled => payment.cancelled_at,
        V2Status::Failed => payment.failed_at,
    };
    let mut customer = Map::new();
    if let Some(name) = &payment.buyer_name {
        customer.insert("name".to_owned(), json!(name));
    }
    let mut out = json!({
        "status": status.as_str(),
        "id": payment.merchant_uid,
        "transactionId": payment.transaction_id,
        "merchantId": MERCHANT_ID,
        "storeId": store.store_id,
        "channel": {
            "type": "TEST",
            "id": "channel-id-sandbox",
            "key": "channel-key-sandbox",
            "name": "sandbox",
            "pgProvider": "TOSSPAYMENTS",
            "pgMerchantId": "sandbox_mid",
        },
        "version": "V2",
        "requestedAt": rfc3339(payment.started_at),
        "updatedAt": rfc3339(latest_event),
        "statusChangedAt": rfc3339(status_changed_at),
        "orderName": payment.name,
        "amount": amount(payment),
        "currency": payment.currency.code(),
        "customer": Value::Object(customer),
    });
    if let Some(method) = method(payment) {
        out["method"] = method;
    }
    if status != V2Status::Ready {
        out["pgTxId"] = json!(payment.pg_tid);
    }
    if matches!(
        status,
        V2Status::Paid | V2Status::PartialCancelled | V2Status::Cancelled
    ) {
        out["paidAt"] = json!(rfc3339(payment.paid_at));
        out["receiptUrl"] = json!(payment.receipt_url);
        out["disputes"] = json!([]);
        if status != V2Status::Paid || !payment.cancel_history.is_empty() {
            out["cancellations"] = payment.cancel_history.iter().map(cancellation).collect();
        }
    }
    match status {
        V2Status::PartialCancelled => {
            let at = last_cancelled_at(payment).unwrap_or(payment.paid_at);
            out["cancelledAt"] = json!(rfc3339(at));
        }
        V2Status::Cancelled => out["cancelledAt"] = json!(rfc3339(payment.cancelled_at)),
        V2Status::Failed => {
            out["failedAt"] = json!(rfc3339(payment.failed_at));
            out["failure"] = json!({
                "reason": payment.fail_reason.as_deref().unwrap_or("failed"),
                "pgCode": "SANDBOX_FAILED",
                "pgMessage": "created as failed in the sandbox",
            });
        }
        _ => {}
    }
    out
}

/// An error reply: `{type, message}` with `status`.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"type": kind, "message": message}))
}

/// 401 `UNAUTHORIZED`.
pub(crate) fn unauthorized(message: &str) -> HttpResponse {
    error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
}

/// 400 `INVALID_REQUEST`.
pub(crate) fn invalid_request(message: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
}

/// 404 `PAYMENT_NOT_FOUND`.
pub(crate) fn payment_not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "PAYMENT_NOT_FOUND",
        "no payment has this id",
    )
}

/// 403 `FORBIDDEN`: the request names a store this secret cannot act for.
pub(crate) fn forbidden_store() -> HttpResponse {
    error(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "the API secret has no access to this store",
    )
}

/// 502 `PG_PROVIDER`: the PG refused, with its own code and message.
pub(crate) fn pg_provider(pg_code: &str, pg_message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::BAD_GATEWAY).json(json!({
        "type": "PG_PROVIDER",
        "message": format!("[{pg_code}] {pg_message}"),
        "pgCode": pg_code,
        "pgMessage": pg_message,
    }))
}

/// The V2 error type and HTTP status of a refused cancel.
pub(crate) fn cancel_error_kind(error: &CancelError) -> (StatusCode, &'static str) {
    use CancelError::*;
    match error {
        PaymentNotFound | MissingIdentifier => (StatusCode::NOT_FOUND, "PAYMENT_NOT_FOUND"),
        InvalidRequest(_) | InvalidField { .. } | InvalidAmount { .. } | RefundAccountRequired => {
            (StatusCode::BAD_REQUEST, "INVALID_REQUEST")
        }
        NotPaid(_) => (StatusCode::CONFLICT, "PAYMENT_NOT_PAID"),
        AlreadyCancelled => (StatusCode::CONFLICT, "PAYMENT_ALREADY_CANCELLED"),
        ChecksumMismatch => (
            StatusCode::CONFLICT,
            "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
        ),
        ExceedsCancelable => (
            StatusCode::CONFLICT,
            "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
        ),
        TaxExceedsAmount(_) | SumOfPartsExceedsAmount => {
            (StatusCode::CONFLICT, "SUM_OF_PARTS_EXCEEDS_CANCEL_AMOUNT")
        }
        TaxFreeExceedsCancellable => (
            StatusCode::CONFLICT,
            "CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT",
        ),
        PhoneMonthPassed => (StatusCode::BAD_GATEWAY, "PG_PROVIDER"),
    }
}

/// The reply to a refused cancel.
pub(crate) fn cancel_error(error: &CancelError) -> HttpResponse {
    match cancel_error_kind(error) {
        (_, "PG_PROVIDER") => pg_provider("SANDBOX_REFUSED", &error.to_string()),
        (status, kind) => self::error(status, kind, &error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, NewPayment};
    use crate::money::Currency;

    #[test]
    fn each_status_carries_what_its_union_member_requires() {
        let mut ledger = Ledger::default();
        let store = Store {
            store_id: "store-1",
        };
        let paid = ledger
            .create(NewPayment::new("p-1", 1100, Currency::Krw), 100)
            .unwrap();
        let json = payment(&paid, store);
        for field in [
            "status",
            "id",
            "transactionId",
            "merchantId",
            "storeId",
            "channel",
            "version",
            "requestedAt",
            "updatedAt",
            "statusChangedAt",
            "orderName",
            "amount",
            "currency",
            "customer",
            "paidAt",
            "disputes",
        ] {
            assert!(json.get(field).is_some(), "PAID lacks {field}: {json}");
        }
        assert_eq!(json["status"], "PAID");
        assert_eq!(json["id"], "p-1");
        assert!(json.get("cancellations").is_none());
        assert_eq!(json["amount"]["vat"], 100);
        assert_eq!(json["method"]["type"], "PaymentMethodCard");

        let ready = ledger
            .create(
                NewPayment::new("p-2", 500, Currency::Usd)
                    .pay_method(pay_method::VBANK)
                    .status(PaymentStatus::Ready),
                100,
            )
            .unwrap();
        let json = payment(&ready, store);
        assert_eq!(json["status"], "VIRTUAL_ACCOUNT_ISSUED");
        assert_eq!(json["currency"], "USD");
        assert_eq!(json["amount"]["paid"], 0);
        assert_eq!(json["method"]["type"], "PaymentMethodVirtualAccount");
        assert!(json.get("paidAt").is_none());

        let failed = ledger
            .create(
                NewPayment::new("p-3", 500, Currency::Krw).status(PaymentStatus::Failed),
                100,
            )
            .unwrap();
        let json = payment(&failed, store);
        assert_eq!(json["status"], "FAILED");
        assert!(json.get("failedAt").is_some() && json.get("failure").is_some());
    }

    #[test]
    fn notice_types_follow_the_payment_after_the_change() {
        let mut ledger = Ledger::default();
        let paid = ledger
            .create(NewPayment::new("p-1", 1000, Currency::Krw), 100)
            .unwrap();
        assert_eq!(notice_type(&paid, None), "Transaction.Paid");
        let mut entry = CancelEntry {
            pg_tid: String::new(),
            amount: 1,
            tax_free: 0,
            vat_amount: 0,
            status: CancellationStatus::Requested,
            trigger: crate::ledger::CancelTrigger::Api,
            requested_at: 0,
            cancelled_at: 0,
            reason: String::new(),
            cancellation_id: String::new(),
            receipt_url: String::new(),
        };
        assert_eq!(
            notice_type(&paid, Some(&entry)),
            "Transaction.CancelPending"
        );
        entry.status = CancellationStatus::Failed;
        assert_eq!(notice_type(&paid, Some(&entry)), "Transaction.Paid");
        let mut partly = paid.clone();
        partly.cancel_amount = 10;
        assert_eq!(
            notice_type(&partly, Some(&entry)),
            "Transaction.PartialCancelled"
        );
        partly.status = PaymentStatus::Cancelled;
        assert_eq!(notice_type(&partly, None), "Transaction.Cancelled");
    }
}
