//! What every gateway call goes through, in either API: added latency,
//! counting, then [`run_with_fault`], which lets an armed fault act before
//! and/or after the call's real work.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::faults::{ConnectionCutter, Endpoint, Fault};
use crate::state::SandboxState;
use crate::wire::garbage;

/// How an API words an error reply that a fault puts in place of the real
/// one.
pub(super) type FailureReply = fn(StatusCode, &str) -> HttpResponse;

/// The error replies of an API's faults.
#[derive(Clone, Copy)]
pub(super) struct FailureReplies {
    /// Something in front of the API answered (V1: its envelope; V2: a bare
    /// text body, as a proxy would answer).
    pub(super) proxy: FailureReply,
    /// The API itself answered with its own error (V1: its envelope; V2: a
    /// typed `{type, message}` error).
    pub(super) own: FailureReply,
}

/// Latency and accounting, common to every gateway call.
pub(super) async fn arrive(state: &SandboxState, endpoint: Endpoint) {
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    state.record_call(endpoint);
}

/// Runs `work` (the call's real work: for a cancel, validate and commit)
/// under `fault`, if any. The cancel-only kinds ([`Fault::EchoAccount`],
/// [`Fault::Requested`]) change the work itself, so the cancel handlers act
/// on them before calling this; here they leave the work alone.
pub(super) async fn run_with_fault(
    fault: Option<Fault>,
    req: &HttpRequest,
    replies: FailureReplies,
    work: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    let failure = replies.proxy;
    let Some(fault) = fault else {
        return work();
    };
    tracing::debug!(fault = fault.name(), path = req.path(), "injecting fault");
    match fault {
        Fault::FailBeforeCommit => failure(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        Fault::Garbage => garbage(),
        Fault::DropBeforeCommit => cut_connection(req, failure, StatusCode::SERVICE_UNAVAILABLE),
        Fault::HoldAfterCommit(hold) => {
            let reply = work();
            tokio::time::sleep(hold).await;
            reply
        }
        Fault::FailAfterCommit => {
            // The work's own reply is lost, as behind a crashing proxy.
            drop(work());
            failure(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Fault::ErrorBeforeCommit => {
            (replies.own)(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Fault::ErrorAfterCommit => {
            drop(work());
            (replies.own)(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Fault::DropAfterCommit => {
            drop(work());
            cut_connection(req, failure, StatusCode::INTERNAL_SERVER_ERROR)
        }
        Fault::EchoAccount | Fault::Requested => work(),
    }
}

/// Closes the client's connection with no reply. The response returned is
/// only delivered if the connection could not be cut (then it is a 5xx, the
/// nearest observable equivalent).
fn cut_connection(req: &HttpRequest, failure: FailureReply, fallback: StatusCode) -> HttpResponse {
    let cut = req
        .conn_data::<ConnectionCutter>()
        .is_some_and(ConnectionCutter::cut);
    if !cut {
        tracing::warn!("connection could not be dropped; answering {fallback} instead");
    }
    failure(fallback, "connection dropped")
}
