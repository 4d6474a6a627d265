//! The operator console in a real browser: headless Chromium, driven over
//! WebDriver with real clicks and typing, on the merchant server in sandbox
//! mode (its seeded payments, its in-process sandbox for faults and for
//! refunds made at the gateway's own console). Each step is photographed
//! under the target directory (`tmp/console-screenshots/`) for a human to
//! look at.

mod common;

use std::time::Duration;

use common::browser::{screenshot_path, Browser, ChromeDriver};
use iamport_sandbox::{AdminCancel, Fault, FaultTarget};
use refund_examples::server::{self, RunningServer};
use refund_examples::settings::Settings;

/// The i'mport client's timeouts here: short, so that a refund that never
/// reached the gateway can be judged soon (after the in-flight bound of
/// 4 × (connect + request)), yet long enough for a reply held 1.2 s.
const CONNECT_TIMEOUT_MS: u64 = 200;
const REQUEST_TIMEOUT_MS: u64 = 2_500;
/// Past the in-flight bound: a pending refund this old can be settled.
const SETTLEABLE_AFTER: Duration =
    Duration::from_millis(4 * (CONNECT_TIMEOUT_MS + REQUEST_TIMEOUT_MS) + 500);

/// The console on a fresh sandbox-mode server, in a browser `width` pixels
/// wide; `None` when Chromium is missing outside CI.
struct Console {
    browser: Browser,
    running: RunningServer,
    test: &'static str,
    step: u32,
    _driver: ChromeDriver,
    _data: tempfile::TempDir,
}

impl Console {
    async fn open(test: &'static str, width: u32) -> Option<Console> {
        let driver = ChromeDriver::start()?;
        let data = tempfile::tempdir().unwrap();
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: Some(format!(
                "sqlite://{}?mode=rwc",
                data.path().join("console.db").display()
            )),
            iamport_connect_timeout_ms: Some(CONNECT_TIMEOUT_MS),
            iamport_timeout_ms: Some(REQUEST_TIMEOUT_MS),
            settle_after_ms: Some(0),
            // The operator settles refunds here, not the background sweep.
            sweep_interval_ms: Some(3_600_000),
            ..Settings::default()
        };
        let running = server::start(settings).await.unwrap();
        let browser = driver.session(width).await;
        browser
            .navigate(&format!("http://{}/", running.addr()))
            .await;
        let console = Console {
            browser,
            running,
            test,
            step: 0,
            _driver: driver,
            _data: data,
        };
        // Loaded: every seeded payment is listed.
        for uid in console.running.demo_orders() {
            console.browser.find(&payment(uid)).await;
        }
        Some(console)
    }

    /// The seeded order whose id ends with `-{kind}`.
    fn order(&self, kind: &str) -> String {
        let suffix = format!("-{kind}");
        self.running
            .demo_orders()
            .iter()
            .find(|uid| uid.ends_with(&suffix))
            .unwrap_or_else(|| panic!("no seeded {kind} payment"))
            .clone()
    }

    fn sandbox(&self) -> &iamport_sandbox::Sandbox {
        self.running.sandbox().expect("sandbox mode")
    }

    /// Photographs the page as it is now.
    async fn shot(&mut self, step: &str) {
        self.step += 1;
        let name = format!("{:02}-{step}", self.step);
        self.browser
            .screenshot(&screenshot_path(self.test, &name))
            .await;
    }

    /// Opens the Request Refund form of `uid` with its row's button.
    async fn open_refund(&self, uid: &str) {
        self.browser
            .click(&format!("{} button.open-refund", payment(uid)))
            .await;
        self.browser
            .find(&format!("{} .refund-form", payment(uid)))
            .await;
    }

    /// Fills the open form of `uid` (amount, reason) and submits it with a
    /// click; answers the form's result once the request is over.
    async fn request_refund(&self, uid: &str, amount: &str, reason: &str) -> String {
        let form = format!("{} .refund-form", payment(uid));
        self.browser
            .type_into(&format!("{form} input[data-name=amount]"), amount)
            .await;
        self.browser
            .type_into(&format!("{form} input[data-name=reason]"), reason)
            .await;
        self.submit(uid).await
    }

    /// Clicks Request Refund on `uid`'s form and waits for the answer.
    async fn submit(&self, uid: &str) -> String {
        let form = format!("{} .refund-form", payment(uid));
        self.browser
            .click(&format!("{form} button.refund-submit"))
            .await;
        self.result(uid).await
    }

    async fn result(&self, uid: &str) -> String {
        let form = format!("{} .refund-form", payment(uid));
        self.browser
            .text_when(&format!("{form} .refund-result"), |t| {
                !t.is_empty() && !t.starts_with("Processing")
            })
            .await
    }

    /// The text of `uid`'s `field` cell once `ready` accepts it.
    async fn cell_when(&self, uid: &str, field: &str, ready: impl Fn(&str) -> bool) -> String {
        self.browser
            .text_when(
                &format!(r#"{} .payment-row [data-field="{field}"]"#, payment(uid)),
                ready,
            )
            .await
    }

    /// Whether the element `css` selects lies inside the viewport.
    async fn in_view(&self, css: &str) -> bool {
        self.browser
            .script(&format!(
                "const r = document.querySelector({}).getBoundingClientRect(); \
                 return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0;",
                serde_json::Value::from(css)
            ))
            .await
            .as_bool()
            .unwrap_or(false)
    }

    async fn close(self) {
        self.browser.close().await;
        self.running.stop().await;
    }
}

