//! The route handlers: authorize, delegate to [`RefundService`], answer.
//!
//! They stay thin on purpose: every money decision lives in `refund-core`,
//! so the HTTP layer only maps requests in and outcomes out. Spans carry
//! payment and refund ids, never bodies, tokens or account numbers; ids
//! from the client are recorded with `Debug` so a newline in one cannot
//! forge a log line.
//!
//! [`RefundService`]: refund_core::RefundService

use std::sync::Arc;

use actix_web::http::header::HeaderName;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use refund_core::{
    CancelOutcome, CancelRequest, RefundCursor, RefundFilter, RefundStatus, RefundView,
    ReviewRequest, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
use serde::{Deserialize, Serialize};

use crate::authorize::Action;
use crate::body::JsonBody;
use crate::error::ApiError;
#[allow(unused_imports)] // Named by the utoipa annotations.
use crate::openapi::{
    CancelBody, ErrorDoc, PaymentViewDoc, PendingDoc, RefundListDoc, ReviewBody, WebhookAnswerDoc,
    WebhookNoticeDoc,
};
use crate::scope::ScopeState;
use crate::webhook::gate::Found;

type Answer = Result<HttpResponse, ApiError>;

/// The optional header that makes a cancel safe to retry.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `POST {prefix}/cancel`: 200 with the payment view when refunded, 202
/// `refund_pending` when the gateway's answer is unknown.
///
/// The caller is authorized before the body is read: an unauthenticated
/// request gets 401 whatever its body, and an anonymous client learns
/// nothing from our body checks. The body is read afterwards (same
/// `JsonConfig`: content type, size, syntax) and the order asked about.
///
/// Every answer is counted in `refund_cancel_requests_total{code}`.
#[utoipa::path(
    post,
    path = "/cancel",
    tag = "refunds",
    request_body(content = CancelBody, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header,
         description = "Makes the cancel safe to retry: the same key and body answer the stored outcome; the same key with another body is 409 `idempotency_key_reused`")
    ),
    responses(
        (status = 200, description = "Refunded: the payment view, with `refund`", body = PaymentViewDoc),
        (status = 202, description = "`refund_pending`: the gateway's answer is not known yet (or the cancel is asynchronous); it will be reconciled", body = PendingDoc),
        (status = 400, description = "`invalid_request` (malformed JSON, wrong types, unknown fields, a bad amount, over-long fields), `refund_account_required` (a virtual-account payment without holder, bank and account)", body = ErrorDoc),
        (status = 401, description = "`unauthorized`: the authorizer did not recognise the caller", body = ErrorDoc),
        (status = 403, description = "`forbidden`: the authorizer refused the caller", body = ErrorDoc),
        (status = 404, description = "`payment_not_found`: unknown `merchant_uid`", body = ErrorDoc),
        (status = 409, description = "`already_refunded`, `amount_exceeds_cancelable` (no gateway call was made), `refund_in_progress` (another refund is pending, or the payment is held for review), `idempotency_key_reused`, `payment_out_of_sync` (the balance check failed; the payment was re-synced, retry)", body = ErrorDoc),
        (status = 413, description = "`payload_too_large`", body = ErrorDoc),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorDoc),
        (status = 422, description = "`not_refundable`: not paid, or a phone payment refunded in a later month (KST) than it was paid", body = ErrorDoc),
        (status = 502, description = "`gateway_rejected` (the gateway refused; `gateway_message` says why), `gateway_error` (unreachable, or answered without applying the refund; nothing happened)", body = ErrorDoc),
        (status = 500, description = "`internal_error`: a bug; its cause is logged", body = ErrorDoc),
        (status = 503, description = "`storage_unavailable`: the database is down or read-only; no gateway call was made", body = ErrorDoc),
    )
)]
#[tracing::instrument(skip_all, fields(merchant_uid, refund_id))]
pub(crate) async fn cancel(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let answer = cancel_inner(req, state, payload).await;
    let code = match &answer {
        Ok(response) if response.status() == StatusCode::ACCEPTED => "refund_pending",
        Ok(_) => "ok",
        Err(error) => error
            .as_error::<ApiError>()
            .map_or("internal_error", ApiError::code),
    };
    refund_core::metrics::cancel_answered(code);
    answer
}

