//! `/sandbox/...`: endpoints the real gateway does not have, for seeding
//! payments, injecting faults and reading counters. No authentication and
//! no added latency. Answers use the same envelope as the gateway, with
//! plain HTTP statuses for errors (400 bad input, 404 unknown payment,
//! 409 conflict or refused cancel).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::body::Fields;
use crate::faults::{ArmedFault, FaultRequest};
use crate::ledger::{
    pay_method, AdminCancel, CancelError, CreatePaymentError, NewPayment, PaymentStatus,
};
use crate::money::{parse_amount, Currency};
use crate::state::SandboxState;
use crate::wire::{failure, success, PaymentAnnotation};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sandbox/payments", web::post().to(create_payment))
        .route(
            "/sandbox/payments/{imp_uid}/admin-cancel",
            web::post().to(admin_cancel),
        )
        .route("/sandbox/faults", web::post().to(arm_fault))
        .route("/sandbox/faults", web::get().to(list_faults))
        .route("/sandbox/faults", web::delete().to(clear_faults))
        .route("/sandbox/stats", web::get().to(stats))
        .route("/sandbox/reset-stats", web::post().to(reset_stats))
        .route("/sandbox/clock", web::post().to(advance_clock));
}

fn bad_request(message: &str) -> HttpResponse {
    failure(StatusCode::BAD_REQUEST, message)
}

/// `POST /sandbox/payments`
/// `{merchant_uid, amount, currency?, pay_method?, status?, paid_at?, name?, buyer_name?}`.
async fn create_payment(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let new = match Fields::parse(&req, &body)
        .map_err(|e| e.to_string())
        .and_then(|fields| new_payment(&fields))
    {
        Ok(new) => new,
        Err(message) => return bad_request(&message),
    };
    match state.create_payment(new) {
        Ok(payment) => success(PaymentAnnotation::new(&payment)),
        Err(error @ CreatePaymentError::DuplicateMerchantUid(_)) => {
            failure(StatusCode::CONFLICT, &error.to_string())
        }
        Err(error) => bad_request(&error.to_string()),
    }
}

fn new_payment(fields: &Fields) -> Result<NewPayment, String> {
    let text = |name| fields.text(name).map_err(|e| e.to_string());
    let merchant_uid = text("merchant_uid")?.ok_or("merchant_uid is required")?;
    let currency = match text("currency")? {
        Some(code) => code.parse::<Currency>().map_err(|e| e.to_string())?,
        None => Currency::default(),
    };
    let amount = text("amount")?.ok_or("amount is required")?;
    let amount = parse_amount(&amount, currency).map_err(|e| format!("amount is invalid: {e}"))?;
    let status = match text("status")? {
        Some(status) => status.parse::<PaymentStatus>().map_err(|e| e.to_string())?,
        None => PaymentStatus::Paid,
    };
    let paid_at = text("paid_at")?
        .map(|t| t.parse::<i64>().map_err(|_| "paid_at must be unix seconds"))
        .transpose()?;
    Ok(NewPayment {
        merchant_uid,
        amount,
        currency,
        pay_method: text("pay_method")?.unwrap_or_else(|| pay_method::CARD.to_owned()),
        status,
        paid_at,
        name: text("name")?,
        buyer_name: text("buyer_name")?,
    })
}

/// `POST /sandbox/payments/{imp_uid}/admin-cancel` `{amount?, reason?}`.
async fn admin_cancel(
    req: HttpRequest,
    imp_uid: web::Path<String>,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let Some(payment) = state.payment(&imp_uid) else {
        return failure(StatusCode::NOT_FOUND, "no such payment");
    };
    let cancel = Fields::parse(&req, &body)
        .map_err(|e| e.to_string())
        .and_then(|fields| {
            let text = |name| fields.text(name).map_err(|e| e.to_string());
            let amount = text("amount")?
                .map(|a| parse_amount(&a, payment.currency))
                .transpose()
                .map_err(|e| format!("amount is invalid: {e}"))?;
            Ok(AdminCancel {
                amount,
                reason: text("reason")?,
            })
        });
    let cancel = match cancel {
        Ok(cancel) => cancel,
        Err(message) => return bad_request(&message),
    };
    match state.admin_cancel(&imp_uid, cancel) {
        Ok(payment) => success(PaymentAnnotation::new(&payment)),
        Err(error @ CancelError::PaymentNotFound) => {
            failure(StatusCode::NOT_FOUND, &error.to_string())
        }
        Err(error) => failure(StatusCode::CONFLICT, &error.to_string()),
    }
}

#[derive(Debug, Serialize)]
struct ArmedFaults {
    armed: Vec<ArmedFault>,
}

fn armed(state: &SandboxState) -> HttpResponse {
    success(ArmedFaults {
        armed: state.armed_faults(),
    })
}

/// `POST /sandbox/faults` `{fault, times?, hold_ms?, endpoint?}`.
async fn arm_fault(body: web::Bytes, state: web::Data<SandboxState>) -> HttpResponse {
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(&format!("invalid fault request: {error}")),
    };
    match request.fault() {
        Some(fault) => state.arm_fault(fault, request.endpoint, request.times),
        None => state.revoke_tokens(),
    }
    armed(&state)
}

/// `GET /sandbox/faults`.
async fn list_faults(state: web::Data<SandboxState>) -> HttpResponse {
    armed(&state)
}

/// `DELETE /sandbox/faults`.
async fn clear_faults(state: web::Data<SandboxState>) -> HttpResponse {
    state.clear_faults();
    armed(&state)
}

/// `GET /sandbox/stats`.
async fn stats(state: web::Data<SandboxState>) -> HttpResponse {
    success(state.stats())
}

/// `POST /sandbox/reset-stats`: answers the counts it just cleared.
async fn reset_stats(state: web::Data<SandboxState>) -> HttpResponse {
    success(state.reset_stats())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    advance_secs: u64,
}

#[derive(Debug, Serialize)]
struct ClockReply {
    now: i64,
    offset_secs: i64,
}

/// `POST /sandbox/clock` `{advance_secs}`: moves the sandbox clock forward.
async fn advance_clock(body: web::Bytes, state: web::Data<SandboxState>) -> HttpResponse {
    let request: ClockRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(&format!("invalid clock request: {error}")),
    };
    let offset_secs = state
        .clock
        .advance(Duration::from_secs(request.advance_secs));
    success(ClockReply {
        now: state.clock.now(),
        offset_secs,
    })
}
