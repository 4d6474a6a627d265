//! The PortOne V2 REST client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Response, StatusCode};
use sha2::{Digest, Sha256};

use super::iamport::path_segment;
use super::portone_wire::{
    CancelAnswer, CancelBody, CancellationStatus, ErrorBody, LoginAnswer, LoginBody, PaymentBody,
    RefundAccountBody,
};
use super::{
    CancelCommand, CancelReceipt, GatewayError, GatewayKind, PaymentGateway, PaymentRef, Secret,
};
use crate::clock::now_ms;
use crate::memory::MemoryTokenCache;
use crate::payment::Payment;
use crate::store::BoxError;
use crate::token::{AccessToken, TokenCache, TokenSource};

/// The `gateway` label of this client's metrics.
const GATEWAY: &str = GatewayKind::Portone.as_str();

/// The code recorded for a cancellation V2 answered `FAILED` (it has no
/// error type of its own).
pub(crate) const CANCELLATION_FAILED: &str = "CANCELLATION_FAILED";

/// How long a login token is used when it does not say (not a JWT with
/// `iat` and `exp`): short, since a 401 costs one more login anyway.
const UNDATED_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How the client authenticates to PortOne V2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PortOneAuth {
    /// `Authorization: PortOne <api secret>` on every call (the default):
    /// nothing to refresh; a 401 means the secret is wrong.
    #[default]
    ApiSecret,
    /// Access tokens from `POST /login/api-secret`, kept in the
    /// [`TokenCache`] (shared across instances with Redis) and used until
    /// shortly before they expire; a 401 fetches a fresh one once.
    LoginToken,
}

/// How to reach PortOne V2.
#[derive(Clone, Debug)]
pub struct PortOneConfig {
    base_url: String,
    api_secret: Secret,
    store_id: Option<String>,
    auth: PortOneAuth,
    connect_timeout: Duration,
    request_timeout: Duration,
    token_margin: Duration,
}

impl PortOneConfig {
    /// The production API.
    pub const PRODUCTION_URL: &'static str = "https://api.portone.io";

    /// A client configuration for `base_url` (e.g. [`Self::PRODUCTION_URL`]
    /// or a local sandbox) with the account's API secret and sensible
    /// timeouts.
    pub fn new(base_url: impl Into<String>, api_secret: impl Into<String>) -> Self {
        PortOneConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_secret: Secret::new(api_secret),
            store_id: None,
            auth: PortOneAuth::default(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
            token_margin: Duration::from_secs(60),
        }
    }

    /// The store id sent with every call (`storeId`), for accounts with
    /// several stores.
    #[must_use]
    pub fn store_id(mut self, store_id: impl Into<String>) -> Self {
        self.store_id = Some(store_id.into());
        self
    }

    /// How to authenticate (default [`PortOneAuth::ApiSecret`]).
    #[must_use]
    pub fn auth(mut self, auth: PortOneAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Time allowed to open a connection. A request that fails here never
    /// reached PortOne, so it is a definite failure.
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

    /// How long before a login token's expiry it stops being used.
    #[must_use]
    pub fn token_margin(mut self, margin: Duration) -> Self {
        self.token_margin = margin;
        self
    }
}

/// The PortOne V2 client: cancel and payment lookups by `paymentId`.
///
/// `paymentId` is the merchant's order id (our `merchant_uid`); the
/// payment's `transactionId` is reported as `imp_uid`. A cancel always
/// sends an explicit `amount`, `currentCancellableAmount` and a `reason`.
pub struct PortOneClient {
    http: reqwest::Client,
    config: PortOneConfig,
    tokens: Arc<dyn TokenCache>,
    cache_key: String,
}

impl fmt::Debug for PortOneClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortOneClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PortOneClient {
    /// A client with its own in-memory token cache.
    pub fn new(config: PortOneConfig) -> Result<Self, reqwest::Error> {
        Self::with_token_cache(config, Arc::new(MemoryTokenCache::new()))
    }

