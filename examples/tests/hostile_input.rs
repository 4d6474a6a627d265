//! Hostile input against a running `merchant-server` process: random
//! bytes, deep nesting, huge numbers, floats, wrong types, `$` operator
//! objects, unicode, over-long fields, wrong content types and bad headers,
//! thrown at the routes (cancel, webhook, sync, view, the refund listing and
//! the review), plus malformed HTTP on a raw socket.
//!
//! Every answer must be a documented refusal (`{"code", "message"}` with
//! the table's status) or, where the route may succeed, its normal answer;
//! never a 5xx. No case may reach i'mport's cancel or token endpoints; only
//! a well-formed webhook, sync or review may look one payment up. The server must
//! not panic and must still be healthy at the end.
//!
//! The cases are generated with proptest strategies from a random seed
//! (printed; set `HOSTILE_SEED` to replay one, `HOSTILE_CASES` to change
//! how many), on top of handcrafted cases with exact expected answers.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use common::{Answer, MerchantServer, SandboxProcess, TestDatabase};
use iamport_sandbox::Stats;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generated cases per run unless `HOSTILE_CASES` says otherwise.
const DEFAULT_CASES: usize = 1000;

/// The refund scope's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Cancel,
    Webhook,
    View,
    Sync,
    List,
    Review,
}

/// The `Authorization` header a case sends.
#[derive(Debug, Clone)]
enum Auth {
    Admin,
    Missing,
    Raw(Vec<u8>),
}

/// One hostile HTTP request.
#[derive(Clone)]
struct Case {
    route: Route,
    method: Method,
    /// Path after the server's address, already percent-encoded.
    path: String,
    content_type: Option<Vec<u8>>,
    auth: Auth,
    idempotency_key: Option<Vec<u8>>,
    body: Vec<u8>,
    /// The exact answer, for handcrafted cases.
    expect: Option<(u16, &'static str)>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(300).collect();
        f.debug_struct("Case")
            .field("method", &self.method)
            .field("path", &self.path)
            .field(
                "content_type",
                &self.content_type.as_deref().map(String::from_utf8_lossy),
            )
            .field("auth", &self.auth)
            .field(
                "idempotency_key",
                &self.idempotency_key.as_deref().map(String::from_utf8_lossy),
            )
            .field("body", &format!("{shown} ({} bytes)", self.body.len()))
            .finish()
    }
}

