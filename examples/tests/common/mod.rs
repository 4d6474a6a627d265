//! The reliability tests' harness: the `iamport-sandbox` and
//! `merchant-server` binaries this package builds, run as real child
//! processes on loopback ports and driven over HTTP the way a client, an
//! operator and i'mport would. A process can be SIGKILLed and started again
//! on the same database, and everything it prints is kept for inspection.
//!
//! - [`SandboxProcess`]: the gateway, with its `/sandbox` control endpoints.
//! - [`MerchantServer`]: the demo server, configured by `REFUND_*` variables.
//! - [`TestDatabase`]: a fresh database per test (SQLite file, PostgreSQL,
//!   MariaDB, MongoDB), dropped afterwards.
//! - [`service_missing`]: a missing service fails the test under `CI=true`
//!   and skips it loudly elsewhere.
//!
//! Services are found at the URLs the storage crates' tests use
//! (`STORAGE_SQL_POSTGRES_URL`, `STORAGE_SQL_MYSQL_URL`, `MONGODB_URL`,
//! `REDIS_URL`, with the same defaults).

#![allow(dead_code)] // Each test binary uses the part it needs.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iamport_sandbox::Stats;
use rand::RngCore;
use refund_core::{Currency, DecimalText};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Upper bound on any wait for a process or a condition: a safety net
/// against hangs, never a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// i'mport client settings that make unknown outcomes settle in seconds:
/// a 500 ms connect and 2 s call timeout (so an in-flight bound of
/// 4 × 2.5 s = 10 s), the settle age at that bound (the server clamps 0 up
/// to it) and a sweep five times a second.
pub const FAST_RECONCILIATION: [(&str, &str); 4] = [
    ("REFUND_IAMPORT_CONNECT_TIMEOUT_MS", "500"),
    ("REFUND_IAMPORT_TIMEOUT_MS", "2000"),
    ("REFUND_SETTLE_AFTER_MS", "0"),
    ("REFUND_SWEEP_INTERVAL_MS", "200"),
];

/// Writes a line to the real stderr, past the test harness's capture, so
/// that figures and skips show in `cargo test` output.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// True when the tests run under CI, where every service must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// Called when a service the test needs is unreachable: fails the test
/// under `CI=true`, otherwise reports a loud skip. Returns `None` so the
/// caller can bail out.
pub fn service_missing<T>(what: &str, error: impl std::fmt::Display) -> Option<T> {
    skip_or_fail(&format!("{what} is unreachable ({error})"))
}

/// Called when this build lacks a cargo feature the test needs: like a
/// missing service, a failure under `CI=true` and a loud skip elsewhere.
pub fn feature_missing<T>(feature: &str) -> Option<T> {
    skip_or_fail(&format!(
        "this build has no `{feature}` backend (build with --all-features, as scripts/test does)"
    ))
}

fn skip_or_fail<T>(why: &str) -> Option<T> {
    assert!(!in_ci(), "required under CI=true: {why}");
    report(&format!(
        "\n!!!!! SKIPPED: {why}; set CI=true to make this fail !!!!!\n"
    ));
    None
}

/// Where Debian's `faketime` package installs libfaketime (scripts/services
/// installs the package), for other layouts too.
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

