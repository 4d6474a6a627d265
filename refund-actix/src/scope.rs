//! [`RefundScope`]: the builder a merchant mounts, and the per-scope state
//! its routes share.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::guard::{self, GuardContext};
use actix_web::http::header::ContentType;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, ResponseError, Scope};
use refund_core::{Actor, GatewayKind, RefundService};

use crate::authorize::{Action, Authorizer, Denied};
use crate::error::{self, ApiError};
use crate::routes;
use crate::webhook::gate::{WebhookGate, WebhookLimits};
use crate::webhook::standard::PortOneWebhookSecret;

/// Default mount point, as in DESIGN.md.
pub const DEFAULT_PREFIX: &str = "/payments";

/// Default body limit: a cancel request is a few hundred bytes.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// The source addresses i'mport sends V1 webhooks from (its webhook guide),
/// for [`RefundScope::webhook_allowlist`].
pub const IAMPORT_WEBHOOK_IPS: [IpAddr; 3] = [
    IpAddr::V4(std::net::Ipv4Addr::new(52, 78, 100, 19)),
    IpAddr::V4(std::net::Ipv4Addr::new(52, 78, 48, 223)),
    IpAddr::V4(std::net::Ipv4Addr::new(52, 78, 5, 241)),
];

/// The refund routes, ready to mount in the merchant's actix-web `App`.
///
/// Cheap to clone: build it once and clone it into `HttpServer::new`'s
/// per-worker factory. Everything the routes need (the service, the
/// authorizer, JSON/form/path settings) is attached to the scope itself,
/// so the host app's own `Data`, `JsonConfig` and friends are never
/// overridden, and the host's settings never apply to these routes.
#[derive(Clone)]
pub struct RefundScope {
    service: Arc<RefundService>,
    authorizer: Arc<dyn Authorizer>,
    prefix: String,
    body_limit: usize,
    webhook_allowlist: Option<Arc<[IpAddr]>>,
    webhook_limits: WebhookLimits,
    /// Made by the first `into_scope` and shared by every clone mounted
    /// after it (one per worker), so the bounds hold per instance; changing
    /// the limits starts a new one.
    webhook_gate: Arc<OnceLock<Arc<WebhookGate>>>,
    portone_webhook_secret: Option<Arc<PortOneWebhookSecret>>,
}

impl fmt::Debug for RefundScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundScope")
            .field("prefix", &self.prefix)
            .field("body_limit", &self.body_limit)
            .field("webhook_allowlist", &self.webhook_allowlist)
            .field("webhook_limits", &self.webhook_limits)
            .field("portone_webhook_secret", &self.portone_webhook_secret)
            .finish_non_exhaustive()
    }
}

impl RefundScope {
    /// The scope over `service`, guarded by `authorizer` (mandatory: there
    /// is no way to build an unguarded refund endpoint).
    pub fn new(service: Arc<RefundService>, authorizer: impl Authorizer) -> Self {
        RefundScope {
            service,
            authorizer: Arc::new(authorizer),
            prefix: DEFAULT_PREFIX.to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
            webhook_allowlist: None,
            webhook_limits: WebhookLimits::default(),
            webhook_gate: Arc::default(),
            portone_webhook_secret: None,
        }
    }

