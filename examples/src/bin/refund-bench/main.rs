//! The refund benchmark: `cargo run --release --bin refund-bench -- --help`.
//!
//! Measures the merchant server's refunds against a bare forwarding
//! handler in the same run; BENCHMARKS.md explains the figures.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;

use bench::options::Options;

/// Measures refund throughput, latency (p50/p90/p99/max), gateway calls per
/// refund and server memory of the merchant server on a storage backend,
/// against a bare actix handler that forwards each refund straight to the
/// gateway (the ceiling), both driven the same way over real HTTP at the
/// i'mport sandbox.
///
/// Backends are cargo features of refund-examples, e.g.
/// `cargo run --release --bin refund-bench --features postgres,redis --
/// --backend postgres --redis --concurrency 64`.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    options: Options,
}

/// The servers under test are this executable started again in a role.
#[derive(Debug, Subcommand)]
enum Role {
    /// Runs the merchant server configured by REFUND_* variables.
    #[command(name = bench::SERVE_MERCHANT, hide = true)]
    ServeMerchant,
    /// Runs the baseline forwarder configured by REFUND_* variables.
    #[command(name = bench::SERVE_BASELINE, hide = true)]
    ServeBaseline,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.role {
        Some(Role::ServeMerchant) => bench::child::serve_merchant().await,
        Some(Role::ServeBaseline) => bench::baseline::serve().await,
        None => bench::run(cli.options)
            .await
            .map(|report| print!("{report}")),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("refund-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