    /// A client whose login tokens live in `tokens` (e.g. Redis, shared by
    /// a cluster); unused with [`PortOneAuth::ApiSecret`].
    pub fn with_token_cache(
        config: PortOneConfig,
        tokens: Arc<dyn TokenCache>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirected POST would turn into a GET: refuse instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        // The key names the account without revealing its secret.
        let digest = Sha256::digest(config.api_secret.expose().as_bytes());
        let fingerprint: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let cache_key = format!("portone:token:{fingerprint}");
        Ok(PortOneClient {
            http,
            config,
            tokens,
            cache_key,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &PortOneConfig {
        &self.config
    }

    /// Checks the API secret at start rather than at the first refund:
    /// logs in ([`PortOneAuth::LoginToken`], caching the token) or looks up
    /// a payment id no order has ([`PortOneAuth::ApiSecret`]: any answer but
    /// 401 means the secret was taken).
    ///
    /// [`GatewayError::Unauthorized`]: PortOne refused the secret; other
    /// errors: it could not be asked.
    pub async fn check_credentials(&self) -> Result<(), GatewayError> {
        match self.config.auth {
            PortOneAuth::LoginToken => self
                .tokens
                .get_or_refresh(&self.cache_key, self)
                .await
                .map(drop),
            PortOneAuth::ApiSecret => self
                .get_payment("refund-plugin-credentials-check")
                .await
                .map(drop),
        }
    }

    /// The hard limit on one cancel: a login, the cancel, the 401 retry
    /// (login and cancel again) and the read-back of the payment.
    fn cancel_budget(&self) -> Duration {
        self.config
            .connect_timeout
            .saturating_add(self.config.request_timeout)
            .saturating_mul(5)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    /// Sends an authenticated request. With login tokens, a `401`
    /// invalidates the token and tries once more with a fresh one; with the
    /// raw secret a `401` is final.
    async fn send_authorized(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<Response, GatewayError> {
        if self.config.auth == PortOneAuth::ApiSecret {
            let header = format!("PortOne {}", self.config.api_secret.expose());
            let response = build(&header).send().await.map_err(classify)?;
            if response.status() == StatusCode::UNAUTHORIZED {
                return Err(GatewayError::Unauthorized);
            }
            return Ok(response);
        }
        let token = self.token().await?;
        let bearer = |token: &AccessToken| format!("Bearer {}", token.token.expose());
        let response = build(&bearer(&token)).send().await.map_err(classify)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::info!("PortOne refused the access token; logging in again once");
        self.tokens.invalidate(&self.cache_key, &token).await;
        let token = self.token().await?;
        let response = build(&bearer(&token)).send().await.map_err(classify)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.tokens.invalidate(&self.cache_key, &token).await;
            return Err(GatewayError::Unauthorized);
        }
        Ok(response)
    }

    /// A token for the next call; every failure here is before the call
    /// itself is sent, so definite.
    async fn token(&self) -> Result<AccessToken, GatewayError> {
        self.tokens
            .get_or_refresh(&self.cache_key, self)
            .await
            .map_err(|error| match error {
                GatewayError::Unauthorized => GatewayError::Unauthorized,
                other => GatewayError::Unreachable(other.into()),
            })
    }

    /// `GET /payments/{paymentId}`; `None` when PortOne has no such payment.
    async fn get_payment(&self, payment_id: &str) -> Result<Option<Payment>, GatewayError> {
        let Some(segment) = path_segment(payment_id) else {
            return Ok(None);
        };
        let url = self.url(&format!("/payments/{segment}"));
        let store_id = self.config.store_id.as_deref();
        let response = self
            .send_authorized(|auth| {
                let request = self.http.get(&url).header("Authorization", auth);
                match store_id {
                    Some(store_id) => request.query(&[("storeId", store_id)]),
                    None => request,
                }
            })
            .await?;
        let status = response.status();
        let body = read_body(response, GatewayError::InvalidResponse).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(refusal(status, &body));
        }
        serde_json::from_slice::<PaymentBody>(&body)
            .map_err(|e| e.to_string())
            .and_then(PaymentBody::into_payment)
            .map(Some)
            .map_err(|e| GatewayError::InvalidResponse(e.into()))
    }

    async fn cancel_once(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        let Some(segment) = path_segment(&command.merchant_uid) else {
            return Err(GatewayError::Rejected {
                code: Some("INVALID_REQUEST".to_owned()),
                message: "the payment id cannot be sent".to_owned(),
            });
        };
        // V2 requires a reason; the workflow's always names the refund.
        let reason = command
            .reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or("refund");
        let account = command.account.as_ref();
        let body = CancelBody {
            store_id: self.config.store_id.as_deref(),
            amount: command.amount.minor(),
            tax_free_amount: command.tax_free.map(|a| a.minor()),
            vat_amount: command.vat_amount.map(|a| a.minor()),
            reason,
            current_cancellable_amount: command.checksum.minor(),
            refund_account: account.map(|a| RefundAccountBody {
                bank: &a.bank,
                number: &a.account,
                holder_name: &a.holder,
                holder_phone_number: a.tel.as_deref(),
            }),
        };
        let url = self.url(&format!("/payments/{segment}/cancel"));
        let response = self
            .send_authorized(|auth| {
                self.http
                    .post(&url)
                    .header("Authorization", auth)
                    .json(&body)
            })
            .await?;
        let status = response.status();
        // An answer we cannot read may still have applied; PortOne is done
        // with the request, so a lookup tells.
        let bytes = read_body(response, GatewayError::Garbled).await?;
        if status != StatusCode::OK {
            return Err(refusal(status, &bytes));
        }
        let answer: CancelAnswer =
            serde_json::from_slice(&bytes).map_err(|e| GatewayError::Garbled(e.into()))?;
        let cancellation_id = answer.cancellation.id.clone();
        match answer.cancellation.status() {
            CancellationStatus::Succeeded => {
                // The cancel applied: read the payment back for its numbers.
                // The answer's id credits the refund; if the read-back fails
                // (or does not list it yet), the cancel still applied under
                // that id and a later lookup credits it.
                match self.get_payment(&command.merchant_uid).await {
                    Ok(Some(payment)) => Ok(CancelReceipt::Applied {
                        payment,
                        cancellation_id: Some(cancellation_id),
                    }),
                    Ok(None) | Err(_) => {
                        tracing::warn!(
                            "the cancel succeeded but the payment could not be read back"
                        );
                        Ok(CancelReceipt::Accepted { cancellation_id })
                    }
                }
            }
            // A status this client does not know is not "nothing happened":
            // PortOne took the cancel under this id, and its outcome is read
            // from the payment later, as for a requested one.
            CancellationStatus::Requested | CancellationStatus::Unknown => {
                Ok(CancelReceipt::Accepted { cancellation_id })
            }
            CancellationStatus::Failed => Err(GatewayError::Rejected {
                code: Some(CANCELLATION_FAILED.to_owned()),
                message: "PortOne reported the cancellation as failed".to_owned(),
            }),
        }
    }
}

#[async_trait]
impl TokenSource for PortOneClient {
    async fn fetch_token(&self) -> Result<AccessToken, GatewayError> {
        crate::metrics::token_fetched(GATEWAY);
        crate::metrics::gateway_call(GATEWAY, "token", self.login()).await
    }
}

impl PortOneClient {
    async fn login(&self) -> Result<AccessToken, GatewayError> {
        let requested_at = now_ms();
        let response = self
            .http
            .post(self.url("/login/api-secret"))
            .json(&LoginBody {
                api_secret: self.config.api_secret.expose(),
            })
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(GatewayError::Unauthorized);
        }
        let body = read_body(response, GatewayError::InvalidResponse).await?;
        if status != StatusCode::OK {
            return Err(refusal(status, &body));
        }
        let answer: LoginAnswer =
            serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidResponse(e.into()))?;
        // The token's own issue and expiry times (`exp - iat`) cancel any
        // skew between PortOne's clock and ours.
        let lifetime = token_lifetime(&answer.access_token).unwrap_or(UNDATED_TOKEN_LIFETIME);
        let usable = lifetime.saturating_sub(self.config.token_margin);
        let usable_ms = i64::try_from(usable.as_millis()).unwrap_or(i64::MAX);
        Ok(AccessToken {
            token: Secret::new(answer.access_token),
            use_until_ms: requested_at.saturating_add(usable_ms),
        })
    }
}

#[async_trait]
impl PaymentGateway for PortOneClient {
    #[tracing::instrument(skip_all, fields(payment_id = %command.merchant_uid))]
    async fn cancel(&self, command: &CancelCommand) -> Result<CancelReceipt, GatewayError> {
        let call = async {
            tokio::time::timeout(self.cancel_budget(), self.cancel_once(command))
                .await
                .unwrap_or_else(|elapsed| Err(GatewayError::Unknown(elapsed.into())))
        };
        crate::metrics::gateway_call(GATEWAY, "cancel", call).await
    }

