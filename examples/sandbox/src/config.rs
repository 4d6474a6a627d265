//! How a sandbox is started.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// REST API key the sandbox accepts unless configured otherwise.
pub const DEFAULT_IMP_KEY: &str = "sandbox_key";
/// REST API secret the sandbox accepts unless configured otherwise.
pub const DEFAULT_IMP_SECRET: &str = "sandbox_secret";
/// PortOne V2 API secret the sandbox accepts unless configured otherwise.
pub const DEFAULT_API_SECRET: &str = "sandbox_v2_secret";
/// Store id of the sandbox's one V2 store when none is configured.
pub const DEFAULT_STORE_ID: &str = "store-00000000-0000-4000-8000-000000000000";
/// A valid Standard Webhooks secret (`whsec_` and a base64 key) for V2
/// webhooks when none is configured.
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec_aWFtcG9ydC1zYW5kYm94LXdlYmhvb2sta2V5LTAwMDE=";
/// Lifetime of an access token, as on the real gateway (30 minutes).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// Listen address for the standalone `iamport-sandbox` binary. The library
/// default is an ephemeral port instead, which is what tests want.
pub const CLI_DEFAULT_LISTEN: &str = "127.0.0.1:9090";

/// Which gateway API the sandbox serves. One sandbox speaks one API, as a
/// merchant's account does: the other API's routes answer 404.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Api {
    /// The classic i'mport REST API (PortOne V1): `/users/getToken`,
    /// `/payments/cancel`, `/payments/{imp_uid}`, `/payments/find/...`.
    #[default]
    Iamport,
    /// PortOne V2: `/login/api-secret`, `/token/refresh`,
    /// `GET /payments/{paymentId}`, `POST /payments/{paymentId}/cancel`,
    /// and signed webhooks.
    Portone,
}

impl Api {
    /// The name used by the binary's `--api` flag (`iamport`, `portone`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Iamport => "iamport",
            Self::Portone => "portone",
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An API name that is neither `iamport` nor `portone`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API {0:?}: expected `iamport` or `portone`")]
pub struct UnknownApi(pub String);

impl std::str::FromStr for Api {
    type Err = UnknownApi;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "iamport" | "v1" => Ok(Self::Iamport),
            "portone" | "v2" => Ok(Self::Portone),
            _ => Err(UnknownApi(s.to_owned())),
        }
    }
}

/// Where V2 webhooks go and the secret they are signed with.
///
/// `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The merchant's webhook URL; every notice is `POST`ed there as JSON.
    pub url: String,
    /// Standard Webhooks secret: `whsec_` followed by the base64 of the HMAC
    /// key (e.g. [`DEFAULT_WEBHOOK_SECRET`]).
    pub secret: String,
}

impl WebhookTarget {
    /// A target at `url` signed with [`DEFAULT_WEBHOOK_SECRET`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: DEFAULT_WEBHOOK_SECRET.to_owned(),
        }
    }
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Everything a sandbox needs to start. Plain data (no CLI parser) so the
/// binary, tests, the demo server and the benchmark can all build one.
///
/// ```
/// use std::time::Duration;
/// use iamport_sandbox::{Api, SandboxConfig};
///
/// let config = SandboxConfig {
///     latency: Duration::from_millis(20),
///     ..SandboxConfig::default()
/// };
/// assert_eq!(config.imp_key, "sandbox_key");
/// assert_eq!(config.api, Api::Iamport);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Address to bind. Default `127.0.0.1:0`: an ephemeral port, read it back
    /// with [`Sandbox::addr`](crate::Sandbox::addr).
    pub listen: SocketAddr,
    /// Which API to serve. Default [`Api::Iamport`].
    pub api: Api,
    /// The only REST API key `/users/getToken` accepts (V1).
    pub imp_key: String,
    /// The secret that goes with `imp_key` (V1).
    pub imp_secret: String,
    /// The V2 API secret: accepted as `Authorization: PortOne <secret>` and
    /// by `/login/api-secret`.
    pub api_secret: String,
    /// The V2 store id. `None`: the store is [`DEFAULT_STORE_ID`]. A request
    /// naming another store is refused with 403 `FORBIDDEN`.
    pub store_id: Option<String>,
    /// V2 only: deliver signed webhooks when a payment or a cancellation
    /// changes. Refused at start in V1 mode.
    pub webhook: Option<WebhookTarget>,
    /// Access-token lifetime (both APIs); shorten it to exercise expiry in
    /// tests. V2 refresh tokens live a day, or this long if it is longer.
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

impl SandboxConfig {
    /// The store id V2 payments belong to: `store_id` or
    /// [`DEFAULT_STORE_ID`].
    pub fn effective_store_id(&self) -> &str {
        self.store_id.as_deref().unwrap_or(DEFAULT_STORE_ID)
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            api: Api::default(),
            imp_key: DEFAULT_IMP_KEY.to_owned(),
            imp_secret: DEFAULT_IMP_SECRET.to_owned(),
            api_secret: DEFAULT_API_SECRET.to_owned(),
            store_id: None,
            webhook: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            latency: Duration::ZERO,
            workers: 2,
            handle_signals: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_round_trip_and_the_secret_stays_out_of_debug() {
        for api in [Api::Iamport, Api::Portone] {
            assert_eq!(api.name().parse::<Api>(), Ok(api));
        }
        assert!("v3".parse::<Api>().is_err());
        let target = WebhookTarget::new("http://127.0.0.1:1/hook");
        assert!(!format!("{target:?}").contains("whsec_"));
    }
}
