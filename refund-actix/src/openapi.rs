//! `GET {prefix}/openapi.json`: the scope's OpenAPI 3 document, generated
//! by [utoipa](https://docs.rs/utoipa) from the route handlers'
//! annotations and the schemas below (public, like the webhook).
//!
//! The schemas describe the JSON the routes read and write. The cancel
//! body's is checked against the real deserializer, and the answers'
//! against real answers, by this module's tests; the routes the scope
//! registers (`scope::routes`) are checked to be documented, each with
//! its method.

#![allow(dead_code)] // The schema types are only ever read by utoipa.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::routes;
use crate::scope::ScopeState;

/// The body of `POST {prefix}/cancel`: the seed guide's request. Any other
/// field is refused with 400 `invalid_request` naming it.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(as = CancelRequest)]
pub(crate) struct CancelBody {
    /// The merchant's order id.
    merchant_uid: String,
    /// Amount to refund in the currency's major unit (`1000` won, `12.5`
    /// dollars), a JSON number or a decimal string; > 0 and exact for the
    /// currency. Absent: the whole remaining balance.
    #[schema(value_type = Option<f64>)]
    cancel_request_amount: Option<serde_json::Value>,
    /// Why (at most 256 characters); sent to the gateway.
    reason: Option<String>,
    /// Refund account holder (virtual-account payments; at most 16 characters).
    refund_holder: Option<String>,
    /// Refund bank code (virtual-account payments; at most 4 characters).
    refund_bank: Option<String>,
    /// Refund account number (virtual-account payments; at most 16 characters).
    refund_account: Option<String>,
    /// Refund account holder's phone.
    refund_tel: Option<String>,
    /// Tax-free part of the amount, in the major unit.
    #[schema(value_type = Option<f64>)]
    tax_free: Option<serde_json::Value>,
    /// VAT part of the amount, in the major unit.
    #[schema(value_type = Option<f64>)]
    vat_amount: Option<serde_json::Value>,
}

/// A payment: amounts in the currency's major unit, written exactly.
#[derive(ToSchema)]
#[schema(as = PaymentView)]
pub(crate) struct PaymentViewDoc {
    /// The merchant's order id.
    merchant_uid: String,
    /// The gateway's payment id.
    imp_uid: String,
    /// Amount paid.
    amount: f64,
    /// Refunded so far.
    cancel_amount: f64,
    /// Still refundable.
    cancelable_amount: f64,
    /// ISO 4217 code (`KRW`, `USD`, ...).
    currency: String,
    /// `ready`, `paid` (also when partly refunded), `cancelled`, `failed`.
    status: String,
    /// The gateway's payment method code (`card`, `vbank`, `phone`, ...).
    pay_method: String,
    /// Every cancellation, oldest first.
    cancel_history: Vec<CancelEntryDoc>,
    /// The refund this answer is about (on `POST /cancel` only).
    #[schema(nullable = false)]
    refund: Option<RefundDoc>,
    /// Refunds whose outcome is not known yet.
    pending_refunds: Vec<RefundDoc>,
    /// True while the payment is held for review: it takes no refund
    /// (409 `refund_in_progress`) until an operator resolves the review.
    on_hold: bool,
    /// What the held refund's review says did not add up; null when not held.
    hold_reason: Option<String>,
    /// The gateway API: `iamport` (V1) or `portone` (V2).
    gateway: String,
    /// The payment's refund journal, newest first (up to 50 records).
    refunds: Vec<RefundRecordDoc>,
}

/// The body of `POST {prefix}/{merchant_uid}/review`. Any other field is
/// refused with 400 `invalid_request`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(as = ReviewRequest)]
pub(crate) struct ReviewBody {
    /// What the operator found or did: 1 to 500 characters (line breaks
    /// allowed, no other control characters).
    #[schema(min_length = 1, max_length = 500)]
    note: String,
}

/// A refund record of the journal. Never carries the idempotency key or
/// the refund account.
#[derive(ToSchema)]
#[schema(as = RefundRecord)]
pub(crate) struct RefundRecordDoc {
    /// The refund's id.
    id: String,
    /// The payment's order id.
    merchant_uid: String,
    /// The gateway's payment id.
    imp_uid: String,
    /// Amount, in the currency's major unit.
    amount: f64,
    /// ISO 4217 code.
    currency: String,
    /// `pending`, `succeeded`, `failed` or `needs_review`.
    status: String,
    /// How it failed (`failed` only), else null.
    failure: Option<FailureDoc>,
    /// Its review (`needs_review` only), else null.
    review: Option<ReviewDoc>,
    /// The reason sent to the gateway.
    reason: Option<String>,
    /// Who asked for it (the authorizer's actor); null for refunds
    /// journaled before actors were recorded.
    requested_by: Option<String>,
    /// When it began (RFC 3339, UTC).
    created_at: String,
    /// Its last change (RFC 3339, UTC).
    updated_at: String,
}

