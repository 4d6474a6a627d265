//! `/sandbox/...`: endpoints the real gateway does not have, for seeding
//! payments, admin-console cancels, completing asynchronous cancels,
//! injecting faults and reading counters. No authentication and no added
//! latency. Answers speak the configured API: in V1 mode the gateway's
//! envelope, with plain HTTP statuses for errors (400 bad input, 404
//! unknown payment, 409 conflict or refused cancel); in V2 mode bare JSON
//! (payments in the V2 `Payment` shape) and `{type, message}` errors.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::body::Fields;
use crate::config::Api;
use crate::faults::{ArmedFault, Fault, FaultRequest, FaultTarget};
use crate::ledger::{
    pay_method, AdminCancel, CancelError, CreatePaymentError, NewPayment, Payment, PaymentStatus,
    Target,
};
use crate::money::{parse_amount, Currency};
use crate::portone_wire::{self, cancel_error, pay_method_of, METHODS};
use crate::state::SandboxState;
use crate::wire::{failure, success, PaymentAnnotation};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sandbox/payments", web::post().to(create_payment))
        .route(
            "/sandbox/payments/{id}/admin-cancel",
            web::post().to(admin_cancel),
        )
        .route(
            "/sandbox/cancellations/complete",
            web::post().to(complete_cancellations),
        )
        .route("/sandbox/faults", web::post().to(arm_fault))
        .route("/sandbox/faults", web::get().to(list_faults))
        .route("/sandbox/faults", web::delete().to(clear_faults))
        .route("/sandbox/stats", web::get().to(stats))
        .route("/sandbox/reset-stats", web::post().to(reset_stats))
        .route("/sandbox/clock", web::post().to(advance_clock));
}

/// A success in the API's style.
fn ok<T: Serialize>(api: Api, body: T) -> HttpResponse {
    match api {
        Api::Iamport => success(body),
        Api::Portone => HttpResponse::Ok().json(body),
    }
}

/// An error in the API's style (`kind` is the V2 `type`).
fn error(api: Api, status: StatusCode, kind: &str, message: &str) -> HttpResponse {
    match api {
        Api::Iamport => failure(status, message),
        Api::Portone => portone_wire::error(status, kind, message),
    }
}

fn bad_request(api: Api, message: &str) -> HttpResponse {
    error(api, StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
}

/// A payment in the API's own shape.
fn payment_reply(state: &SandboxState, payment: &Payment) -> HttpResponse {
    match state.api {
        Api::Iamport => success(PaymentAnnotation::new(payment)),
        Api::Portone => HttpResponse::Ok().json(portone_wire::payment(payment, state.store())),
    }
}

/// `POST /sandbox/payments`. V1:
/// `{merchant_uid, amount, currency?, pay_method?, status?, paid_at?, name?, buyer_name?, tax_free?}`;
/// V2: `{payment_id, amount, currency?, method?, status?, paid_at?, name?, buyer_name?, tax_free?}`
/// with `method` one of `card`, `virtual_account`, `transfer`, `mobile`.
/// Amounts are major-unit decimals (`12.5` USD) in both.
async fn create_payment(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let api = state.api;
    let new = match Fields::parse(&req, &body)
        .map_err(|e| e.to_string())
        .and_then(|fields| new_payment(&fields, api))
    {
        Ok(new) => new,
        Err(message) => return bad_request(api, &message),
    };
    match state.create_payment(new) {
        Ok(payment) => payment_reply(&state, &payment),
        Err(error @ CreatePaymentError::DuplicateMerchantUid(_)) => self::error(
            api,
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            &error.to_string(),
        ),
        Err(error) => bad_request(api, &error.to_string()),
    }
}

fn new_payment(fields: &Fields, api: Api) -> Result<NewPayment, String> {
    let text = |name| fields.text(name).map_err(|e| e.to_string());
    let merchant_uid = match api {
        Api::Iamport => text("merchant_uid")?.ok_or("merchant_uid is required")?,
        Api::Portone => text("payment_id")?.ok_or("payment_id is required")?,
    };
    let pay_method = match api {
        Api::Iamport => text("pay_method")?.unwrap_or_else(|| pay_method::CARD.to_owned()),
        Api::Portone => match text("method")? {
            None => pay_method::CARD.to_owned(),
            Some(method) => pay_method_of(&method)
                .ok_or_else(|| {
                    let names: Vec<&str> = METHODS.iter().map(|(name, _)| *name).collect();
                    format!("method must be one of {}", names.join(", "))
                })?
                .to_owned(),
        },
    };
    let currency = match text("currency")? {
        Some(code) => code.parse::<Currency>().map_err(|e| e.to_string())?,
        None => Currency::default(),
    };
    let amount = text("amount")?.ok_or("amount is required")?;
    let amount = parse_amount(&amount, currency).map_err(|e| format!("amount is invalid: {e}"))?;
    let tax_free = text("tax_free")?
        .map(|t| parse_amount(&t, currency))
        .transpose()
        .map_err(|e| format!("tax_free is invalid: {e}"))?
        .unwrap_or(0);
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
        tax_free,
        currency,
        pay_method,
        status,
        paid_at,
        name: text("name")?,
        buyer_name: text("buyer_name")?,
    })
}

