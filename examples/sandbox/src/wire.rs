//! JSON shapes of the V1 API and the replies built from them (V2's are in
//! `portone_wire`).
//!
//! Every answer, success or failure, is the envelope
//! `{"code": int, "message": string|null, "response": ...}`. A refusal is
//! HTTP 200 with `code: -1` and `response: null`; only authentication
//! failures (401) and unknown payments on GET (404) change the HTTP status.

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use crate::auth::IssuedToken;
use crate::ledger::{CancelEntry, CancellationStatus, Payment};
use crate::money::JsonAmount;

/// The response envelope.
#[derive(Debug, Serialize)]
struct Envelope<'a, T> {
    code: i32,
    message: Option<&'a str>,
    response: Option<T>,
}

/// `code` of every refusal. V1 has no typed error codes, so neither do we.
const FAILURE_CODE: i32 = -1;

/// `code: 0` with `response`.
pub(crate) fn success<T: Serialize>(response: T) -> HttpResponse {
    let envelope = Envelope {
        code: 0,
        message: None,
        response: Some(response),
    };
    match serde_json::to_string(&envelope) {
        Ok(body) => HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(body),
        Err(error) => {
            tracing::error!(%error, "could not serialize a response");
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "response serialization failed",
            )
        }
    }
}

/// `code: -1`, `response: null`, with `message` and the given HTTP status.
pub(crate) fn failure(status: StatusCode, message: &str) -> HttpResponse {
    let envelope: Envelope<'_, ()> = Envelope {
        code: FAILURE_CODE,
        message: Some(message),
        response: None,
    };
    // Serializing a string and two scalars cannot fail; fall back to an
    // empty body rather than panic if it somehow did.
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(serde_json::to_string(&envelope).unwrap_or_default())
}

/// A refusal: HTTP 200 with `code: -1`, as the gateway answers.
pub(crate) fn refusal(message: &str) -> HttpResponse {
    failure(StatusCode::OK, message)
}

/// 401 with the gateway's exact body.
pub(crate) fn unauthorized() -> HttpResponse {
    failure(StatusCode::UNAUTHORIZED, "Unauthorized")
}

/// HTTP 200 whose body is an HTML error page, not JSON.
pub(crate) fn garbage() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::html()).body(
        "<html><head><title>502 Bad Gateway</title></head><body>upstream hiccup</body></html>",
    )
}

/// AuthAnnotation.
#[derive(Debug, Serialize)]
pub(crate) struct AuthAnnotation<'a> {
    access_token: &'a str,
    expired_at: i64,
    now: i64,
}

impl<'a> AuthAnnotation<'a> {
    pub(crate) fn new(token: &'a IssuedToken, now: i64) -> Self {
        Self {
            access_token: &token.access_token,
            expired_at: token.expired_at,
            now,
        }
    }
}

/// PaymentCancelAnnotation.
#[derive(Debug, Serialize)]
struct CancelAnnotation<'a> {
    pg_tid: &'a str,
    amount: JsonAmount,
    cancelled_at: i64,
    reason: &'a str,
    cancellation_id: &'a str,
    receipt_url: &'a str,
}