async fn cancel_inner(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    // The attempt's actor is the same caller; the order-specific answer
    // below names who acts.
    state.authorize(&req, Action::CancelAttempt).await?;
    // Already our JSON error answer (400, 413, 415) when it fails.
    let request = JsonBody::<CancelRequest>::from_request(&req, &mut payload.into_inner())
        .await?
        .0;
    let span = tracing::Span::current();
    span.record("merchant_uid", tracing::field::debug(&request.merchant_uid));
    let action = Action::Cancel {
        merchant_uid: &request.merchant_uid,
    };
    let actor = state.authorize(&req, action).await?;
    // Invalid bytes become U+FFFD, which the core's key check refuses.
    let key = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    match state
        .service
        .cancel(&actor, request, key.as_deref())
        .await
        .map_err(ApiError::from)?
    {
        CancelOutcome::Refunded(view) => {
            if let Some(refund) = &view.refund {
                span.record("refund_id", tracing::field::display(&refund.id));
            }
            Ok(HttpResponse::Ok().json(view))
        }
        CancelOutcome::Pending(refund) => {
            span.record("refund_id", tracing::field::display(&refund.id));
            Ok(HttpResponse::Accepted().json(PendingAnswer {
                code: "refund_pending",
                message: "the gateway's answer is not known yet; the refund will be reconciled",
                refund,
            }))
        }
    }
}

/// The 202 body of a refund whose outcome is not known yet.
#[derive(Serialize)]
struct PendingAnswer {
    code: &'static str,
    message: &'static str,
    refund: RefundView,
}

/// `GET {prefix}/{merchant_uid}`: the payment view from the store.
#[utoipa::path(
    get,
    path = "/{merchant_uid}",
    tag = "refunds",
    params(("merchant_uid" = String, Path, description = "The merchant's order id")),
    responses(
        (status = 200, description = "The payment view, with `pending_refunds`", body = PaymentViewDoc),
        (status = 400, description = "`invalid_request`: an order id no payment can have", body = ErrorDoc),
        (status = 401, description = "`unauthorized`: the authorizer did not recognise the caller", body = ErrorDoc),
        (status = 403, description = "`forbidden`: the authorizer refused the caller", body = ErrorDoc),
        (status = 404, description = "`payment_not_found`", body = ErrorDoc),
        (status = 500, description = "`internal_error`: a bug; its cause is logged", body = ErrorDoc),
        (status = 503, description = "`storage_unavailable`: the database is down or read-only; no gateway call was made", body = ErrorDoc),
    )
)]
#[tracing::instrument(skip_all, fields(merchant_uid = ?path.as_str()))]
pub(crate) async fn view(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    path: web::Path<String>,
) -> Answer {
    let merchant_uid = path.into_inner();
    state
        .authorize(
            &req,
            Action::View {
                merchant_uid: &merchant_uid,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(state.service.view(&merchant_uid).await?))
}

/// `POST {prefix}/{merchant_uid}/sync`: reconcile with the gateway, then the view.
#[utoipa::path(
    post,
    path = "/{merchant_uid}/sync",
    tag = "refunds",
    params(("merchant_uid" = String, Path, description = "The merchant's order id")),
    responses(
        (status = 200, description = "Reconciled with the gateway: the payment view", body = PaymentViewDoc),
        (status = 400, description = "`invalid_request`: an order id no payment can have", body = ErrorDoc),
        (status = 401, description = "`unauthorized`: the authorizer did not recognise the caller", body = ErrorDoc),
        (status = 403, description = "`forbidden`: the authorizer refused the caller", body = ErrorDoc),
        (status = 404, description = "`payment_not_found`: neither we nor the gateway know the order", body = ErrorDoc),
        (status = 502, description = "`gateway_error`: the gateway could not be asked", body = ErrorDoc),
        (status = 500, description = "`internal_error`: a bug; its cause is logged", body = ErrorDoc),
        (status = 503, description = "`storage_unavailable`: the database is down or read-only; no gateway call was made", body = ErrorDoc),
    )
)]
#[tracing::instrument(skip_all, fields(merchant_uid = ?path.as_str()))]
pub(crate) async fn sync(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    path: web::Path<String>,
) -> Answer {
    let merchant_uid = path.into_inner();
    state
        .authorize(
            &req,
            Action::Sync {
                merchant_uid: &merchant_uid,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(state.service.sync(&merchant_uid).await?))
}

/// The query of `GET {prefix}/refunds`, as sent (checked by [`list_query`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    merchant_uid: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// What a listing asks for, checked. Empty parameters count as absent (a
/// form's blank field). Messages never repeat what was sent.
fn list_query(query: &str) -> Result<(RefundFilter, u32, Option<RefundCursor>), ApiError> {
    let query = web::Query::<ListQuery>::from_query(query)
        .map_err(|_| {
            ApiError::invalid_request(
                "the query takes status, merchant_uid, limit and cursor, each at most once",
            )
        })?
        .into_inner();
    let given = |v: Option<String>| v.filter(|v| !v.is_empty());
    let status = given(query.status)
        .map(|s| {
            RefundStatus::parse(&s).ok_or_else(|| {
                ApiError::invalid_request(
                    "status must be pending, succeeded, failed or needs_review",
                )
            })
        })
        .transpose()?;
    let limit = match given(query.limit) {
        None => DEFAULT_LIST_LIMIT,
        Some(limit) => limit
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIST_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIST_LIMIT}"
                ))
            })?,
    };
    let cursor = given(query.cursor)
        .map(|c| c.parse::<RefundCursor>())
        .transpose()
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let filter = RefundFilter {
        status,
        merchant_uid: given(query.merchant_uid),
    };
    Ok((filter, limit, cursor))
}

