//! Who may refund: the merchant's own policy behind [`Authorizer`], and a
//! ready-made admin-token check, [`BearerTokenAuthorizer`].
//!
//! Refunds move money out of the merchant's account, so the scope cannot be
//! built without an authorizer. Only the webhook route is public: it never
//! trusts its body and only ever makes the plugin re-read a payment from
//! the gateway.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpRequest;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a caller is trying to do, with the order it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action<'a> {
    /// `POST {prefix}/cancel`, asked before the body is read: may this
    /// caller refund at all? The order is not known yet (it is in the body,
    /// which is not trusted, or even read, before the caller is), so an
    /// unauthenticated caller gets 401 whatever it sent. A policy that
    /// decides per order allows this and decides on the
    /// [`Action::Cancel`] that follows once the body is valid.
    CancelAttempt,
    /// `POST {prefix}/cancel` with a valid body: refund (part of) the
    /// payment. Always preceded by an allowed [`Action::CancelAttempt`].
    Cancel {
        /// The order to refund, from the request body.
        merchant_uid: &'a str,
    },
    /// `GET {prefix}/{merchant_uid}`: read the payment and its refunds.
    View {
        /// The order, from the path.
        merchant_uid: &'a str,
    },
    /// `POST {prefix}/{merchant_uid}/sync`: reconcile with the gateway and
    /// lift a review hold (an operator's action).
    Sync {
        /// The order, from the path.
        merchant_uid: &'a str,
    },
}

impl Action<'_> {
    /// The order the action concerns; empty for [`Action::CancelAttempt`],
    /// which is asked before the order is known (no order id is empty).
    pub fn merchant_uid(&self) -> &str {
        match self {
            Action::CancelAttempt => "",
            Action::Cancel { merchant_uid }
            | Action::View { merchant_uid }
            | Action::Sync { merchant_uid } => merchant_uid,
        }
    }

    /// A short name for logs: `cancel` (both cancel actions), `view` or `sync`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CancelAttempt | Action::Cancel { .. } => "cancel",
            Action::View { .. } => "view",
            Action::Sync { .. } => "sync",
        }
    }
}

/// An authorizer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// The caller is not authenticated (missing or wrong credentials): 401.
    Unauthorized,
    /// The caller is known but may not do this: 403.
    Forbidden,
}

/// The merchant's authorization policy, asked before every route except the
/// webhook.
///
/// It sees the whole request (headers, cookies, peer address, extensions
/// set by the host's middleware such as a session) and the [`Action`]. It
/// runs before the body is read: a cancel asks it twice, first
/// [`Action::CancelAttempt`] (so an unauthenticated caller gets 401 whatever
/// its body: malformed, of another content type or oversized), then, once
/// the body is valid, [`Action::Cancel`] with the order. Nothing reaches
/// the store or the gateway before it allows the request.
///
/// ```
/// use actix_web::HttpRequest;
/// use refund_actix::{async_trait, Action, Authorizer, Decision};
///
/// /// Support staff may look; only the finance team may refund or sync.
/// struct StaffOnly;
///
/// #[async_trait(?Send)]
/// impl Authorizer for StaffOnly {
///     async fn authorize(&self, request: &HttpRequest, action: Action<'_>) -> Decision {
///         let role = request.headers().get("x-staff-role").and_then(|v| v.to_str().ok());
///         match (role, action) {
///             (None, _) => Decision::Unauthorized,
///             (Some("finance"), _) | (Some("support"), Action::View { .. }) => Decision::Allow,
///             (Some(_), _) => Decision::Forbidden,
///         }
///     }
/// }
/// ```
/// (A real policy would check a session or a signed token, not a header
/// the client sets.)
#[async_trait(?Send)]
pub trait Authorizer: Send + Sync + 'static {
    /// Decides whether `request` may perform `action`.
    async fn authorize(&self, request: &HttpRequest, action: Action<'_>) -> Decision;

    /// The `WWW-Authenticate` challenge sent with a 401
    /// [`Decision::Unauthorized`] answer: the scheme the caller should
    /// authenticate with (e.g. `Bearer`). `None`, the default, sends no
    /// challenge (a cookie session has no scheme to name).
    fn challenge(&self) -> Option<HeaderValue> {
        None
    }
}

/// Allows any action to a caller presenting one admin token as
/// `Authorization: Bearer <token>`.
///
/// The comparison runs in constant time over SHA-256 digests, so neither
/// the token's content nor its length leaks through response timing. The
/// token itself is not kept, and never printed.
pub struct BearerTokenAuthorizer {
    digest: [u8; 32],
}

/// Shortest admin token accepted: anything shorter is guessable.
const MIN_TOKEN_CHARS: usize = 16;

impl BearerTokenAuthorizer {
    /// An authorizer for `token`: at least 16 visible ASCII characters (it
    /// travels in an HTTP header).
    pub fn new(token: impl AsRef<str>) -> Result<Self, WeakAdminToken> {
        let token = token.as_ref();
        if token.len() < MIN_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakAdminToken);
        }
        Ok(BearerTokenAuthorizer {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for BearerTokenAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerTokenAuthorizer")
            .finish_non_exhaustive()
    }
}

#[async_trait(?Send)]
impl Authorizer for BearerTokenAuthorizer {
    async fn authorize(&self, request: &HttpRequest, _: Action<'_>) -> Decision {
        match bearer_token(request) {
            Some(token) if self.accepts(token) => Decision::Allow,
            _ => Decision::Unauthorized,
        }
    }

    /// `Bearer`, as RFC 6750 has a 401 name the scheme it wants.
    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Bearer"))
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case).
fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// An admin token too short or not printable ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeakAdminToken;

impl fmt::Display for WeakAdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the admin token must be at least {MIN_TOKEN_CHARS} visible ASCII characters"
        )
    }
}

impl std::error::Error for WeakAdminToken {}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const TOKEN: &str = "correct-horse-battery-staple";
    const VIEW: Action<'static> = Action::View { merchant_uid: "m" };

    async fn decide(authorization: Option<&str>) -> Decision {
        let authorizer = BearerTokenAuthorizer::new(TOKEN).unwrap();
        let mut request = TestRequest::default();
        if let Some(value) = authorization {
            request = request.insert_header((header::AUTHORIZATION, value));
        }
        authorizer.authorize(&request.to_http_request(), VIEW).await
    }

    #[actix_web::test]
    async fn accepts_only_the_exact_bearer_token() {
        assert_eq!(
            decide(Some(&format!("Bearer {TOKEN}"))).await,
            Decision::Allow
        );
        assert_eq!(
            decide(Some(&format!("bearer {TOKEN}"))).await,
            Decision::Allow
        );
        for refused in [
            None,
            Some(TOKEN),
            Some("Bearer "),
            Some("Bearer correct-horse-battery-stapl"),
            Some("Bearer correct-horse-battery-staple2"),
            Some("Basic Y29ycmVjdC1ob3JzZQ=="),
        ] {
            assert_eq!(decide(refused).await, Decision::Unauthorized, "{refused:?}");
        }
    }

    #[test]
    fn refuses_weak_tokens_and_never_shows_the_token() {
        assert!(BearerTokenAuthorizer::new("short").is_err());
        assert!(BearerTokenAuthorizer::new("sixteen chars ok").is_err());
        let authorizer = BearerTokenAuthorizer::new(TOKEN).unwrap();
        assert!(!format!("{authorizer:?}").contains("horse"));
    }
}
