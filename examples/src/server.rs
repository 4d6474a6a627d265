//! Wiring: configuration in, a running actix-web server with the refund
//! scope, the demo page, `/healthz` and the pending-refund sweep out.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use iamport_sandbox::Sandbox;
use rand::RngCore;
use refund_actix::{Actor, BearerTokenAuthorizer, RefundScope};
use refund_core::{BoxError, PaymentStore, RefundService, MAX_ACTOR_CHARS};
use tokio::task::JoinHandle;

use crate::backends;
use crate::demo::{self, PageConfig};
use crate::gateways;
use crate::observability;
use crate::settings::Settings;

/// Why the server did not start: one sentence naming the setting and the fix.
#[derive(Debug)]
pub struct StartupError(String);

impl StartupError {
    /// An error with this sentence.
    pub fn new(sentence: impl Into<String>) -> Self {
        StartupError(sentence.into())
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartupError {}

/// Boxes a start-up sentence as the error `start` returns.
fn refuse(sentence: impl Into<String>) -> BoxError {
    Box::new(StartupError::new(sentence))
}

/// How to make a good admin token, for the messages that ask for one.
const TOKEN_HINT: &str = "e.g. the output of `openssl rand -hex 24`";

/// A started merchant server. Stop it with [`RunningServer::stop`] or wait
/// for it (it stops on SIGINT/SIGTERM).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    handle: ServerHandle,
    server: JoinHandle<std::io::Result<()>>,
    sweeper: JoinHandle<()>,
    admin_token: String,
    page: PageConfig,
    // Kept alive for as long as the server runs.
    sandbox: Option<Sandbox>,
}

impl RunningServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token the refund routes accept.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The in-process sandbox, in sandbox mode.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// The demo orders seeded in sandbox mode.
    pub fn demo_orders(&self) -> &[String] {
        &self.page.merchant_uids
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.server.await.map_err(std::io::Error::other)?;
        self.sweeper.abort();
        result
    }

    /// Stops gracefully.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.sweeper.abort();
    }
}

/// Starts the merchant server `settings` describe.
pub async fn start(settings: Settings) -> Result<RunningServer, BoxError> {
    // First, so that the start-up calls are counted too.
    let metrics = observability::prometheus();
    gateways::check_consistent(&settings)?;
    let admin = Actor::new(settings.admin_name.clone()).map_err(|_| {
        refuse(format!(
            "REFUND_ADMIN_NAME is not a usable name: set it to the admin's user name, \
             1 to {MAX_ACTOR_CHARS} characters without control characters or surrounding spaces"
        ))
    })?;
    // Bound first (after the checks that need nothing bound): in V2 sandbox mode the sandbox delivers its webhooks to
    // this very server, so it must know the address.
    let listener = std::net::TcpListener::bind(settings.listen)
        .map_err(|error| describe_bind_error(settings.listen, &error))?;
    let addr = listener.local_addr()?;
    let sandbox = match settings.sandbox_mode() {
        true => Some(gateways::start_sandbox(&settings, &own_webhook_url(addr)).await?),
        false => None,
    };
    // A generated token may be shown (it only guards the demo); a
    // configured one never is.
    let generated = settings.admin_token.is_none();
    let admin_token = match (&settings.admin_token, &sandbox) {
        (Some(token), _) => token.clone(),
        (None, Some(_)) => random_token(),
        (None, None) => {
            return Err(refuse(format!(
                "REFUND_ADMIN_TOKEN is not set: outside sandbox mode the refund routes need \
                 it; set it to a secret of at least 16 visible ASCII characters ({TOKEN_HINT})"
            )))
        }
    };
    let authorizer = BearerTokenAuthorizer::new(admin_token.clone())
        .map_err(|weak| {
            refuse(format!(
                "REFUND_ADMIN_TOKEN is too weak: {weak}, without spaces; \
                 set a longer one ({TOKEN_HINT})"
            ))
        })?
        .actor(admin);

    let database_url = database_url(&settings)?;
    let store = backends::open_store(&database_url).await?;
    let tokens = backends::open_token_cache(settings.redis_url.as_deref()).await?;
    let gateway = gateways::open(&settings, sandbox.as_ref(), tokens).await?;
    tracing::info!(
        storage = %backends::describe_url(&database_url),
        token_cache = %settings.redis_url.as_deref().map_or_else(
            || "in memory".to_owned(),
            backends::describe_url,
        ),
        gateway = %gateway.description,
        "merchant server configured"
    );
    let mut service = RefundService::new(store.clone(), gateway.client);
    if let Some(ms) = settings.settle_after_ms {
        service = service.settle_after(Duration::from_millis(ms));
    }
    let service = Arc::new(service);
    let sweeper = tokio::spawn(service.clone().run_sweeper(settings.sweep_interval()));

    let page = PageConfig {
        sandbox: sandbox.is_some(),
        merchant_uids: match &sandbox {
            Some(sandbox) => demo::seed_payments(sandbox, &service).await?,
            None => Vec::new(),
        },
        admin_token: generated.then(|| admin_token.clone()),
    };
    let mut refunds = RefundScope::new(service, authorizer);
    if let Some(secret) = gateway.webhook_secret {
        refunds = refunds.portone_webhook_secret(secret);
    }
    let page_data = web::Data::new(page.clone());
    let store_data = web::Data::new(store);
    let metrics_data = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(observability::log_request))
            .app_data(page_data.clone())
            .app_data(store_data.clone())
            .app_data(metrics_data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(observability::render_metrics))
            .configure(demo::routes)
            .service(refunds.clone())
    })
    .disable_signals()
    .listen(listener)
    .map_err(|error| describe_bind_error(settings.listen, &error))?;
    let server = server.run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    stop_on_signals(handle.clone());

    if sandbox.is_some() {
        tracing::warn!(
            "SANDBOX MODE: payments and refunds are simulated by an in-process {} sandbox",
            match settings.gateway {
                crate::settings::GatewayChoice::Iamport => "i'mport V1",
                crate::settings::GatewayChoice::Portone => "PortOne V2",
            }
        );
        if generated {
            tracing::warn!("SANDBOX MODE: admin token for the refund routes: {admin_token}");
        }
    }
    tracing::info!(%addr, "merchant server listening: open http://{addr}/");
    Ok(RunningServer {
        addr,
        handle,
        server,
        sweeper,
        admin_token,
        page,
        sandbox,
    })
}

