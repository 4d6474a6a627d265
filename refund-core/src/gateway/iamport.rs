//! The i'mport (PortOne V1) REST client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;

use super::wire::{Auth, CancelBody, Envelope, PaymentAnnotation, TokenRequest};
use super::{CancelCommand, CancelReceipt, GatewayError, PaymentGateway, PaymentRef, Secret};
use crate::clock::now_ms;
use crate::memory::MemoryTokenCache;
use crate::payment::{Payment, PaymentStatus};
use crate::token::{AccessToken, TokenCache, TokenSource};

/// The `gateway` label of this client's metrics.
const GATEWAY: &str = crate::gateway::GatewayKind::Iamport.as_str();

/// The REST API key and secret of an i'mport account.
#[derive(Clone, Debug)]
pub struct IamportCredentials {
    /// REST API key (not secret; namespaces the token cache).
    pub imp_key: String,
    /// REST API secret.
    pub imp_secret: Secret,
}

impl IamportCredentials {
    /// Credentials from a key and a secret.
    pub fn new(imp_key: impl Into<String>, imp_secret: impl Into<String>) -> Self {
        IamportCredentials {
            imp_key: imp_key.into(),
            imp_secret: Secret::new(imp_secret),
        }
    }
}

/// How to reach i'mport.
#[derive(Clone, Debug)]
pub struct IamportConfig {
    base_url: String,
    credentials: IamportCredentials,
    connect_timeout: Duration,
    request_timeout: Duration,
    token_margin: Duration,
}

impl IamportConfig {
    /// The production API.
    pub const PRODUCTION_URL: &'static str = "https://api.iamport.kr";

    /// A client configuration for `base_url` (e.g. [`Self::PRODUCTION_URL`]
    /// or a local sandbox) with sensible timeouts.
    pub fn new(base_url: impl Into<String>, credentials: IamportCredentials) -> Self {
        IamportConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            credentials,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
            token_margin: Duration::from_secs(60),
        }
    }

    /// Time allowed to open a connection. A request that fails here never
    /// reached i'mport, so it is a definite failure.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole call. A cancel that times out may have
    /// happened: its refund stays pending until reconciled.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long before i'mport's expiry a token stops being used.
    #[must_use]
    pub fn token_margin(mut self, margin: Duration) -> Self {
        self.token_margin = margin;
        self
    }
}

/// The i'mport V1 client: getToken, cancel, and payment lookups.
///
/// Tokens come from a [`TokenCache`] (in memory by default, or shared across
/// instances); a `401` invalidates the token and retries the call once.
pub struct IamportClient {
    http: reqwest::Client,
    config: IamportConfig,
    tokens: Arc<dyn TokenCache>,
    cache_key: String,
}

impl fmt::Debug for IamportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamportClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IamportClient {
    /// A client with its own in-memory token cache.
    pub fn new(config: IamportConfig) -> Result<Self, reqwest::Error> {
        Self::with_token_cache(config, Arc::new(MemoryTokenCache::new()))
    }

