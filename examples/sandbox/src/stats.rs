//! Call counters, so tests and the benchmark can see how many gateway calls
//! a client really made (token requests saved by caching, cancels retried).

use serde::{Deserialize, Serialize};

use crate::faults::Endpoint;

/// Counts of gateway calls since start or the last reset. Every call that
/// reaches an endpoint counts, including ones answered 401 or faulted. V2
/// calls count in the fields of their V1 counterparts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// `POST /users/getToken`; V2 `/login/api-secret` and `/token/refresh`.
    pub get_token: TokenStats,
    /// `POST /payments/cancel`; V2 `POST /payments/{paymentId}/cancel`.
    pub cancel: CancelStats,
    /// `GET /payments/{imp_uid}` calls; V2 `GET /payments/{paymentId}`.
    pub get_payment: u64,
    /// `GET /payments/find/...` calls.
    pub find_payment: u64,
    /// Calls refused with 401 (any endpoint, including `getToken`).
    pub unauthorized: u64,
}

/// Token endpoint counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStats {
    /// Calls made.
    pub requests: u64,
    /// Calls that created a new token (the rest reused the live one or were
    /// refused). Every successful V2 login or refresh creates one.
    pub minted: u64,
}

/// Cancel endpoint counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelStats {
    /// Calls made.
    pub attempted: u64,
    /// Calls that changed a payment (a V2 `REQUESTED` cancel included).
    /// Admin-console cancels are not counted.
    pub committed: u64,
}

impl Stats {
    pub(crate) fn record_call(&mut self, endpoint: Endpoint) {
        match endpoint {
            Endpoint::Token => self.get_token.requests += 1,
            Endpoint::Cancel => self.cancel.attempted += 1,
            Endpoint::GetPayment => self.get_payment += 1,
            Endpoint::FindPayment => self.find_payment += 1,
        }
    }
}
