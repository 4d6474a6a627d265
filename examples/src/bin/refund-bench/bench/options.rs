//! What a benchmark run is told: backend, token cache, gateway latency,
//! data set, concurrency and how long to run.

use std::time::Duration;

use clap::{Args, ValueEnum};
use refund_core::BoxError;

/// The storage backend the merchant server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A fresh SQLite file in the system temp dir (`$TMPDIR`).
    Sqlite,
    /// A fresh database on a PostgreSQL server.
    Postgres,
    /// A fresh database on a MySQL or MariaDB server.
    Mysql,
    /// A fresh database on a MongoDB(-wire-compatible) server.
    Mongo,
}

impl Backend {
    /// The cargo feature of `refund-examples` that compiles it in.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Mongo => "mongo",
        }
    }

    /// Whether this build has it.
    pub fn compiled(self) -> bool {
        match self {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::Mysql => cfg!(feature = "mysql"),
            Backend::Mongo => cfg!(feature = "mongo"),
        }
    }

    /// The server the scratch database goes on when `--database-url` is not
    /// given: the local services the test suite uses.
    pub fn default_server_url(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("postgres://postgres@127.0.0.1:5432/test"),
            Backend::Mysql => Some("mysql://root@127.0.0.1:3306/test"),
            Backend::Mongo => Some("mongodb://127.0.0.1:27017/refund_bench"),
        }
    }
}

/// The API the sandbox, the baseline and the merchant server speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Gateway {
    /// i'mport's V1 REST API.
    Iamport,
    /// PortOne V2.
    Portone,
}

impl Gateway {
    /// The name `REFUND_GATEWAY` takes.
    pub fn name(self) -> &'static str {
        match self {
            Gateway::Iamport => "iamport",
            Gateway::Portone => "portone",
        }
    }
}

/// How much load one target gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// This many refunds in total.
    AfterRefunds(u64),
    /// As many refunds as fit in this time.
    After(Duration),
}

/// The benchmark's command-line options.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Storage backend of the merchant server. Each needs its cargo feature
    /// of refund-examples (sqlite is the default one).
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    pub backend: Backend,

    /// Server on which each run creates (and afterwards drops) its own
    /// scratch database, `refund_bench_<run id>`; the URL's own database is
    /// only connected to for that. Defaults:
    /// postgres://postgres@127.0.0.1:5432/test, mysql://root@127.0.0.1:3306/test,
    /// mongodb://127.0.0.1:27017/refund_bench. Not used with sqlite, whose
    /// scratch file goes in $TMPDIR.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// The gateway API: the sandbox serves it, the baseline forwards to it
    /// and the merchant server runs with `REFUND_GATEWAY` set to it.
    #[arg(long, value_enum, default_value_t = Gateway::Iamport)]
    pub gateway: Gateway,

    /// Keep the i'mport token in Redis (the shared token cache) instead of
    /// the server's memory. Needs the `redis` feature.
    #[arg(long)]
    pub redis: bool,

    /// Redis used by --redis.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Latency the sandbox adds to every gateway call, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,

    /// Payments seeded for each target. Refunds go round-robin over them,
    /// each worker owning its own share, so at most one refund per payment
    /// is in flight. Must be at least --concurrency.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub payments: u64,

    /// Refund requests in flight at once (one worker each, over a
    /// keep-alive connection pool).
    #[arg(long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,

    /// Measured refunds per target (the default unless --duration-secs).
    #[arg(long, value_name = "N", default_value_t = 2000, conflicts_with = "duration_secs",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub refunds: u64,

    /// Measure each target for this many seconds instead of a refund count.
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration_secs: Option<u64>,

    /// Unmeasured refunds sent to each target first, to open connections
    /// and warm caches. Default: 4 per worker.
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,

    /// Refunds of the counting pass that follows the measurement: a fresh
    /// merchant server on the same scratch database, one refund at a time,
    /// whose database traffic goes through a counting TCP relay (SQLite:
    /// the store's statement counter). 0 skips it.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub count_refunds: u64,
}