    /// A client whose tokens live in `tokens` (e.g. Redis, shared by a cluster).
    pub fn with_token_cache(
        config: IamportConfig,
        tokens: Arc<dyn TokenCache>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirected POST would turn into a GET: refuse instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let cache_key = format!("iamport:token:{}", config.credentials.imp_key);
        Ok(IamportClient {
            http,
            config,
            tokens,
            cache_key,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &IamportConfig {
        &self.config
    }

    /// Asks i'mport for an access token (or takes the cached one), so that
    /// wrong credentials are found at start rather than by the first
    /// refund. The token is cached for the calls that follow.
    ///
    /// [`GatewayError::Unauthorized`] or [`GatewayError::Rejected`]: i'mport
    /// refused the key and secret; other errors: it could not be asked.
    pub async fn check_credentials(&self) -> Result<(), GatewayError> {
        self.tokens
            .get_or_refresh(&self.cache_key, self)
            .await
            .map(drop)
    }

    /// The hard limit on one cancel, token refreshes and the 401 retry
    /// included (up to four HTTP calls). Enforced with a timeout so that
    /// reconciliation can rely on it: a refund older than this is no longer
    /// on the wire.
    fn cancel_budget(&self) -> Duration {
        self.config
            .connect_timeout
            .saturating_add(self.config.request_timeout)
            .saturating_mul(4)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    /// Sends an authenticated request; on `401` invalidates the token and
    /// tries once more with a fresh one.
    async fn send_authorized(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<Response, GatewayError> {
        let token = self.token().await?;
        let response = build(token.token.expose()).send().await.map_err(classify)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::info!("i'mport refused the access token; refreshing it once");
        self.tokens.invalidate(&self.cache_key, &token).await;
        let token = self.token().await?;
        let response = build(token.token.expose()).send().await.map_err(classify)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.tokens.invalidate(&self.cache_key, &token).await;
            return Err(GatewayError::Unauthorized);
        }
        Ok(response)
    }

    /// A token for the next call. Whatever goes wrong here happens before
    /// the call itself is sent, so every failure is definite.
    async fn token(&self) -> Result<AccessToken, GatewayError> {
        self.tokens
            .get_or_refresh(&self.cache_key, self)
            .await
            .map_err(|error| match error {
                GatewayError::Unauthorized => GatewayError::Unauthorized,
                other => GatewayError::Unreachable(other.into()),
            })
    }

    async fn get_payment(&self, path: String) -> Result<Option<Payment>, GatewayError> {
        let url = self.url(&path);
        let response = self
            .send_authorized(|token| self.http.get(&url).bearer_auth(token))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read_payment(response, GatewayError::InvalidResponse)
            .await
            .map(Some)
    }
}

#[async_trait]
impl TokenSource for IamportClient {
    async fn fetch_token(&self) -> Result<AccessToken, GatewayError> {
        crate::metrics::token_fetched(GATEWAY);
        crate::metrics::gateway_call(GATEWAY, "token", self.fetch_token_once()).await
    }
}

impl IamportClient {
    async fn fetch_token_once(&self) -> Result<AccessToken, GatewayError> {
        let requested_at = now_ms();
        let credentials = &self.config.credentials;
        let response = self
            .http
            .post(self.url("/users/getToken"))
            .json(&TokenRequest {
                imp_key: &credentials.imp_key,
                imp_secret: credentials.imp_secret.expose(),
            })
            .send()
            .await
            .map_err(classify)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(GatewayError::Unauthorized);
        }
        let auth: Auth = read_envelope(response, GatewayError::InvalidResponse).await?;
        // i'mport's own `now` cancels any skew between its clock and ours.
        let lifetime_ms = auth
            .expired_at
            .saturating_sub(auth.now)
            .saturating_mul(1000);
        let margin_ms = i64::try_from(self.config.token_margin.as_millis()).unwrap_or(i64::MAX);
        tracing::debug!(
            lifetime_s = lifetime_ms / 1000,
            "fetched an i'mport access token"
        );
        Ok(AccessToken {
            token: Secret::new(auth.access_token),
            use_until_ms: requested_at.saturating_add(lifetime_ms.saturating_sub(margin_ms)),
        })
    }
}

#[async_trait]
impl PaymentGateway for IamportClient {
    #[tracing::instrument(skip_all, fields(imp_uid = %command.imp_uid))]
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        let currency = command.currency;
        let account = command.account.as_ref();
        let body = CancelBody {
            imp_uid: &command.imp_uid,
            merchant_uid: &command.merchant_uid,
            amount: currency.to_json(command.amount),
            checksum: currency.to_json(command.checksum),
            tax_free: command.tax_free.map(|a| currency.to_json(a)),
            vat_amount: command.vat_amount.map(|a| currency.to_json(a)),
            reason: command.reason.as_deref(),
            refund_holder: account.map(|a| a.holder.as_str()),
            refund_bank: account.map(|a| a.bank.as_str()),
            refund_account: account.map(|a| a.account.as_str()),
            refund_tel: account.and_then(|a| a.tel.as_deref()),
        };
        let url = self.url("/payments/cancel");
        let call = async {
            let response = self
                .send_authorized(|token| self.http.post(&url).bearer_auth(token).json(&body))
                .await?;
            // A cancel answered with something unreadable may still have
            // happened; the gateway is done with it, so a lookup tells.
            read_payment(response, GatewayError::Garbled)
                .await
                .map(|payment| CancelReceipt::Applied {
                    payment,
                    cancellation_id: None,
                })
        };
        let call = async {
            tokio::time::timeout(self.cancel_budget(), call)
                .await
                .unwrap_or_else(|elapsed| Err(GatewayError::Unknown(elapsed.into())))
        };
        crate::metrics::gateway_call(GATEWAY, "cancel", call).await
    }

    #[tracing::instrument(skip(self))]
    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        // i'mport V1 keys payments by its own id.
        let call = async {
            match path_segment(at.imp_uid) {
                Some(segment) => self.get_payment(format!("/payments/{segment}")).await,
                None => Ok(None),
            }
        };
        crate::metrics::gateway_call(GATEWAY, "payment", call).await
    }

    #[tracing::instrument(skip(self))]
    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        crate::metrics::gateway_call(GATEWAY, "find_payment", self.find(merchant_uid)).await
    }

    fn max_in_flight(&self) -> Duration {
        self.cancel_budget()
    }

