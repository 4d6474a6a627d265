//! A local i'mport (PortOne V1) or PortOne V2 gateway for development:
//! `cargo run --bin iamport-sandbox [-- --api portone]`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use iamport_sandbox::{
    Api, Sandbox, SandboxConfig, WebhookTarget, CLI_DEFAULT_LISTEN, DEFAULT_API_SECRET,
    DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET, DEFAULT_WEBHOOK_SECRET,
};

/// A faithful local simulator of the i'mport V1 REST API (getToken, cancel,
/// payment lookups) or, with `--api portone`, of PortOne V2 (API-secret
/// login, payment lookup, cancel, signed webhooks), with seeding and
/// fault-injection control endpoints.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = CLI_DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Which API to serve: `iamport` (V1) or `portone` (V2).
    #[arg(long, default_value = "iamport")]
    api: Api,
    /// The V1 REST API key to accept.
    #[arg(long, default_value = DEFAULT_IMP_KEY)]
    imp_key: String,
    /// The V1 REST API secret to accept.
    #[arg(long, default_value = DEFAULT_IMP_SECRET)]
    imp_secret: String,
    /// The V2 API secret to accept (`--api portone`).
    #[arg(long, default_value = DEFAULT_API_SECRET)]
    api_secret: String,
    /// The V2 store id payments belong to (`--api portone`; default: the
    /// sandbox's own).
    #[arg(long)]
    store_id: Option<String>,
    /// Deliver signed V2 webhooks to this URL (`--api portone`).
    #[arg(long)]
    webhook_url: Option<String>,
    /// The Standard Webhooks secret (`whsec_...`) webhooks are signed with.
    #[arg(long, default_value = DEFAULT_WEBHOOK_SECRET, requires = "webhook_url")]
    webhook_secret: String,
    /// Latency added to every gateway call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("iamport-sandbox: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let sandbox = Sandbox::start(SandboxConfig {
        listen: args.listen,
        api: args.api,
        imp_key: args.imp_key,
        imp_secret: args.imp_secret,
        api_secret: args.api_secret,
        store_id: args.store_id,
        webhook: args.webhook_url.map(|url| WebhookTarget {
            url,
            secret: args.webhook_secret,
        }),
        latency: Duration::from_millis(args.latency_ms),
        handle_signals: true,
        ..SandboxConfig::default()
    })
    .await?;
    println!("{}", sandbox.banner());
    sandbox.wait().await
}
