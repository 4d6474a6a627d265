//! The demo merchant server: `cargo run --bin merchant-server`.
//!
//! With no configuration it runs in sandbox mode: SQLite under `./data`,
//! an in-process i'mport sandbox with demo payments, and a page at `/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use refund_examples::server;
use refund_examples::settings::Settings;

/// An actix-web merchant server with safe i'mport refunds mounted at
/// `/payments`. Settings come from `--config` and `REFUND_*` variables.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML file with any of: listen, database_url, redis_url,
    /// iamport_url, iamport_key, iamport_secret, admin_token,
    /// check_credentials and the tuning keys iamport_connect_timeout_ms,
    /// iamport_timeout_ms, settle_after_ms, sweep_interval_ms (other keys
    /// are refused). Environment variables (REFUND_LISTEN,
    /// REFUND_DATABASE_URL, ...) override it; unknown REFUND_* variables
    /// are refused.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    refund_examples::observability::init_logs();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One sentence naming the setting and the fix, never a Debug dump.
            eprintln!("merchant-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), refund_core::BoxError> {
    let settings = Settings::load(args.config.as_deref())?;
    let running = server::start(settings).await?;
    running.wait().await?;
    Ok(())
}
