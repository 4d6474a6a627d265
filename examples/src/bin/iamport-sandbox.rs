//! A local i'mport (PortOne V1) for development: `cargo run --bin iamport-sandbox`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use iamport_sandbox::{
    Sandbox, SandboxConfig, CLI_DEFAULT_LISTEN, DEFAULT_IMP_KEY, DEFAULT_IMP_SECRET,
};

/// A faithful local simulator of the i'mport V1 REST API (getToken, cancel,
/// payment lookups) with seeding and fault-injection control endpoints.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = CLI_DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The REST API key to accept.
    #[arg(long, default_value = DEFAULT_IMP_KEY)]
    imp_key: String,
    /// The REST API secret to accept.
    #[arg(long, default_value = DEFAULT_IMP_SECRET)]
    imp_secret: String,
    /// Latency added to every gateway call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let sandbox = Sandbox::start(SandboxConfig {
        listen: args.listen,
        imp_key: args.imp_key,
        imp_secret: args.imp_secret,
        latency: Duration::from_millis(args.latency_ms),
        handle_signals: true,
        ..SandboxConfig::default()
    })
    .await?;
    println!("{}", sandbox.banner());
    sandbox.wait().await
}
