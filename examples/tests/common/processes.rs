//! The `iamport-sandbox` and `merchant-server` binaries this package
//! builds, run as child processes on loopback ports and driven over HTTP.
//! A process can be SIGKILLed and started again on the same database, and
//! everything it prints is kept for inspection.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use iamport_sandbox::Stats;
use refund_core::testkit::services::report;
use reqwest::Method;
use serde_json::{json, Value};

use super::answers::{Answer, Envelope, GatewayPayment};
use super::{eventually, random_hex, PATIENCE};

/// A child process whose stdout and stderr are collected line by line.
/// Dropping it kills it; if the test is failing, its last lines are printed.
pub struct Process {
    name: String,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Process {
    fn spawn(name: &str, command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {name}: {error}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            collect_lines(stdout, output.clone()),
            collect_lines(stderr, output.clone()),
        ];
        Process {
            name: name.to_owned(),
            child,
            output,
            readers,
        }
    }

    /// Everything printed so far, one string.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// The first printed line that `find` accepts, waiting for it; panics
    /// if the process exits first.
    async fn wait_for_line(&mut self, what: &str, find: impl Fn(&str) -> Option<String>) -> String {
        eventually(what, || {
            let found = self.output.lock().unwrap().iter().find_map(|l| find(l));
            if found.is_none() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!(
                        "{} exited ({status}) before {what}:\n{}",
                        self.name,
                        self.output()
                    );
                }
            }
            std::future::ready(found)
        })
        .await
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    /// Returns once everything the process printed has been collected.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let output = self.output.lock().unwrap_or_else(|e| e.into_inner());
            let tail = &output[output.len().saturating_sub(60)..];
            report(&format!(
                "----- last output of {} -----\n{}\n-----",
                self.name,
                tail.join("\n")
            ));
        }
    }
}

/// Reads `pipe` line by line (lossily decoded) into `into`, on a thread
/// that ends when the pipe closes.
fn collect_lines(
    pipe: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            into.lock().unwrap().push(text);
            line.clear();
        }
    })
}

/// The text after `marker` in `line` up to the next `/` (an `ip:port`).
fn address_after(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let end = rest.find('/').unwrap_or(rest.len());
    Some(rest[..end].trim().to_owned())
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("reqwest client")
}

/// its own (so token caches shared through Redis never mix test runs).
pub struct SandboxProcess {
    process: Process,
    pub url: String,
    pub imp_key: String,
    pub imp_secret: String,
    /// The V2 API secret (a sandbox started with [`Self::start_portone`]).
    pub api_secret: String,
    http: reqwest::Client,
}

impl SandboxProcess {
    /// Starts a PortOne V2 sandbox (no webhook target) and waits until it
    /// serves.
    pub async fn start_portone() -> SandboxProcess {
        let api_secret = format!("v2secret_{}", random_hex(16));
        let mut process = Process::spawn(
            "iamport-sandbox",
            Command::new(env!("CARGO_BIN_EXE_iamport-sandbox"))
                .args(["--listen", "127.0.0.1:0", "--api", "portone"])
                .args(["--api-secret", &api_secret])
                .env("NO_COLOR", "1")
                .env("RUST_LOG", "warn"),
        );
        let addr = process
            .wait_for_line("the sandbox's address", |line| {
                address_after(line, "listening on http://")
            })
            .await;
        let sandbox = SandboxProcess {
            process,
            url: format!("http://{addr}"),
            imp_key: String::new(),
            imp_secret: String::new(),
            api_secret,
            http: http_client(),
        };
        sandbox.stats().await;
        sandbox
    }

    /// V2: seeds a paid payment with this `paymentId`; returns its
    /// `transactionId`.
    pub async fn create_portone_payment(&self, payment_id: &str, amount: i64) -> String {
        self.create_portone_payment_in(payment_id, amount, "KRW")
            .await
    }