/// `POST /sandbox/payments/{id}/admin-cancel` `{amount?, reason?}`: `id`
/// is the `imp_uid` on V1 and the `paymentId` on V2; `amount` is a
/// major-unit decimal. Answers the payment afterwards.
async fn admin_cancel(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let api = state.api;
    let (payment, target) = match api {
        Api::Iamport => (state.payment(&id), Target::ImpUid(id.into_inner())),
        Api::Portone => (
            state.find_payment(&id, None),
            Target::MerchantUid(id.into_inner()),
        ),
    };
    let Some(payment) = payment else {
        return error(
            api,
            StatusCode::NOT_FOUND,
            "PAYMENT_NOT_FOUND",
            "no such payment",
        );
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
        Err(message) => return bad_request(api, &message),
    };
    match (state.admin_cancel(&target, cancel), api) {
        (Ok(payment), _) => payment_reply(&state, &payment),
        (Err(error), Api::Portone) => cancel_error(&error),
        (Err(error @ CancelError::PaymentNotFound), Api::Iamport) => {
            failure(StatusCode::NOT_FOUND, &error.to_string())
        }
        (Err(error), Api::Iamport) => failure(StatusCode::CONFLICT, &error.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteRequest {
    succeed: Option<bool>,
}

/// `POST /sandbox/cancellations/complete {succeed?: bool}` (default true):
/// completes every `REQUESTED` cancel. Answers
/// `{completed: [{paymentId, cancellation}]}` (always empty on V1, which
/// has no asynchronous cancels).
async fn complete_cancellations(body: web::Bytes, state: web::Data<SandboxState>) -> HttpResponse {
    let request: CompleteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CompleteRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => {
                return bad_request(state.api, &format!("invalid completion request: {error}"))
            }
        }
    };
    let completed: Vec<serde_json::Value> = state
        .complete_requested(request.succeed.unwrap_or(true))
        .iter()
        .filter_map(|(payment, id)| {
            let entry = payment.cancellation(id)?;
            Some(serde_json::json!({
                "paymentId": payment.merchant_uid,
                "cancellation": portone_wire::cancellation(entry),
            }))
        })
        .collect();
    ok(state.api, serde_json::json!({ "completed": completed }))
}

#[derive(Debug, Serialize)]
struct ArmedFaults {
    armed: Vec<ArmedFault>,
}

fn armed(state: &SandboxState) -> HttpResponse {
    ok(
        state.api,
        ArmedFaults {
            armed: state.armed_faults(),
        },
    )
}

/// `POST /sandbox/faults` `{fault, times?, hold_ms?, endpoint?}`.
async fn arm_fault(body: web::Bytes, state: web::Data<SandboxState>) -> HttpResponse {
    let api = state.api;
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(api, &format!("invalid fault request: {error}")),
    };
    let fault = request.fault();
    if let Some(fault @ (Fault::EchoAccount | Fault::Requested)) = fault {
        if matches!(request.endpoint, FaultTarget::Get | FaultTarget::Token) {
            return bad_request(
                api,
                &format!("{} applies to cancel calls only", fault.name()),
            );
        }
    }
    if fault == Some(Fault::Requested) && api == Api::Iamport {
        return bad_request(
            api,
            "requested (asynchronous) cancels exist on the PortOne V2 API only",
        );
    }
    match fault {
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
    ok(state.api, state.stats())
}

/// `POST /sandbox/reset-stats`: answers the counts it just cleared.
async fn reset_stats(state: web::Data<SandboxState>) -> HttpResponse {
    ok(state.api, state.reset_stats())
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
        Err(error) => return bad_request(state.api, &format!("invalid clock request: {error}")),
    };
    let offset_secs = state
        .clock
        .advance(Duration::from_secs(request.advance_secs));
    ok(
        state.api,
        ClockReply {
            now: state.clock.now(),
            offset_secs,
        },
    )
}
