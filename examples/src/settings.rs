//! The demo server's configuration: an optional TOML file overridden by
//! `REFUND_*` environment variables (DESIGN.md's table).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use config::{Config, Environment, File};
use serde::Deserialize;

/// Everything `merchant-server` can be told.
#[derive(Clone, Deserialize)]
pub struct Settings {
    /// `REFUND_LISTEN`: bind address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `REFUND_DATABASE_URL`: `sqlite://`, `postgres://`, `mysql://` or
    /// `mongodb://`; unset means a SQLite file in `./data`.
    pub database_url: Option<String>,
    /// `REFUND_REDIS_URL`: Redis for the shared token cache; unset means in memory.
    pub redis_url: Option<String>,
    /// `REFUND_IAMPORT_URL`: i'mport's base URL; unset means the in-process sandbox.
    pub iamport_url: Option<String>,
    /// `REFUND_IAMPORT_KEY`: REST API key.
    pub iamport_key: Option<String>,
    /// `REFUND_IAMPORT_SECRET`: REST API secret.
    pub iamport_secret: Option<String>,
    /// `REFUND_ADMIN_TOKEN`: the bearer token the demo authorizer accepts.
    pub admin_token: Option<String>,
    /// `REFUND_IAMPORT_CONNECT_TIMEOUT_MS`: the i'mport client's connect
    /// timeout; unset means refund-core's default (3 s).
    pub iamport_connect_timeout_ms: Option<u64>,
    /// `REFUND_IAMPORT_TIMEOUT_MS`: the i'mport client's whole-call timeout;
    /// unset means refund-core's default (15 s).
    pub iamport_timeout_ms: Option<u64>,
    /// `REFUND_SETTLE_AFTER_MS`: how old a pending refund the gateway does
    /// not show must be before it is declared failed; unset means
    /// refund-core's default (the client's in-flight bound plus 30 s), and
    /// it is never less than that bound.
    pub settle_after_ms: Option<u64>,
    /// `REFUND_SWEEP_INTERVAL_MS`: how often the sweep of stale pending
    /// refunds runs; unset means every 30 s.
    pub sweep_interval_ms: Option<u64>,
}

/// Settings with every documented default: what an empty environment gives.
impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: default_listen(),
            database_url: None,
            redis_url: None,
            iamport_url: None,
            iamport_key: None,
            iamport_secret: None,
            admin_token: None,
            iamport_connect_timeout_ms: None,
            iamport_timeout_ms: None,
            settle_after_ms: None,
            sweep_interval_ms: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redacted(&self.database_url))
            .field("redis_url", &redacted(&self.redis_url))
            .field("iamport_url", &self.iamport_url)
            .field("iamport_key", &self.iamport_key)
            .field("iamport_secret", &redacted(&self.iamport_secret))
            .field("admin_token", &redacted(&self.admin_token))
            .field(
                "iamport_connect_timeout_ms",
                &self.iamport_connect_timeout_ms,
            )
            .field("iamport_timeout_ms", &self.iamport_timeout_ms)
            .field("settle_after_ms", &self.settle_after_ms)
            .field("sweep_interval_ms", &self.sweep_interval_ms)
            .finish()
    }
}

/// How often the sweep looks for refunds whose outcome is still unknown,
/// unless `REFUND_SWEEP_INTERVAL_MS` says otherwise.
const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Settings {
    /// Reads `file` (if given) and then the environment, which wins.
    pub fn load(file: Option<&Path>) -> Result<Settings, config::ConfigError> {
        let mut builder = Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(File::from(file).required(true));
        }
        builder
            .add_source(Environment::with_prefix("REFUND").try_parsing(false))
            .build()?
            .try_deserialize()
    }

    /// True when no i'mport URL is configured: run against the in-process sandbox.
    pub fn sandbox_mode(&self) -> bool {
        self.iamport_url.is_none()
    }

    /// How often the pending-refund sweep runs (0 is read as 1 ms, since a
    /// timer cannot tick every 0 ms).
    pub fn sweep_interval(&self) -> Duration {
        self.sweep_interval_ms.map_or(DEFAULT_SWEEP_INTERVAL, |ms| {
            Duration::from_millis(ms.max(1))
        })
    }
}
