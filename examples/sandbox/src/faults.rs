//! Fault injection: make the next N gateway calls misbehave the ways a
//! network and a payment gateway really do, so clients can prove they handle
//! unknown outcomes.
//!
//! A fault is consumed by a call that passed authentication (a 401 answer
//! does not use one up), in the order faults were armed. "Commit" means the
//! call's real work: the cancel is validated and, if valid, applied. After-
//! commit faults replace the reply whether or not the cancel was accepted.

use std::any::Any;
use std::time::Duration;

use actix_web::dev::Extensions;
use serde::{Deserialize, Serialize};

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Commit, then hold the reply this long (a client with a shorter timeout
    /// sees an unknown outcome).
    HoldAfterCommit(Duration),
    /// Answer HTTP 503 without doing anything.
    FailBeforeCommit,
    /// Commit, then answer HTTP 500.
    FailAfterCommit,
    /// Answer HTTP 500 with the API's own error body, without doing
    /// anything: V2 a typed `{type, message}` error (PortOne itself
    /// answered, so it is no longer working on the call), where
    /// [`Fault::FailBeforeCommit`]'s 503 is plain text, as a proxy in front
    /// of PortOne would answer. V1 answers its envelope either way.
    ErrorBeforeCommit,
    /// Commit, then answer HTTP 500 with the API's own error body (see
    /// [`Fault::ErrorBeforeCommit`]).
    ErrorAfterCommit,
    /// Close the connection without a reply, without doing anything.
    DropBeforeCommit,
    /// Commit, then close the connection without a reply.
    DropAfterCommit,
    /// Answer HTTP 200 with a body that is not JSON, without doing anything
    /// (what a misconfigured proxy does).
    Garbage,
    /// Cancels only: the PG refuses, and its message repeats the refund
    /// account, holder and phone it was sent (as some PGs do). Nothing
    /// changes. V1: `code: -1`; V2: 502 `PG_PROVIDER`.
    EchoAccount,
    /// V2 cancels only: accept the cancel asynchronously. It is answered 200
    /// with a `REQUESTED` cancellation, listed on the payment, not counted in
    /// `amount.cancelled` but no longer cancellable, until
    /// [`Sandbox::complete_requested_cancels`](crate::Sandbox::complete_requested_cancels).
    /// A V1 cancel that draws it is served normally.
    Requested,
}

impl Fault {
    /// The wire name used by `POST /sandbox/faults`.
    pub fn name(self) -> &'static str {
        match self {
            Self::HoldAfterCommit(_) => "hold_after_commit",
            Self::FailBeforeCommit => "fail_before_commit",
            Self::FailAfterCommit => "fail_after_commit",
            Self::ErrorBeforeCommit => "error_before_commit",
            Self::ErrorAfterCommit => "error_after_commit",
            Self::DropBeforeCommit => "drop_before_commit",
            Self::DropAfterCommit => "drop_after_commit",
            Self::Garbage => "garbage",
            Self::EchoAccount => "echo_account",
            Self::Requested => "requested",
        }
    }

    /// Whether a call to `endpoint` can draw this fault: the refusal kinds
    /// only make sense for cancels, so a lookup never uses them up.
    pub(crate) fn applies_to(self, endpoint: Endpoint) -> bool {
        match self {
            Self::EchoAccount | Self::Requested => endpoint == Endpoint::Cancel,
            _ => true,
        }
    }
}

/// Which gateway calls a fault applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// `POST /payments/cancel`, V2 `POST /payments/{paymentId}/cancel`
    /// (the default).
    #[default]
    Cancel,
    /// `GET /payments/{imp_uid}` and `GET /payments/find/...`, V2
    /// `GET /payments/{paymentId}`.
    Get,
    /// `POST /users/getToken`, V2 `/login/api-secret` and `/token/refresh`.
    Token,
    /// All of the above.
    Any,
}

/// A gateway endpoint, for fault matching and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    Cancel,
    GetPayment,
    FindPayment,
}

