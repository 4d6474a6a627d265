//! The simulated PortOne V2 endpoints.
//!
//! Same steps as V1 (latency, counting, authentication, faults), V2's wire:
//! JSON bodies only, integer minor-unit amounts, typed `{type, message}`
//! errors with the schema's HTTP statuses. Unknown body fields are ignored.

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::call::{arrive, run_with_fault, FailureReplies};
use crate::bank::is_bank;
use crate::config::Api;
use crate::faults::{Endpoint, Fault};
use crate::ledger::{CancelError, CancelOrder, RefundAccount, Target};
use crate::portone_wire::{
    cancel_error, cancellation, forbidden_store, invalid_request, payment, payment_not_found,
    pg_provider, unauthorized,
};
use crate::state::SandboxState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login/api-secret", web::post().to(login))
        .route("/token/refresh", web::post().to(refresh))
        .route("/payments/{payment_id}/cancel", web::post().to(cancel))
        .route("/payments/{payment_id}", web::get().to(get_payment));
}

/// A fault's stand-in reply: plain text, as a proxy in front of the API
/// would answer (not a typed V2 error).
pub(crate) fn failure(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::plaintext())
        .body(message.to_owned())
}

/// PortOne's own answer to a fault's 5xx: a typed error, as PortOne words
/// an internal failure (the V2 client takes it as PortOne's answer, not a
/// proxy's).
fn own_failure(status: StatusCode, message: &str) -> HttpResponse {
    crate::portone_wire::error(status, "INTERNAL_SERVER_ERROR", message)
}

/// V2's fault replies: plain text for what a proxy would answer, a typed
/// error for what PortOne itself answers.
const FAILURES: FailureReplies = FailureReplies {
    proxy: failure,
    own: own_failure,
};

/// Parses a JSON body into `T`. The error names the field that is wrong,
/// never its value (it may be an account number).
fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> Result<T, String> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        // serde's own text is safe to repeat only for a missing field: its
        // type errors quote the offending value.
        let inner = error.inner().to_string();
        if error.inner().is_syntax() || error.inner().is_eof() {
            "the body is not valid JSON".to_owned()
        } else if let Some(field) = inner.strip_prefix("missing field ") {
            let field = field.split(" at line").next().unwrap_or(field);
            match path.as_str() {
                "." => format!("{field} is required"),
                _ => format!("{path}.{} is required", field.trim_matches('`')),
            }
        } else if path == "." {
            format!("the body is not a {shape} object")
        } else {
            format!("{path} is missing or has the wrong type for {shape}")
        }
    })
}