    /// Where to mount the routes (default `/payments`). A missing leading
    /// `/` is added and a trailing one dropped; `""` mounts at the root.
    #[must_use]
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> Self {
        let trimmed = prefix.as_ref().trim_matches('/');
        self.prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// Largest request body accepted, in bytes (default 16 KiB); larger
    /// bodies get `413 payload_too_large`.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Accepts webhooks only from these source addresses (for example
    /// [`IAMPORT_WEBHOOK_IPS`]); others get `403 forbidden` and trigger no
    /// gateway call. Unset (the default), any source may notify: a webhook
    /// only ever makes the plugin re-read the payment from the gateway.
    ///
    /// The address checked is the TCP peer. Behind a reverse proxy that is
    /// the proxy: enforce the list there instead, since forwarded headers
    /// can be forged by anyone who reaches the server directly.
    #[must_use]
    pub fn webhook_allowlist(mut self, sources: impl IntoIterator<Item = IpAddr>) -> Self {
        let sources: Vec<IpAddr> = sources.into_iter().map(|ip| ip.to_canonical()).collect();
        self.webhook_allowlist = Some(sources.into());
        self
    }

    /// At most this many webhook lookups run at once (default 16), shared
    /// by every worker the scope is cloned into. Notices for one payment
    /// share their lookups and ids the gateway did not know are remembered
    /// for a minute, so only distinct, real-looking ids compete for these.
    /// `0` is read as 1.
    #[must_use]
    pub fn webhook_lookups(mut self, at_once: usize) -> Self {
        self.webhook_limits.max_lookups = at_once.max(1);
        self.webhook_gate = Arc::default();
        self
    }

    /// How long a webhook notice may wait for one of the
    /// [`webhook_lookups`](Self::webhook_lookups) before it is answered
    /// `503 overloaded` (default 2 s). Gateways resend notices answered
    /// 5xx, and sync and the sweep reconcile what a dropped one announced.
    #[must_use]
    pub fn webhook_lookup_wait(mut self, wait: Duration) -> Self {
        self.webhook_limits.queue_wait = wait;
        self.webhook_gate = Arc::default();
        self
    }

    /// Verifies PortOne V2 webhooks with this secret (Standard Webhooks:
    /// HMAC-SHA256 over `id.timestamp.body`, a timestamp within 5 minutes):
    /// a notice that does not verify gets `401 invalid_signature` and causes
    /// no gateway call. Parse the secret at start-up with
    /// [`PortOneWebhookSecret::parse`], so a bad one stops the server rather
    /// than every notice. Without it, V2 notices are only a cue to fetch the
    /// payment (as V1's are). Unused on i'mport V1.
    #[must_use]
    pub fn portone_webhook_secret(mut self, secret: PortOneWebhookSecret) -> Self {
        self.portone_webhook_secret = Some(Arc::new(secret));
        self
    }

    /// The actix-web scope: `App::new().service(refunds.into_scope())`.
    ///
    /// Routes: `POST /cancel`, `POST /webhook`, `GET /openapi.json`
    /// (public), `GET /{merchant_uid}`, `POST /{merchant_uid}/sync`, under
    /// the prefix. The fixed routes are
    /// registered first, so `cancel` and `webhook` are never read as order
    /// ids. The scope owns its prefix: a host route under the same prefix
    /// must be registered before the scope to be reachable.
    pub fn into_scope(self) -> Scope {
        let limit = self.body_limit;
        let openapi = crate::openapi::document(&self.prefix)
            .to_json()
            .map(web::Bytes::from)
            .unwrap_or_default();
        let gateway = self.service.gateway_kind();
        let state = ScopeState {
            service: self.service,
            authorizer: self.authorizer,
            webhook_allowlist: self.webhook_allowlist,
            webhook_gate: Arc::clone(
                self.webhook_gate
                    .get_or_init(|| Arc::new(WebhookGate::new(self.webhook_limits))),
            ),
            portone_webhook_secret: self.portone_webhook_secret,
            body_limit: limit,
            openapi,
        };
        let mut scope = web::scope(&self.prefix)
            .app_data(web::Data::new(state))
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .content_type_required(true)
                    .error_handler(error::json_error_handler),
            )
            .app_data(
                web::FormConfig::default()
                    .limit(limit)
                    .error_handler(error::form_error_handler),
            )
            .app_data(web::PathConfig::default().error_handler(error::path_error_handler));
        for route in routes(gateway) {
            scope = scope.service(route.resource);
        }
        scope.default_service(web::to(|| async { ApiError::no_route().error_response() }))
    }

    /// The scope as an `App::configure` callback:
    /// `App::new().configure(refunds.configure())`.
    pub fn configure(self) -> impl FnOnce(&mut web::ServiceConfig) {
        move |config| {
            config.service(self.into_scope());
        }
    }
}

/// Lets the builder itself be mounted: `App::new().service(refunds)`.
impl HttpServiceFactory for RefundScope {
    fn register(self, config: &mut AppService) {
        self.into_scope().register(config);
    }
}

/// One route of the scope: what `into_scope` registers, and what the
/// OpenAPI document must describe (a test walks these).
#[cfg_attr(not(test), allow(dead_code))] // method and path: read by the OpenAPI test
pub(crate) struct Route {
    pub(crate) method: Method,
    /// Relative to the prefix, in OpenAPI's `{param}` notation.
    pub(crate) path: &'static str,
    pub(crate) resource: actix_web::Resource,
}