impl FaultTarget {
    fn covers(self, endpoint: Endpoint) -> bool {
        match self {
            Self::Any => true,
            Self::Cancel => endpoint == Endpoint::Cancel,
            Self::Token => endpoint == Endpoint::Token,
            Self::Get => matches!(endpoint, Endpoint::GetPayment | Endpoint::FindPayment),
        }
    }
}

/// A fault waiting for its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmedFault {
    /// What will happen.
    pub fault: Fault,
    /// To which calls.
    pub target: FaultTarget,
    /// How many more calls it will affect.
    pub remaining: u32,
}

impl Serialize for ArmedFault {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire {
            fault: &'static str,
            endpoint: FaultTarget,
            remaining: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            hold_ms: Option<u128>,
        }
        Wire {
            fault: self.fault.name(),
            endpoint: self.target,
            remaining: self.remaining,
            hold_ms: match self.fault {
                Fault::HoldAfterCommit(hold) => Some(hold.as_millis()),
                _ => None,
            },
        }
        .serialize(serializer)
    }
}

/// Armed faults, first armed first served.
#[derive(Debug, Default)]
pub(crate) struct FaultBoard {
    armed: Vec<ArmedFault>,
}

impl FaultBoard {
    pub(crate) fn arm(&mut self, fault: Fault, target: FaultTarget, times: u32) {
        if times > 0 {
            self.armed.push(ArmedFault {
                fault,
                target,
                remaining: times,
            });
        }
    }

    /// Uses up one call of the first fault that covers `endpoint`.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let index = self
            .armed
            .iter()
            .position(|a| a.target.covers(endpoint) && a.fault.applies_to(endpoint))?;
        let armed = &mut self.armed[index];
        armed.remaining -= 1;
        let fault = armed.fault;
        if armed.remaining == 0 {
            self.armed.remove(index);
        }
        Some(fault)
    }

    pub(crate) fn clear(&mut self) {
        self.armed.clear();
    }

    pub(crate) fn armed(&self) -> Vec<ArmedFault> {
        self.armed.clone()
    }
}

/// Lets a handler close its own TCP connection without answering.
///
/// actix-web has no API to abort a connection from a handler, so at accept
/// time we keep a duplicate of the socket's file descriptor in the
/// connection's data. `shutdown(2)` on the duplicate closes the one shared
/// socket: the client sees the connection end with no response at all.
#[derive(Debug)]
pub(crate) struct ConnectionCutter(#[cfg(unix)] std::os::fd::OwnedFd);

impl ConnectionCutter {
    /// `HttpServer::on_connect` hook: remembers how to cut this connection.
    pub(crate) fn capture(connection: &dyn Any, data: &mut Extensions) {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                match stream.as_fd().try_clone_to_owned() {
                    Ok(fd) => {
                        data.insert(Self(fd));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot keep a handle to cut this connection")
                    }
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (connection, data);
    }

    /// Shuts the connection down in both directions. Returns false when that
    /// was impossible, so the caller can fall back to an error reply.
    pub(crate) fn cut(&self) -> bool {
        #[cfg(unix)]
        {
            let result = self
                .0
                .try_clone()
                .map(std::net::TcpStream::from)
                .and_then(|stream| stream.shutdown(std::net::Shutdown::Both));
            if let Err(error) = &result {
                tracing::warn!(%error, "could not cut the connection");
            }
            result.is_ok()
        }
        #[cfg(not(unix))]
        false
    }
}

/// Wire form of a fault request, `POST /sandbox/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    pub(crate) fault: FaultName,
    #[serde(default = "one")]
    pub(crate) times: u32,
    #[serde(default)]
    pub(crate) hold_ms: Option<u64>,
    #[serde(default)]
    pub(crate) endpoint: FaultTarget,
}

fn one() -> u32 {
    1
}

/// Fault names accepted on the wire; `revoke_tokens` acts at once instead
/// of being armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultName {
    HoldAfterCommit,
    FailBeforeCommit,
    FailAfterCommit,
    ErrorBeforeCommit,
    ErrorAfterCommit,
    DropBeforeCommit,
    DropAfterCommit,
    Garbage,
    EchoAccount,
    Requested,
    RevokeTokens,
}