/// One sentence for a listen address that cannot be bound.
fn describe_bind_error(addr: SocketAddr, error: &std::io::Error) -> BoxError {
    let why = match error.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another process already listens there; stop it or set REFUND_LISTEN to a free \
             address (e.g. {}:{})",
            addr.ip(),
            addr.port().wrapping_add(1)
        ),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges); set REFUND_LISTEN to a \
             port above 1023"
                .to_owned()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this machine has no such address; set REFUND_LISTEN to one of its addresses \
             (e.g. 127.0.0.1:8080 or 0.0.0.0:8080)"
                .to_owned()
        }
        _ => format!("{error}; set REFUND_LISTEN to another address"),
    };
    refuse(format!("cannot listen on {addr} (REFUND_LISTEN): {why}"))
}

/// The server's own webhook route, as the in-process sandbox reaches it.
fn own_webhook_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!(
        "http://{host}:{}{}/webhook",
        addr.port(),
        refund_actix::DEFAULT_PREFIX
    )
}

/// The configured database, or a SQLite file under `./data`. In sandbox
/// mode that file starts empty each time, since the simulated gateway
/// forgets its payments on exit.
fn database_url(settings: &Settings) -> Result<String, BoxError> {
    if let Some(url) = &settings.database_url {
        return Ok(url.clone());
    }
    let dir = PathBuf::from("data");
    std::fs::create_dir_all(&dir).map_err(|error| {
        refuse(format!(
            "cannot create the folder ./data for the default SQLite database: {error}; \
             run from a writable folder or set REFUND_DATABASE_URL"
        ))
    })?;
    let file = dir.join(if settings.sandbox_mode() {
        "sandbox-demo.db"
    } else {
        "refunds.db"
    });
    if settings.sandbox_mode() {
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", file.display()));
            if path.exists() {
                std::fs::remove_file(&path).map_err(|error| {
                    refuse(format!(
                        "cannot remove the previous demo database {}: {error}; delete it \
                         or set REFUND_DATABASE_URL",
                        path.display()
                    ))
                })?;
            }
        }
    }
    Ok(format!("sqlite://{}?mode=rwc", file.display()))
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 200 when the store answers and accepts writes (`PaymentStore::ping`
/// probes a write), 503 otherwise: a read-only database cannot take
/// refunds, so the instance must leave the load balancer.
async fn healthz(store: web::Data<Arc<dyn PaymentStore>>) -> HttpResponse {
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(error) => {
            tracing::warn!(%error, "health check: store unreachable or not writable");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "storage_unavailable"}))
        }
    }
}

/// Stops gracefully on SIGINT or SIGTERM.
fn stop_on_signals(handle: ServerHandle) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        handle.stop(true).await;
    });
}