/// Variables that run a child process with its wall clock `offset_secs`
/// ahead of the real one (libfaketime, preloaded) while its monotonic clock
/// (tokio's timers, the HTTP client's timeouts) is left alone; for
/// [`MerchantServer::start`]'s `extra`. `None` (skip) when libfaketime is
/// missing or does not shift a child's clock, outside CI; a failure under
/// `CI=true`. Checked by running `date +%s` under the same variables.
pub fn wall_clock_shifted(offset_secs: i64) -> Option<Vec<(&'static str, String)>> {
    let Some(library) = LIBFAKETIME
        .iter()
        .find(|path| std::path::Path::new(path).is_file())
    else {
        return skip_or_fail(&format!(
            "libfaketime is not installed (none of {LIBFAKETIME:?}; \
             `apt-get install faketime`, as scripts/services does)"
        ));
    };
    let env = vec![
        ("LD_PRELOAD", (*library).to_owned()),
        ("FAKETIME", format!("{offset_secs:+}s")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ];
    let before = unix_secs();
    let shown = Command::new("date")
        .arg("+%s")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output();
    let after = unix_secs();
    let shown = match shown {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<i64>()
            .ok(),
        _ => None,
    };
    let expected = (before as i64 + offset_secs - 1)..=(after as i64 + offset_secs + 1);
    match shown {
        Some(shown) if expected.contains(&shown) => Some(env),
        shown => skip_or_fail(&format!(
            "{library} does not shift a child's clock by {offset_secs} s \
             (`date +%s` under it said {shown:?}, expected {expected:?})"
        )),
    }
}

/// A random lowercase hex string of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `probe` until it yields a value, for at most [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

/// An HTTP answer: status, raw text (amounts must be read from the text to
/// stay exact) and the parsed JSON (`Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, text, json }
    }

    /// The error code of an error answer (`""` when there is none).
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or_default()
    }

    /// The body as `T`, panicking with the body when it does not fit.
    pub fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("unexpected body ({error}): {}", self.text))
    }

    /// The payment view in a 200 answer.
    pub fn view(&self) -> View {
        assert_eq!(self.status, 200, "expected a payment view: {}", self.text);
        self.parse()
    }
}

/// The payment view the refund routes answer, amounts kept exact.
#[derive(Debug, Deserialize)]
pub struct View {
    pub merchant_uid: String,
    pub imp_uid: String,
    pub currency: Currency,
    pub status: String,
    amount: DecimalText,
    cancel_amount: DecimalText,
    pub cancel_history: Vec<HistoryEntry>,
    pub refund: Option<RefundRef>,
    pub pending_refunds: Vec<RefundRef>,
}

impl View {
    /// The amount paid, in minor units.
    pub fn amount(&self) -> i64 {
        minor(&self.amount, self.currency)
    }

    /// The amount refunded so far, in minor units.
    pub fn cancel_amount(&self) -> i64 {
        minor(&self.cancel_amount, self.currency)
    }
}

/// One cancellation in a view.
#[derive(Debug, Deserialize)]
pub struct HistoryEntry {
    pub amount: DecimalText,
}

/// A refund in a view (`refund`, `pending_refunds`) or a 202 answer.
#[derive(Debug, Deserialize)]
pub struct RefundRef {
    pub id: String,
    pub amount: DecimalText,
    pub status: String,
}

/// `text` in `currency`'s minor unit.
pub fn minor(text: &DecimalText, currency: Currency) -> i64 {
    currency
        .parse_major(text.as_str())
        .unwrap_or_else(|error| panic!("{} is not a {currency} amount: {error}", text.as_str()))
        .minor()
}

/// i'mport's envelope `{code, message, response}`.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    code: i64,
    response: Option<T>,
}

/// The sandbox's copy of a payment (the fields the tests compare).
#[derive(Debug, Deserialize)]
pub struct GatewayPayment {
    pub imp_uid: String,
    pub merchant_uid: String,
    pub currency: Currency,
    pub status: String,
    amount: DecimalText,
    cancel_amount: DecimalText,
}

impl GatewayPayment {
    /// The amount paid, in minor units.
    pub fn amount(&self) -> i64 {
        minor(&self.amount, self.currency)
    }

    /// The amount refunded at the gateway, in minor units.
    pub fn cancel_amount(&self) -> i64 {
        minor(&self.cancel_amount, self.currency)
    }
}

/// The `iamport-sandbox` binary on an ephemeral port, with credentials of
/// its own (so token caches shared through Redis never mix test runs).
pub struct SandboxProcess {
    process: Process,
    pub url: String,
    pub imp_key: String,
    pub imp_secret: String,
    http: reqwest::Client,
}

