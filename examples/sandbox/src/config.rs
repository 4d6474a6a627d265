//! How a sandbox is started.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// REST API key the sandbox accepts unless configured otherwise.
pub const DEFAULT_IMP_KEY: &str = "sandbox_key";
/// REST API secret the sandbox accepts unless configured otherwise.
pub const DEFAULT_IMP_SECRET: &str = "sandbox_secret";
/// Lifetime of an access token, as on the real gateway (30 minutes).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// Listen address for the standalone `iamport-sandbox` binary. The library
/// default is an ephemeral port instead, which is what tests want.
pub const CLI_DEFAULT_LISTEN: &str = "127.0.0.1:9090";

/// Everything a sandbox needs to start. Plain data (no CLI parser) so the
/// binary, tests, the demo server and the benchmark can all build one.
///
/// ```
/// use std::time::Duration;
/// use iamport_sandbox::SandboxConfig;
///
/// let config = SandboxConfig {
///     latency: Duration::from_millis(20),
///     ..SandboxConfig::default()
/// };
/// assert_eq!(config.imp_key, "sandbox_key");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Address to bind. Default `127.0.0.1:0`: an ephemeral port, read it back
    /// with [`Sandbox::addr`](crate::Sandbox::addr).
    pub listen: SocketAddr,
    /// The only REST API key `/users/getToken` accepts.
    pub imp_key: String,
    /// The secret that goes with `imp_key`.
    pub imp_secret: String,
    /// Token lifetime; shorten it to exercise expiry in tests.
    pub token_ttl: Duration,
    /// Added (as an async sleep) to every gateway call, never to the
    /// `/sandbox/...` control endpoints.
    pub latency: Duration,
    /// actix-web worker threads. Must be at least 1.
    pub workers: usize,
    /// Stop on SIGINT/SIGTERM (for the standalone binary). Off by default so
    /// that a sandbox embedded in tests never touches process signals.
    pub handle_signals: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            imp_key: DEFAULT_IMP_KEY.to_owned(),
            imp_secret: DEFAULT_IMP_SECRET.to_owned(),
            token_ttl: DEFAULT_TOKEN_TTL,
            latency: Duration::ZERO,
            workers: 2,
            handle_signals: false,
        }
    }
}
