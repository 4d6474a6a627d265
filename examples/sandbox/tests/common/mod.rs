//! Shared helpers: a sandbox on an ephemeral port and a plain HTTP client.

#![allow(dead_code)] // each test binary uses its own subset

use iamport_sandbox::{Currency, NewPayment, Payment, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::Value;

pub struct Harness {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
}

/// A reply: HTTP status, raw body text and the body as JSON (Null if not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn code(&self) -> i64 {
        self.json["code"].as_i64().expect("envelope has a code")
    }

    pub fn response(&self) -> &Value {
        &self.json["response"]
    }

    /// A gateway refusal: HTTP 200, code != 0, response null, some message.
    pub fn assert_refused(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert_ne!(self.code(), 0, "{}", self.text);
        assert!(self.response().is_null(), "{}", self.text);
        assert!(self.json["message"].is_string(), "{}", self.text);
    }

    /// A success: HTTP 200, code 0, a response.
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert_eq!(self.code(), 0, "{}", self.text);
        assert!(!self.response().is_null(), "{}", self.text);
        self.response()
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_config(SandboxConfig::default()).await
    }

    pub async fn with_config(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("client builds");
        Self { sandbox, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub fn seed(&self, new: NewPayment) -> Payment {
        self.sandbox
            .create_payment(new)
            .expect("payment is created")
    }

    pub fn seed_krw(&self, merchant_uid: &str, amount: i64) -> Payment {
        self.seed(NewPayment::new(merchant_uid, amount, Currency::Krw))
    }

    pub async fn token(&self) -> String {
        let reply = self
            .send(
                self.http
                    .post(self.url("/users/getToken"))
                    .json(&serde_json::json!({
                        "imp_key": self.sandbox.imp_key(),
                        "imp_secret": self.sandbox.imp_secret(),
                    })),
            )
            .await;
        reply.assert_ok()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request completes");
        let status = response.status();
        let text = response.text().await.expect("body is readable");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, text, json }
    }

    pub async fn cancel(&self, token: &str, body: Value) -> Reply {
        self.send(
            self.http
                .post(self.url("/payments/cancel"))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }
}
