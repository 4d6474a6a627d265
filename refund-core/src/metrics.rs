//! The plugin's metrics, through the [`metrics`](https://docs.rs/metrics)
//! facade: the host installs the recorder (Prometheus, StatsD, ...) it
//! wants; without one, every call here costs next to nothing.
//!
//! The names and labels are fixed (DESIGN.md, "Observability"):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | [`CANCEL_REQUESTS`] `refund_cancel_requests_total` | counter | `code`: `ok`, `refund_pending` or the error code |
//! | [`SETTLEMENTS`] `refund_settlements_total` | counter | `status` (the journal's), `via`: `answer`, `sync`, `webhook`, `next_refund`, `sweep`, `review` |
//! | [`GATEWAY_REQUESTS`] `refund_gateway_requests_total` | counter | `gateway`, `operation` (`token`, `cancel`, `payment`, `find_payment`), `outcome` (`ok`, `accepted` (a cancel taken, outcome later), `not_found` or the error kind) |
//! | [`GATEWAY_REQUEST_DURATION`] `refund_gateway_request_duration_seconds` | histogram | `gateway`, `operation` |
//! | [`TOKEN_FETCHES`] `refund_token_fetches_total` | counter | `gateway` |
//! | [`WEBHOOKS`] `refund_webhooks_total` | counter | `gateway`, `outcome` (`ok` or the error code) |
//!
//! Label values are always from these fixed vocabularies, never ids or
//! client input, so the number of series stays bounded.

use std::future::Future;
use std::time::Instant;

use crate::gateway::{CancelReceipt, GatewayError};
use crate::payment::Payment;
use crate::token::AccessToken;

/// Every answer of `POST {prefix}/cancel`, by `code`.
pub const CANCEL_REQUESTS: &str = "refund_cancel_requests_total";
/// Journal verdicts recorded, by `status` and `via`.
pub const SETTLEMENTS: &str = "refund_settlements_total";
/// Calls to the gateway, by `gateway`, `operation` and `outcome`.
pub const GATEWAY_REQUESTS: &str = "refund_gateway_requests_total";
/// How long gateway calls took, by `gateway` and `operation`.
pub const GATEWAY_REQUEST_DURATION: &str = "refund_gateway_request_duration_seconds";
/// Access tokens fetched from the gateway, by `gateway`.
pub const TOKEN_FETCHES: &str = "refund_token_fetches_total";
/// Webhook notices handled, by `gateway` and `outcome`.
pub const WEBHOOKS: &str = "refund_webhooks_total";

/// Counts one answer of the cancel route (`ok`, `refund_pending` or an error code).
pub fn cancel_answered(code: &'static str) {
    metrics::counter!(CANCEL_REQUESTS, "code" => code).increment(1);
}

/// Counts one verdict written to the journal.
pub fn settled(status: &'static str, via: &'static str) {
    metrics::counter!(SETTLEMENTS, "status" => status, "via" => via).increment(1);
}

/// Counts one webhook notice and its outcome (`ok` or an error code).
pub fn webhook_handled(gateway: &'static str, outcome: &'static str) {
    metrics::counter!(WEBHOOKS, "gateway" => gateway, "outcome" => outcome).increment(1);
}

/// Counts one access-token fetch.
pub fn token_fetched(gateway: &'static str) {
    metrics::counter!(TOKEN_FETCHES, "gateway" => gateway).increment(1);
}

/// The outcome label of a gateway call's result.
pub trait GatewayOutcome {
    /// `ok`, `not_found` (a lookup of a payment the gateway does not know)
    /// or the error's kind.
    fn outcome(&self) -> &'static str;
}

impl GatewayOutcome for Result<Payment, GatewayError> {
    fn outcome(&self) -> &'static str {
        self.as_ref().map_or_else(error_kind, |_| "ok")
    }
}

impl GatewayOutcome for Result<CancelReceipt, GatewayError> {
    fn outcome(&self) -> &'static str {
        match self {
            Ok(CancelReceipt::Applied { .. }) => "ok",
            Ok(CancelReceipt::Accepted { .. }) => "accepted",
            Err(error) => error_kind(error),
        }
    }
}

impl GatewayOutcome for Result<AccessToken, GatewayError> {
    fn outcome(&self) -> &'static str {
        self.as_ref().map_or_else(error_kind, |_| "ok")
    }
}

impl GatewayOutcome for Result<Option<Payment>, GatewayError> {
    fn outcome(&self) -> &'static str {
        match self {
            Ok(Some(_)) => "ok",
            Ok(None) => "not_found",
            Err(error) => error_kind(error),
        }
    }
}

/// The fixed name of a gateway error's kind.
pub fn error_kind(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::Rejected { .. } => "rejected",
        GatewayError::Unauthorized => "unauthorized",
        GatewayError::Unreachable(_) => "unreachable",
        GatewayError::Garbled(_) => "garbled",
        GatewayError::Unknown(_) => "unknown",
        GatewayError::InvalidResponse(_) => "invalid_response",
    }
}

/// Runs one gateway call, counting it by outcome and timing it.
pub async fn gateway_call<R, F>(gateway: &'static str, operation: &'static str, call: F) -> R
where
    F: Future<Output = R>,
    R: GatewayOutcome,
{
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!(GATEWAY_REQUEST_DURATION, "gateway" => gateway, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        GATEWAY_REQUESTS,
        "gateway" => gateway,
        "operation" => operation,
        "outcome" => result.outcome()
    )
    .increment(1);
    result
}