/// The table body of one payment (its row, refund form and history).
fn payment(uid: &str) -> String {
    format!(r#"tbody.payment[data-merchant-uid="{uid}"]"#)
}

/// The queue item of a refund of `uid` in `queue` (`pending`, `review`).
fn queued(queue: &str, uid: &str) -> String {
    format!(r#"#{queue}-queue li[data-merchant-uid="{uid}"]"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_refund_shows_processing_then_its_result_beside_the_payment() {
    let Some(mut console) = Console::open("partial-refund", 390).await else {
        return;
    };
    let card = console.order("card");
    console.shot("loaded").await;
    assert_eq!(
        console.cell_when(&card, "refundable", |_| true).await,
        "₩50,000"
    );
    console.open_refund(&card).await;
    let form = format!("{} .refund-form", payment(&card));
    assert!(
        console
            .browser
            .script("return document.activeElement.dataset.name === 'amount';")
            .await
            .as_bool()
            .unwrap(),
        "the form takes the focus at its amount"
    );
    assert!(console.in_view(&form).await, "the form opens in view");
    let vbank_fields = console
        .browser
        .script(&format!(
            "return document.querySelector({}).hidden;",
            serde_json::Value::from(format!("{form} .vbank-fields"))
        ))
        .await;
    assert_eq!(vbank_fields, true, "no account fields for a card payment");

    // The gateway takes its time: the request is visibly in flight.
    console.sandbox().inject_fault(
        Fault::HoldAfterCommit(Duration::from_millis(1_200)),
        FaultTarget::Cancel,
        1,
    );
    console
        .browser
        .type_into(&format!("{form} input[data-name=amount]"), "1,000")
        .await;
    console
        .browser
        .type_into(&format!("{form} input[data-name=reason]"), "size too small")
        .await;
    console
        .browser
        .click(&format!("{form} button.refund-submit"))
        .await;
    let busy = console
        .browser
        .text_when(&format!("{form} button.refund-submit"), |t| {
            t.starts_with("Processing")
        })
        .await;
    assert_eq!(busy, "Processing…");
    assert!(
        !console
            .browser
            .is_enabled(&format!("{form} button.refund-submit"))
            .await,
        "no second click while the first is in flight"
    );
    console.shot("processing").await;

    let result = console.result(&card).await;
    assert_eq!(result, "Refunded ₩1,000. ₩49,000 left to refund.");
    assert!(
        console.in_view(&format!("{form} .refund-result")).await,
        "the result shows where the eye is"
    );
    assert_eq!(
        console
            .cell_when(&card, "refunded", |t| t == "₩1,000")
            .await,
        "₩1,000"
    );
    assert_eq!(
        console.cell_when(&card, "refundable", |_| true).await,
        "₩49,000"
    );
    let entry = console
        .browser
        .text_when(
            &format!("{} .history li[data-status=succeeded]", payment(&card)),
            |t| !t.is_empty(),
        )
        .await;
    assert!(
        entry.contains("₩1,000") && entry.contains("Refunded"),
        "{entry}"
    );
    assert!(entry.contains("by admin"), "who refunded: {entry}");
    assert!(
        entry.contains("“size too small”"),
        "the reason as given: {entry}"
    );
    assert!(!entry.contains("rf_"), "no journal ids: {entry}");
    assert!(entry.contains("Receipt"), "a receipt link: {entry}");
    console.shot("refunded").await;

    let gateway = console.sandbox().payment_by_merchant_uid(&card).unwrap();
    assert_eq!(gateway.cancel_amount, 1_000, "exactly the partial refund");
    assert_eq!(console.sandbox().stats().cancel.attempted, 1);
    console.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_account_refund_asks_for_the_account_then_refunds_everything_left() {
    let Some(mut console) = Console::open("vbank-refund", 1280).await else {
        return;
    };
    let vbank = console.order("vbank");
    console.open_refund(&vbank).await;
    let form = format!("{} .refund-form", payment(&vbank));
    console
        .browser
        .find(&format!("{form} .vbank-fields input[data-name=holder]"))
        .await;

    // Without the account: said in the form's words, nothing sent.
    let result = console.submit(&vbank).await;
    assert_eq!(
        result,
        "A virtual-account refund needs the account holder, the bank code and the account number."
    );
    assert_eq!(console.sandbox().stats().cancel.attempted, 0);
    console.shot("account-missing").await;

    console
        .browser
        .type_into(&format!("{form} input[data-name=holder]"), "Hong Gildong")
        .await;
    console
        .browser
        .type_into(&format!("{form} input[data-name=bank]"), "004")
        .await;
    console
        .browser
        .type_into(
            &format!("{form} input[data-name=account]"),
            "12345678901234",
        )
        .await;
    console
        .browser
        .type_into(
            &format!("{form} input[data-name=reason]"),
            "order cancelled",
        )
        .await;
    console.shot("account-filled").await;
    // No amount: everything that is left.
    let result = console.submit(&vbank).await;
    assert_eq!(result, "Refunded ₩30,000. ₩0 left to refund.");
    assert_eq!(
        console
            .cell_when(&vbank, "status", |t| t == "Fully refunded")
            .await,
        "Fully refunded"
    );
    assert!(
        !console
            .browser
            .is_enabled(&format!("{form} button.refund-submit"))
            .await,
        "nothing is left: the form cannot be sent again"
    );
    console
        .browser
        .click(&format!("{form} button.refund-close"))
        .await;
    assert!(
        !console
            .browser
            .is_enabled(&format!("{} button.open-refund", payment(&vbank)))
            .await,
        "Refund is disabled when nothing is left"
    );
    let why = console
        .browser
        .text(&format!("{} .blocked", payment(&vbank)))
        .await;
    assert_eq!(why, "Nothing is left to refund.");
    let page = console
        .browser
        .script("return document.documentElement.outerHTML;")
        .await;
    assert!(
        !page.as_str().unwrap().contains("12345678901234"),
        "the account number does not stay on the page"
    );
    console.shot("refunded").await;

    let gateway = console.sandbox().payment_by_merchant_uid(&vbank).unwrap();
    assert_eq!(gateway.cancel_amount, 30_000);
    console.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_refund_is_refused_in_the_forms_words_and_dollars_keep_their_cents() {
    let Some(mut console) = Console::open("over-refund", 1280).await else {
        return;
    };
    let usd = console.order("usd");
    assert_eq!(console.cell_when(&usd, "amount", |_| true).await, "$25.50");
    console.open_refund(&usd).await;

    let result = console.request_refund(&usd, "30", "too much").await;
    assert_eq!(
        result,
        "That is more than is left to refund: at most $25.50."
    );
    console.shot("over-refund").await;
    assert_eq!(
        console.sandbox().stats().cancel.attempted,
        0,
        "refused without calling the gateway"
    );
    let result = console.request_refund(&usd, "10.555", "too precise").await;
    assert_eq!(result, "USD amounts have at most 2 decimals.");
    let result = console.request_refund(&usd, "0", "nothing").await;
    assert_eq!(result, "The amount must be more than zero.");
    let result = console.request_refund(&usd, "ten", "words").await;
    assert_eq!(result, "Enter the amount as a number, e.g. 1000 or 1,000.");

    let result = console.request_refund(&usd, "10.50", "one item back").await;
    assert_eq!(result, "Refunded $10.50. $15.00 left to refund.");
    assert_eq!(
        console
            .cell_when(&usd, "refundable", |t| t == "$15.00")
            .await,
        "$15.00"
    );
    let gateway = console.sandbox().payment_by_merchant_uid(&usd).unwrap();
    assert_eq!(gateway.cancel_amount, 1_050, "cents exactly");
    console.shot("refunded").await;
    console.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_token_and_an_unknown_order_are_explained() {
    let Some(mut console) = Console::open("token-and-unknown-order", 390).await else {
        return;
    };
    console
        .browser
        .type_into("#lookup-order", "no-such-order")
        .await;
    console
        .browser
        .click("#lookup-form button[type=submit]")
        .await;
    let said = console
        .browser
        .text_when("#lookup-result", |t| !t.is_empty())
        .await;
    assert!(
        said.starts_with(
            "No payment with order id “no-such-order” is known, here or at the gateway."
        ),
        "{said}"
    );
    console.shot("unknown-order").await;

    console
        .browser
        .type_into("#admin-token", "not-the-admin-token")
        .await;
    console
        .browser
        .click("#token-form button[type=submit]")
        .await;
    let said = console
        .browser
        .text_when("#token-problem", |t| !t.is_empty())
        .await;
    assert!(said.starts_with("The admin token was refused."), "{said}");
    console.shot("wrong-token").await;

    let token = console.running.admin_token().to_owned();
    console.browser.type_into("#admin-token", &token).await;
    console
        .browser
        .click("#token-form button[type=submit]")
        .await;
    console.browser.gone("#token-problem").await;
    let card = console.order("card");
    console.browser.find(&payment(&card)).await;
    console.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_refund_is_listed_and_settled_with_sync() {
    let Some(mut console) = Console::open("pending-sync", 1280).await else {
        return;
    };
    let card = console.order("card");
    console.open_refund(&card).await;
    // i'mport applies the cancel but the answer never arrives.
    console
        .sandbox()
        .inject_fault(Fault::DropAfterCommit, FaultTarget::Cancel, 1);
    let result = console.request_refund(&card, "2000", "wrong colour").await;
    assert!(result.starts_with("Refund pending:"), "{result}");
    let item = console
        .browser
        .text_when(&queued("pending", &card), |t| t.contains("₩2,000"))
        .await;
    assert!(item.contains("by admin"), "{item}");
    assert!(item.contains("wrong colour"), "{item}");
    assert_eq!(
        console
            .cell_when(&card, "status", |t| t == "Refund pending")
            .await,
        "Refund pending"
    );
    console.shot("pending").await;

    console
        .browser
        .click(&format!("{} button.sync", queued("pending", &card)))
        .await;
    let said = console
        .browser
        .text_when("#console-status", |t| !t.is_empty())
        .await;
    assert_eq!(
        said,
        format!("Synced {card}: the refund of ₩2,000 went through at the gateway.")
    );
    console.browser.gone(&queued("pending", &card)).await;
    assert_eq!(
        console
            .cell_when(&card, "refunded", |t| t == "₩2,000")
            .await,
        "₩2,000"
    );
    console
        .browser
        .find(&format!(
            "{} .history li[data-status=succeeded]",
            payment(&card)
        ))
        .await;
    console.shot("synced").await;
    let gateway = console.sandbox().payment_by_merchant_uid(&card).unwrap();
    assert_eq!(gateway.cancel_amount, 2_000, "one refund, once");
    console.close().await;
}

/// Puts `uid` on hold from the console: our refund of 2,000 never reaches
/// i'mport while someone refunds the same amount at i'mport's own console
/// with another reason; once ours can no longer be on the wire, a Sync
/// cannot tell whose that cancellation is, and the payment is held.
async fn hold_for_review(console: &mut Console, uid: &str) {
    console.open_refund(uid).await;
    console
        .sandbox()
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 1);
    let result = console.request_refund(uid, "2000", "damaged box").await;
    assert!(result.starts_with("Refund pending:"), "{result}");
    let imp_uid = console
        .sandbox()
        .payment_by_merchant_uid(uid)
        .unwrap()
        .imp_uid;
    console
        .sandbox()
        .admin_cancel(
            &imp_uid,
            AdminCancel {
                amount: Some(2_000),
                reason: Some("refunded by phone".to_owned()),
            },
        )
        .unwrap();
    tokio::time::sleep(SETTLEABLE_AFTER).await;
    console
        .browser
        .click(&format!("{} button.sync", queued("pending", uid)))
        .await;
    console.browser.find(&queued("review", uid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_payment_is_resolved_with_a_note() {
    let Some(mut console) = Console::open("review", 1280).await else {
        return;
    };
    let card = console.order("card");
    hold_for_review(&mut console, &card).await;
    assert_eq!(
        console
            .cell_when(&card, "status", |t| t.starts_with("Held for review"))
            .await
            .lines()
            .next(),
        Some("Held for review")
    );
    let history = payment(&card);
    console
        .browser
        .text_when(
            &format!("{history} .history li[data-status=outside]"),
            |t| t.contains("Made outside this console") && t.contains("₩2,000"),
        )
        .await;
    console
        .browser
        .find(&format!("{history} .history li[data-status=needs_review]"))
        .await;
    console.shot("held").await;

    // A note is required.
    let item = queued("review", &card);
    console
        .browser
        .click(&format!("{item} button.resolve"))
        .await;
    let said = console
        .browser
        .text_when(&format!("{item} .resolve-result"), |t| !t.is_empty())
        .await;
    assert_eq!(said, "Write what you checked and decided before resolving.");

    console
        .browser
        .type_into(
            &format!("{item} textarea.note"),
            "Phone support refunded this order at i'mport; ours never reached it.",
        )
        .await;
    console
        .browser
        .click(&format!("{item} button.resolve"))
        .await;
    let said = console
        .browser
        .text_when("#console-status", |t| t.starts_with("Resolved"))
        .await;
    assert_eq!(
        said,
        format!("Resolved the hold on {card}: it takes refunds again.")
    );
    console.browser.gone(&item).await;
    assert_eq!(
        console
            .cell_when(&card, "status", |t| t == "Partly refunded")
            .await,
        "Partly refunded"
    );
    assert!(
        console
            .browser
            .is_enabled(&format!("{history} button.refund-submit"))
            .await,
        "the payment takes refunds again"
    );
    let resolution = console
        .browser
        .text_when(&format!("{history} [data-field=resolution]"), |t| {
            !t.is_empty()
        })
        .await;
    assert!(resolution.starts_with("Resolved by admin"), "{resolution}");
    assert!(resolution.contains("ours never reached it"), "{resolution}");
    console.shot("resolved").await;
    let gateway = console.sandbox().payment_by_merchant_uid(&card).unwrap();
    assert_eq!(gateway.cancel_amount, 2_000, "only the console's refund");
    console.close().await;
}

/// Every state at once, at a desktop's and a phone's width: nothing wider
/// than the screen, every field labelled, and the pictures for the README
/// (`UPDATE_CONSOLE_SCREENSHOT=1` writes docs/console.png).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_fits_a_desktop_and_a_phone() {
    let Some(mut console) = Console::open("layout", 1280).await else {
        return;
    };
    let card = console.order("card");
    let usd = console.order("usd");
    let outside = console.order("outside");
    console.open_refund(&card).await;
    let result = console
        .request_refund(&card, "15000", "two items returned")
        .await;
    assert!(result.starts_with("Refunded"), "{result}");
    console
        .browser
        .click(&format!("{} .refund-close", payment(&card)))
        .await;
    hold_for_review(&mut console, &outside).await;
    console
        .browser
        .click(&format!("{} .refund-close", payment(&outside)))
        .await;
    console.open_refund(&usd).await;
    console
        .sandbox()
        .inject_fault(Fault::DropAfterCommit, FaultTarget::Cancel, 1);
    let result = console.request_refund(&usd, "5", "late delivery").await;
    assert!(result.starts_with("Refund pending:"), "{result}");
    console
        .browser
        .click(&format!("{} .refund-close", payment(&usd)))
        .await;
    let phone = console.order("phone");
    console.open_refund(&phone).await;
    let form = format!("{} .refund-form", payment(&phone));
    console
        .browser
        .type_into(&format!("{form} input[data-name=amount]"), "3,000")
        .await;
    console
        .browser
        .type_into(
            &format!("{form} input[data-name=reason]"),
            "one case returned",
        )
        .await;
    console.browser.find(&queued("pending", &usd)).await;

    for width in [1280, 390] {
        console.browser.resize(width, 900).await;
        let overflow = console
            .browser
            .script("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "wider than {width} px by {overflow}"
        );
        console.shot(&format!("all-states-{width}")).await;
    }
    if std::env::var_os("UPDATE_CONSOLE_SCREENSHOT").is_some() {
        console.browser.resize(1280, 900).await;
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console.png");
        console.browser.screenshot(&docs).await;
    }
    let unlabelled = console
        .browser
        .script(
            "return [...document.querySelectorAll('input, textarea')] \
             .filter(i => i.labels.length === 0).map(i => i.outerHTML);",
        )
        .await;
    assert_eq!(unlabelled, serde_json::json!([]), "every field has a label");
    // The keyboard moves from the order id to its button, and shows where.
    console.browser.click("#lookup-order").await;
    console.browser.press_tab("#lookup-order").await;
    let focused = console
        .browser
        .script(
            "const e = document.activeElement, s = getComputedStyle(e); \
             return [e.textContent, s.outlineStyle, s.outlineWidth];",
        )
        .await;
    assert_eq!(
        focused,
        serde_json::json!(["Find payment", "solid", "3px"]),
        "a visible focus"
    );
    console.close().await;
}