    /// V2: [`create_portone_payment`](Self::create_portone_payment) in
    /// `currency` (`amount` in its minor unit).
    pub async fn create_portone_payment_in(
        &self,
        payment_id: &str,
        amount: i64,
        currency: &str,
    ) -> String {
        let body = json!({"payment_id": payment_id, "amount": amount, "currency": currency});
        let answer = self
            .control(Method::POST, "/sandbox/payments", Some(body))
            .await;
        assert_eq!(answer.status, 200, "seeding a payment: {}", answer.text);
        answer.json["transactionId"]
            .as_str()
            .expect("a transactionId")
            .to_owned()
    }

    /// V2: the gateway's copy of a payment, read through PortOne's own API.
    pub async fn portone_payment(&self, payment_id: &str) -> GatewayPayment {
        let response = self
            .http
            .get(format!("{}/payments/{payment_id}", self.url))
            .header("Authorization", format!("PortOne {}", self.api_secret))
            .send()
            .await
            .expect("the sandbox answers");
        let answer = Answer::read(response).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        GatewayPayment::from_portone(&answer.json)
    }

    /// V2: `amount.cancelled` of a payment, read through PortOne's own API.
    pub async fn portone_cancelled(&self, payment_id: &str) -> i64 {
        let response = self
            .http
            .get(format!("{}/payments/{payment_id}", self.url))
            .header("Authorization", format!("PortOne {}", self.api_secret))
            .send()
            .await
            .expect("the sandbox answers");
        let answer = Answer::read(response).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["amount"]["cancelled"]
            .as_i64()
            .unwrap_or_else(|| panic!("no amount.cancelled: {}", answer.text))
    }

    /// V2: completes every asynchronous (`REQUESTED`) cancel, succeeding or
    /// failing them.
    pub async fn complete_requested(&self, succeed: bool) {
        let body = json!({"succeed": succeed});
        let answer = self
            .control(Method::POST, "/sandbox/cancellations/complete", Some(body))
            .await;
        assert_eq!(answer.status, 200, "completing cancels: {}", answer.text);
    }

    /// Starts a sandbox and waits until it serves.
    pub async fn start() -> SandboxProcess {
        let imp_key = format!("key_{}", random_hex(6));
        let imp_secret = format!("secret_{}", random_hex(16));
        let mut process = Process::spawn(
            "iamport-sandbox",
            Command::new(env!("CARGO_BIN_EXE_iamport-sandbox"))
                .args(["--listen", "127.0.0.1:0", "--imp-key", &imp_key])
                .args(["--imp-secret", &imp_secret])
                .env("NO_COLOR", "1")
                .env("RUST_LOG", "warn"),
        );
        let addr = process
            .wait_for_line("the sandbox's address", |line| {
                address_after(line, "listening on http://")
            })
            .await;
        let sandbox = SandboxProcess {
            process,
            url: format!("http://{addr}"),
            imp_key,
            imp_secret,
            api_secret: String::new(),
            http: http_client(),
        };
        sandbox.stats().await;
        sandbox
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::read(request.send().await.expect("the sandbox answers")).await
    }

    /// Seeds a paid payment (`extra` may set `currency`, `pay_method`,
    /// `status`, `paid_at`); returns its `imp_uid`.
    pub async fn create_payment(&self, merchant_uid: &str, amount: &str, extra: Value) -> String {
        let mut body = json!({"merchant_uid": merchant_uid});
        body["amount"] = serde_json::from_str(amount).expect("amount is a JSON number");
        if let Value::Object(extra) = extra {
            body.as_object_mut().unwrap().extend(extra);
        }
        let answer = self
            .control(Method::POST, "/sandbox/payments", Some(body))
            .await;
        assert_eq!(answer.status, 200, "seeding a payment: {}", answer.text);
        answer.json["response"]["imp_uid"]
            .as_str()
            .expect("an imp_uid")
            .to_owned()
    }

    /// Arms a fault: `{"fault": ..., "times"?, "hold_ms"?, "endpoint"?}`,
    /// or revokes every token with `{"fault": "revoke_tokens"}`.
    pub async fn arm(&self, fault: Value) {
        let answer = self
            .control(Method::POST, "/sandbox/faults", Some(fault))
            .await;
        assert_eq!(answer.status, 200, "arming a fault: {}", answer.text);
    }