/// How a refund failed.
#[derive(ToSchema)]
#[schema(as = RefundFailure)]
pub(crate) struct FailureDoc {
    /// `rejected` (the gateway refused), `not_sent` (it never reached the
    /// gateway) or `not_applied` (the gateway answered without applying it).
    kind: String,
    /// The gateway's code, when it gave one.
    code: Option<String>,
    /// The gateway's message (masked) or ours.
    message: String,
}

/// A refund's review: what did not add up, and the operator's resolution.
#[derive(ToSchema)]
#[schema(as = RefundReview)]
pub(crate) struct ReviewDoc {
    /// What did not add up.
    message: String,
    /// Who resolved it; null while open.
    resolved_by: Option<String>,
    /// When it was resolved (RFC 3339, UTC); null while open.
    resolved_at: Option<String>,
    /// The operator's note; null while open.
    note: Option<String>,
}

/// One page of refund records.
#[derive(ToSchema)]
#[schema(as = RefundList)]
pub(crate) struct RefundListDoc {
    /// The records, newest first.
    refunds: Vec<RefundRecordDoc>,
    /// Pass it as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// One cancellation of the payment at the gateway.
#[derive(ToSchema)]
#[schema(as = CancelEntry)]
pub(crate) struct CancelEntryDoc {
    /// The refund this cancellation is credited to; `null` for one made
    /// outside this service (the gateway's console) or not yet reconciled.
    refund_id: Option<String>,
    /// Amount cancelled.
    amount: f64,
    /// Reason given.
    reason: Option<String>,
    /// Unix seconds.
    cancelled_at: i64,
    /// The PG's cancellation id.
    pg_tid: Option<String>,
    /// Receipt.
    receipt_url: Option<String>,
}

/// A refund of the journal.
#[derive(ToSchema)]
#[schema(as = Refund)]
pub(crate) struct RefundDoc {
    /// The refund's id.
    id: String,
    /// Amount asked for.
    amount: f64,
    /// `pending`, `succeeded`, `failed` or `needs_review`.
    status: String,
}

/// 202: the gateway's answer is not known yet; the refund is reconciled later.
#[derive(ToSchema)]
#[schema(as = RefundPending)]
pub(crate) struct PendingDoc {
    /// Always `refund_pending`.
    code: String,
    /// What happens next.
    message: String,
    /// The pending refund.
    refund: RefundDoc,
}

/// 200 from the webhook: `{"code": "ok", "message": "notice received"}`.
#[derive(ToSchema)]
#[schema(as = WebhookAnswer)]
pub(crate) struct WebhookAnswerDoc {
    /// Always `ok`.
    code: String,
    /// Always `notice received`.
    message: String,
}

/// An i'mport V1 webhook notice (JSON or form-urlencoded). Only `imp_uid`
/// is used, and only to fetch the payment from the gateway.
#[derive(ToSchema)]
#[schema(as = WebhookNotice)]
pub(crate) struct WebhookNoticeDoc {
    /// The payment's gateway id.
    imp_uid: String,
    /// The order id (logged, not trusted).
    merchant_uid: Option<String>,
    /// The claimed status (logged, not trusted).
    status: Option<String>,
}

/// Every error answer.
#[derive(ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorDoc {
    /// The stable error code; each response lists the codes it may carry.
    code: ErrorCode,
    /// A human sentence; never repeats client values, tokens or account numbers.
    message: String,
    /// The gateway's (masked) message, with `gateway_rejected` only.
    #[schema(nullable = false)]
    gateway_message: Option<String>,
}

/// Every error code, by HTTP status: 400 `invalid_request`,
/// `refund_account_required`; 401 `unauthorized`; 403 `forbidden`; 404
/// `payment_not_found`, `not_found`; 405 `method_not_allowed`; 409
/// `already_refunded`, `amount_exceeds_cancelable`, `refund_in_progress`,
/// `idempotency_key_reused`, `payment_out_of_sync`, `not_on_hold`; 413
/// `payload_too_large`; 415 `unsupported_media_type`; 422
/// `not_refundable`; 500 `internal_error`; 502 `gateway_rejected`,
/// `gateway_error`; 503 `storage_unavailable`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    InvalidRequest,
    RefundAccountRequired,
    Unauthorized,
    Forbidden,
    PaymentNotFound,
    NotFound,
    MethodNotAllowed,
    AlreadyRefunded,
    AmountExceedsCancelable,
    RefundInProgress,
    IdempotencyKeyReused,
    PaymentOutOfSync,
    NotOnHold,
    PayloadTooLarge,
    UnsupportedMediaType,
    NotRefundable,
    InternalError,
    GatewayRejected,
    GatewayError,
    StorageUnavailable,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Refunds",
        description = "Safe i'mport refunds, mounted in the merchant's actix-web server. \
                       Routes other than the webhook and this document ask the merchant's \
                       authorizer first (a bearer token with `BearerTokenAuthorizer`): \
                       without it they answer 401 `unauthorized`, whatever the body. \
                       Bodies are JSON (`application/json`; the webhook also takes \
                       form-urlencoded); another content type is 415. Paths under the \
                       prefix that are not routes answer 404 `not_found`, a route with \
                       the wrong method 405 `method_not_allowed`, both in the error shape."
    ),
    paths(
        routes::cancel,
        routes::view,
        routes::sync,
        routes::list_refunds,
        routes::review,
        routes::webhook_json,
        openapi_json
    ),
    components(schemas(
        CancelBody,
        PaymentViewDoc,
        CancelEntryDoc,
        RefundDoc,
        PendingDoc,
        ReviewBody,
        RefundRecordDoc,
        FailureDoc,
        ReviewDoc,
        RefundListDoc,
        WebhookAnswerDoc,
        WebhookNoticeDoc,
        ErrorDoc,
        ErrorCode
    ))
)]
struct ApiDoc;

