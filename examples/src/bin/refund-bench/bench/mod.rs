//! `refund-bench`: refund throughput, latency and gateway calls of the
//! merchant server, against the ceiling of a bare forwarding handler
//! measured in the same run (BENCHMARKS.md has the results).
//!
//! A run starts the i'mport sandbox in this process (with the chosen added
//! latency), pays the payments there, then measures two servers, one after
//! the other and in the same way, each as a child process:
//!
//! 1. the baseline ([`baseline`]): forwards each request to the gateway's
//!    cancel endpoint and nothing else;
//! 2. the merchant server ([`child::serve_merchant`]) on a scratch
//!    database of the chosen backend ([`database`]), after importing its
//!    payments through the webhook route ([`seed`]).
//!
//! Each gets warm-up refunds, then the measured ones ([`load`]); the
//! sandbox's call counters and the child's `/proc` memory are read around
//! them, and [`report`] puts the figures side by side.
//!
//! - [`options`]: the command-line flags.
//! - [`child`]: running a server under test as a child process.

pub mod baseline;
pub mod child;
pub mod database;
pub mod load;
pub mod options;
pub mod relay;
pub mod report;
pub mod seed;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use iamport_sandbox::{Api, Sandbox, SandboxConfig};
use rand::Rng;
use refund_core::BoxError;

use child::ChildServer;
use database::ScratchDatabase;
use load::Target;
use options::{Backend, Gateway, Options, Stop};
use report::{Counted, GatewayCalls, Report, TargetResult};
use seed::SeededPayment;

/// The hidden argument that starts this executable as the merchant server.
pub const SERVE_MERCHANT: &str = "serve-merchant";
/// The hidden argument that starts this executable as the baseline.
pub const SERVE_BASELINE: &str = "serve-baseline";

/// A run's id: names its scratch database, payments and sandbox key, so
/// runs never collide (in a shared database, or in a shared Redis token
/// cache, whose key is the API key).
#[derive(Debug, Clone)]
pub struct RunId(String);

impl RunId {
    fn new() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        RunId(format!("{secs}_{:04x}", rand::thread_rng().gen::<u16>()))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs the benchmark `options` describe.
pub async fn run(options: Options) -> Result<Report, BoxError> {
    options.check()?;
    let run = RunId::new();
    let sandbox = Sandbox::start(SandboxConfig {
        latency: options.latency(),
        imp_key: format!("bench_{run}"),
        api_secret: format!("bench_v2_{run}"),
        api: match options.gateway {
            Gateway::Iamport => Api::Iamport,
            Gateway::Portone => Api::Portone,
        },
        ..SandboxConfig::default()
    })
    .await?;
    eprintln!("refund-bench: run {run}, sandbox at {}", sandbox.base_url());
    let baseline_payments = seed::pay(&sandbox, &format!("base-{run}"), options.payments)?;
    let merchant_payments = seed::pay(&sandbox, &format!("bench-{run}"), options.payments)?;

    eprintln!("refund-bench: measuring the baseline");
    let baseline = measure_baseline(&options, &sandbox, &baseline_payments).await?;

    let database = ScratchDatabase::create(&options, &run).await?;
    eprintln!(
        "refund-bench: measuring the merchant server on {}",
        options.backend.feature()
    );
    let merchant = measure_merchant(&options, &sandbox, &database, &merchant_payments).await;
    let counted = match &merchant {
        Ok(_) if options.count_refunds > 0 => {
            eprintln!(
                "refund-bench: counting database round trips over {} refunds",
                options.count_refunds
            );
            Some(count_round_trips(&options, &sandbox, &database, &merchant_payments).await)
        }
        _ => None,
    };
    if let Err(error) = database.remove().await {
        eprintln!("refund-bench: could not remove the scratch database: {error}");
    }
    let merchant = merchant?;
    let counted = counted.transpose()?;
    sandbox.stop().await;
    Ok(Report {
        options,
        run,
        baseline,
        merchant,
        counted,
    })
}

/// The gateway settings both children get. On V2 no webhook secret is
/// set: the import's notices are then only a cue to fetch the payment.
fn gateway_env(sandbox: &Sandbox, gateway: Gateway) -> BTreeMap<&'static str, String> {
    let mut env = BTreeMap::from([
        ("REFUND_LISTEN", "127.0.0.1:0".to_owned()),
        ("REFUND_GATEWAY", gateway.name().to_owned()),
    ]);
    match gateway {
        Gateway::Iamport => env.extend([
            ("REFUND_IAMPORT_URL", sandbox.base_url()),
            ("REFUND_IAMPORT_KEY", sandbox.imp_key().to_owned()),
            ("REFUND_IAMPORT_SECRET", sandbox.imp_secret().to_owned()),
        ]),
        Gateway::Portone => env.extend([
            ("REFUND_PORTONE_URL", sandbox.base_url()),
            ("REFUND_PORTONE_SECRET", sandbox.api_secret().to_owned()),
        ]),
    }
    env
}

async fn measure_baseline(
    options: &Options,
    sandbox: &Sandbox,
    payments: &[SeededPayment],
) -> Result<TargetResult, BoxError> {
    let before = sandbox.stats();
    let child = ChildServer::spawn(SERVE_BASELINE, gateway_env(sandbox, options.gateway)).await?;
    let target = Target {
        cancel_url: format!("http://{}/payments/cancel", child.addr()),
        admin_token: String::new(),
    };
    measure(options, sandbox, child, target, payments, &before).await
}