impl Options {
    /// Refuses combinations that would measure the wrong thing, and
    /// backends this build lacks (naming the feature to add).
    pub fn check(&self) -> Result<(), BoxError> {
        let feature_missing = |feature: &str, flag: &str| -> BoxError {
            format!(
                "{flag} needs the `{feature}` feature, which this build lacks: \
                 cargo run --release --bin refund-bench --features {feature} -- {flag} ..."
            )
            .into()
        };
        if !self.backend.compiled() {
            let flag = format!("--backend {}", self.backend.feature());
            return Err(feature_missing(self.backend.feature(), &flag));
        }
        if self.redis && !cfg!(feature = "redis") {
            return Err(feature_missing("redis", "--redis"));
        }
        if self.backend == Backend::Sqlite && self.database_url.is_some() {
            return Err("--database-url is for postgres, mysql and mongo; \
                        sqlite uses a fresh file in $TMPDIR"
                .into());
        }
        if self.payments < self.concurrency {
            return Err(format!(
                "--payments ({}) must be at least --concurrency ({}): each worker \
                 needs a payment of its own, or refunds of one payment would race \
                 and measure refund_in_progress answers",
                self.payments, self.concurrency
            )
            .into());
        }
        Ok(())
    }

    /// How long each target is measured.
    pub fn stop(&self) -> Stop {
        match self.duration_secs {
            Some(secs) => Stop::After(Duration::from_secs(secs)),
            None => Stop::AfterRefunds(self.refunds),
        }
    }

    /// Unmeasured refunds per target.
    pub fn warmup_refunds(&self) -> u64 {
        self.warmup.unwrap_or(self.concurrency.saturating_mul(4))
    }

    /// The sandbox's added latency.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// The server the scratch database goes on, if the backend has one.
    pub fn database_server_url(&self) -> Option<&str> {
        self.database_url
            .as_deref()
            .or(self.backend.default_server_url())
    }

    /// The Redis token cache's URL, when it is used.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis.then_some(self.redis_url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, ValueEnum};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Cli::try_parse_from(std::iter::once("refund-bench").chain(args.iter().copied()))
            .map(|cli| cli.options)
    }

    #[test]
    fn defaults_measure_a_refund_count_after_a_warm_up_per_worker() {
        let options = parse(&["--concurrency", "8"]).unwrap();
        assert_eq!(options.stop(), Stop::AfterRefunds(2000));
        assert_eq!(options.warmup_refunds(), 32);
        assert_eq!(options.redis_url(), None);
        options.check().unwrap();
    }

    #[test]
    fn a_duration_replaces_the_refund_count_but_not_both() {
        let options = parse(&["--duration-secs", "5"]).unwrap();
        assert_eq!(options.stop(), Stop::After(Duration::from_secs(5)));
        assert!(parse(&["--duration-secs", "5", "--refunds", "10"]).is_err());
    }

    #[test]
    fn fewer_payments_than_workers_are_refused() {
        let options = parse(&["--payments", "4", "--concurrency", "8"]).unwrap();
        let error = options.check().unwrap_err().to_string();
        assert!(error.contains("--payments (4)"), "{error}");
    }

    #[test]
    fn a_backend_this_build_lacks_is_refused_naming_its_feature() {
        for backend in Backend::value_variants() {
            if backend.compiled() {
                continue;
            }
            let name = backend.feature();
            let error = parse(&["--backend", name])
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("--features {name}")), "{error}");
        }
    }

    #[test]
    fn the_database_url_is_the_default_server_unless_given() {
        let options = parse(&["--backend", "postgres"]).unwrap();
        assert_eq!(
            options.database_server_url(),
            Some("postgres://postgres@127.0.0.1:5432/test")
        );
        let options = parse(&["--backend", "mysql", "--database-url", "mysql://u@db/x"]).unwrap();
        assert_eq!(options.database_server_url(), Some("mysql://u@db/x"));
        let sqlite = parse(&["--database-url", "sqlite://x.db"]).unwrap();
        assert!(sqlite.check().is_err());
    }
}
