//! `POST {prefix}/webhook` on PortOne V2: Standard Webhooks notices.
//!
//! JSON only (V2's current webhook version sends nothing else). With a
//! webhook secret configured, the signature is checked over the raw body
//! before anything parses it: a notice that does not verify gets 401
//! `invalid_signature` and causes no gateway call. A verified notice is
//! still only a cue: its payment is fetched from PortOne and upserted (the
//! same path as V1 webhooks and the sync route), so redeliveries are
//! harmless. Without a secret, every notice is such a cue.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest, HttpResponse};
use refund_core::{GatewayKind, PaymentRef};
use serde::Deserialize;

use super::standard::{self, SignedHeaders};
use crate::error::ApiError;
use crate::scope::ScopeState;
use crate::webhook::gate::Found;

/// A V2 notice: `{type, timestamp, data: {paymentId, storeId,
/// transactionId, cancellationId?}}`; only `type` and `paymentId` are
/// read, unknown fields are ignored.
#[derive(Deserialize)]
struct Notice {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<NoticeData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NoticeData {
    #[serde(default)]
    payment_id: Option<String>,
}

/// The route handler; every answer is counted in
/// `refund_webhooks_total{gateway="portone",outcome}`.
#[tracing::instrument(skip_all, fields(webhook_id))]
pub(crate) async fn webhook(
    req: HttpRequest,
    state: web::Data<ScopeState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let answer = handle(&req, &state, payload).await;
    let outcome = answer.as_ref().map_or_else(ApiError::code, |_| "ok");
    refund_core::metrics::webhook_handled(GatewayKind::Portone.as_str(), outcome);
    answer
}

async fn handle(
    req: &HttpRequest,
    state: &ScopeState,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.check_webhook_source(req)?;
    if !is_json(req.headers()) {
        return Err(ApiError::unsupported_media_type("JSON (application/json)"));
    }
    let body = match payload.to_bytes_limited(state.body_limit).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(ApiError::invalid_request("the body could not be read")),
        Err(_) => return Err(ApiError::payload_too_large(state.body_limit)),
    };
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(id) = text("webhook-id") {
        tracing::Span::current().record("webhook_id", tracing::field::debug(id));
    }
    if let Some(secret) = &state.portone_webhook_secret {
        let signed = SignedHeaders {
            id: text("webhook-id"),
            timestamp: text("webhook-timestamp"),
            signature: text("webhook-signature"),
        };
        let now_s = refund_core::now_ms() / 1000;
        if let Err(why) = standard::verify(secret, signed, &body, now_s) {
            tracing::info!(?why, "webhook refused: its signature does not verify");
            return Err(ApiError::invalid_signature());
        }
    }
    let notice: Notice = serde_json::from_slice(&body)
        .map_err(|_| ApiError::invalid_request("the body is not a PortOne V2 webhook notice"))?;
    if !notice.kind.starts_with("Transaction.") {
        // PortOne adds types without notice: acknowledged, ignored.
        tracing::debug!(kind = ?notice.kind, "webhook of a type we do not handle ignored");
        return Ok(received());
    }
    let data = notice.data.unwrap_or(NoticeData { payment_id: None });
    let Some(payment_id) = data.payment_id.filter(|id| !id.is_empty()) else {
        return Err(ApiError::invalid_request("data.paymentId is required"));
    };
    tracing::debug!(kind = ?notice.kind, payment_id = ?payment_id, "PortOne webhook");
    // Bounded like V1's notices (see `webhook::gate`): notices for one
    // payment share lookups, ids PortOne did not know are remembered, and
    // lookups run a limited number at once. Keyed by the payment id alone, and looked up by it alone: that is
    // what PortOne is asked, so a made-up (or malformed) transactionId can
    // neither buy another lookup nor spoil the one other notices share.
    let service = Arc::clone(&state.service);
    state
        .webhook_gate
        .notice(&payment_id, || {
            let service = Arc::clone(&service);
            let payment_id = payment_id.clone();
            async move {
                let at = PaymentRef {
                    imp_uid: "",
                    merchant_uid: &payment_id,
                };
                match service.refresh_payment(at).await {
                    Ok(Some(_)) => Ok(Found::Known),
                    Ok(None) => Ok(Found::Unknown),
                    Err(error) => Err(ApiError::from(error)),
                }
            }
        })
        .await?;
    // The same answer whether or not PortOne knows the payment.
    Ok(received())
}

fn received() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"code": "ok", "message": "notice received"}))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<actix_web::mime::Mime>().ok())
        .is_some_and(|mime| mime.essence_str() == actix_web::mime::APPLICATION_JSON.essence_str())
}