impl SandboxProcess {
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
        let admin_token = format!("admin_{}", random_hex(16));
        let mut env: Vec<(String, String)> = [
            ("REFUND_LISTEN", "127.0.0.1:0"),
            ("REFUND_DATABASE_URL", database_url),
            ("REFUND_IAMPORT_URL", &sandbox.url),
            ("REFUND_IAMPORT_KEY", &sandbox.imp_key),
            ("REFUND_IAMPORT_SECRET", &sandbox.imp_secret),
            ("REFUND_ADMIN_TOKEN", &admin_token),
            ("RUST_LOG", "info"),
            ("NO_COLOR", "1"),
        ]
        .iter()
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

/// Test databases are named `refund_rt_<unix seconds>_<random>`, so that a
/// later run can tell leftovers of a crashed run by their age.
const DATABASE_PREFIX: &str = "refund_rt_";

/// Leftover test databases older than this are dropped by the next run.
const LEFTOVER_AGE_SECS: u64 = 3600;

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn database_name() -> String {
    format!("{DATABASE_PREFIX}{}_{}", unix_secs(), random_hex(6))
}

fn is_leftover(name: &str) -> bool {
    name.strip_prefix(DATABASE_PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|created| created + LEFTOVER_AGE_SECS < unix_secs())
}

/// `url` with its path (the database) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let authority = base.find("://").map_or(0, |at| at + 3);
    let root = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        "" => format!("{root}/{database}"),
        query => format!("{root}/{database}?{query}"),
    }
}

/// Which server a [`TestDatabase`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    MariaDb,
    Mongo,
}

impl Engine {
    /// The name reports use.
    pub fn label(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::MariaDb => "MariaDB",
            Engine::Mongo => "MongoDB",
        }
    }
}