/// The 401 answer, unless the call carries the API secret or a live token.
fn reject_unauthenticated(state: &SandboxState, req: &HttpRequest) -> Option<HttpResponse> {
    if state.portone_authorized(req.headers()) {
        None
    } else {
        state.record_unauthorized();
        Some(unauthorized(
            "the Authorization header must carry `PortOne <API secret>` or `Bearer <live access token>`",
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginBody {
    api_secret: String,
}

/// `POST /login/api-secret {apiSecret}` -> `{accessToken, refreshToken}`.
async fn login(req: HttpRequest, body: web::Bytes, state: web::Data<SandboxState>) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::Token).await;
    let login: LoginBody = match json_body(&body, "LoginViaApiSecretBody") {
        Ok(login) => login,
        Err(message) => return invalid_request(&message),
    };
    if !state.api_secret_matches(&login.api_secret) {
        state.record_unauthorized();
        return unauthorized("the API secret is not valid");
    }
    run_with_fault(state.take_fault(Endpoint::Token), &req, FAILURES, || {
        tokens_reply(state.portone_login())
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

/// `POST /token/refresh {refreshToken}` -> `{accessToken, refreshToken}`.
async fn refresh(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::Token).await;
    let refresh: RefreshBody = match json_body(&body, "RefreshTokenBody") {
        Ok(refresh) => refresh,
        Err(message) => return invalid_request(&message),
    };
    run_with_fault(
        state.take_fault(Endpoint::Token),
        &req,
        FAILURES,
        || match state.portone_refresh(&refresh.refresh_token) {
            Some(pair) => tokens_reply(pair),
            None => {
                state.record_unauthorized();
                unauthorized("the refresh token is expired, superseded or unknown")
            }
        },
    )
    .await
}

fn tokens_reply(pair: crate::portone_auth::TokenPair) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoreQuery {
    store_id: Option<String>,
}

/// `GET /payments/{paymentId}[?storeId=]` -> the V2 `Payment`.
async fn get_payment(
    req: HttpRequest,
    payment_id: web::Path<String>,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::GetPayment).await;
    if let Some(reply) = reject_unauthenticated(state, &req) {
        return reply;
    }
    let query = match web::Query::<StoreQuery>::from_query(req.query_string()) {
        Ok(query) => query.into_inner(),
        Err(_) => return invalid_request("the query string is invalid"),
    };
    run_with_fault(
        state.take_fault(Endpoint::GetPayment),
        &req,
        FAILURES,
        || {
            if !state.store_matches(query.store_id.as_deref()) {
                return forbidden_store();
            }
            match state.find_payment(&payment_id, None) {
                Some(found) => HttpResponse::Ok().json(payment(&found, state.store())),
                None => payment_not_found(),
            }
        },
    )
    .await
}

/// `CancelPaymentBody`. Every field is optional to serde so that a missing
/// `reason` is answered like the other rule breaks, by [`decode_cancel`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelBody {
    store_id: Option<String>,
    amount: Option<i64>,
    tax_free_amount: Option<i64>,
    vat_amount: Option<i64>,
    reason: Option<String>,
    requester: Option<String>,
    promotion_discount_retain_option: Option<String>,
    current_cancellable_amount: Option<i64>,
    refund_account: Option<RefundAccountBody>,
}

/// `CancelPaymentBodyRefundAccount`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundAccountBody {
    bank: String,
    number: String,
    holder_name: String,
    holder_phone_number: Option<String>,
}

/// A cancel body that passed V2's input rules.
#[derive(Debug)]
struct V2Cancel {
    store_id: Option<String>,
    order: CancelOrder,
    phone: Option<String>,
}

/// V2's input rules for a cancel (all `INVALID_REQUEST`), before the
/// payment is looked at.
fn decode_cancel(body: &[u8]) -> Result<V2Cancel, CancelError> {
    let body: CancelBody =
        json_body(body, "CancelPaymentBody").map_err(CancelError::InvalidRequest)?;
    let invalid = |message: &str| Err(CancelError::InvalidRequest(message.to_owned()));
    if body.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return invalid("reason is required");
    }
    for (field, value) in [
        ("amount", body.amount),
        ("taxFreeAmount", body.tax_free_amount),
        ("vatAmount", body.vat_amount),
        ("currentCancellableAmount", body.current_cancellable_amount),
    ] {
        if value.is_some_and(|v| v < 0) {
            return invalid(&format!("{field} must not be negative"));
        }
    }
    if body
        .requester
        .as_deref()
        .is_some_and(|r| !["CUSTOMER", "ADMIN"].contains(&r))
    {
        return invalid("requester must be CUSTOMER or ADMIN");
    }
    if body
        .promotion_discount_retain_option
        .as_deref()
        .is_some_and(|o| !["RETAIN", "RELEASE"].contains(&o))
    {
        return invalid("promotionDiscountRetainOption must be RETAIN or RELEASE");
    }
    let (refund_account, phone) = match body.refund_account {
        None => (RefundAccount::default(), None),
        Some(account) => {
            if !is_bank(&account.bank) {
                return invalid("refundAccount.bank is not a value of the Bank enum");
            }
            if account.number.trim().is_empty() || account.holder_name.trim().is_empty() {
                return invalid(
                    "refundAccount.number and refundAccount.holderName must not be empty",
                );
            }
            (
                RefundAccount {
                    holder: Some(account.holder_name),
                    bank: Some(account.bank),
                    account: Some(account.number),
                },
                account.holder_phone_number,
            )
        }
    };
    Ok(V2Cancel {
        store_id: body.store_id,
        order: CancelOrder {
            api: Api::Portone,
            amount: body.amount,
            checksum: body.current_cancellable_amount,
            tax_free: body.tax_free_amount,
            vat_amount: body.vat_amount,
            reason: body.reason,
            refund_account,
            require_refund_account: true,
            ..CancelOrder::default()
        },
        phone,
    })
}