    #[tracing::instrument(skip(self))]
    async fn payment(&self, at: PaymentRef<'_>) -> Result<Option<Payment>, GatewayError> {
        // V2 keys payments by the merchant's id; the caller compares the
        // attempt (`transactionId`, our `imp_uid`).
        crate::metrics::gateway_call(GATEWAY, "payment", self.get_payment(at.merchant_uid)).await
    }

    #[tracing::instrument(skip(self))]
    async fn find_payment(&self, merchant_uid: &str) -> Result<Option<Payment>, GatewayError> {
        crate::metrics::gateway_call(GATEWAY, "find_payment", self.get_payment(merchant_uid)).await
    }

    fn max_in_flight(&self) -> Duration {
        self.cancel_budget()
    }

    fn kind(&self) -> GatewayKind {
        GatewayKind::Portone
    }
}

/// Maps a transport error by whether the request may have reached PortOne.
fn classify(error: reqwest::Error) -> GatewayError {
    if error.is_connect() || error.is_builder() {
        GatewayError::Unreachable(error.into())
    } else {
        GatewayError::Unknown(error.into())
    }
}

/// The body of an answer, after the statuses that say nothing was decided:
/// 504 (a proxy gave up waiting: PortOne may still be working, in effect no
/// answer), and any other 5xx without a typed PortOne error body (a proxy or
/// CDN in front of PortOne answered, not PortOne: see [`proxy_answer`]). A
/// typed 5xx is PortOne's own answer: 502 `PG_PROVIDER` is read by
/// [`refusal`], others are answers without a usable result.
async fn read_body(
    response: Response,
    garbled: fn(BoxError) -> GatewayError,
) -> Result<Vec<u8>, GatewayError> {
    let status = response.status();
    if status == StatusCode::GATEWAY_TIMEOUT {
        return Err(GatewayError::Unknown(format!("HTTP {status}").into()));
    }
    let body = response.bytes().await.map(|b| b.to_vec());
    if !status.is_server_error() {
        return body.map_err(|e| garbled(e.into()));
    }
    let body = body.map_err(|e| GatewayError::Unknown(e.into()))?;
    if let Some(error) = proxy_answer(status, &body) {
        return Err(error);
    }
    if status != StatusCode::BAD_GATEWAY {
        return Err(GatewayError::Garbled(format!("HTTP {status}").into()));
    }
    Ok(body)
}

/// A 5xx whose body is not a typed PortOne error (`{"type": ...}`) came
/// from something in front of PortOne (a proxy, a CDN, a load balancer):
/// it says nothing of whether PortOne received the request or is still
/// working on it, so it is no answer ([`GatewayError::Unknown`]), like a
/// 504. `None` for a typed body.
fn proxy_answer(status: StatusCode, body: &[u8]) -> Option<GatewayError> {
    let typed = serde_json::from_slice::<ErrorBody>(body).is_ok();
    (status.is_server_error() && !typed).then(|| {
        GatewayError::Unknown(format!("HTTP {status} without a PortOne error body").into())
    })
}

/// A non-200 answer: a typed V2 error is a definite refusal, its `type` the
/// code (`PG_PROVIDER` with the PG's own message); anything else is not.
fn refusal(status: StatusCode, body: &[u8]) -> GatewayError {
    let typed = serde_json::from_slice::<ErrorBody>(body).ok();
    match typed {
        Some(error) if status.is_client_error() || error.kind == "PG_PROVIDER" => {
            let message = error
                .pg_message
                .filter(|m| !m.trim().is_empty())
                .or(error.message)
                .unwrap_or_else(|| format!("HTTP {status}"));
            GatewayError::Rejected {
                code: Some(crate::masking::mask_gateway_message(&error.kind, None)),
                message: crate::masking::mask_gateway_message(&message, None),
            }
        }
        // A 4xx without a typed body was still refused before acting.
        None if status.is_client_error() => GatewayError::Rejected {
            code: None,
            message: format!("HTTP {status}"),
        },
        _ => GatewayError::Garbled(format!("HTTP {status} without a typed error").into()),
    }
}

/// `exp - iat` of a JWT access token, when it carries both.
fn token_lifetime(token: &str) -> Option<Duration> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Claims {
        iat: i64,
        exp: i64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    let seconds = u64::try_from(claims.exp.checked_sub(claims.iat)?).ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_are_refusals_with_their_type() {
        let error = refusal(
            StatusCode::CONFLICT,
            br#"{"type":"CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN","message":"mismatch"}"#,
        );
        assert!(matches!(
            error,
            GatewayError::Rejected { code: Some(ref c), ref message }
                if c == "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN" && message == "mismatch"
        ));
        let error = refusal(
            StatusCode::BAD_GATEWAY,
            br#"{"type":"PG_PROVIDER","message":"pg said no","pgCode":"E1","pgMessage":"account 110123456789 closed"}"#,
        );
        match error {
            GatewayError::Rejected { code, message } => {
                assert_eq!(code.as_deref(), Some("PG_PROVIDER"));
                assert!(message.starts_with("account "), "{message}");
                assert!(!message.contains("110123456789"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            refusal(StatusCode::BAD_REQUEST, b"<html>"),
            GatewayError::Rejected { code: None, .. }
        ));
        // A typed 502 that is not PortOne's PG error says nothing definite.
        assert!(matches!(
            refusal(StatusCode::BAD_GATEWAY, br#"{"type":"SOMETHING_NEW"}"#),
            GatewayError::Garbled(_)
        ));
    }

    #[test]
    fn an_untyped_5xx_is_a_proxy_answer_not_portones() {
        for status in [500, 502, 503, 520, 522, 524] {
            let status = StatusCode::from_u16(status).unwrap();
            for body in [&b"upstream down"[..], b"", b"<html>502</html>", b"{}"] {
                assert!(
                    matches!(proxy_answer(status, body), Some(GatewayError::Unknown(_))),
                    "{status} {body:?}"
                );
            }
            let typed = br#"{"type":"PG_PROVIDER","message":"x"}"#;
            assert!(proxy_answer(status, typed).is_none(), "{status}");
        }
        assert!(proxy_answer(StatusCode::BAD_REQUEST, b"<html>").is_none());
    }

    #[test]
    fn token_lifetime_is_read_from_the_jwt() {
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iat":1000,"exp":2800,"sub":"x"}"#);
        let token = format!("eyJhbGciOiJIUzI1NiJ9.{claims}.sig");
        assert_eq!(token_lifetime(&token), Some(Duration::from_secs(1800)));
        assert_eq!(token_lifetime("opaque-token"), None);
        assert_eq!(token_lifetime("a.!!!.c"), None);
    }
}
