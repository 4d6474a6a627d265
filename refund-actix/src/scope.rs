//! [`RefundScope`]: the builder a merchant mounts, and the per-scope state
//! its routes share.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::guard::{self, GuardContext};
use actix_web::http::header::ContentType;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, ResponseError, Scope};
use refund_core::{Actor, RefundService};

use crate::authorize::{Action, Authorizer, Denied};
use crate::error::{self, ApiError};
use crate::routes;

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
}

impl fmt::Debug for RefundScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundScope")
            .field("prefix", &self.prefix)
            .field("body_limit", &self.body_limit)
            .field("webhook_allowlist", &self.webhook_allowlist)
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
        let state = ScopeState {
            service: self.service,
            authorizer: self.authorizer,
            webhook_allowlist: self.webhook_allowlist,
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
        for route in routes() {
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
/// order ids.
pub(crate) fn routes() -> Vec<Route> {
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
        route(
            Method::POST,
            "/webhook",
            resource("/webhook", Method::POST)
                .route(
                    web::post()
                        .guard(guard::fn_guard(is_form))
                        .to(routes::webhook_form),
                )
                .route(web::post().to(routes::webhook_json)),
        ),
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
