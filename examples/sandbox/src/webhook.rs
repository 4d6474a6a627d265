//! Signed V2 webhooks (Standard Webhooks), delivered in the background.
//!
//! A change to the ledger queues a notice; a task outside every request and
//! every lock posts it to the merchant's URL with the headers
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64
//! HMAC-SHA256 of "id.timestamp.body">` under the base64 key after `whsec_`.
//! A delivery that fails (connection error or a non-2xx answer) is retried
//! with the real gateway's exponential backoff (0, 1, 4, 16, 64, 256
//! minutes) scaled down to tenths of a second, keeping its id and body.
//!
//! The body's `timestamp` is the event's time on the sandbox clock; the
//! `webhook-timestamp` header is the wall-clock time of each attempt, since
//! receivers check it against their own clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::auth::random_hex;
use crate::clock::rfc3339;
use crate::config::WebhookTarget;

/// Waits before each retry (after the first attempt): the gateway's
/// 1, 4, 16, 64 and 256 minutes, one minute scaled to 100 ms.
const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1_600),
    Duration::from_millis(6_400),
    Duration::from_millis(25_600),
];

/// How long one attempt may take (the gateway allows 30 s; tests want less).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries remembered for [`Sandbox::deliveries`](crate::Sandbox::deliveries);
/// the oldest are forgotten beyond this.
const LOG_CAPACITY: usize = 10_000;

/// Where one webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not answered with a 2xx yet; retries may be scheduled.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; no more will be made.
    Abandoned,
}

/// One webhook the sandbox sent (or is still sending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDelivery {
    /// The `webhook-id` header, the same on every attempt.
    pub webhook_id: String,
    /// The body's `type`, e.g. `Transaction.PartialCancelled`.
    pub event_type: String,
    /// `data.paymentId`.
    pub payment_id: String,
    /// `data.cancellationId`, for cancel notices.
    pub cancellation_id: Option<String>,
    /// The exact body that was signed and sent.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// HTTP status of the latest attempt that got an answer.
    pub last_http_status: Option<u16>,
    /// Where it stands.
    pub status: DeliveryStatus,
}

/// What changed, as a notice to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) event_type: &'static str,
    pub(crate) payment_id: String,
    pub(crate) transaction_id: String,
    pub(crate) store_id: String,
    pub(crate) cancellation_id: Option<String>,
    /// Sandbox-clock time of the event (unix seconds).
    pub(crate) at: i64,
}

impl Notice {
    /// The V2 webhook body (`2024-04-25` version).
    fn body(&self) -> String {
        let mut data = serde_json::json!({
            "paymentId": self.payment_id,
            "storeId": self.store_id,
            "transactionId": self.transaction_id,
        });
        if let Some(id) = &self.cancellation_id {
            data["cancellationId"] = serde_json::json!(id);
        }
        serde_json::json!({
            "type": self.event_type,
            "timestamp": rfc3339(self.at),
            "data": data,
        })
        .to_string()
    }
}

/// A `whsec_` secret whose key is not valid base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook secret must be `whsec_` followed by a base64 key")]
pub(crate) struct InvalidSecret;

/// The HMAC key of a Standard Webhooks secret.
pub(crate) fn secret_key(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.strip_prefix("whsec_").ok_or(InvalidSecret)?;
    let key = STANDARD.decode(encoded).map_err(|_| InvalidSecret)?;
    if key.is_empty() {
        return Err(InvalidSecret);
    }
    Ok(key)
}

/// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256>` of
/// `"{id}.{timestamp}.{body}"`.
pub(crate) fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

type Log = Arc<Mutex<VecDeque<WebhookDelivery>>>;

fn update(log: &Log, id: &str, change: impl FnOnce(&mut WebhookDelivery)) {
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(record) = log.iter_mut().rev().find(|r| r.webhook_id == id) {
        change(record);
    }
}

/// The handle the state uses to queue notices, and to read the log.
#[derive(Debug)]
pub(crate) struct Webhooks {
    queue: mpsc::UnboundedSender<Notice>,
    log: Log,
}

impl Webhooks {
    /// Starts the delivery task on the current Tokio runtime. Aborting the
    /// returned handle stops it and every pending retry.
    pub(crate) fn start(target: WebhookTarget, key: Vec<u8>) -> (Self, JoinHandle<()>) {
        let (queue, notices) = mpsc::unbounded_channel();
        let log = Log::default();
        let worker = Worker {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(ATTEMPT_TIMEOUT)
                .build()
                .unwrap_or_default(),
            url: target.url,
            key: Arc::new(key),
            log: Arc::clone(&log),
        };
        let task = tokio::spawn(worker.run(notices));
        (Self { queue, log }, task)
    }