/// `GET {prefix}/refunds`: refund records across payments, newest first.
#[utoipa::path(
    get,
    path = "/refunds",
    tag = "operators",
    params(
        ("status" = Option<String>, Query, description = "Only refunds in this state: `pending`, `succeeded`, `failed` or `needs_review`"),
        ("merchant_uid" = Option<String>, Query, description = "Only refunds of this order (matched exactly)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Records per page, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of refund records, newest first; `next_cursor` is null on the last page", body = RefundListDoc),
        (status = 400, description = "`invalid_request`: an unknown status or query parameter, a limit outside 1 to 200, a cursor this API did not give out, a malformed order id", body = ErrorDoc),
        (status = 401, description = "`unauthorized`: the authorizer did not recognise the caller", body = ErrorDoc),
        (status = 403, description = "`forbidden`: the authorizer refused the caller", body = ErrorDoc),
        (status = 500, description = "`internal_error`: a bug; its cause is logged", body = ErrorDoc),
        (status = 503, description = "`storage_unavailable`: the database is down", body = ErrorDoc),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_refunds(req: HttpRequest, state: web::Data<ScopeState>) -> Answer {
    // Who may list is decided before the query is looked at.
    state.authorize(&req, Action::List).await?;
    let (filter, limit, cursor) = list_query(req.query_string())?;
    let list = state
        .service
        .list_refunds(&filter, limit, cursor.as_ref())
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// `POST {prefix}/{merchant_uid}/review` `{note}`: resolve a held payment's
/// review, then the view.
#[utoipa::path(
    post,
    path = "/{merchant_uid}/review",
    tag = "operators",
    params(("merchant_uid" = String, Path, description = "The merchant's order id")),
    request_body(content = ReviewBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Resolved: the gateway's numbers applied, the resolution recorded on the held refund, the hold lifted; the payment view", body = PaymentViewDoc),
        (status = 400, description = "`invalid_request`: no note, a note over 500 characters or with control characters, an unknown field, malformed JSON, an order id no payment can have", body = ErrorDoc),
        (status = 401, description = "`unauthorized`: the authorizer did not recognise the caller", body = ErrorDoc),
        (status = 403, description = "`forbidden`: the authorizer refused the caller", body = ErrorDoc),
        (status = 404, description = "`payment_not_found`", body = ErrorDoc),
        (status = 409, description = "`not_on_hold`: the payment is not held for review; `refund_in_progress`: a refund of it is pending, or the gateway shows a cancellation in progress; `payment_out_of_sync`: its open reviews changed while this resolution ran (resolved by someone else, or another refund needs review now): nothing was recorded, look at the payment again", body = ErrorDoc),
        (status = 413, description = "`payload_too_large`", body = ErrorDoc),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorDoc),
        (status = 502, description = "`gateway_error`: the gateway could not be asked; nothing changed", body = ErrorDoc),
        (status = 500, description = "`internal_error`: a bug; its cause is logged", body = ErrorDoc),
        (status = 503, description = "`storage_unavailable`: the database is down or read-only", body = ErrorDoc),
    )
)]
#[tracing::instrument(skip_all, fields(merchant_uid = ?path.as_str()))]
pub(crate) async fn review(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let merchant_uid = path.into_inner();
    let actor = state
        .authorize(
            &req,
            Action::Review {
                merchant_uid: &merchant_uid,
            },
        )
        .await?;
    // Read only once the caller is allowed (as for a cancel).
    let body = JsonBody::<ReviewRequest>::from_request(&req, &mut payload.into_inner())
        .await?
        .0;
    let view = state
        .service
        .review(&merchant_uid, &actor, &body.note)
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(view))
}