/// PaymentAnnotation. Fields the sandbox never fills are `()`, which
/// serializes as `null`, so the shape stays complete for clients that look
/// for them.
#[derive(Debug, Serialize)]
pub(crate) struct PaymentAnnotation<'a> {
    imp_uid: &'a str,
    merchant_uid: &'a str,
    pay_method: &'a str,
    channel: &'static str,
    pg_provider: &'a str,
    emb_pg_provider: (),
    pg_tid: &'a str,
    pg_id: &'static str,
    escrow: bool,
    apply_num: (),
    bank_code: (),
    bank_name: (),
    card_code: (),
    card_name: (),
    card_issuer_code: (),
    card_issuer_name: (),
    card_publisher_code: (),
    card_publisher_name: (),
    card_quota: u32,
    card_number: (),
    card_type: (),
    vbank_code: Option<&'a str>,
    vbank_name: Option<&'a str>,
    vbank_num: Option<&'a str>,
    vbank_holder: Option<&'a str>,
    vbank_date: i64,
    vbank_issued_at: i64,
    name: &'a str,
    amount: JsonAmount,
    cancel_amount: JsonAmount,
    currency: &'static str,
    buyer_name: Option<&'a str>,
    buyer_email: (),
    buyer_tel: (),
    buyer_addr: (),
    buyer_postcode: (),
    custom_data: (),
    user_agent: &'static str,
    status: &'static str,
    started_at: i64,
    paid_at: i64,
    failed_at: i64,
    cancelled_at: i64,
    fail_reason: Option<&'a str>,
    cancel_reason: Option<&'a str>,
    receipt_url: &'a str,
    cancel_history: Vec<CancelAnnotation<'a>>,
    cancel_receipt_urls: Vec<&'a str>,
    cash_receipt_issued: bool,
    customer_uid: (),
    customer_uid_usage: (),
    promotion: (),
}

impl<'a> PaymentAnnotation<'a> {
    pub(crate) fn new(payment: &'a Payment) -> Self {
        let money = |minor| JsonAmount {
            minor,
            currency: payment.currency,
        };
        let cancel = |entry: &'a CancelEntry| CancelAnnotation {
            pg_tid: &entry.pg_tid,
            amount: money(entry.amount),
            cancelled_at: entry.cancelled_at,
            reason: &entry.reason,
            cancellation_id: &entry.cancellation_id,
            receipt_url: &entry.receipt_url,
        };
        let vbank = payment.vbank.as_ref();
        Self {
            imp_uid: &payment.imp_uid,
            merchant_uid: &payment.merchant_uid,
            pay_method: &payment.pay_method,
            channel: "pc",
            pg_provider: &payment.pg_provider,
            emb_pg_provider: (),
            pg_tid: &payment.pg_tid,
            pg_id: "sandbox_mid",
            escrow: false,
            apply_num: (),
            bank_code: (),
            bank_name: (),
            card_code: (),
            card_name: (),
            card_issuer_code: (),
            card_issuer_name: (),
            card_publisher_code: (),
            card_publisher_name: (),
            card_quota: 0,
            card_number: (),
            card_type: (),
            vbank_code: vbank.map(|v| v.bank_code.as_str()),
            vbank_name: vbank.map(|v| v.bank_name.as_str()),
            vbank_num: vbank.map(|v| v.number.as_str()),
            vbank_holder: vbank.map(|v| v.holder.as_str()),
            vbank_date: vbank.map_or(0, |v| v.due_at),
            vbank_issued_at: vbank.map_or(0, |v| v.issued_at),
            name: &payment.name,
            amount: money(payment.amount),
            cancel_amount: money(payment.cancel_amount),
            currency: payment.currency.code(),
            buyer_name: payment.buyer_name.as_deref(),
            buyer_email: (),
            buyer_tel: (),
            buyer_addr: (),
            buyer_postcode: (),
            custom_data: (),
            user_agent: "iamport-sandbox",
            status: payment.status.as_str(),
            started_at: payment.started_at,
            paid_at: payment.paid_at,
            failed_at: payment.failed_at,
            cancelled_at: payment.cancelled_at,
            fail_reason: payment.fail_reason.as_deref(),
            cancel_reason: payment.cancel_reason.as_deref(),
            receipt_url: &payment.receipt_url,
            // V1 has no asynchronous cancels: only done ones are history.
            cancel_history: payment
                .entries(CancellationStatus::Succeeded)
                .map(cancel)
                .collect(),
            cancel_receipt_urls: payment
                .entries(CancellationStatus::Succeeded)
                .map(|entry| entry.receipt_url.as_str())
                .collect(),
            cash_receipt_issued: false,
            customer_uid: (),
            customer_uid_usage: (),
            promotion: (),
        }
    }
}
