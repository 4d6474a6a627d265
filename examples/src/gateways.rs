//! The gateway a configuration names: i'mport V1 or PortOne V2, at a
//! configured URL or (sandbox mode) at an in-process sandbox.

use std::sync::Arc;
use std::time::Duration;

use iamport_sandbox::{Api, Sandbox, SandboxConfig, WebhookTarget, DEFAULT_WEBHOOK_SECRET};
use refund_actix::PortOneWebhookSecret;
use refund_core::{
    BoxError, GatewayError, IamportClient, IamportConfig, IamportCredentials, PaymentGateway,
    PortOneAuth, PortOneClient, PortOneConfig, TokenCache,
};

use crate::backends;
use crate::server::StartupError;
use crate::settings::{GatewayChoice, Settings};

/// The gateway client the server uses, and what the scope needs with it.
pub struct Gateway {
    /// The client.
    pub client: Arc<dyn PaymentGateway>,
    /// One line for the start-up log (no secrets).
    pub description: String,
    /// PortOne V2's webhook secret, when there is one to check.
    pub webhook_secret: Option<PortOneWebhookSecret>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("description", &self.description)
            .field("webhook_secret", &self.webhook_secret)
            .finish_non_exhaustive()
    }
}

fn refuse(sentence: impl Into<String>) -> BoxError {
    Box::new(StartupError::new(sentence))
}

/// Refuses the other gateway's variables: they are a forgotten
/// `REFUND_GATEWAY`, not something to ignore.
pub fn check_consistent(settings: &Settings) -> Result<(), BoxError> {
    let v1 = [
        ("REFUND_IAMPORT_URL", settings.iamport_url.is_some()),
        ("REFUND_IAMPORT_KEY", settings.iamport_key.is_some()),
        ("REFUND_IAMPORT_SECRET", settings.iamport_secret.is_some()),
    ];
    let v2 = [
        ("REFUND_PORTONE_URL", settings.portone_url.is_some()),
        ("REFUND_PORTONE_SECRET", settings.portone_secret.is_some()),
        (
            "REFUND_PORTONE_STORE_ID",
            settings.portone_store_id.is_some(),
        ),
        (
            "REFUND_PORTONE_WEBHOOK_SECRET",
            settings.portone_webhook_secret.is_some(),
        ),
    ];
    let (other, chosen, hint) = match settings.gateway {
        GatewayChoice::Iamport => (&v2[..], "iamport", "REFUND_GATEWAY=portone"),
        GatewayChoice::Portone => (&v1[..], "portone", "REFUND_GATEWAY=iamport"),
    };
    match other.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(refuse(format!(
            "{name} is set but REFUND_GATEWAY is {chosen}: set {hint} to use that gateway, \
             or unset {name}"
        ))),
        None => Ok(()),
    }
}

/// Starts the in-process sandbox for sandbox mode, speaking the chosen API;
/// on V2 it delivers signed webhooks to `webhook_url` (the server itself).
pub async fn start_sandbox(settings: &Settings, webhook_url: &str) -> Result<Sandbox, BoxError> {
    let config = match settings.gateway {
        GatewayChoice::Iamport => SandboxConfig::default(),
        GatewayChoice::Portone => SandboxConfig {
            api: Api::Portone,
            webhook: Some(WebhookTarget::new(webhook_url)),
            ..SandboxConfig::default()
        },
    };
    Ok(Sandbox::start(config).await?)
}

/// The client for the configured gateway (or the sandbox's), its tokens in
/// `tokens`; asks the gateway once whether it takes the credentials when
/// `check` is set.
pub async fn open(
    settings: &Settings,
    sandbox: Option<&Sandbox>,
    tokens: Arc<dyn TokenCache>,
) -> Result<Gateway, BoxError> {
    let check = sandbox.is_none() && settings.check_credentials;
    let in_sandbox = if sandbox.is_some() {
        " (in-process sandbox)"
    } else {
        ""
    };
    match settings.gateway {
        GatewayChoice::Iamport => {
            let (url, credentials) = iamport_settings(settings, sandbox)?;
            let client = IamportClient::with_token_cache(
                iamport_config(settings, url.clone(), credentials),
                tokens,
            )
            .map_err(|error| refuse(format!("cannot build the i'mport HTTP client: {error}")))?;
            if check {
                check_iamport(&client, &url).await?;
            }
            Ok(Gateway {
                client: Arc::new(client),
                description: format!("i'mport V1 at {url}{in_sandbox}"),
                webhook_secret: None,
            })
        }
        GatewayChoice::Portone => {
            let (config, webhook_secret) = portone_settings(settings, sandbox)?;
            let url = config_url(settings, sandbox);
            let client = PortOneClient::with_token_cache(config, tokens).map_err(|error| {
                refuse(format!("cannot build the PortOne HTTP client: {error}"))
            })?;
            if check {
                check_portone(&client, &url).await?;
            }
            Ok(Gateway {
                client: Arc::new(client),
                description: format!(
                    "PortOne V2 at {url}{in_sandbox}, webhooks {}",
                    if webhook_secret.is_some() {
                        "signature-checked"
                    } else {
                        "confirmed by fetch only"
                    }
                ),
                webhook_secret,
            })
        }
    }
}