/// An i'mport webhook. Only `imp_uid` is used, and only to re-read the
/// payment from the gateway: the claimed status is logged, never trusted.
#[derive(Deserialize)]
pub(crate) struct WebhookNotice {
    imp_uid: String,
    merchant_uid: Option<String>,
    status: Option<String>,
}

/// `POST {prefix}/webhook` with a JSON body (and, in the document, its
/// form-urlencoded twin [`webhook_form`]): public.
#[utoipa::path(
    post,
    path = "/webhook",
    tag = "refunds",
    request_body(content(
        (WebhookNoticeDoc = "application/json"),
        (WebhookNoticeDoc = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Received (the same answer whether or not the gateway knows the payment; on PortOne V2 also for notice types other than `Transaction.*`, which are ignored)", body = WebhookAnswerDoc),
        (status = 400, description = "`invalid_request`: no `imp_uid` (V1) or `data.paymentId` (V2), or not a notice", body = ErrorDoc),
        (status = 401, description = "`invalid_signature`: PortOne V2 with a webhook secret configured, and the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`) or its timestamp (within 5 minutes) does not verify; no gateway call was made", body = ErrorDoc),
        (status = 403, description = "`forbidden`: the source is outside the webhook allowlist", body = ErrorDoc),
        (status = 413, description = "`payload_too_large`", body = ErrorDoc),
        (status = 415, description = "`unsupported_media_type`: neither JSON nor form-urlencoded (V1), not JSON (V2)", body = ErrorDoc),
        (status = 502, description = "`gateway_error`: the payment could not be fetched", body = ErrorDoc),
        (status = 500, description = "`internal_error`: a bug; its cause is logged", body = ErrorDoc),
        (status = 503, description = "`storage_unavailable` (the database is down or read-only; no gateway call was made) or `overloaded` (too many notices were being looked up to look this one up in time: send it again later)", body = ErrorDoc),
    )
)]
pub(crate) async fn webhook_json(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    body: JsonBody<WebhookNotice>,
) -> Answer {
    webhook(&req, &state, body.0).await
}

/// `POST {prefix}/webhook` with a form-urlencoded body.
pub(crate) async fn webhook_form(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    body: web::Form<WebhookNotice>,
) -> Answer {
    webhook(&req, &state, body.into_inner()).await
}

/// Re-reads the payment from the gateway and stores it. Repeats are
/// harmless; a notice for a payment the gateway does not know (a forgery,
/// or the console's test call) is acknowledged and ignored.
#[tracing::instrument(
    skip_all,
    fields(imp_uid = ?notice.imp_uid, merchant_uid = ?notice.merchant_uid, claimed_status = ?notice.status)
)]
async fn webhook(req: &HttpRequest, state: &ScopeState, notice: WebhookNotice) -> Answer {
    let answer = webhook_inner(req, state, notice).await;
    let outcome = answer.as_ref().map_or_else(ApiError::code, |_| "ok");
    refund_core::metrics::webhook_handled(state.service.gateway_kind().as_str(), outcome);
    answer
}

async fn webhook_inner(req: &HttpRequest, state: &ScopeState, notice: WebhookNotice) -> Answer {
    state.check_webhook_source(req)?;
    // Bounded: notices for one payment share lookups, ids the gateway did
    // not know are remembered, and lookups run a limited number at once.
    // `refresh` refuses a malformed id before any call (and such ids are
    // never remembered, so the memory holds only well-formed ones).
    let service = Arc::clone(&state.service);
    let imp_uid = notice.imp_uid;
    state
        .webhook_gate
        .notice(&imp_uid, || {
            let service = Arc::clone(&service);
            let imp_uid = imp_uid.clone();
            async move {
                match service.refresh(&imp_uid).await {
                    Ok(Some(_)) => Ok(Found::Known),
                    Ok(None) => Ok(Found::Unknown),
                    Err(error) => Err(ApiError::from(error)),
                }
            }
        })
        .await?;
    // The same answer either way: a public route must not tell callers
    // which imp_uids belong to this merchant.
    Ok(HttpResponse::Ok().json(WebhookAnswer {
        code: "ok",
        message: "notice received",
    }))
}

#[derive(Serialize)]
struct WebhookAnswer {
    code: &'static str,
    message: &'static str,
}
