//! A real browser for the console's tests: headless Chromium driven over
//! the W3C WebDriver protocol through chromedriver (both from Debian's
//! `chromium` and `chromium-driver`, which scripts/services installs).
//! Clicks and typing are WebDriver's own (real input events); scripts run
//! only to read what the page shows, never to act on it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use refund_core::testkit::services::{report, skip_or_fail};
use reqwest::Method;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// W3C's key for an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long the page may take to show something after an action.
const PATIENCE: Duration = Duration::from_secs(20);

/// A chromedriver child process on a free loopback port.
pub struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    /// Starts chromedriver, or `None` (a loud skip) when Chromium is not
    /// installed; under `CI=true` a missing browser fails the test instead.
    pub fn start() -> Option<ChromeDriver> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            return skip_or_fail(format!(
                "{CHROMIUM} and {CHROMEDRIVER} are required for the browser tests \
                 (`apt-get install chromium chromium-driver`, as scripts/services does)"
            ));
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Some(ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// A headless Chromium session with a fresh profile and no network
    /// chatter (the machine may be offline), its viewport `width` CSS
    /// pixels wide.
    pub async fn session(&self, width: u32) -> Browser {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
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
                    "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    "--force-device-scale-factor=1", "--lang=en-US",
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
        let browser = Browser {
            http,
            base: format!("{}/session/{id}", self.url),
            _profile: profile,
        };
        browser.resize(width, 900).await;
        browser
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session: the commands the console's tests need.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A WebDriver command: its `value`, or the error object it answered.
    async fn try_call(&self, method: Method, path: &str, body: Value) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        let value = answer["value"].clone();
        match value.get("error") {
            Some(_) => Err(value),
            None => Ok(value),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> Value {
        let what = format!("{method} {path}");
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {what} failed: {error}"))
    }

    /// Opens `url`.
    pub async fn navigate(&self, url: &str) {
        self.call(Method::POST, "/url", json!({ "url": url })).await;
    }

    /// Makes the viewport `width` × `height` CSS pixels (the window is
    /// grown by whatever its frame takes).
    pub async fn resize(&self, width: u32, height: u32) {
        let (mut outer_w, mut outer_h) = (i64::from(width), i64::from(height));
        for _ in 0..3 {
            self.call(
                Method::POST,
                "/window/rect",
                json!({"width": outer_w, "height": outer_h}),
            )
            .await;
            let inner = self
                .script("return [window.innerWidth, window.innerHeight];")
                .await;
            let w = inner[0].as_i64().unwrap_or(0);
            let h = inner[1].as_i64().unwrap_or(0);
            if (w, h) == (i64::from(width), i64::from(height)) {
                return;
            }
            outer_w += i64::from(width) - w;
            outer_h += i64::from(height) - h;
        }
    }

    /// Runs `script` (a function body) in the page and answers its result:
    /// for reading what the page shows, never for acting on it.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The element `css` selects, waiting for the page to render it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self
                .try_call(
                    Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(id) = found.as_ref().ok().and_then(|f| f[ELEMENT].as_str()) {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}: {found:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements `css` selects now.
    pub async fn count(&self, css: &str) -> usize {
        self.call(
            Method::POST,
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    /// Clicks the element `css` selects once it is displayed and enabled,
    /// as a user would (WebDriver scrolls it into view and sends real
    /// pointer events).
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let id = self.find(css).await;
            if self.is_enabled_id(&id).await {
                match self
                    .try_call(Method::POST, &format!("/element/{id}/click"), json!({}))
                    .await
                {
                    Ok(_) => return,
                    Err(error) => {
                        assert!(Instant::now() < deadline, "could not click {css}: {error}")
                    }
                }
            }
            assert!(Instant::now() < deadline, "{css} never became clickable");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces the text of the field `css` selects with `text`, typed key
    /// by key.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(Method::POST, &format!("/element/{id}/clear"), json!({}))
            .await;
        self.call(
            Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Presses Tab in the element `css` selects (the focus moves on).
    pub async fn press_tab(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": "\u{E004}" }),
        )
        .await;
    }

    async fn is_enabled_id(&self, id: &str) -> bool {
        self.call(Method::GET, &format!("/element/{id}/enabled"), Value::Null)
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// Whether the control `css` selects is enabled now.
    pub async fn is_enabled(&self, css: &str) -> bool {
        let id = self.find(css).await;
        self.is_enabled_id(&id).await
    }

    /// The rendered text of the element `css` selects, now.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.try_call(Method::GET, &format!("/element/{id}/text"), Value::Null)
            .await
            .ok()
            .and_then(|t| t.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The element's text once `ready` accepts it (the page updates after
    /// its fetches complete).
    pub async fn text_when(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text(css).await;
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

    /// Waits until `css` selects nothing (or only hidden elements).
    pub async fn gone(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        let script = format!(
            "return [...document.querySelectorAll({})].some(e => e.offsetParent !== null);",
            Value::from(css)
        );
        while self.script(&script).await.as_bool().unwrap_or(true) {
            assert!(Instant::now() < deadline, "{css} is still shown");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a PNG of the whole page (the viewport grown to the page's
    /// height, then restored) to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let size = self
            .script(
                "return [window.innerWidth, window.innerHeight, \
                 Math.ceil(document.body.getBoundingClientRect().bottom + window.scrollY), \
                 window.scrollY];",
            )
            .await;
        let width = size[0].as_u64().unwrap_or(1280) as u32;
        let height = size[1].as_u64().unwrap_or(900) as u32;
        let full = (size[2].as_u64().unwrap_or(900) as u32).clamp(height, 6000);
        self.resize(width, full).await;
        // The body's box, exactly (a window screenshot may add blank rows).
        let body = self.find("body").await;
        let png = self
            .call(
                Method::GET,
                &format!("/element/{body}/screenshot"),
                Value::Null,
            )
            .await;
        self.resize(width, height).await;
        // Back where the test left the page (growing the viewport scrolled it).
        self.script(&format!("window.scrollTo(0, {});", size[3]))
            .await;
        let png = decode_base64(png.as_str().expect("a base64 screenshot"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        report(&format!("screenshot: {}", path.display()));
    }

    /// Ends the session (Chromium exits).
    pub async fn close(self) {
        self.http.delete(&self.base).send().await.unwrap();
    }
}

/// Where a test's screenshots go: `console-screenshots/` under the cargo
/// target directory, never in the source tree.
pub fn screenshot_path(test: &str, step: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("console-screenshots")
        .join(format!("{test}-{step}.png"))
}

/// Standard base64 (WebDriver's screenshot encoding) to bytes.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut group = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            group |= value(*c) << (18 - 6 * i);
        }
        let produced = chunk.len() * 6 / 8;
        bytes.extend_from_slice(&group.to_be_bytes()[1..1 + produced]);
    }
    bytes
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listener.local_addr().unwrap().port()
}