/// A database created for one test, dropped by [`TestDatabase::remove`].
pub struct TestDatabase {
    /// What `REFUND_DATABASE_URL` should say.
    pub url: String,
    pub engine: Engine,
    name: String,
    admin_url: String,
    // Keeps a SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A SQLite file in a temporary directory (no server needed).
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("refunds.db").display()
        );
        TestDatabase {
            url,
            engine: Engine::Sqlite,
            name: String::new(),
            admin_url: String::new(),
            _dir: Some(dir),
        }
    }

    /// A fresh database on the PostgreSQL server, or `None` (skip) when
    /// the server (or the `postgres` feature) is missing outside CI.
    #[cfg(not(feature = "postgres"))]
    pub async fn postgres() -> Option<TestDatabase> {
        feature_missing("postgres")
    }

    /// A fresh database on the PostgreSQL server, or `None` (skip) when
    /// the server is missing outside CI.
    #[cfg(feature = "postgres")]
    pub async fn postgres() -> Option<TestDatabase> {
        let server = std::env::var("STORAGE_SQL_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin = match connect_with_timeout(sqlx::PgPool::connect(&server)).await {
            Ok(admin) => admin,
            Err(error) => return service_missing("PostgreSQL ($STORAGE_SQL_POSTGRES_URL)", error),
        };
        let listed = "SELECT datname::text FROM pg_database WHERE datname LIKE 'refund\\_rt\\_%'";
        let drop = |name: &str| format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let name = fresh_sql_database(&admin, listed, drop).await;
        admin.close().await;
        Some(TestDatabase {
            url: with_database(&server, &name),
            engine: Engine::Postgres,
            name,
            admin_url: server,
            _dir: None,
        })
    }

    /// A fresh database on the MariaDB (or MySQL) server, or `None` (skip)
    /// when the server (or the `mysql` feature) is missing outside CI.
    #[cfg(not(feature = "mysql"))]
    pub async fn mariadb() -> Option<TestDatabase> {
        feature_missing("mysql")
    }

    /// A fresh database on the MariaDB (or MySQL) server, or `None` (skip)
    /// when the server is missing outside CI.
    #[cfg(feature = "mysql")]
    pub async fn mariadb() -> Option<TestDatabase> {
        let server = std::env::var("STORAGE_SQL_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
        let admin = match connect_with_timeout(sqlx::MySqlPool::connect(&server)).await {
            Ok(admin) => admin,
            Err(error) => return service_missing("MariaDB ($STORAGE_SQL_MYSQL_URL)", error),
        };
        let listed = "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
                      WHERE SCHEMA_NAME LIKE 'refund\\_rt\\_%'";
        let drop = |name: &str| format!("DROP DATABASE IF EXISTS {name}");
        let name = fresh_sql_database(&admin, listed, drop).await;
        admin.close().await;
        Some(TestDatabase {
            url: with_database(&server, &name),
            engine: Engine::MariaDb,
            name,
            admin_url: server,
            _dir: None,
        })
    }

    /// A fresh database name on the MongoDB server, or `None` (skip) when
    /// the server (or the `mongo` feature) is missing outside CI.
    #[cfg(not(feature = "mongo"))]
    pub async fn mongo() -> Option<TestDatabase> {
        feature_missing("mongo")
    }

    /// A fresh database name on the MongoDB server (created by the server's
    /// first write), or `None` (skip) when the server is missing outside CI.
    #[cfg(feature = "mongo")]
    pub async fn mongo() -> Option<TestDatabase> {
        let server =
            std::env::var("MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".to_owned());
        let name = database_name();
        let url = with_database(&server, &name);
        let store = match storage_mongo::MongoPaymentStore::connect(&url, &name).await {
            Ok(store) => store,
            Err(error) => return service_missing("MongoDB ($MONGODB_URL)", error),
        };
        let client = store.database().client();
        match client.list_database_names().await {
            Ok(names) => {
                for leftover in names.iter().filter(|name| is_leftover(name)) {
                    client
                        .database(leftover)
                        .drop()
                        .await
                        .expect("drop a leftover test database");
                }
            }
            Err(error) => return service_missing("MongoDB ($MONGODB_URL)", error),
        }
        Some(TestDatabase {
            url,
            engine: Engine::Mongo,
            name,
            admin_url: server,
            _dir: None,
        })
    }

    /// Drops the database (a SQLite file goes with its directory).
    pub async fn remove(self) {
        match self.engine {
            #[cfg(feature = "postgres")]
            Engine::Postgres => {
                let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                sqlx::raw_sql(&sql).execute(&admin).await.unwrap();
                admin.close().await;
            }
            #[cfg(feature = "mysql")]
            Engine::MariaDb => {
                let admin = sqlx::MySqlPool::connect(&self.admin_url).await.unwrap();
                let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
                sqlx::raw_sql(&sql).execute(&admin).await.unwrap();
                admin.close().await;
            }
            #[cfg(feature = "mongo")]
            Engine::Mongo => {
                let store = storage_mongo::MongoPaymentStore::connect(&self.url, &self.name)
                    .await
                    .unwrap();
                store.database().drop().await.unwrap();
            }
            _ => {}
        }
    }
}

/// Connects an admin pool, giving up after 5 s (a missing server is a skip).
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn connect_with_timeout<P>(
    connect: impl Future<Output = Result<P, sqlx::Error>>,
) -> Result<P, String> {
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

/// Drops leftover test databases `listed` finds, creates a new one and
/// returns its name.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn fresh_sql_database<DB: sqlx::Database>(
    admin: &sqlx::Pool<DB>,
    listed: &str,
    drop: impl Fn(&str) -> String,
) -> String
where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let existing: Vec<(String,)> = sqlx::query_as(listed)
        .fetch_all(admin)
        .await
        .expect("list test databases");
    for (leftover,) in existing.iter().filter(|(name,)| is_leftover(name)) {
        sqlx::raw_sql(&drop(leftover))
            .execute(admin)
            .await
            .expect("drop a leftover test database");
    }
    let name = database_name();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(admin)
        .await
        .expect("create a test database");
    name
}

/// The Redis for the shared token cache, or `None` (skip) when it (or the
/// `redis` feature) is missing outside CI.
pub fn redis_url() -> Option<String> {
    if !cfg!(feature = "redis") {
        return feature_missing("redis");
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let host = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&host)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)));
    match reachable {
        Some(Ok(_)) => Some(url),
        Some(Err(error)) => service_missing("Redis ($REDIS_URL)", error),
        None => service_missing("Redis ($REDIS_URL)", "unresolvable address"),
    }
}