    /// Cancels as i'mport's admin console would, outside the merchant server.
    pub async fn admin_cancel(&self, imp_uid: &str, amount: &str) {
        let body = json!({"amount": serde_json::from_str::<Value>(amount).unwrap()});
        let path = format!("/sandbox/payments/{imp_uid}/admin-cancel");
        let answer = self.control(Method::POST, &path, Some(body)).await;
        assert_eq!(answer.status, 200, "admin cancel: {}", answer.text);
    }

    /// The call counters.
    pub async fn stats(&self) -> Stats {
        let answer = eventually("the sandbox's stats", || async {
            let request = self.http.get(format!("{}/sandbox/stats", self.url));
            match request.send().await {
                Ok(response) => Some(Answer::read(response).await),
                Err(_) => None,
            }
        })
        .await;
        // V1 wraps control answers in its envelope; V2 answers them bare.
        if answer.json.get("code").is_none() {
            return serde_json::from_value(answer.json).expect("stats");
        }
        let envelope: Envelope<Stats> = answer.parse();
        envelope.response.expect("stats")
    }

    /// The live access token, asked for with the merchant's own
    /// credentials: the sandbox hands out the live token again rather
    /// than minting one, so this is the token the servers use.
    pub async fn live_token(&self) -> String {
        let response = self
            .http
            .post(format!("{}/users/getToken", self.url))
            .json(&json!({"imp_key": self.imp_key, "imp_secret": self.imp_secret}))
            .send()
            .await
            .expect("getToken answers");
        let answer = Answer::read(response).await;
        answer.json["response"]["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {}", answer.text))
            .to_owned()
    }

    /// The gateway's copy of a payment, read through i'mport's own API.
    pub async fn payment(&self, imp_uid: &str) -> GatewayPayment {
        let token = self.live_token().await;
        let response = self
            .http
            .get(format!("{}/payments/{imp_uid}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("the sandbox answers");
        let answer = Answer::read(response).await;
        let envelope: Envelope<GatewayPayment> = answer.parse();
        assert_eq!(envelope.code, 0, "{}", answer.text);
        envelope.response.expect("a payment")
    }
}

/// A `merchant-server` process against a sandbox, configured entirely by
/// `REFUND_*` variables, on an ephemeral port. [`restart`](Self::restart)
/// starts it again with the same configuration (and database).
pub struct MerchantServer {
    process: Process,
    env: Vec<(String, String)>,
    pub url: String,
    pub admin_token: String,
    http: reqwest::Client,
}

impl MerchantServer {
    /// Starts a server on `database_url` against `sandbox`; `extra` adds or
    /// overrides variables (`REFUND_REDIS_URL`, tuning, `RUST_LOG`).
    pub async fn start(
        sandbox: &SandboxProcess,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> MerchantServer {
        let server = Self::start_listening(sandbox, database_url, extra).await;
        server.wait_until_healthy().await;
        server
    }

    /// Like [`start`](Self::start), but returns once the server listens,
    /// without waiting for `/healthz` to be 200 (a server whose store is
    /// not writable never gets there).
    pub async fn start_listening(
        sandbox: &SandboxProcess,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> MerchantServer {
        let gateway = [
            ("REFUND_IAMPORT_URL", sandbox.url.as_str()),
            ("REFUND_IAMPORT_KEY", &sandbox.imp_key),
            ("REFUND_IAMPORT_SECRET", &sandbox.imp_secret),
        ];
        Self::start_with_gateway(&gateway, database_url, extra).await
    }

    /// Like [`start`](Self::start), on PortOne V2 against a sandbox from
    /// [`SandboxProcess::start_portone`] (no webhook secret: notices are a
    /// cue to fetch).
    pub async fn start_portone(
        sandbox: &SandboxProcess,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> MerchantServer {
        let gateway = [
            ("REFUND_GATEWAY", "portone"),
            ("REFUND_PORTONE_URL", sandbox.url.as_str()),
            ("REFUND_PORTONE_SECRET", &sandbox.api_secret),
        ];
        let server = Self::start_with_gateway(&gateway, database_url, extra).await;
        server.wait_until_healthy().await;
        server
    }

    async fn start_with_gateway(
        gateway: &[(&str, &str)],
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> MerchantServer {
        let admin_token = format!("admin_{}", random_hex(16));
        let mut env: Vec<(String, String)> = gateway
            .iter()
            .copied()
            .chain([
                ("REFUND_LISTEN", "127.0.0.1:0"),
                ("REFUND_DATABASE_URL", database_url),
                ("REFUND_ADMIN_TOKEN", &admin_token),
                ("RUST_LOG", "info"),
                ("NO_COLOR", "1"),
            ])
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        }
        let process = Self::spawn(&env);
        let mut server = MerchantServer {
            process,
            env,
            url: String::new(),
            admin_token,
            http: http_client(),
        };
        server.wait_until_listening().await;
        server
    }

    fn spawn(env: &[(String, String)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_merchant-server"));
        // Only what the test sets: no REFUND_* of the developer's shell.
        command.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        Process::spawn("merchant-server", &mut command)
    }

    async fn wait_until_serving(&mut self) {
        self.wait_until_listening().await;
        self.wait_until_healthy().await;
    }

    async fn wait_until_listening(&mut self) {
        let addr = self
            .process
            .wait_for_line("the merchant server's address", |line| {
                address_after(line, "open http://")
            })
            .await;
        self.url = format!("http://{addr}");
    }

    async fn wait_until_healthy(&self) {
        eventually("/healthz to answer 200", || async {
            (self.healthz().await == 200).then_some(())
        })
        .await;
    }

    /// SIGKILL, as in a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server (if it still runs) and starts it again with the
    /// same configuration, on a new port.
    pub async fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(&self.env);
        self.wait_until_serving().await;
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// A request to `path` with the admin token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, path).bearer_auth(&self.admin_token)
    }

    /// A request to `path` without credentials.
    pub fn anonymous(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// Sends `request` and reads the answer; panics if there is none.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::read(request.send().await.expect("the merchant server answers")).await
    }

    /// `POST /payments/cancel` with `body` and an optional `Idempotency-Key`.
    pub async fn cancel(&self, body: &Value, key: Option<&str>) -> Answer {
        let mut request = self.request(Method::POST, "/payments/cancel").json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    /// `GET /payments/{merchant_uid}`.
    pub async fn view(&self, merchant_uid: &str) -> Answer {
        let path = format!("/payments/{merchant_uid}");
        self.send(self.request(Method::GET, &path)).await
    }

    /// `POST /payments/{merchant_uid}/sync`.
    pub async fn sync(&self, merchant_uid: &str) -> Answer {
        let path = format!("/payments/{merchant_uid}/sync");
        self.send(self.request(Method::POST, &path)).await
    }

    /// `POST /payments/webhook` as i'mport sends it (no credentials).
    pub async fn webhook(&self, imp_uid: &str, merchant_uid: &str) -> Answer {
        let request = self
            .anonymous(Method::POST, "/payments/webhook")
            .json(&json!({"imp_uid": imp_uid, "merchant_uid": merchant_uid, "status": "paid"}));
        self.send(request).await
    }

    /// A PortOne V2 notice for a payment, unsigned (the server has no
    /// webhook secret: it is a cue to fetch).
    pub async fn portone_webhook(&self, payment_id: &str, transaction_id: &str) -> Answer {
        let body = json!({"type": "Transaction.Paid", "timestamp": "2026-01-01T00:00:00Z",
                          "data": {"paymentId": payment_id, "transactionId": transaction_id,
                                   "storeId": "store"}});
        let request = self
            .anonymous(Method::POST, "/payments/webhook")
            .json(&body);
        self.send(request).await
    }

    /// Imports a payment the sandbox holds, through the webhook.
    pub async fn import(&self, imp_uid: &str, merchant_uid: &str) {
        let answer = self.webhook(imp_uid, merchant_uid).await;
        assert_eq!(answer.status, 200, "webhook: {}", answer.text);
        assert_eq!(self.view(merchant_uid).await.status, 200);
    }

    /// `GET /healthz`'s status (0 when nothing answers).
    pub async fn healthz(&self) -> u16 {
        match self.http.get(format!("{}/healthz", self.url)).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }
}