/// Every route, in registration order: the fixed paths first, so that
/// `cancel`, `webhook`, `openapi.json` and `refunds` are never read as
/// order ids. The webhook takes the configured gateway's shape only.
pub(crate) fn routes(gateway: GatewayKind) -> Vec<Route> {
    let route = |method: Method, path: &'static str, resource: actix_web::Resource| Route {
        method,
        path,
        resource,
    };
    vec![
        route(
            Method::POST,
            "/cancel",
            resource("/cancel", Method::POST).route(web::post().to(routes::cancel)),
        ),
        route(Method::POST, "/webhook", webhook_resource(gateway)),
        route(
            Method::GET,
            "/openapi.json",
            resource("/openapi.json", Method::GET)
                .route(web::get().to(crate::openapi::openapi_json)),
        ),
        route(
            Method::GET,
            "/refunds",
            resource("/refunds", Method::GET).route(web::get().to(routes::list_refunds)),
        ),
        route(
            Method::GET,
            "/{merchant_uid}",
            resource("/{merchant_uid}", Method::GET).route(web::get().to(routes::view)),
        ),
        route(
            Method::POST,
            "/{merchant_uid}/sync",
            resource("/{merchant_uid}/sync", Method::POST).route(web::post().to(routes::sync)),
        ),
        route(
            Method::POST,
            "/{merchant_uid}/review",
            resource("/{merchant_uid}/review", Method::POST).route(web::post().to(routes::review)),
        ),
    ]
}

/// `/webhook`: V1 notices as JSON or form-urlencoded; V2 notices as JSON.
fn webhook_resource(gateway: GatewayKind) -> actix_web::Resource {
    let resource = resource("/webhook", Method::POST);
    match gateway {
        GatewayKind::Portone => resource.route(web::post().to(crate::webhook::portone::webhook)),
        _ => resource
            .route(
                web::post()
                    .guard(guard::fn_guard(is_form))
                    .to(routes::webhook_form),
            )
            .route(web::post().to(routes::webhook_json)),
    }
}

/// A resource whose wrong-method answer is our JSON error with `Allow`.
fn resource(path: &str, method: Method) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || {
        let error = ApiError::method_not_allowed(method.clone());
        async move { error.error_response() }
    }))
}

/// True for form-urlencoded bodies (i'mport can send webhooks that way).
fn is_form(ctx: &GuardContext<'_>) -> bool {
    ctx.header::<ContentType>()
        .is_some_and(|ContentType(mime)| {
            mime.essence_str() == actix_web::mime::APPLICATION_WWW_FORM_URLENCODED.essence_str()
        })
}

/// What the routes of one scope share (private, so it can never collide
/// with the host's own `Data` types).
pub(crate) struct ScopeState {
    pub(crate) service: Arc<RefundService>,
    authorizer: Arc<dyn Authorizer>,
    webhook_allowlist: Option<Arc<[IpAddr]>>,
    /// The webhook flood bounds, shared by every worker of the scope.
    pub(crate) webhook_gate: Arc<WebhookGate>,
    /// Verifies PortOne V2 webhooks, when set.
    pub(crate) portone_webhook_secret: Option<Arc<PortOneWebhookSecret>>,
    /// Largest body read by hand (the V2 webhook, which needs raw bytes).
    pub(crate) body_limit: usize,
    /// `openapi.json`, rendered once for this scope's prefix.
    pub(crate) openapi: web::Bytes,
}

impl ScopeState {
    /// Asks the merchant's authorizer: who acts, or the error answer.
    pub(crate) async fn authorize(
        &self,
        request: &HttpRequest,
        action: Action<'_>,
    ) -> Result<Actor, ApiError> {
        match self.authorizer.authorize(request, action).await {
            Ok(actor) => Ok(actor),
            Err(Denied::Unauthorized) => {
                tracing::info!(
                    action = action.name(),
                    "refund route: caller not authenticated"
                );
                Err(ApiError::unauthorized(self.authorizer.challenge()))
            }
            Err(Denied::Forbidden) => {
                tracing::info!(action = action.name(), "refund route: caller not allowed");
                Err(ApiError::forbidden("not allowed to do this"))
            }
        }
    }

    /// Checks the webhook's TCP peer against the allowlist, if one is set.
    pub(crate) fn check_webhook_source(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let Some(allowed) = &self.webhook_allowlist else {
            return Ok(());
        };
        let peer = request.peer_addr().map(|addr| addr.ip().to_canonical());
        if peer.is_some_and(|ip| allowed.contains(&ip)) {
            return Ok(());
        }
        tracing::warn!(?peer, "webhook from a source outside the allowlist refused");
        Err(ApiError::forbidden(
            "webhooks are not accepted from this address",
        ))
    }
}
