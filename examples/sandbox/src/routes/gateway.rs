//! The simulated i'mport V1 endpoints.
//!
//! Every call goes through the same steps: added latency, counting,
//! authentication, then [`with_faults`], which lets an armed fault act
//! before and/or after the call's real work.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::call::{arrive, run_with_fault, FailureReplies};
use crate::body::Fields;
use crate::faults::{Endpoint, Fault};
use crate::ledger::{CancelError, CancelOrder, Payment, PaymentStatus, RefundAccount, Target};
use crate::money::{parse_amount, Currency};
use crate::state::SandboxState;
use crate::wire::{failure, refusal, success, unauthorized, AuthAnnotation, PaymentAnnotation};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/getToken", web::post().to(get_token))
        .route("/payments/cancel", web::post().to(cancel))
        .route("/payments/find/{merchant_uid}", web::get().to(find_payment))
        .route(
            "/payments/find/{merchant_uid}/{payment_status}",
            web::get().to(find_payment),
        )
        .route("/payments/{imp_uid}", web::get().to(get_payment));
}

/// The 401 answer, unless the request carries the live token.
fn reject_unauthenticated(state: &SandboxState, req: &HttpRequest) -> Option<HttpResponse> {
    if state.is_authorized(req.headers()) {
        None
    } else {
        state.record_unauthorized();
        Some(unauthorized())
    }
}

/// V1's fault replies: its envelope, whoever is meant to have answered.
const FAILURES: FailureReplies = FailureReplies {
    proxy: failure,
    own: failure,
};

/// Runs `work` under the next fault armed for `endpoint`, in V1's words.
async fn with_faults(
    state: &SandboxState,
    req: &HttpRequest,
    endpoint: Endpoint,
    work: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    run_with_fault(state.take_fault(endpoint), req, FAILURES, work).await
}

/// `POST /users/getToken`.
async fn get_token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::Token).await;
    let fields = match Fields::parse(&req, &body) {
        Ok(fields) => fields,
        Err(error) => return failure(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let credential = |name| fields.text(name).ok().flatten().unwrap_or_default();
    if !state.credentials_match(&credential("imp_key"), &credential("imp_secret")) {
        state.record_unauthorized();
        return unauthorized();
    }
    with_faults(state, &req, Endpoint::Token, || {
        let issued = state.issue_token();
        success(AuthAnnotation::new(&issued, state.clock.now()))
    })
    .await
}

/// `POST /payments/cancel`.
async fn cancel(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::Cancel).await;
    if let Some(reply) = reject_unauthenticated(state, &req) {
        return reply;
    }
    let fields = match Fields::parse(&req, &body) {
        Ok(fields) => fields,
        Err(error) => return failure(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let fault = state.take_fault(Endpoint::Cancel);
    if fault == Some(Fault::EchoAccount) {
        return refusal(&echoed_refusal(&fields));
    }
    run_with_fault(fault, &req, FAILURES, || {
        let outcome = cancel_target(&fields)
            .and_then(|target| state.cancel(&target, |payment| cancel_order(&fields, payment)));
        match outcome {
            Ok(payment) => success(PaymentAnnotation::new(&payment)),
            Err(error) => refusal(&error.to_string()),
        }
    })
    .await
}

/// A PG refusal that repeats the refund account it was sent, as some PGs'
/// free-text messages do (the client must mask it).
fn echoed_refusal(fields: &Fields) -> String {
    let field = |name| fields.text(name).ok().flatten().unwrap_or_default();
    format!(
        "[PG] refund to {} account {} of {} ({}) was refused by the bank",
        field("refund_bank"),
        field("refund_account"),
        field("refund_holder"),
        field("refund_tel"),
    )
}

fn text(fields: &Fields, name: &str) -> Result<Option<String>, CancelError> {
    fields
        .text(name)
        .map_err(|error| CancelError::InvalidField { field: error.0 })
}

fn cancel_target(fields: &Fields) -> Result<Target, CancelError> {
    Target::from_ids(text(fields, "imp_uid")?, text(fields, "merchant_uid")?)
}

/// Reads the cancel fields; amounts are parsed in the payment's currency.
fn cancel_order(fields: &Fields, payment: &Payment) -> Result<CancelOrder, CancelError> {
    let amount = |field: &'static str| amount_field(fields, field, payment.currency);
    Ok(CancelOrder {
        amount: amount("amount")?,
        checksum: amount("checksum")?,
        tax_free: amount("tax_free")?,
        vat_amount: amount("vat_amount")?,
        reason: text(fields, "reason")?,
        refund_account: RefundAccount {
            holder: text(fields, "refund_holder")?,
            bank: text(fields, "refund_bank")?,
            account: text(fields, "refund_account")?,
        },
        require_refund_account: true,
        ..CancelOrder::default()
    })
}

fn amount_field(
    fields: &Fields,
    field: &'static str,
    currency: Currency,
) -> Result<Option<i64>, CancelError> {
    text(fields, field)?
        .map(|value| parse_amount(&value, currency))
        .transpose()
        .map_err(|source| CancelError::InvalidAmount { field, source })
}

/// `GET /payments/{imp_uid}`.
async fn get_payment(
    req: HttpRequest,
    imp_uid: web::Path<String>,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::GetPayment).await;
    if let Some(reply) = reject_unauthenticated(state, &req) {
        return reply;
    }
    with_faults(state, &req, Endpoint::GetPayment, || {
        payment_reply(state.payment(&imp_uid))
    })
    .await
}

/// `GET /payments/find/{merchant_uid}[/{payment_status}]`. The `sorting`
/// query is accepted and has no effect: merchant_uid is unique here.
async fn find_payment(req: HttpRequest, state: web::Data<SandboxState>) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::FindPayment).await;
    if let Some(reply) = reject_unauthenticated(state, &req) {
        return reply;
    }
    let merchant_uid = req.match_info().get("merchant_uid").unwrap_or_default();
    let status = match req
        .match_info()
        .get("payment_status")
        .map(str::parse::<PaymentStatus>)
    {
        None => None,
        Some(Ok(status)) => Some(status),
        Some(Err(error)) => return failure(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    with_faults(state, &req, Endpoint::FindPayment, || {
        payment_reply(state.find_payment(merchant_uid, status))
    })
    .await
}

fn payment_reply(payment: Option<Payment>) -> HttpResponse {
    match payment {
        Some(payment) => success(PaymentAnnotation::new(&payment)),
        None => failure(StatusCode::NOT_FOUND, "no such payment"),
    }
}