async fn measure_merchant(
    options: &Options,
    sandbox: &Sandbox,
    database: &ScratchDatabase,
    payments: &[SeededPayment],
) -> Result<TargetResult, BoxError> {
    let admin_token = format!("bench-admin-{}", rand::thread_rng().gen::<u64>());
    let mut env = gateway_env(sandbox, options.gateway);
    env.insert("REFUND_DATABASE_URL", database.url().to_owned());
    env.insert("REFUND_ADMIN_TOKEN", admin_token.clone());
    if let Some(redis) = options.redis_url() {
        env.insert("REFUND_REDIS_URL", redis.to_owned());
    }
    let before = sandbox.stats();
    let child = ChildServer::spawn(SERVE_MERCHANT, env).await?;
    let base_url = format!("http://{}", child.addr());
    eprintln!("refund-bench: importing {} payments", payments.len());
    seed::import(
        &load::http_client(32)?,
        &base_url,
        payments,
        options.gateway,
    )
    .await?;
    let target = Target {
        cancel_url: format!("{base_url}/payments/cancel"),
        admin_token,
    };
    measure(options, sandbox, child, target, payments, &before).await
}

/// The counting pass: a fresh merchant server on the same database (its
/// payments are already imported), whose database connections go through
/// a [`relay::Relay`] (network backends), 4 warm-up refunds, then
/// `--count-refunds` refunds one at a time; the relay's round trips and
/// the store's statements are read around them.
async fn count_round_trips(
    options: &Options,
    sandbox: &Sandbox,
    database: &ScratchDatabase,
    payments: &[SeededPayment],
) -> Result<Counted, BoxError> {
    let (relay, url) = match options.backend {
        Backend::Sqlite => (None, database.url().to_owned()),
        _ => {
            let (_, target) = relay::through(database.url(), "127.0.0.1:1".parse()?).await?;
            let relay = relay::Relay::start(target).await?;
            let (url, _) = relay::through(database.url(), relay.addr()).await?;
            (Some(relay), url)
        }
    };
    let admin_token = format!("bench-admin-{}", rand::thread_rng().gen::<u64>());
    let mut env = gateway_env(sandbox, options.gateway);
    env.insert("REFUND_DATABASE_URL", url);
    env.insert("REFUND_ADMIN_TOKEN", admin_token.clone());
    if let Some(redis) = options.redis_url() {
        env.insert("REFUND_REDIS_URL", redis.to_owned());
    }
    let mut child = ChildServer::spawn(SERVE_MERCHANT, env).await?;
    let target = Arc::new(Target {
        cancel_url: format!("http://{}/payments/cancel", child.addr()),
        admin_token,
    });
    let client = load::http_client(1)?;
    let uids: Arc<[String]> = payments.iter().map(|p| p.merchant_uid.clone()).collect();
    load::drive(&client, &target, &uids, 1, Stop::AfterRefunds(4)).await?;
    let trips_before = relay.as_ref().map(relay::Relay::round_trips);
    let statements_before = child.statements_sent();
    let load = load::drive(
        &client,
        &target,
        &uids,
        1,
        Stop::AfterRefunds(options.count_refunds),
    )
    .await?;
    let trips_after = relay.as_ref().map(relay::Relay::round_trips);
    let statements_after = child.statements_sent();
    drop(client);
    child.stop().await?;
    let sql = !matches!(options.backend, Backend::Mongo);
    Ok(Counted {
        refunds: load.refunded(),
        failed: load.failed(),
        round_trips: trips_after.zip(trips_before).map(|(a, b)| a - b),
        statements: statements_after
            .zip(statements_before)
            .filter(|_| sql)
            .map(|(a, b)| a - b),
    })
}

/// Warm-up, then the measured refunds, then the child's memory; stops the
/// child. `started` is the sandbox's counters from before the child started.
async fn measure(
    options: &Options,
    sandbox: &Sandbox,
    child: ChildServer,
    target: Target,
    payments: &[SeededPayment],
    started: &iamport_sandbox::Stats,
) -> Result<TargetResult, BoxError> {
    let client = load::http_client(options.concurrency)?;
    let target = Arc::new(target);
    let uids: Arc<[String]> = payments.iter().map(|p| p.merchant_uid.clone()).collect();
    let warmup = load::drive(
        &client,
        &target,
        &uids,
        options.concurrency,
        Stop::AfterRefunds(options.warmup_refunds()),
    )
    .await?;
    let before = sandbox.stats();
    let cpu_before = child.cpu_time();
    let load = load::drive(&client, &target, &uids, options.concurrency, options.stop()).await?;
    let after = sandbox.stats();
    let cpu = child
        .cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let peak_rss_kib = child.peak_rss_kib();
    drop(client);
    child.stop().await?;
    Ok(TargetResult {
        warmup,
        load,
        measured_calls: GatewayCalls::between(&before, &after),
        lifetime_calls: GatewayCalls::between(started, &sandbox.stats()),
        cpu,
        peak_rss_kib,
    })
}