    fn kind(&self) -> crate::gateway::GatewayKind {
        crate::gateway::GatewayKind::Iamport
    }
}

impl IamportClient {
    async fn find(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        let Some(segment) = path_segment(merchant_uid) else {
            return Ok(None);
        };
        // An order may have several attempts: the paid one is the one to
        // refund. Most orders have one, so ask for the latest first and
        // look for a paid one only when the latest is not.
        let latest = format!("/payments/find/{segment}?sorting=-started");
        let Some(latest) = self.get_payment(latest).await? else {
            return Ok(None);
        };
        if latest.status == PaymentStatus::Paid {
            return Ok(Some(latest));
        }
        let paid = format!("/payments/find/{segment}/paid?sorting=-started");
        Ok(self.get_payment(paid).await?.or(Some(latest)))
    }
}

/// Maps a transport error by whether the request may have reached i'mport.
fn classify(error: reqwest::Error) -> GatewayError {
    if error.is_connect() || error.is_builder() {
        GatewayError::Unreachable(error.into())
    } else {
        GatewayError::Unknown(error.into())
    }
}

/// Percent-encodes an id as one URL path segment; `None` for ids no
/// payment can have (empty, or dot segments that URLs collapse).
pub(super) fn path_segment(id: &str) -> Option<String> {
    if matches!(id, "" | "." | "..") {
        return None;
    }
    let encoded = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Some(encoded)
}

async fn read_payment(
    response: Response,
    garbled: fn(crate::store::BoxError) -> GatewayError,
) -> Result<Payment, GatewayError> {
    let annotation: PaymentAnnotation = read_envelope(response, garbled).await?;
    annotation
        .into_payment()
        .map(Ok)
        .unwrap_or_else(|e| Err(garbled(e.into())))
}

/// Reads i'mport's envelope: success is HTTP 200, `code == 0` and a
/// non-null `response`; anything else is not.
async fn read_envelope<T: DeserializeOwned>(
    response: Response,
    garbled: fn(crate::store::BoxError) -> GatewayError,
) -> Result<T, GatewayError> {
    let status = response.status();
    if status == StatusCode::GATEWAY_TIMEOUT {
        // A proxy in front of i'mport gave up waiting: i'mport itself may
        // still be working on the request. No answer, in effect.
        return Err(GatewayError::Unknown(format!("HTTP {status}").into()));
    }
    if status.is_server_error() {
        // i'mport answered: it is no longer working on the request.
        return Err(GatewayError::Garbled(format!("HTTP {status}").into()));
    }
    let body = response.bytes().await.map_err(|e| garbled(e.into()))?;
    if status.is_client_error() {
        // 4xx: refused before acting. The body may or may not be an envelope.
        let (code, message) = serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(&body)
            .map(|e| (Some(e.code.to_string()), e.message))
            .unwrap_or((None, None));
        return Err(GatewayError::Rejected {
            code,
            message: message.map_or_else(|| format!("HTTP {status}"), |m| clean_message(&m)),
        });
    }
    if status != StatusCode::OK {
        return Err(garbled(format!("unexpected HTTP {status}").into()));
    }
    let envelope: Envelope<T> = serde_json::from_slice(&body).map_err(|e| garbled(e.into()))?;
    match envelope {
        Envelope {
            code: 0,
            response: Some(response),
            ..
        } => Ok(response),
        Envelope { code: 0, .. } => Err(garbled("code 0 without a response".into())),
        Envelope { code, message, .. } => Err(GatewayError::Rejected {
            code: Some(code.to_string()),
            message: clean_message(message.as_deref().unwrap_or_default()),
        }),
    }
}

/// i'mport's free-text message, made safe to store, log and show (control
/// characters, length, long digit runs). What the request sent is masked
/// on top of this where the workflow receives the refusal.
fn clean_message(message: &str) -> String {
    crate::masking::mask_gateway_message(message, None)
}

#[cfg(test)]
mod tests {
    use super::{clean_message, path_segment};

    #[test]
    fn gateway_messages_are_cleaned() {
        assert_eq!(clean_message("환불 실패 (code 12)"), "환불 실패 (code 12)");
        assert_eq!(
            clean_message("bad\u{0}account 56211105948400"),
            "badaccount **********8400"
        );
        assert_eq!(clean_message(&"x".repeat(600)).len(), 500);
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("ORD-1_a.b~").unwrap(), "ORD-1_a.b~");
        assert_eq!(path_segment("../x?y#z").unwrap(), "..%2Fx%3Fy%23z");
        assert_eq!(path_segment("주문").unwrap(), "%EC%A3%BC%EB%AC%B8");
        assert_eq!(path_segment(".."), None);
    }
}