/// Hold used when `hold_after_commit` comes without `hold_ms`.
pub(crate) const DEFAULT_HOLD: Duration = Duration::from_secs(5);

impl FaultRequest {
    /// The fault to arm, or `None` for `revoke_tokens`.
    pub(crate) fn fault(&self) -> Option<Fault> {
        Some(match self.fault {
            FaultName::HoldAfterCommit => {
                Fault::HoldAfterCommit(self.hold_ms.map_or(DEFAULT_HOLD, Duration::from_millis))
            }
            FaultName::FailBeforeCommit => Fault::FailBeforeCommit,
            FaultName::FailAfterCommit => Fault::FailAfterCommit,
            FaultName::ErrorBeforeCommit => Fault::ErrorBeforeCommit,
            FaultName::ErrorAfterCommit => Fault::ErrorAfterCommit,
            FaultName::DropBeforeCommit => Fault::DropBeforeCommit,
            FaultName::DropAfterCommit => Fault::DropAfterCommit,
            FaultName::Garbage => Fault::Garbage,
            FaultName::EchoAccount => Fault::EchoAccount,
            FaultName::Requested => Fault::Requested,
            FaultName::RevokeTokens => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_used_up_in_arming_order_per_endpoint() {
        let mut board = FaultBoard::default();
        board.arm(Fault::Garbage, FaultTarget::Get, 1);
        board.arm(Fault::FailAfterCommit, FaultTarget::Cancel, 2);
        board.arm(Fault::FailBeforeCommit, FaultTarget::Any, 1);
        board.arm(Fault::Garbage, FaultTarget::Cancel, 0);

        assert_eq!(board.take(Endpoint::Token), Some(Fault::FailBeforeCommit));
        assert_eq!(board.take(Endpoint::Token), None);
        assert_eq!(board.take(Endpoint::Cancel), Some(Fault::FailAfterCommit));
        assert_eq!(board.armed()[1].remaining, 1);
        assert_eq!(board.take(Endpoint::Cancel), Some(Fault::FailAfterCommit));
        assert_eq!(board.take(Endpoint::Cancel), None);
        assert_eq!(board.take(Endpoint::FindPayment), Some(Fault::Garbage));
        assert!(board.armed().is_empty());
    }

    #[test]
    fn cancel_only_faults_are_never_used_up_by_other_calls() {
        let mut board = FaultBoard::default();
        board.arm(Fault::Requested, FaultTarget::Any, 1);
        board.arm(Fault::Garbage, FaultTarget::Any, 1);
        assert_eq!(board.take(Endpoint::GetPayment), Some(Fault::Garbage));
        assert_eq!(board.take(Endpoint::Token), None);
        assert_eq!(board.take(Endpoint::Cancel), Some(Fault::Requested));
    }

    #[test]
    fn wire_requests_map_to_faults() {
        let req: FaultRequest = serde_json::from_str(
            r#"{"fault":"hold_after_commit","hold_ms":50,"times":2,"endpoint":"any"}"#,
        )
        .unwrap();
        assert_eq!(
            req.fault(),
            Some(Fault::HoldAfterCommit(Duration::from_millis(50)))
        );
        assert_eq!((req.times, req.endpoint), (2, FaultTarget::Any));

        for fault in [Fault::ErrorBeforeCommit, Fault::ErrorAfterCommit] {
            let wire = format!(r#"{{"fault":"{}"}}"#, fault.name());
            let req: FaultRequest = serde_json::from_str(&wire).unwrap();
            assert_eq!(req.fault(), Some(fault));
        }

        let req: FaultRequest = serde_json::from_str(r#"{"fault":"revoke_tokens"}"#).unwrap();
        assert_eq!(req.fault(), None);
        assert!(serde_json::from_str::<FaultRequest>(r#"{"fault":"meteor"}"#).is_err());
    }
}