/// The PG's refusal for [`Fault::EchoAccount`]: its message repeats the
/// refund account it was sent.
fn echoed_refusal(cancel: &V2Cancel) -> HttpResponse {
    let account = &cancel.order.refund_account;
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    pg_provider(
        "SANDBOX_ACCOUNT_REFUSED",
        &format!(
            "refund to {} account {} of {} ({}) was refused by the bank",
            field(&account.bank),
            field(&account.account),
            field(&account.holder),
            field(&cancel.phone),
        ),
    )
}

/// `POST /payments/{paymentId}/cancel` with `CancelPaymentBody` ->
/// `{cancellation}`.
async fn cancel(
    req: HttpRequest,
    payment_id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    let state = state.get_ref();
    arrive(state, Endpoint::Cancel).await;
    if let Some(reply) = reject_unauthenticated(state, &req) {
        return reply;
    }
    if serde_json::from_slice::<Value>(&body).is_err() {
        return invalid_request("the body is not valid JSON");
    }
    let fault = state.take_fault(Endpoint::Cancel);
    run_with_fault(fault, &req, FAILURES, || {
        let mut cancel = match decode_cancel(&body) {
            Ok(cancel) => cancel,
            Err(error) => return cancel_error(&error),
        };
        if !state.store_matches(cancel.store_id.as_deref()) {
            return forbidden_store();
        }
        if fault == Some(Fault::EchoAccount) {
            return echoed_refusal(&cancel);
        }
        cancel.order.asynchronous = fault == Some(Fault::Requested);
        let target = Target::MerchantUid(payment_id.into_inner());
        match state.cancel(&target, |_| Ok(cancel.order)) {
            Ok(payment) => match payment.cancel_history.last() {
                Some(entry) => {
                    HttpResponse::Ok().json(json!({"cancellation": cancellation(entry)}))
                }
                None => failure(StatusCode::INTERNAL_SERVER_ERROR, "cancel left no record"),
            },
            Err(error) => cancel_error(&error),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: Value) -> Result<V2Cancel, CancelError> {
        decode_cancel(body.to_string().as_bytes())
    }

    #[test]
    fn input_rules_refuse_without_echoing_values() {
        let refused = |body: Value| match decode(body) {
            Err(CancelError::InvalidRequest(message)) => message,
            other => panic!("expected INVALID_REQUEST, got {other:?}"),
        };
        assert_eq!(refused(json!({"amount": 10})), "reason is required");
        assert_eq!(refused(json!({"reason": "  "})), "reason is required");
        assert!(refused(json!({"reason": "r", "amount": 10.5})).starts_with("amount "));
        assert!(refused(json!({"reason": "r", "amount": -1})).contains("negative"));
        let message = refused(json!({"reason": "r", "refundAccount": {
            "bank": "088", "number": "1234567890", "holderName": "Hong"}}));
        assert!(message.contains("Bank") && !message.contains("1234567890"));
        let message = refused(json!({"reason": "r", "refundAccount": {
            "bank": "SHINHAN", "number": 1234567890, "holderName": "Hong"}}));
        assert!(message.contains("refundAccount.number") && !message.contains("1234567890"));
        assert!(refused(json!({"reason": "r", "requester": "ROBOT"})).contains("requester"));
        assert_eq!(
            refused(json!({"reason": "r", "refundAccount": {"bank": "SHINHAN", "number": "1"}})),
            "refundAccount.holderName is required"
        );
    }

    #[test]
    fn a_valid_body_becomes_a_v2_order_and_unknown_fields_are_ignored() {
        let cancel = decode(json!({
            "reason": "customer asked", "amount": 300, "currentCancellableAmount": 1000,
            "taxFreeAmount": 0, "storeId": "store-1", "somethingNew": {"x": 1},
            "refundAccount": {"bank": "SHINHAN", "number": "110-1", "holderName": "Hong",
                              "holderPhoneNumber": "01012345678"},
        }))
        .unwrap();
        assert_eq!(cancel.store_id.as_deref(), Some("store-1"));
        assert_eq!(cancel.order.api, Api::Portone);
        assert_eq!(
            (cancel.order.amount, cancel.order.checksum),
            (Some(300), Some(1000))
        );
        assert_eq!(cancel.order.refund_account.bank.as_deref(), Some("SHINHAN"));
        assert_eq!(cancel.phone.as_deref(), Some("01012345678"));
    }
}
