//! The demo page in a real browser: headless Chromium, driven over the W3C
//! WebDriver protocol through chromedriver, clicks through a partial refund
//! and a refused over-refund on the merchant server in sandbox mode.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use refund_examples::server;
use refund_examples::settings::Settings;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// W3C's key for an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_refund_and_a_refused_over_refund_from_the_demo_page() {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "chromium and chromium-driver are required under CI (scripts/test installs them)"
        );
        eprintln!("!!! SKIPPED browser test: install chromium and chromium-driver to run it");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(format!(
            "sqlite://{}?mode=rwc",
            data.path().join("demo.db").display()
        )),
        redis_url: None,
        iamport_url: None,
        iamport_key: None,
        iamport_secret: None,
        admin_token: None,
        ..Settings::default()
    };
    let running = server::start(settings).await.unwrap();
    let card_order = running
        .demo_orders()
        .iter()
        .find(|uid| uid.ends_with("-card"))
        .unwrap()
        .clone();

    let driver = ChromeDriver::start();
    let browser = driver.session().await;
    browser
        .navigate(&format!("http://{}/", running.addr()))
        .await;

    let row = format!(r#"tr[data-merchant-uid="{card_order}"]"#);
    browser.click(&format!("{row} button.open-refund")).await;
    browser.type_into("#refund-amount", "1000").await;
    browser.type_into("#refund-reason", "size too small").await;
    browser.click("#refund-submit").await;
    let result = browser.text_when("#refund-result", |t| !t.is_empty()).await;
    assert!(result.starts_with("Refund successful"), "{result}");
    assert!(result.contains("49000 left"), "{result}");
    let refunded = browser
        .text_when(&format!(r#"{row} td[data-field="refunded"]"#), |t| {
            t == "1000"
        })
        .await;
    assert_eq!(refunded, "1000");

    browser.click(&format!("{row} button.open-refund")).await;
    browser.type_into("#refund-amount", "999999").await;
    browser.click("#refund-submit").await;
    let result = browser.text_when("#refund-result", |t| !t.is_empty()).await;
    assert!(result.starts_with("Refund failed"), "{result}");
    assert!(result.contains("exceeds the cancelable amount"), "{result}");

    let sandbox = running.sandbox().unwrap();
    let payment = sandbox.payment_by_merchant_uid(&card_order).unwrap();
    assert_eq!(
        payment.cancel_amount, 1000,
        "exactly the partial refund reached the gateway"
    );
    assert_eq!(sandbox.stats().cancel.attempted, 1);
    browser.close().await;
    running.stop().await;
}

/// A chromedriver child process on a free loopback port.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium session with a fresh profile and no network
    /// chatter (the machine is offline).
    async fn session(&self) -> Browser {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http
            .get(format!("{}/status", self.url))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let answer: Value = http
            .post(format!("{}/session", self.url))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"));
        Browser {
            http,
            base: format!("{}/session/{id}", self.url),
            _profile: profile,
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session: just the commands this test needs.
struct Browser {
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn navigate(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// The element `css` selects, waiting for the page to render it.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}: {found}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// The element's text once `ready` accepts it (the page updates after
    /// its fetches complete).
    async fn text_when(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css).await;
            let text = self
                .call(
                    reqwest::Method::GET,
                    &format!("/element/{id}/text"),
                    Value::Null,
                )
                .await;
            let text = text.as_str().unwrap_or_default().to_owned();
            if ready(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never got ready; last text {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn close(self) {
        self.http.delete(&self.base).send().await.unwrap();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listener.local_addr().unwrap().port()
}