/// The document for a scope mounted at `prefix` (`""` or `/payments`, ...).
pub(crate) fn document(prefix: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("{prefix}{path}"), item))
        .collect();
    doc
}

/// `GET {prefix}/openapi.json`: this document. Public: it says nothing the
/// routes do not answer anyway.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "refunds",
    responses((status = 200, description = "This OpenAPI 3 document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json(state: web::Data<ScopeState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::document;
    use crate::scope::routes;

    fn json(prefix: &str) -> Value {
        serde_json::from_str(&document(prefix).to_json().unwrap()).unwrap()
    }

    #[test]
    fn every_registered_route_is_documented_and_nothing_else() {
        let doc = json("/payments");
        let mut documented = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with("/payments/"), "{path}");
            documented += item.as_object().unwrap().len();
        }
        let registered = routes();
        for route in &registered {
            let path = format!("/payments{}", route.path);
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &doc["paths"][&path][&method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no answer"
            );
        }
        assert_eq!(
            documented,
            registered.len(),
            "documented but not registered"
        );
    }

    #[test]
    fn the_cancel_body_is_the_real_one_and_refuses_unknown_fields() {
        let doc = json("");
        let schema = &doc["components"]["schemas"]["CancelRequest"];
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert_eq!(schema["required"], serde_json::json!(["merchant_uid"]));
        let properties = schema["properties"].as_object().unwrap();
        // Every documented field is one the real body reads...
        for name in properties.keys() {
            let mut body = serde_json::json!({"merchant_uid": "order-1"});
            if name != "merchant_uid" {
                body[name] = Value::Null;
            }
            serde_json::from_value::<refund_core::CancelRequest>(body)
                .unwrap_or_else(|error| panic!("{name} is documented but refused: {error}"));
        }
        // ... and, with every documented field given, nothing is missing:
        // a body of only those fields is the whole request.
        let all: serde_json::Map<String, Value> = properties
            .keys()
            .map(|name| (name.clone(), Value::Null))
            .chain([("merchant_uid".to_owned(), "order-1".into())])
            .collect();
        serde_json::from_value::<refund_core::CancelRequest>(Value::Object(all)).unwrap();
        let typo = serde_json::json!({"merchant_uid": "o", "cancel_request_ammount": 1});
        assert!(serde_json::from_value::<refund_core::CancelRequest>(typo).is_err());
    }

    #[test]
    fn the_review_body_is_the_real_one() {
        let doc = json("");
        let schema = &doc["components"]["schemas"]["ReviewRequest"];
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert_eq!(schema["required"], serde_json::json!(["note"]));
        assert_eq!(schema["properties"]["note"]["maxLength"], 500);
        let body = serde_json::json!({"note": "checked"});
        serde_json::from_value::<refund_core::ReviewRequest>(body).unwrap();
        let extra = serde_json::json!({"note": "checked", "lift": true});
        assert!(serde_json::from_value::<refund_core::ReviewRequest>(extra).is_err());
        let review = &doc["paths"]["/{merchant_uid}/review"]["post"]["responses"];
        assert!(review["409"]["description"]
            .as_str()
            .unwrap()
            .contains("`not_on_hold`"));
    }

    #[test]
    fn every_error_code_is_documented_with_its_status() {
        let doc = json("/payments");
        let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            codes, 20,
            "every code of the contract, plus routing misses and internal_error"
        );
        let cancel = &doc["paths"]["/payments/cancel"]["post"]["responses"];
        for (status, code) in [
            ("400", "refund_account_required"),
            ("409", "payment_out_of_sync"),
            ("413", "payload_too_large"),
            ("415", "unsupported_media_type"),
            ("422", "not_refundable"),
            ("502", "gateway_rejected"),
            ("503", "storage_unavailable"),
            ("202", "refund_pending"),
        ] {
            let description = cancel[status]["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("`{code}`")),
                "{status}: {description}"
            );
        }
    }
}
