//! Safe i'mport refunds for an actix-web merchant server: mount one scope.
//!
//! The refund workflow itself (journal, checksum, reconciliation) lives in
//! [`refund_core::RefundService`]; this crate is its HTTP face: routes,
//! body parsing, authorization and the JSON error contract.
//!
//! # Mounting it
//! Build a [`RefundService`](refund_core::RefundService) over your payment
//! store and the i'mport client, choose who may refund (an [`Authorizer`];
//! there is no way to skip this), and mount the scope next to your routes:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use actix_web::{web, App, HttpResponse, HttpServer};
//! use refund_actix::{BearerTokenAuthorizer, RefundScope};
//! use refund_core::{
//!     IamportClient, IamportConfig, IamportCredentials, MemoryPaymentStore, RefundService,
//! };
//!
//! /// One of your own routes under the scope's prefix.
//! async fn payment_complete() -> HttpResponse {
//!     HttpResponse::Ok().body("thank you")
//! }
//!
//! // actix's runtime, not `#[tokio::main]`: `actix_web::rt::spawn` needs it.
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The REST API key and secret from the i'mport console, and where
//!     // i'mport is: https://api.iamport.kr, or the local sandbox
//!     // (`cargo run --bin iamport-sandbox`: http://127.0.0.1:9090, with the
//!     // key and secret it prints).
//!     let key = std::env::var("IMP_KEY")?;
//!     let secret = std::env::var("IMP_SECRET")?;
//!     let credentials = IamportCredentials::new(key, secret);
//!     let url = std::env::var("IMP_URL").unwrap_or_else(|_| IamportConfig::PRODUCTION_URL.into());
//!     let gateway = IamportClient::new(IamportConfig::new(url, credentials))?;
//!     // In memory for a first try; `storage_sql::open(database_url).await?`
//!     // (or storage-mongo) in production.
//!     let store = Arc::new(MemoryPaymentStore::new());
//!     let service = Arc::new(RefundService::new(store, Arc::new(gateway)));
//!     // Settles refunds whose outcome was unknown (timeouts): start it once.
//!     actix_web::rt::spawn(service.clone().run_sweeper(Duration::from_secs(30)));
//!
//!     // At least 16 visible ASCII characters, e.g. `openssl rand -hex 24`.
//!     let admin = BearerTokenAuthorizer::new(std::env::var("REFUND_ADMIN_TOKEN")?)?;
//!     let refunds = RefundScope::new(service, admin);
//!
//!     HttpServer::new(move || {
//!         App::new()
//!             .route("/", web::get().to(|| async { HttpResponse::Ok().body("shop") }))
//!             // Your routes under /payments go *before* the scope: it owns
//!             // its prefix and answers every other path under it itself.
//!             .route("/payments/complete", web::post().to(payment_complete))
//!             .service(refunds.clone()) // POST /payments/cancel, ...
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! [`RefundScope`] also offers `.into_scope()` (an actix [`Scope`](actix_web::Scope))
//! and `.configure()` (for `App::configure`), and the options
//! [`prefix`](RefundScope::prefix) (default `/payments`),
//! [`body_limit`](RefundScope::body_limit) (default 16 KiB) and
//! [`webhook_allowlist`](RefundScope::webhook_allowlist).
//!
//! The scope keeps its own `JsonConfig`, `FormConfig`, `PathConfig` and
//! state, so your app's settings are untouched and do not leak into it. It
//! owns its prefix: every path under it is answered by the scope (unknown
//! ones with its JSON `not_found`/`method_not_allowed`), so register any
//! route of yours under the same prefix (say `/payments/complete`)
//! *before* the scope, as above, or actix will never reach it.
//!
//! This example is the README's, word for word (a test checks it), and is
//! compiled by `cargo test -p refund-actix`.
//!
//! # Routes
//! | route | answer |
//! |---|---|
//! | `POST {prefix}/cancel` | the seed guide's body `{merchant_uid, cancel_request_amount?, reason?, refund_holder?, refund_bank?, refund_account?, refund_tel?, tax_free?, vat_amount?}` (any other field is refused with 400 `invalid_request` naming it), optional `Idempotency-Key` header; 200 with the payment view and `refund`, or 202 `{"code":"refund_pending","message","refund":{id,amount,status}}` when the gateway's answer is unknown |
//! | `GET {prefix}/openapi.json` | public: the scope's OpenAPI 3 document, generated with utoipa from the handlers (every route, the cancel body with `additionalProperties: false`, every answer and error code with its status) |
//! | `GET {prefix}/{merchant_uid}` | the payment view, with `pending_refunds`, `on_hold`, `hold_reason`, `gateway` and `refunds` (its journal, newest first) |
//! | `POST {prefix}/{merchant_uid}/sync` | reconciles with the gateway, then the view (a review hold stays) |
//! | `GET {prefix}/refunds` | refund records across payments, newest first: `?status=` (`pending`, `succeeded`, `failed`, `needs_review`), `merchant_uid=`, `limit=` (1 to 200, default 50), `cursor=` (the previous page's `next_cursor`); `{refunds: [...], next_cursor}` |
//! | `POST {prefix}/{merchant_uid}/review` | `{note}` (1 to 500 characters): fetches the payment from the gateway, records the resolution (`resolved_by` = the actor, `resolved_at`, `note`) on the held refund, applies the gateway's numbers and lifts the hold; the view, or 409 `not_on_hold` (nothing held), `refund_in_progress`, or `payment_out_of_sync` (the open reviews changed while it ran: nothing recorded) |
//! | `POST {prefix}/webhook` | i'mport's notice `{imp_uid, merchant_uid, status}` as JSON or form; public; the payment is re-read from the gateway, the notice is never trusted; 200 `{"code":"ok","message"}` |
//!
//! Amounts in the view are in the currency's major unit, as i'mport sends
//! them (`1000` won, `12.5` dollars), written exactly.
//!
//! # Errors
//! Every error is `{"code": "...", "message": "..."}` (plus
//! `gateway_message` for `gateway_rejected`) with the status of DESIGN.md's
//! table: `invalid_request` and `refund_account_required` (400),
//! `unauthorized` (401), `forbidden` (403), `payment_not_found` (404),
//! `already_refunded`, `amount_exceeds_cancelable`, `refund_in_progress`,
//! `idempotency_key_reused`, `payment_out_of_sync`, `not_on_hold` (409),
//! `payload_too_large` (413), `unsupported_media_type` (415),
//! `not_refundable` (422), `gateway_rejected`, `gateway_error` (502),
//! `storage_unavailable` (503). Routing mistakes under the prefix answer
//! `not_found` (404) and `method_not_allowed` (405) in the same shape.
//! The authorizer is asked before any body is read, so an unauthenticated
//! request gets 401 (with the authorizer's `WWW-Authenticate` challenge,
//! `Bearer` for [`BearerTokenAuthorizer`]) whatever it sent.
//! Bad input is never a 500; an `internal_error` (500) says nothing more
//! and its cause is logged. Messages never repeat client values, tokens or
//! account numbers.
//!
//! # Tracing
//! Each handler is a `tracing` span with the order's `merchant_uid` (and
//! `refund_id`, `imp_uid` where known). The scope adds no middleware and no
//! request-id header, so it nests under `tracing-actix-web`'s
//! `TracingLogger` root span if the host uses it.

#![warn(missing_docs, unreachable_pub)]

mod authorize;
mod body;
mod error;
mod openapi;
mod routes;
mod scope;
mod webhook;

/// Re-exported so an [`Authorizer`] can be written without another dependency.
pub use async_trait::async_trait;
pub use authorize::{
    Action, Authorizer, BearerTokenAuthorizer, Denied, WeakAdminToken, DEFAULT_ADMIN_ACTOR,
};
/// Re-exported: an [`Authorizer`] names the [`Actor`] of each request it allows.
pub use refund_core::Actor;
pub use scope::{RefundScope, DEFAULT_BODY_LIMIT, DEFAULT_PREFIX, IAMPORT_WEBHOOK_IPS};
pub use webhook::standard::{InvalidWebhookSecret, PortOneWebhookSecret};
