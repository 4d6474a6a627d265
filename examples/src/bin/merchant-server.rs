//! The demo merchant server: `cargo run --bin merchant-server`.
//!
//! With no configuration it runs in sandbox mode: SQLite under `./data`,
//! an in-process i'mport sandbox with demo payments, and a page at `/`.

use std::path::PathBuf;

use clap::Parser;
use refund_examples::server;
use refund_examples::settings::Settings;

/// An actix-web merchant server with safe i'mport refunds mounted at
/// `/payments`. Settings come from `--config` and `REFUND_*` variables.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML file with any of: listen, database_url, redis_url,
    /// iamport_url, iamport_key, iamport_secret, admin_token and the tuning
    /// keys iamport_connect_timeout_ms, iamport_timeout_ms, settle_after_ms,
    /// sweep_interval_ms. Environment variables (REFUND_LISTEN,
    /// REFUND_DATABASE_URL, ...) override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), refund_core::BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref())?;
    let running = server::start(settings).await?;
    running.wait().await?;
    Ok(())
}
