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
    /// `REFUND_ADMIN_NAME`: who the token's holder acts as, recorded in the
    /// journal as `requested_by` and `resolved_by` (default `admin`).
    #[serde(default = "default_admin_name")]
    pub admin_name: String,
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
    /// `REFUND_CHECK_CREDENTIALS`: outside sandbox mode, ask i'mport for an
    /// access token once at start and refuse to start if it refuses the
    /// key and secret (default `true`). The token is cached and used by the
    /// first refund.
    #[serde(default = "default_true")]
    pub check_credentials: bool,
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
            admin_name: default_admin_name(),
            iamport_connect_timeout_ms: None,
            iamport_timeout_ms: None,
            settle_after_ms: None,
            sweep_interval_ms: None,
            check_credentials: true,
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
            .field("admin_name", &self.admin_name)
            .field(
                "iamport_connect_timeout_ms",
                &self.iamport_connect_timeout_ms,
            )
            .field("iamport_timeout_ms", &self.iamport_timeout_ms)
            .field("settle_after_ms", &self.settle_after_ms)
            .field("sweep_interval_ms", &self.sweep_interval_ms)
            .field("check_credentials", &self.check_credentials)
            .finish()
    }
}

/// How often the sweep looks for refunds whose outcome is still unknown,
/// unless `REFUND_SWEEP_INTERVAL_MS` says otherwise.
const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

fn default_true() -> bool {
    true
}

fn default_admin_name() -> String {
    refund_actix::DEFAULT_ADMIN_ACTOR.to_owned()
}

/// Every key `merchant-server` knows: the configuration file's keys, and in
/// upper case after `REFUND_`, the environment variables.
pub const KEYS: [&str; 13] = [
    "listen",
    "database_url",
    "redis_url",
    "iamport_url",
    "iamport_key",
    "iamport_secret",
    "admin_token",
    "admin_name",
    "iamport_connect_timeout_ms",
    "iamport_timeout_ms",
    "settle_after_ms",
    "sweep_interval_ms",
    "check_credentials",
];

/// Why the settings could not be read: one sentence naming the setting and
/// the fix.
#[derive(Debug)]
pub struct SettingsError(String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Settings {
    /// Reads `file` (if given) and then the environment, which wins.
    ///
    /// Unknown `REFUND_*` variables and unknown keys of the file are
    /// refused by name (a typo must not silently fall back to a default).
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::load_from(file, std::env::vars_os())
    }

    /// [`load`](Self::load) with the environment given.
    pub fn load_from(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<Settings, SettingsError> {
        let mut variables = config::Map::new();
        for (name, value) in environment {
            let Some(name) = name.to_str() else { continue };
            let Some(key) = name.strip_prefix("REFUND_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if !KEYS.contains(&key.as_str()) {
                return Err(SettingsError(format!(
                    "unknown environment variable {name}{}: unset it or rename it",
                    suggestion(&key, |k| format!("REFUND_{}", k.to_ascii_uppercase()))
                )));
            }
            let Some(value) = value.to_str() else {
                return Err(SettingsError(format!(
                    "{name} is not valid UTF-8: set it to plain text"
                )));
            };
            variables.insert(name.to_owned(), value.to_owned());
        }
        let mut builder = Config::builder();
        if let Some(file) = file {
            let shown = file.display();
            if let Err(error) = std::fs::metadata(file) {
                return Err(SettingsError(format!(
                    "cannot read the configuration file {shown} (--config): {error}; \
                     give the path of an existing TOML file"
                )));
            }
            let source = File::from(file).required(true);
            let table = config::Source::collect(&source).map_err(|e| {
                SettingsError(format!(
                    "the configuration file {shown} (--config) cannot be read as TOML: {e}"
                ))
            })?;
            if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(SettingsError(format!(
                    "unknown key `{key}` in the configuration file {shown}{}: remove or rename it",
                    suggestion(key, |k| format!("`{k}`"))
                )));
            }
            builder = builder.add_source(source);
        }
        builder
            .add_source(
                Environment::with_prefix("REFUND")
                    .try_parsing(false)
                    .source(Some(variables)),
            )
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|error| SettingsError(describe_config_error(&error)))
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

/// `, did you mean X?` for the known key closest to `key`, if one is close.
fn suggestion(key: &str, spell: impl Fn(&str) -> String) -> String {
    KEYS.iter()
        .map(|known| (edit_distance(key, known), known))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, known)| format!(" (did you mean {}?)", spell(known)))
        .unwrap_or_default()
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// A value that does not parse, named by its variable and file key.
fn describe_config_error(error: &config::ConfigError) -> String {
    let text = error.to_string();
    let key = text
        .split("for key `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .map(|key| key.trim_start_matches("refund_").to_ascii_lowercase());
    match key {
        Some(key) => format!(
            "invalid value for REFUND_{} (or `{key}` in the configuration file): {}; \
             correct it or unset it for the default",
            key.to_ascii_uppercase(),
            text.split(" for key `").next().unwrap_or(&text)
        ),
        None => format!("invalid configuration: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn a_misspelled_variable_is_refused_by_name() {
        let error = Settings::load_from(None, env(&[("REFUND_DATABSE_URL", "postgres://x")]))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("REFUND_DATABSE_URL"), "{error}");
        assert!(
            error.contains("did you mean REFUND_DATABASE_URL?"),
            "{error}"
        );
    }

    #[test]
    fn known_variables_are_read_and_others_ignored() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("REFUND_LISTEN", "127.0.0.1:9999"),
                ("REFUND_CHECK_CREDENTIALS", "false"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.listen.port(), 9999);
        assert!(!settings.check_credentials);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = Settings::load_from(None, env(&[("REFUND_LISTEN", "localhost")]))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("REFUND_LISTEN"), "{error}");
    }

    #[test]
    fn unknown_file_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\ndatabase_ulr = \"x\"\n").unwrap();
        let error = Settings::load_from(Some(&path), env(&[]))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("`database_ulr`"), "{error}");
        assert!(error.contains("did you mean `database_url`?"), "{error}");
    }
}