fn config_url(settings: &Settings, sandbox: Option<&Sandbox>) -> String {
    match (sandbox, &settings.portone_url) {
        (Some(sandbox), _) => sandbox.base_url(),
        (None, Some(url)) => url.clone(),
        (None, None) => String::new(),
    }
}

/// PortOne V2's client configuration and webhook secret: the sandbox's, or
/// the configured ones (the secret is required with a URL; the webhook
/// secret is optional and checked here, so a bad one stops the start).
fn portone_settings(
    settings: &Settings,
    sandbox: Option<&Sandbox>,
) -> Result<(PortOneConfig, Option<PortOneWebhookSecret>), BoxError> {
    let (config, webhook_secret) = match sandbox {
        Some(sandbox) => {
            if let Some(name) = [
                ("REFUND_PORTONE_SECRET", settings.portone_secret.is_some()),
                (
                    "REFUND_PORTONE_STORE_ID",
                    settings.portone_store_id.is_some(),
                ),
                (
                    "REFUND_PORTONE_WEBHOOK_SECRET",
                    settings.portone_webhook_secret.is_some(),
                ),
            ]
            .iter()
            .find_map(|(name, set)| set.then_some(name))
            {
                // Real credentials without PortOne's URL: a forgotten
                // setting, not a wish to send them to the sandbox.
                return Err(refuse(format!(
                    "{name} is set but REFUND_PORTONE_URL is not: set it (e.g. \
                     https://api.portone.io) or unset {name} for sandbox mode"
                )));
            }
            let config = PortOneConfig::new(sandbox.base_url(), sandbox.api_secret())
                .store_id(sandbox.store_id());
            (config, Some(DEFAULT_WEBHOOK_SECRET.to_owned()))
        }
        None => {
            let url = settings
                .portone_url
                .clone()
                .expect("outside sandbox mode the URL is set");
            let Some(secret) = &settings.portone_secret else {
                return Err(refuse(
                    "REFUND_PORTONE_SECRET is required with REFUND_PORTONE_URL: copy the V2 API \
                     secret from the PortOne console",
                ));
            };
            let mut config = PortOneConfig::new(url, secret.clone());
            if let Some(store_id) = &settings.portone_store_id {
                config = config.store_id(store_id.clone());
            }
            (config, settings.portone_webhook_secret.clone())
        }
    };
    let webhook_secret = webhook_secret
        .map(|secret| {
            PortOneWebhookSecret::parse(&secret).map_err(|_| {
                refuse(
                    "REFUND_PORTONE_WEBHOOK_SECRET is not a webhook secret: copy it from the \
                     PortOne console's webhook settings (it starts with whsec_), or unset it to \
                     confirm notices by fetching the payment only",
                )
            })
        })
        .transpose()?;
    let mut config = config.auth(PortOneAuth::ApiSecret);
    if let Some(ms) = settings.iamport_connect_timeout_ms {
        config = config.connect_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = settings.iamport_timeout_ms {
        config = config.request_timeout(Duration::from_millis(ms));
    }
    Ok((config, webhook_secret))
}

/// i'mport's URL and credentials: the sandbox's, or the configured ones.
fn iamport_settings(
    settings: &Settings,
    sandbox: Option<&Sandbox>,
) -> Result<(String, IamportCredentials), BoxError> {
    let configured = (
        settings.iamport_key.as_deref(),
        settings.iamport_secret.as_deref(),
    );
    let (url, (key, secret)) = match (sandbox, &settings.iamport_url) {
        (Some(_), _) if configured != (None, None) => {
            // Real credentials without i'mport's URL: a forgotten setting,
            // not a wish to send them to the sandbox.
            return Err(
                "REFUND_IAMPORT_KEY/REFUND_IAMPORT_SECRET are set but REFUND_IAMPORT_URL is not: \
                 set it (e.g. https://api.iamport.kr) or unset them for sandbox mode"
                    .into(),
            );
        }
        (Some(sandbox), _) => (
            sandbox.base_url(),
            (Some(sandbox.imp_key()), Some(sandbox.imp_secret())),
        ),
        (None, Some(url)) => (url.clone(), configured),
        (None, None) => unreachable!("sandbox mode is decided by the URL"),
    };
    match (key, secret) {
        (Some(key), Some(secret)) => Ok((url, IamportCredentials::new(key, secret))),
        _ => Err(
            "REFUND_IAMPORT_KEY and REFUND_IAMPORT_SECRET are required with REFUND_IAMPORT_URL"
                .into(),
        ),
    }
}

/// The i'mport client's configuration, with the timeouts the settings override.
fn iamport_config(
    settings: &Settings,
    url: String,
    credentials: IamportCredentials,
) -> IamportConfig {
    let mut config = IamportConfig::new(url, credentials);
    if let Some(ms) = settings.iamport_connect_timeout_ms {
        config = config.connect_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = settings.iamport_timeout_ms {
        config = config.request_timeout(Duration::from_millis(ms));
    }
    config
}

/// Asks i'mport for a token once: refused credentials stop the start;
/// an unreachable gateway only warns (refunds answer `gateway_error` until
/// it is back, and the token is fetched then).
async fn check_iamport(gateway: &IamportClient, url: &str) -> Result<(), BoxError> {
    match gateway.check_credentials().await {
        Ok(()) => {
            tracing::info!(
                "i'mport at {url} accepted REFUND_IAMPORT_KEY and REFUND_IAMPORT_SECRET"
            );
            Ok(())
        }
        Err(GatewayError::Unauthorized) => Err(refuse(format!(
            "i'mport at {url} refused REFUND_IAMPORT_KEY and REFUND_IAMPORT_SECRET: copy the \
             REST API key and secret from the i'mport console (or unset REFUND_IAMPORT_URL \
             for sandbox mode)"
        ))),
        Err(GatewayError::Rejected { message, .. }) => Err(refuse(format!(
            "i'mport at {url} refused the access-token request ({message}): check \
             REFUND_IAMPORT_URL, REFUND_IAMPORT_KEY and REFUND_IAMPORT_SECRET"
        ))),
        Err(GatewayError::InvalidResponse(_)) => Err(refuse(format!(
            "{url} does not answer like i'mport (its token answer is unreadable): check \
             REFUND_IAMPORT_URL (e.g. https://api.iamport.kr)"
        ))),
        Err(error) => {
            let cause = backends::root_cause(&error);
            tracing::warn!(
                "could not ask i'mport at {url} for an access token ({cause}); starting \
                 anyway: refunds answer gateway_error until it is reachable"
            );
            Ok(())
        }
    }
}

/// Asks PortOne once whether it takes the API secret: a refusal stops the
/// start; an unreachable gateway only warns.
async fn check_portone(gateway: &PortOneClient, url: &str) -> Result<(), BoxError> {
    match gateway.check_credentials().await {
        Ok(()) => {
            tracing::info!("PortOne at {url} accepted REFUND_PORTONE_SECRET");
            Ok(())
        }
        Err(GatewayError::Unauthorized) => Err(refuse(format!(
            "PortOne at {url} refused REFUND_PORTONE_SECRET: copy the V2 API secret from the \
             PortOne console (or unset REFUND_PORTONE_URL for sandbox mode)"
        ))),
        Err(GatewayError::Rejected { code, .. }) if code.as_deref() == Some("FORBIDDEN") => {
            Err(refuse(format!(
                "PortOne at {url} refused REFUND_PORTONE_STORE_ID for this API secret: check \
                 the store id in the PortOne console, or unset it"
            )))
        }
        Err(GatewayError::InvalidResponse(_)) => Err(refuse(format!(
            "{url} does not answer like PortOne V2: check REFUND_PORTONE_URL (e.g. \
             https://api.portone.io)"
        ))),
        Err(error) => {
            let cause = backends::root_cause(&error);
            tracing::warn!(
                "could not ask PortOne at {url} ({cause}); starting anyway: refunds answer \
                 gateway_error until it is reachable"
            );
            Ok(())
        }
    }
}