/// The payments the cases aim at. None of them can be refunded without a
/// defect the server must find first: one is fully refunded, one is not
/// paid, one is a phone payment of an earlier month. `live` is refundable
/// and only targeted by handcrafted cases, each with a known defect.
struct Targets {
    refunded: String,
    ready: String,
    phone: String,
    live: String,
    imp_uids: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_documented_refusals_and_no_gateway_call() {
    let database = TestDatabase::sqlite();
    let sandbox = SandboxProcess::start().await;
    let mut server = MerchantServer::start(&sandbox, &database.url, &[]).await;
    let targets = seed_targets(&sandbox, &server).await;

    let seed = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let count = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut cases = handcrafted(&targets);
    let handcrafted_count = cases.len();
    cases.extend(generated(&targets, seed, count));

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<(Route, u16), usize> = BTreeMap::new();
    let mut lookups = 0;
    let mut stats = sandbox.stats().await;
    for case in &cases {
        let answer = send(&server, case).await;
        let after = sandbox.stats().await;
        *statuses.entry((case.route, answer.status)).or_default() += 1;
        lookups += after.get_payment + after.find_payment - stats.get_payment - stats.find_payment;
        if let Err(why) = check(case, &answer, &stats, &after) {
            failures.push(format!(
                "{why}\n  case: {case:?}\n  answer: {} {}",
                answer.status, answer.text
            ));
        }
        stats = after;
    }
    let raw = raw_http_cases();
    for (name, bytes) in &raw {
        match raw_exchange(&server.url, bytes).await {
            Some(status) if status >= 500 => {
                failures.push(format!("raw case {name}: answered {status}"));
            }
            _ => {}
        }
    }
    let after = sandbox.stats().await;
    if after.cancel != stats.cancel || after.get_token != stats.get_token {
        failures.push(format!(
            "raw HTTP reached the gateway: {stats:?} -> {after:?}"
        ));
    }
    let elapsed = started.elapsed();

    assert!(
        failures.is_empty(),
        "{} of {} cases failed (seed {seed}); first ones:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(server.is_running(), "the server died");
    assert_eq!(
        server.healthz().await,
        200,
        "the server is healthy afterwards"
    );
    let output = server.output();
    assert!(
        !output.contains("panicked"),
        "the server panicked:\n{output}"
    );

    common::report(&format!(
        "hostile input (seed {seed}): {} HTTP cases ({handcrafted_count} handcrafted, {count} \
         generated) + {} raw-socket cases in {elapsed:.2?}; answers by route and status: {}; \
         gateway: 0 cancels, 0 token requests, {lookups} payment lookups by well-formed \
         webhooks and syncs",
        cases.len(),
        raw.len(),
        statuses
            .iter()
            .map(|((route, status), n)| format!("{route:?} {status}={n}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    drop(server);
}

/// Seeds the target payments and imports them; `refunded` is refunded in
/// full through the server itself.
async fn seed_targets(sandbox: &SandboxProcess, server: &MerchantServer) -> Targets {
    let run = common::random_hex(4);
    let forty_days_ago = iamport_now() - 40 * 86_400;
    let seeds = [
        (format!("hostile-{run}-refunded"), json!({})),
        (format!("hostile-{run}-ready"), json!({"status": "ready"})),
        (
            format!("hostile-{run}-phone"),
            json!({"pay_method": "phone", "paid_at": forty_days_ago}),
        ),
        (format!("hostile-{run}-live"), json!({})),
    ];
    let mut imp_uids = Vec::new();
    for (merchant_uid, extra) in &seeds {
        let imp_uid = sandbox
            .create_payment(merchant_uid, "10000", extra.clone())
            .await;
        server.import(&imp_uid, merchant_uid).await;
        imp_uids.push(imp_uid);
    }
    let [refunded, ready, phone, live] = seeds.map(|(uid, _)| uid);
    let full = server
        .cancel(&json!({"merchant_uid": refunded}), None)
        .await;
    assert_eq!(full.status, 200, "{}", full.text);
    Targets {
        refunded,
        ready,
        phone,
        live,
        imp_uids,
    }
}

fn iamport_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.unwrap().as_secs()).unwrap()
}

/// Sends a case; a transport failure is an answer with status 0.
async fn send(server: &MerchantServer, case: &Case) -> Answer {
    let url = format!("{}{}", server.url, case.path);
    let http = reqwest::Client::builder()
        .timeout(common::PATIENCE)
        .build()
        .unwrap();
    let mut request = http.request(case.method.clone(), &url);
    let header = |bytes: &[u8]| HeaderValue::from_bytes(bytes).expect("header-safe bytes");
    match &case.auth {
        Auth::Admin => request = request.bearer_auth(&server.admin_token),
        Auth::Missing => {}
        Auth::Raw(bytes) => request = request.header("Authorization", header(bytes)),
    }
    if let Some(content_type) = &case.content_type {
        request = request.header("Content-Type", header(content_type));
    }
    if let Some(key) = &case.idempotency_key {
        request = request.header("Idempotency-Key", header(key));
    }
    let request = request.body(case.body.clone());
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let json = serde_json::from_str(&text).unwrap_or_default();
            Answer { status, text, json }
        }
        Err(error) => Answer {
            status: 0,
            text: format!("no answer: {error}"),
            json: serde_json::Value::Null,
        },
    }
}

/// The error codes of DESIGN.md's table (and the scope's routing errors),
/// by status.
fn documented(status: u16, code: &str) -> bool {
    matches!(
        (status, code),
        (400, "invalid_request" | "refund_account_required")
            | (401, "unauthorized")
            | (403, "forbidden")
            | (404, "payment_not_found" | "not_found")
            | (405, "method_not_allowed")
            | (
                409,
                "already_refunded"
                    | "amount_exceeds_cancelable"
                    | "refund_in_progress"
                    | "idempotency_key_reused"
                    | "payment_out_of_sync"
                    | "not_on_hold"
            )
            | (413, "payload_too_large")
            | (415, "unsupported_media_type")
            | (422, "not_refundable")
    )
}

/// Checks one answer and the gateway calls it caused.
fn check(case: &Case, answer: &Answer, before: &Stats, after: &Stats) -> Result<(), String> {
    if after.cancel != before.cancel {
        return Err("a cancel reached the gateway".into());
    }
    if after.get_token != before.get_token {
        return Err("a token was requested".into());
    }
    let gets = after.get_payment - before.get_payment;
    let finds = after.find_payment - before.find_payment;
    let own_method = match case.route {
        Route::View | Route::List => Method::GET,
        _ => Method::POST,
    };
    let may_look_up = case.method == own_method
        && matches!(case.route, Route::Webhook | Route::Sync | Route::Review);
    let allowed = match case.route {
        // A review looks the payment up only when it is held (none is).
        Route::Webhook | Route::Review if may_look_up => gets <= 1 && finds == 0,
        Route::Sync if may_look_up => gets + finds <= 1,
        _ => gets + finds == 0,
    };
    if !allowed {
        return Err(format!("{gets} payment and {finds} find lookups"));
    }
    let code = answer.code();
    if let Some(expected) = case.expect {
        if (answer.status, code) != expected {
            return Err(format!("expected {expected:?}"));
        }
    }
    let success = match (case.route, answer.status) {
        (Route::Webhook, 200) => code == "ok",
        (Route::View | Route::Sync | Route::Review, 200) => answer.json["merchant_uid"].is_string(),
        (Route::List, 200) => answer.json["refunds"].is_array(),
        _ => false,
    };
    if success && case.method == own_method {
        return Ok(());
    }
    if !documented(answer.status, code) || !answer.json["message"].is_string() {
        return Err("not a documented refusal".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Handcrafted cases: each has one known defect and an exact answer.

fn handcrafted(t: &Targets) -> Vec<Case> {
    let live = t.live.as_str();
    let cancel = |body: String, expect: (u16, &'static str)| Case {
        route: Route::Cancel,
        method: Method::POST,
        path: "/payments/cancel".into(),
        content_type: Some(b"application/json".to_vec()),
        auth: Auth::Admin,
        idempotency_key: None,
        body: body.into_bytes(),
        expect: Some(expect),
    };
    let invalid = (400, "invalid_request");
    let with_amount =
        |amount: &str| format!(r#"{{"merchant_uid":"{live}","cancel_request_amount":{amount}}}"#);
    let valid = with_amount("100");
    let mut cases = vec![
        cancel(with_amount("0"), invalid),
        cancel(with_amount("-0.0"), invalid),
        cancel(with_amount("-1"), invalid),
        cancel(with_amount("100.5"), invalid),
        cancel(with_amount("\"1000\""), invalid),
        cancel(with_amount("1e999999"), invalid),
        cancel(with_amount("1e-400"), invalid),
        cancel(with_amount("99999999999999999999999999"), invalid),
        cancel(with_amount("NaN"), invalid),
        cancel(with_amount("[100]"), invalid),
        cancel(with_amount(r#"{"$gt":0}"#), invalid),
        cancel(with_amount("10001"), (409, "amount_exceeds_cancelable")),
        cancel(with_amount("1e5"), (409, "amount_exceeds_cancelable")),
        cancel(
            format!(
                r#"{{"merchant_uid":"{live}","reason":"{}"}}"#,
                "x".repeat(257)
            ),
            invalid,
        ),
        cancel(
            format!(
                r#"{{"merchant_uid":"{live}","reason":"{}"}}"#,
                "가".repeat(257)
            ),
            invalid,
        ),
        cancel(
            format!(r#"{{"merchant_uid":"{live}","reason":"a\u0000b"}}"#),
            invalid,
        ),
        cancel(
            format!(r#"{{"merchant_uid":"{}"}}"#, "m".repeat(129)),
            invalid,
        ),
        cancel(r#"{"merchant_uid":{"$ne":null}}"#.into(), invalid),
        cancel(
            r#"{"merchant_uid":{"$where":"sleep(5000)"}}"#.into(),
            invalid,
        ),
        cancel(format!(r#"{{"merchant_uid":["{live}"]}}"#), invalid),
        cancel(r#"{"merchant_uid":null}"#.into(), invalid),
        cancel(r#"{"cancel_request_amount":100}"#.into(), invalid),
        cancel(
            format!(r#"{{"merchant_uid":"{live}","merchant_uid":"{live}"}}"#),
            invalid,
        ),
        cancel(
            format!(
                r#"{{"merchant_uid":"{live}","refund_holder":"Kim","refund_bank":"04","refund_account":"{}"}}"#,
                "1".repeat(17)
            ),
            invalid,
        ),
        cancel(
            format!(
                r#"{{"merchant_uid":"{live}","refund_holder":"Kim","refund_bank":"04ABC","refund_account":"123"}}"#
            ),
            invalid,
        ),
        cancel(
            format!(
                r#"{{"merchant_uid":"{live}","refund_holder":"{}","refund_bank":"04","refund_account":"123"}}"#,
                "김".repeat(17)
            ),
            invalid,
        ),
        cancel(
            format!(r#"{{"merchant_uid":"{live}","refund_bank":"04"}}"#),
            (400, "refund_account_required"),
        ),
        cancel(
            format!(r#"{{"merchant_uid":"{live}","cancel_request_amount":100,"tax_free":200}}"#),
            invalid,
        ),
        cancel(
            format!(r#"{{"merchant_uid":"{live}","cancel_request_amount":100,"vat_amount":-1}}"#),
            invalid,
        ),
        cancel(format!(r#"[{{"merchant_uid":"{live}"}}]"#), invalid),
        cancel(format!(r#"{{"merchant_uid":"{live}"}} trailing"#), invalid),
        cancel(format!("\u{feff}{valid}"), invalid),
        cancel(format!("{}{}", "[".repeat(5000), "]".repeat(5000)), invalid),
        // Unknown fields are refused however deep their value nests
        // (serde_json skips it without recursion): a field outside the
        // contract is never ignored, so it can never mean "refund all".
        cancel(
            format!(
                r#"{{"merchant_uid":"{}","x":{}1{}}}"#,
                t.refunded,
                "[".repeat(3000),
                "]".repeat(3000)
            ),
            invalid,
        ),
        cancel(
            format!(
                r#"{{"merchant_uid":"{live}","reason":"{}"}}"#,
                "x".repeat(20_000)
            ),
            (413, "payload_too_large"),
        ),
        cancel(String::new(), invalid),
        cancel(
            format!(r#"{{"merchant_uid":"{}"}}"#, t.refunded),
            (409, "already_refunded"),
        ),
        cancel(
            format!(r#"{{"merchant_uid":"{}"}}"#, t.ready),
            (422, "not_refundable"),
        ),
        cancel(
            format!(r#"{{"merchant_uid":"{}"}}"#, t.phone),
            (422, "not_refundable"),
        ),
        cancel(
            r#"{"merchant_uid":"no-such-order"}"#.into(),
            (404, "payment_not_found"),
        ),
    ];
    // A valid refund of the live payment, spoiled only by its headers.
    let spoiled = |edit: &dyn Fn(&mut Case), expect: (u16, &'static str)| {
        let mut case = cancel(valid.clone(), expect);
        edit(&mut case);
        case
    };
    cases.extend([
        spoiled(
            &|c| c.idempotency_key = Some("k".repeat(129).into_bytes()),
            invalid,
        ),
        spoiled(
            &|c| c.idempotency_key = Some("키".as_bytes().to_vec()),
            invalid,
        ),
        spoiled(&|c| c.idempotency_key = Some(b"a b".to_vec()), invalid),
        spoiled(&|c| c.idempotency_key = Some(Vec::new()), invalid),
        spoiled(&|c| c.content_type = None, (415, "unsupported_media_type")),
        spoiled(
            &|c| c.content_type = Some(b"text/plain".to_vec()),
            (415, "unsupported_media_type"),
        ),
        spoiled(
            &|c| c.content_type = Some(b"application/x-www-form-urlencoded".to_vec()),
            (415, "unsupported_media_type"),
        ),
        spoiled(&|c| c.auth = Auth::Missing, (401, "unauthorized")),
        spoiled(
            &|c| c.auth = Auth::Raw(b"Bearer not-the-admin-token".to_vec()),
            (401, "unauthorized"),
        ),
        spoiled(
            &|c| c.auth = Auth::Raw(b"Basic YWRtaW46YWRtaW4=".to_vec()),
            (401, "unauthorized"),
        ),
        spoiled(
            &|c| c.auth = Auth::Raw(b"Bearer \xff\xfe".to_vec()),
            (401, "unauthorized"),
        ),
        spoiled(&|c| c.method = Method::GET, (405, "method_not_allowed")),
        spoiled(&|c| c.method = Method::PUT, (405, "method_not_allowed")),
    ]);
    let route = |route: Route, method: Method, path: String, expect: (u16, &'static str)| Case {
        route,
        method,
        path,
        content_type: None,
        auth: Auth::Admin,
        idempotency_key: None,
        body: Vec::new(),
        expect: Some(expect),
    };
    let not_found = (404, "payment_not_found");
    cases.extend([
        route(
            Route::View,
            Method::GET,
            format!("/payments/{}", "m".repeat(129)),
            invalid,
        ),
        route(Route::View, Method::GET, "/payments/a%0Ab".into(), invalid),
        route(Route::View, Method::GET, "/payments/%20".into(), invalid),
        route(
            Route::View,
            Method::GET,
            "/payments/no-such-order".into(),
            not_found,
        ),
        route(
            Route::View,
            Method::DELETE,
            format!("/payments/{live}"),
            (405, "method_not_allowed"),
        ),
        route(
            Route::Sync,
            Method::POST,
            "/payments/a%00b/sync".into(),
            invalid,
        ),
        route(
            Route::Sync,
            Method::POST,
            format!("/payments/{}/sync", "m".repeat(129)),
            invalid,
        ),
        route(
            Route::Sync,
            Method::GET,
            format!("/payments/{live}/sync"),
            (405, "method_not_allowed"),
        ),
        route(
            Route::Sync,
            Method::POST,
            "/payments/no-such-order/sync".into(),
            not_found,
        ),
        route(
            Route::List,
            Method::GET,
            "/payments/refunds?status=refunded".into(),
            invalid,
        ),
        route(
            Route::List,
            Method::GET,
            "/payments/refunds?limit=201".into(),
            invalid,
        ),
        route(
            Route::List,
            Method::GET,
            "/payments/refunds?cursor=%27%20OR%201%3D1".into(),
            invalid,
        ),
        route(
            Route::List,
            Method::GET,
            "/payments/refunds?merchant_uid=a%00b".into(),
            invalid,
        ),
        route(
            Route::List,
            Method::POST,
            "/payments/refunds".into(),
            (405, "method_not_allowed"),
        ),
        route(
            Route::Review,
            Method::GET,
            format!("/payments/{live}/review"),
            (405, "method_not_allowed"),
        ),
    ]);
    let review = |body: &str, expect: (u16, &'static str)| Case {
        route: Route::Review,
        method: Method::POST,
        path: format!("/payments/{live}/review"),
        content_type: Some(b"application/json".to_vec()),
        auth: Auth::Admin,
        idempotency_key: None,
        body: body.as_bytes().to_vec(),
        expect: Some(expect),
    };
    cases.extend([
        review("{}", invalid),
        review(r#"{"note":""}"#, invalid),
        review(&format!(r#"{{"note":"{}"}}"#, "n".repeat(501)), invalid),
        review(r#"{"note":"ok","lift_hold":true}"#, invalid),
        review(r#"{"note":{"$ne":null}}"#, invalid),
        // Well formed, but nothing is held: refused before any lookup.
        review(r#"{"note":"looked at it"}"#, (409, "not_on_hold")),
    ]);
    let webhook = |content_type: &str, body: &str, expect: (u16, &'static str)| Case {
        route: Route::Webhook,
        method: Method::POST,
        path: "/payments/webhook".into(),
        content_type: Some(content_type.as_bytes().to_vec()),
        auth: Auth::Missing,
        idempotency_key: None,
        body: body.as_bytes().to_vec(),
        expect: Some(expect),
    };
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    cases.extend([
        webhook(json, "{}", invalid),
        webhook(json, r#"{"imp_uid":123}"#, invalid),
        webhook(json, r#"{"imp_uid":""}"#, invalid),
        webhook(json, r#"{"imp_uid":{"$ne":null}}"#, invalid),
        webhook(
            json,
            &format!(r#"{{"imp_uid":"{}"}}"#, "i".repeat(129)),
            invalid,
        ),
        webhook(json, r#"{"imp_uid":"imp_\u0000"}"#, invalid),
        webhook(json, r#"{"imp_uid":"imp_unknown_1"}"#, (200, "ok")),
        webhook(form, "imp_uid=", invalid),
        // Undecodable bytes become U+FFFD: a well-formed id the gateway does not know.
        webhook(form, "imp_uid=%FF%FE", (200, "ok")),
        webhook(form, "merchant_uid=x", invalid),
        webhook(form, "imp_uid=imp_unknown_2&status=paid", (200, "ok")),
        webhook(
            "text/plain",
            r#"{"imp_uid":"imp_unknown_3"}"#,
            (415, "unsupported_media_type"),
        ),
    ]);
    cases
}

// ---------------------------------------------------------------------------
// Generated cases.

fn generated(t: &Targets, seed: u64, count: usize) -> Vec<Case> {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = case_strategy(t);
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect()
}

fn case_strategy(t: &Targets) -> impl Strategy<Value = Case> {
    let mut uids = vec![t.refunded.clone(), t.ready.clone(), t.phone.clone()];
    uids.push("no-such-order".into());
    let imp_uids = t.imp_uids.clone();
    let route = prop_oneof![
        4 => Just(Route::Cancel),
        2 => Just(Route::Webhook),
        1 => Just(Route::View),
        1 => Just(Route::Sync),
        1 => Just(Route::List),
        1 => Just(Route::Review),
    ];
    (
        route,
        cancel_body(uids.clone()),
        webhook_body(imp_uids),
        path_segment(uids),
        headers(),
        prop::option::weighted(0.1, other_method()),
    )
        .prop_map(
            |(route, cancel, webhook, segment, (content_type, auth, key), method)| {
                let (own_method, path, body) = match route {
                    Route::Cancel => (Method::POST, "/payments/cancel".to_owned(), cancel),
                    Route::Webhook => (Method::POST, "/payments/webhook".to_owned(), webhook),
                    Route::View => (Method::GET, format!("/payments/{segment}"), Vec::new()),
                    Route::Sync => (
                        Method::POST,
                        format!("/payments/{segment}/sync"),
                        Vec::new(),
                    ),
                    Route::List => (
                        Method::GET,
                        format!("/payments/refunds?merchant_uid={segment}"),
                        Vec::new(),
                    ),
                    // Bodies of the wrong shape, mostly: each field but
                    // `note` is unknown here.
                    Route::Review => (Method::POST, format!("/payments/{segment}/review"), cancel),
                };
                Case {
                    route,
                    method: method.unwrap_or(own_method),
                    path,
                    content_type,
                    auth,
                    idempotency_key: key,
                    body,
                    expect: None,
                }
            },
        )
}

fn other_method() -> impl Strategy<Value = Method> {
    select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ])
}

/// Strings a client should never send: unicode of every kind, control
/// characters, lengths around every limit, injection attempts.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[\\x00-\\x1f\\x7f]{1,5}",
        "\\PC{0,3}[\u{200b}\u{202e}\u{feff}\u{fffd}\u{1f4b8}]\\PC{0,3}",
        select(vec![4usize, 5, 16, 17, 128, 129, 256, 257, 3000]).prop_map(|n| "9".repeat(n)),
        "[0-9-]{1,20}",
        select(vec![
            "' OR 1=1 --",
            "{{7*7}}",
            "../../etc/passwd",
            "%00",
            "$where",
            "__proto__",
            "",
            " ",
        ])
        .prop_map(str::to_owned),
    ]
}

/// JSON text, often invalid on purpose: huge and exotic numbers, floats,
/// bad escapes, operator objects, nesting.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        select(vec![
            "null", "true", "false", "-0", "1e999999", "-1e-999", "1E+308", "0.1e1"
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[1-9][0-9]{18,60}",
        "-?[0-9]{1,3}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,9})?",
        hostile_string().prop_map(|s| serde_json::to_string(&s).unwrap()),
        select(vec![
            r#""\ud800""#,
            r#""\u0000""#,
            r#""\x41""#,
            "'single'",
            "\"open"
        ])
        .prop_map(str::to_owned),
        (
            select(vec!["$ne", "$gt", "$where", "$regex", "$in", "$expr"]),
            "[a-z0-9]{0,5}"
        )
            .prop_map(|(op, v)| format!(r#"{{"{op}":"{v}"}}"#)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((hostile_string(), inner), 0..6).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// `n` levels of arrays or objects, mostly past serde_json's depth limit.
fn deep_nesting() -> impl Strategy<Value = String> {
    (1usize..12_000, any::<bool>()).prop_map(|(depth, arrays)| match arrays {
        true => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        false => format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)),
    })
}

/// A cancel body: a request-shaped object with hostile fields, or anything.
fn cancel_body(uids: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let uid = prop_oneof![
        3 => select(uids).prop_map(|u| serde_json::to_string(&u).unwrap()),
        1 => hostile_string().prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => json_text(),
    ];
    let name = prop_oneof![
        4 => select(vec![
            "cancel_request_amount", "reason", "refund_holder", "refund_bank", "refund_account",
            "refund_tel", "tax_free", "vat_amount", "merchant_uid",
        ])
        .prop_map(str::to_owned),
        1 => hostile_string(),
    ];
    let value = prop_oneof![
        2 => select(vec![
            "1000", "0.5", "100.5", "-1", "0", "1e3", "10001", "\"1000\"", "\"04\"",
            "\"1234567890\"", "\"홍길동\"", "\"010-1234-5678\"",
        ])
        .prop_map(str::to_owned),
        3 => json_text(),
    ];
    let shaped = (uid, prop::collection::vec((name, value), 0..6)).prop_map(|(uid, fields)| {
        let mut text = format!(r#"{{"merchant_uid":{uid}"#);
        for (name, value) in fields {
            text.push_str(&format!(
                ",{}:{value}",
                serde_json::to_string(&name).unwrap()
            ));
        }
        text.push('}');
        text.into_bytes()
    });
    prop_oneof![
        5 => shaped,
        1 => json_text().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..600),
        1 => deep_nesting().prop_map(String::into_bytes),
    ]
}

/// A webhook body: notice-shaped JSON or form data with hostile values, or anything.
fn webhook_body(imp_uids: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let imp_uid = prop_oneof![
        select(imp_uids).prop_map(|u| serde_json::to_string(&u).unwrap()),
        hostile_string().prop_map(|s| serde_json::to_string(&s).unwrap()),
        json_text(),
    ];
    let other = || {
        prop_oneof![
            hostile_string().prop_map(|s| serde_json::to_string(&s).unwrap()),
            json_text(),
        ]
    };
    let notice = (imp_uid, other(), other()).prop_map(|(imp_uid, uid, status)| {
        format!(r#"{{"imp_uid":{imp_uid},"merchant_uid":{uid},"status":{status}}}"#).into_bytes()
    });
    let form =
        prop::collection::vec((hostile_string(), hostile_string()), 0..4).prop_map(|pairs| {
            let mut text = String::new();
            for (k, v) in pairs {
                text.push_str(&format!("{}={}&", percent_encode(&k), percent_encode(&v)));
            }
            text.push_str("imp_uid=%zz%FF");
            text.into_bytes()
        });
    prop_oneof![
        3 => notice,
        1 => form,
        1 => json_text().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => deep_nesting().prop_map(String::into_bytes),
    ]
}

/// A path segment for view and sync: a target, or hostile text, encoded.
fn path_segment(uids: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(uids).prop_map(|u| percent_encode(&u)),
        4 => hostile_string().prop_map(|s| percent_encode(&s)),
        1 => select(vec!["%FF%FE", "%", "%G0", "a%2Fb", "%C0%AF", "%E2%80%AE"]).prop_map(str::to_owned),
    ]
    .prop_map(|segment| match segment.trim_matches('.').is_empty() {
        // Dot segments would be resolved away by the URL parser.
        true => format!("{segment}x"),
        false => segment,
    })
}

/// Every byte but the unreserved ones percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bytes allowed in a header value (no NUL, CR, LF or other controls).
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..200).prop_map(|bytes| {
        bytes
            .into_iter()
            .map(|b| {
                if (b < 0x20 && b != b'\t') || b == 0x7f {
                    b'?'
                } else {
                    b
                }
            })
            .collect()
    })
}

type Headers = (Option<Vec<u8>>, Auth, Option<Vec<u8>>);

/// Content type, authorization and idempotency key: mostly right, often not.
fn headers() -> impl Strategy<Value = Headers> {
    let content_type = prop_oneof![
        8 => Just(Some(b"application/json".to_vec())),
        1 => Just(None),
        2 => select(vec![
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=utf-16",
            "APPLICATION/JSON",
            "application/jsonx",
            "application/*",
        ])
        .prop_map(|c| Some(c.as_bytes().to_vec())),
        1 => header_bytes().prop_map(Some),
    ];
    let auth = prop_oneof![
        8 => Just(Auth::Admin),
        1 => Just(Auth::Missing),
        1 => select(vec!["Bearer wrong-token-of-enough-length", "Bearer", "bearer  ", "Basic YQ=="])
            .prop_map(|a| Auth::Raw(a.as_bytes().to_vec())),
        1 => header_bytes().prop_map(Auth::Raw),
    ];
    let key = prop_oneof![
        6 => Just(None),
        2 => "[!-~]{1,40}".prop_map(|k| Some(k.into_bytes())),
        1 => (129usize..400).prop_map(|n| Some("k".repeat(n).into_bytes())),
        1 => header_bytes().prop_map(Some),
    ];
    (content_type, auth, key)
}

// ---------------------------------------------------------------------------
// Malformed HTTP on a raw socket.

fn raw_http_cases() -> Vec<(&'static str, Vec<u8>)> {
    let cancel = "POST /payments/cancel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("HTTP/0.9", b"GET /payments/x\r\n\r\n".to_vec()),
        ("unknown version", b"GET /healthz HTTP/7.1\r\nHost: x\r\n\r\n".to_vec()),
        ("negative length", format!("{cancel}Content-Length: -5\r\n\r\n").into_bytes()),
        ("huge length", format!("{cancel}Content-Length: 99999999999999999999\r\n\r\n{{}}").into_bytes()),
        ("length over the limit", format!("{cancel}Content-Length: 1000000\r\n\r\n{{").into_bytes()),
        ("short body", format!("{cancel}Content-Length: 50\r\n\r\n{{\"a\"").into_bytes()),
        (
            "bad chunk",
            format!("{cancel}Transfer-Encoding: chunked\r\n\r\nZZZ\r\n{{}}\r\n0\r\n\r\n").into_bytes(),
        ),
        (
            "length and chunked",
            format!("{cancel}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n")
                .into_bytes(),
        ),
        ("huge header", format!("{cancel}X-Big: {}\r\n\r\n", "a".repeat(100_000)).into_bytes()),
        (
            "many headers",
            format!("{cancel}{}\r\n", (0..300).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()).into_bytes(),
        ),
        ("non-UTF-8 path", b"GET /payments/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("NUL in header", format!("{cancel}X-A: a\0b\r\nContent-Length: 2\r\n\r\n{{}}").into_bytes()),
    ]
}

/// Sends raw bytes and returns the answer's status, or `None` when the
/// server closed the connection (or stayed silent) instead.
async fn raw_exchange(base_url: &str, bytes: &[u8]) -> Option<u16> {
    let addr = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    // The server may answer and close before reading everything.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
    let _ = read.await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}