    /// Queues a notice. Never blocks and never fails the caller: a stopped
    /// sandbox simply delivers nothing.
    pub(crate) fn send(&self, notice: Notice) {
        if self.queue.send(notice).is_err() {
            tracing::debug!("webhook task has stopped; notice dropped");
        }
    }

    pub(crate) fn deliveries(&self) -> Vec<WebhookDelivery> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter().cloned().collect()
    }
}

#[derive(Debug, Clone)]
struct Worker {
    http: reqwest::Client,
    url: String,
    key: Arc<Vec<u8>>,
    log: Log,
}

impl Worker {
    /// First attempts go out in the order of the changes; a notice that
    /// needs retries gets a task of its own so it does not hold up the rest.
    async fn run(self, mut notices: mpsc::UnboundedReceiver<Notice>) {
        let mut retries = JoinSet::new();
        loop {
            tokio::select! {
                notice = notices.recv() => {
                    let Some(notice) = notice else { break };
                    let delivery = self.record(&notice);
                    if !self.attempt(&delivery).await {
                        retries.spawn(self.clone().retry(delivery));
                    }
                }
                Some(_) = retries.join_next(), if !retries.is_empty() => {}
            }
        }
        while retries.join_next().await.is_some() {}
    }

    fn record(&self, notice: &Notice) -> Pending {
        let delivery = Pending {
            id: format!("msg_{}", random_hex(12)),
            body: notice.body(),
        };
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(WebhookDelivery {
            webhook_id: delivery.id.clone(),
            event_type: notice.event_type.to_owned(),
            payment_id: notice.payment_id.clone(),
            cancellation_id: notice.cancellation_id.clone(),
            body: delivery.body.clone(),
            attempts: 0,
            last_http_status: None,
            status: DeliveryStatus::Pending,
        });
        delivery
    }

    async fn retry(self, delivery: Pending) {
        for delay in RETRY_DELAYS {
            tokio::time::sleep(delay).await;
            if self.attempt(&delivery).await {
                return;
            }
        }
        tracing::warn!(webhook_id = %delivery.id, "webhook abandoned after every retry failed");
        update(&self.log, &delivery.id, |r| {
            r.status = DeliveryStatus::Abandoned;
        });
    }

    /// One signed POST; true when the receiver answered 2xx.
    async fn attempt(&self, delivery: &Pending) -> bool {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let outcome = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&self.key, &delivery.id, timestamp, &delivery.body),
            )
            .body(delivery.body.clone())
            .send()
            .await;
        let status = match outcome {
            Ok(response) => Some(response.status()),
            Err(error) => {
                // The URL is the merchant's own; the error says only how
                // the connection failed.
                tracing::warn!(webhook_id = %delivery.id, error = %error.without_url(), "webhook delivery failed");
                None
            }
        };
        let delivered = status.is_some_and(|s| s.is_success());
        if let Some(status) = status.filter(|s| !s.is_success()) {
            tracing::warn!(webhook_id = %delivery.id, %status, "webhook receiver refused the delivery");
        }
        update(&self.log, &delivery.id, |r| {
            r.attempts += 1;
            r.last_http_status = status.map(|s| s.as_u16()).or(r.last_http_status);
            if delivered {
                r.status = DeliveryStatus::Delivered;
            }
        });
        delivered
    }
}

/// A delivery's fixed parts.
#[derive(Debug, Clone)]
struct Pending {
    id: String,
    body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_decode_and_signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(InvalidSecret)
        );
        assert_eq!(secret_key("whsec_not base64!"), Err(InvalidSecret));
        assert_eq!(secret_key("whsec_"), Err(InvalidSecret));
        assert!(secret_key(crate::config::DEFAULT_WEBHOOK_SECRET).is_ok());
    }

    #[test]
    fn the_body_is_the_v2_notice() {
        let notice = Notice {
            event_type: "Transaction.Cancelled",
            payment_id: "order-1".into(),
            transaction_id: "tx".into(),
            store_id: "store".into(),
            cancellation_id: Some("cxl".into()),
            at: 1_714_039_200,
        };
        let body: serde_json::Value = serde_json::from_str(&notice.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "Transaction.Cancelled",
                "timestamp": "2024-04-25T10:00:00Z",
                "data": {"paymentId": "order-1", "storeId": "store", "transactionId": "tx", "cancellationId": "cxl"},
            })
        );
    }
}
