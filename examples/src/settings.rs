//! The demo server's configuration: an optional TOML file overridden by
//! `REFUND_*` environment variables (DESIGN.md's table).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

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
            .finish()
    }
}

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
}
