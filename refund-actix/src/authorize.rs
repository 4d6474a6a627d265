//! Who may refund, and who is acting: the merchant's own policy behind
//! [`Authorizer`], and a ready-made admin-token check,
//! [`BearerTokenAuthorizer`].
//!
//! Refunds move money out of the merchant's account, so the scope cannot be
//! built without an authorizer. Only the webhook route is public: it never
//! trusts its body and only ever makes the plugin re-read a payment from
//! the gateway.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpRequest;
use async_trait::async_trait;
use refund_core::Actor;
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
    /// `POST {prefix}/{merchant_uid}/sync`: reconcile with the gateway
    /// (it never lifts a review hold).
    Sync {
        /// The order, from the path.
        merchant_uid: &'a str,
    },
    /// `GET {prefix}/refunds`: list refund records across payments (asked
    /// before the query is read, like [`Action::CancelAttempt`]).
    List,
    /// `POST {prefix}/{merchant_uid}/review`: resolve the payment's review
    /// and lift its hold (an operator's action; the journal records the
    /// actor as `resolved_by`).
    Review {
        /// The order, from the path.
        merchant_uid: &'a str,
    },
}

impl Action<'_> {
    /// The order the action concerns; empty for [`Action::CancelAttempt`],
    /// which is asked before the order is known, and for [`Action::List`],
    /// which concerns many (no order id is empty).
    pub fn merchant_uid(&self) -> &str {
        match self {
            Action::CancelAttempt | Action::List => "",
            Action::Cancel { merchant_uid }
            | Action::View { merchant_uid }
            | Action::Sync { merchant_uid }
            | Action::Review { merchant_uid } => merchant_uid,
        }
    }

    /// A short name for logs: `cancel` (both cancel actions), `view`,
    /// `sync`, `list` or `review`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CancelAttempt | Action::Cancel { .. } => "cancel",
            Action::View { .. } => "view",
            Action::Sync { .. } => "sync",
            Action::List => "list",
            Action::Review { .. } => "review",
        }
    }

    /// True for the actions that only read (viewing a payment, listing
    /// refunds): what support staff who may look but not refund are
    /// allowed.
    pub fn is_read_only(&self) -> bool {
        matches!(self, Action::View { .. } | Action::List)
    }
}

/// Why an authorizer refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The caller is not authenticated (missing or wrong credentials): 401.
    Unauthorized,
    /// The caller is known but may not do this: 403.
    Forbidden,
}

/// The merchant's authorization policy, asked before every route except the
/// webhook: it allows a request by naming who acts (an [`Actor`], such as
/// the signed-in agent's user name), or refuses it ([`Denied`]). The
/// journal records the actor as a refund's `requested_by` and a review's
/// `resolved_by`.
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
/// use refund_actix::{async_trait, Action, Actor, Authorizer, Denied};
///
/// /// Support staff may look (view payments, list refunds); only the
/// /// finance team may refund, sync or resolve reviews.
/// struct StaffOnly;
///
/// #[async_trait(?Send)]
/// impl Authorizer for StaffOnly {
///     async fn authorize(&self, request: &HttpRequest, action: Action<'_>) -> Result<Actor, Denied> {
///         let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
///         let (Some(user), Some(role)) = (header("x-staff-user"), header("x-staff-role")) else {
///             return Err(Denied::Unauthorized);
///         };
///         let actor = Actor::new(user).map_err(|_| Denied::Unauthorized)?;
///         match role {
///             "finance" => Ok(actor),
///             "support" if action.is_read_only() => Ok(actor),
///             _ => Err(Denied::Forbidden),
///         }
///     }
/// }
/// ```
/// (A real policy would check a session or a signed token, not headers
/// the client sets.)
#[async_trait(?Send)]
pub trait Authorizer: Send + Sync + 'static {
    /// Decides whether `request` may perform `action`: `Ok` with who acts,
    /// or why not.
    async fn authorize(&self, request: &HttpRequest, action: Action<'_>) -> Result<Actor, Denied>;

    /// The `WWW-Authenticate` challenge sent with a 401
    /// [`Denied::Unauthorized`] answer: the scheme the caller should
    /// authenticate with (e.g. `Bearer`). `None`, the default, sends no
    /// challenge (a cookie session has no scheme to name).
    fn challenge(&self) -> Option<HeaderValue> {
        None
    }
}

/// Allows any action to a caller presenting one admin token as
/// `Authorization: Bearer <token>`, acting as one configurable actor
/// ([`actor`](Self::actor), `admin` by default).
///
/// The comparison runs in constant time over SHA-256 digests, so neither
/// the token's content nor its length leaks through response timing. The
/// token itself is not kept, and never printed.
pub struct BearerTokenAuthorizer {
    digest: [u8; 32],
    actor: Actor,
}

/// The actor a [`BearerTokenAuthorizer`] names unless told otherwise.
pub const DEFAULT_ADMIN_ACTOR: &str = "admin";

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
            actor: Actor::from_stored(DEFAULT_ADMIN_ACTOR),
        })
    }

    /// Who the token's holder acts as (default [`DEFAULT_ADMIN_ACTOR`]):
    /// what the journal records as `requested_by` and `resolved_by`.
    #[must_use]
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for BearerTokenAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerTokenAuthorizer")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

#[async_trait(?Send)]
impl Authorizer for BearerTokenAuthorizer {
    async fn authorize(&self, request: &HttpRequest, _: Action<'_>) -> Result<Actor, Denied> {
        match bearer_token(request) {
            Some(token) if self.accepts(token) => Ok(self.actor.clone()),
            _ => Err(Denied::Unauthorized),
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

    async fn decide(authorization: Option<&str>) -> Result<Actor, Denied> {
        let authorizer = BearerTokenAuthorizer::new(TOKEN).unwrap();
        let mut request = TestRequest::default();
        if let Some(value) = authorization {
            request = request.insert_header((header::AUTHORIZATION, value));
        }
        authorizer.authorize(&request.to_http_request(), VIEW).await
    }

    #[actix_web::test]
    async fn accepts_only_the_exact_bearer_token() {
        let admin = Actor::new(DEFAULT_ADMIN_ACTOR).unwrap();
        assert_eq!(
            decide(Some(&format!("Bearer {TOKEN}"))).await,
            Ok(admin.clone())
        );
        assert_eq!(decide(Some(&format!("bearer {TOKEN}"))).await, Ok(admin));
        for refused in [
            None,
            Some(TOKEN),
            Some("Bearer "),
            Some("Bearer correct-horse-battery-stapl"),
            Some("Bearer correct-horse-battery-staple2"),
            Some("Basic Y29ycmVjdC1ob3JzZQ=="),
        ] {
            assert_eq!(
                decide(refused).await,
                Err(Denied::Unauthorized),
                "{refused:?}"
            );
        }
    }

    #[actix_web::test]
    async fn names_the_configured_actor() {
        let kim = Actor::new("kim.finance").unwrap();
        let authorizer = BearerTokenAuthorizer::new(TOKEN)
            .unwrap()
            .actor(kim.clone());
        let request = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
            .to_http_request();
        assert_eq!(authorizer.authorize(&request, VIEW).await, Ok(kim));
        assert!(format!("{authorizer:?}").contains("kim.finance"));
    }

    #[test]
    fn refuses_weak_tokens_and_never_shows_the_token() {
        assert!(BearerTokenAuthorizer::new("short").is_err());
        assert!(BearerTokenAuthorizer::new("sixteen chars ok").is_err());
        let authorizer = BearerTokenAuthorizer::new(TOKEN).unwrap();
        assert!(!format!("{authorizer:?}").contains("horse"));
    }
}
