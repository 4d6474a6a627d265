//! Clock skew between instances: two `merchant-server` processes on one
//! PostgreSQL database, instance B's wall clock 40 s ahead of A's (through
//! libfaketime), agree on every refund verdict, because the time that
//! decides money (a journal row's age, the sweep's cutoff, whether a refund
//! may still be on the wire) is the store's clock (`clock_timestamp()`),
//! never an instance's.
//!
//! The failure this reproduces, proven on the old protocol: A's refund is in
//! its gateway call (inside its in-flight bound) and the gateway does not
//! show it yet; B's sweep, judging the refund's age by B's clock, finds it
//! older than the settle age and settles it `failed`; A's success answer
//! then finds the refund no longer pending and the journal stays `failed`;
//! the key replays "nothing was refunded", and a client retrying with a new
//! key refunds the customer twice.
//!
//! To keep the gateway from showing the cancel while A's call is in flight,
//! A's call is held at its first step, `getToken` (the sandbox holds the
//! reply for [`HOLD`]): A has no token yet, because the payment was
//! imported through B. (Holding the cancel's own reply would not do: the
//! sandbox commits before it holds, so the gateway would already show the
//! refund and any judge would credit it.) While A is held, B's sweep runs
//! every 200 ms and B's sync route is called: both must leave the refund
//! pending. Then A's answer is a success, the journal says `succeeded`, the
//! key replays that success on both instances, and the gateway committed
//! exactly one cancel of exactly the refund's amount.
//!
//! Needs PostgreSQL, the `postgres` cargo feature and libfaketime (Debian's
//! `faketime`, which scripts/services installs): under `CI=true` a missing
//! one fails the test, elsewhere it is skipped loudly.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, report, Answer, MerchantServer, SandboxProcess, TestDatabase};
use serde_json::json;

/// How far ahead B's wall clock runs.
const SKEW_SECS: i64 = 40;
/// i'mport client timeouts of both instances: an in-flight bound of
/// 4 × (0.5 s + 6 s) = 26 s, which is also the settle age (the server
/// clamps `REFUND_SETTLE_AFTER_MS=0` up to the bound). The skew exceeds it,
/// so on B's clock A's brand-new refund already looks settled-age old.
const TUNING: [(&str, &str); 4] = [
    ("REFUND_IAMPORT_CONNECT_TIMEOUT_MS", "500"),
    ("REFUND_IAMPORT_TIMEOUT_MS", "6000"),
    ("REFUND_SETTLE_AFTER_MS", "0"),
    ("REFUND_SWEEP_INTERVAL_MS", "200"),
];
const SETTLE_AGE_SECS: i64 = 26;
const _: () = assert!(
    SKEW_SECS > SETTLE_AGE_SECS,
    "the skew must exceed the settle age"
);
/// How long the sandbox holds A's `getToken` reply: shorter than the call
/// timeout (so A gets its answer), long enough for B to judge meanwhile.
const HOLD: Duration = Duration::from_secs(4);
/// The payment and the refund, in won.
const PAID: &str = "10000";
const REFUND: i64 = 3000;
const KEY: &str = "clock-skew-refund";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_with_skewed_clocks_agree_on_every_refund_verdict() {
    let Some(skewed) = common::wall_clock_shifted(SKEW_SECS) else {
        return;
    };
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    // Bounded well under a minute; the harness's own waits allow more.
    let outcome = tokio::time::timeout(Duration::from_secs(55), run(&database, &skewed)).await;
    database.remove().await;
    outcome.expect("the clock-skew scenario finished within 55 s");
}

/// What B saw and did while A's refund was held in its gateway call.
struct Judged {
    /// B's view of the payment once A's refund was journaled.
    pending_seen_by_b: Answer,
    /// B's sync answer, a second after B's sweep started passing over it.
    sync_by_b: Answer,
    /// Cancel calls the gateway had received when B's sync returned.
    cancels_at_gateway: u64,
}

async fn run(database: &TestDatabase, skewed: &[(&'static str, String)]) {
    let sandbox = SandboxProcess::start().await;
    let before_a = unix_secs();
    // A skips the start-up credential check, so that it holds no access
    // token and its refund begins with a getToken call the sandbox can hold.
    let mut a_env: Vec<(&str, &str)> = TUNING.to_vec();
    a_env.push(("REFUND_CHECK_CREDENTIALS", "false"));
    let a = MerchantServer::start(&sandbox, &database.url, &a_env).await;
    let mut b_env: Vec<(&str, &str)> = TUNING.to_vec();
    b_env.extend(skewed.iter().map(|(k, v)| (*k, v.as_str())));
    let before_b = unix_secs();
    let b = MerchantServer::start(&sandbox, &database.url, &b_env).await;
    let after_b = unix_secs();
    let a_log = started_at(&a);
    let b_log = started_at(&b);
    assert!(
        (before_a - 1..=after_b + 1).contains(&a_log),
        "A's clock is the real one: its log says {a_log}, \
         the test's clock was {before_a}..={after_b}"
    );
    assert!(
        (before_b + SKEW_SECS - 1..=after_b + SKEW_SECS + 1).contains(&b_log),
        "B's clock runs {SKEW_SECS} s ahead: its log says {b_log}, \
         the test's clock was {before_b}..={after_b}"
    );
    report(&format!(
        "clock-skew: A logs at real time, B logs {} s ahead",
        b_log - after_b
    ));

    // Imported through B only: A holds no access token, so A's refund
    // starts with a getToken call the sandbox can hold before any cancel.
    let merchant_uid = format!("skew-{}", common::random_hex(6));
    let imp_uid = sandbox.create_payment(&merchant_uid, PAID, json!({})).await;
    b.import(&imp_uid, &merchant_uid).await;
    let imported = sandbox.stats().await;
    assert_eq!(
        (imported.get_token.requests, imported.cancel.attempted),
        (1, 0),
        "only B fetched a token (for the import), nothing was cancelled yet"
    );
    let hold_ms = u64::try_from(HOLD.as_millis()).unwrap();
    sandbox
        .arm(json!({"fault": "hold_after_commit", "endpoint": "token", "hold_ms": hold_ms}))
        .await;

    let body = json!({
        "merchant_uid": merchant_uid,
        "cancel_request_amount": REFUND,
        "reason": "clock skew test",
    });
    let (answer_a, judged) = tokio::join!(
        a.cancel(&body, Some(KEY)),
        judge_while_held(&sandbox, &b, &merchant_uid)
    );

    let journal = journal_states(&database.url, &merchant_uid).await;
    let story = format!(
        "\n  B's view while A was held: {}\n  B's sync while A was held: {} {}\
         \n  cancels at the gateway then: {}\n  A's answer: {} {}\n  journal: {journal:?}",
        judged.pending_seen_by_b.text,
        judged.sync_by_b.status,
        judged.sync_by_b.text,
        judged.cancels_at_gateway,
        answer_a.status,
        answer_a.text,
    );

    // B judged while A's refund was on the wire and not at the gateway yet.
    let pending = judged.pending_seen_by_b.view().pending_refunds;
    assert_eq!(pending.len(), 1, "B saw A's refund journaled: {story}");
    let refund_id = pending[0].id.clone();
    assert_eq!(
        judged.cancels_at_gateway, 0,
        "B judged before A's cancel reached the gateway: {story}"
    );
    assert_eq!(judged.sync_by_b.status, 200, "B's sync answered: {story}");
    let synced = judged.sync_by_b.view();
    assert!(
        synced.pending_refunds.len() == 1 && synced.pending_refunds[0].id == refund_id,
        "neither B's sweep nor B's sync settled A's in-flight refund \
         (it is young on the store's clock): {story}"
    );
    assert_eq!(synced.cancel_amount(), 0, "{story}");

    // A's own answer settles it, and nobody said otherwise first.
    assert_eq!(answer_a.status, 200, "A's refund succeeded: {story}");
    let refund = answer_a.view().refund.expect("the refund in A's answer");
    assert_eq!(
        (refund.id.as_str(), refund.status.as_str()),
        (refund_id.as_str(), "succeeded"),
        "{story}"
    );
    assert_eq!(
        journal,
        [(refund_id.clone(), "succeeded".to_owned())],
        "the journal has the one refund, succeeded (never failed): {story}"
    );

    // Both instances, and a later sync by the skewed one, agree.
    for (name, server) in [("A", &a), ("B", &b)] {
        let view = server.view(&merchant_uid).await.view();
        assert!(view.pending_refunds.is_empty(), "{name}: {view:?}");
        assert_eq!(view.cancel_amount(), REFUND, "{name}: {view:?}");
    }
    let synced = b.sync(&merchant_uid).await.view();
    assert!(synced.pending_refunds.is_empty(), "{synced:?}");
    assert_eq!(synced.cancel_amount(), REFUND, "{synced:?}");

    // The key replays the success on either instance, with no gateway call.
    let before = sandbox.stats().await.cancel;
    for (name, server) in [("A", &a), ("B", &b)] {
        let replayed = server.cancel(&body, Some(KEY)).await;
        assert_eq!(replayed.status, 200, "{name} replays: {}", replayed.text);
        let refund = replayed.view().refund.expect("the replayed refund");
        assert_eq!(
            (refund.id.as_str(), refund.status.as_str()),
            (refund_id.as_str(), "succeeded"),
            "{name} replays the success"
        );
    }
    let stats = sandbox.stats().await;
    assert_eq!(stats.cancel, before, "a replay calls no gateway");

    // The customer was refunded once, by exactly the refund's amount.
    assert_eq!(
        (stats.cancel.attempted, stats.cancel.committed),
        (1, 1),
        "exactly one cancel reached and changed the gateway"
    );
    let gateway = sandbox.payment(&imp_uid).await;
    assert_eq!(gateway.cancel_amount(), REFUND);
    assert_eq!(
        journal_states(&database.url, &merchant_uid).await,
        [(refund_id, "succeeded".to_owned())]
    );
    assert!(
        !b.output().contains("swept stale pending refunds"),
        "B's sweep never took A's refund for stale:\n{}",
        b.output()
    );
    report(&format!(
        "clock-skew: B (clock +{SKEW_SECS} s, settle age {SETTLE_AGE_SECS} s) swept every \
         200 ms and synced while A's refund was held {HOLD:?} in its gateway call; \
         A's answer {}, journal succeeded, one cancel of {REFUND} won at the gateway",
        answer_a.status
    ));
}

/// While the sandbox holds A's `getToken` reply: waits for that call and
/// for A's journal row, lets B's sweep (every 200 ms) pass over the refund
/// for a second, then asks B to sync the payment.
async fn judge_while_held(sandbox: &SandboxProcess, b: &MerchantServer, uid: &str) -> Judged {
    eventually("A's getToken call to reach the sandbox", || async {
        (sandbox.stats().await.get_token.requests >= 2).then_some(())
    })
    .await;
    let pending_seen_by_b = eventually("B to see A's refund journaled", || async {
        let answer = b.view(uid).await;
        let journaled = answer.json["pending_refunds"]
            .as_array()
            .is_some_and(|pending| !pending.is_empty());
        journaled.then_some(answer)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sync_by_b = b.sync(uid).await;
    let cancels_at_gateway = sandbox.stats().await.cancel.attempted;
    Judged {
        pending_seen_by_b,
        sync_by_b,
        cancels_at_gateway,
    }
}

/// `(id, status)` of every journal row of the payment, read from the store.
#[cfg(feature = "postgres")]
async fn journal_states(url: &str, merchant_uid: &str) -> Vec<(String, String)> {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("connect to the store");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id::text, status::text FROM refund_journal \
         WHERE merchant_uid = $1 ORDER BY created_at_ms",
    )
    .bind(merchant_uid)
    .fetch_all(&pool)
    .await
    .expect("read the journal");
    pool.close().await;
    rows
}

/// Never called: without the feature there is no PostgreSQL database.
#[cfg(not(feature = "postgres"))]
async fn journal_states(_: &str, _: &str) -> Vec<(String, String)> {
    unreachable!("TestDatabase::postgres() skips without the postgres feature")
}

fn unix_secs() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// The Unix time (whole seconds) on the server's "open http://" log line:
/// the server's own wall clock, as tracing stamps it (RFC 3339, UTC).
fn started_at(server: &MerchantServer) -> i64 {
    let output = server.output();
    let line = output
        .lines()
        .find(|line| line.contains("open http://"))
        .expect("the server logged its address");
    let stamp = line.trim_start_matches(|c: char| !c.is_ascii_digit());
    parse_utc(stamp).unwrap_or_else(|| panic!("no timestamp on {line:?}"))
}

/// `YYYY-MM-DDTHH:MM:SS...` (UTC) in Unix seconds.
fn parse_utc(stamp: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[test]
fn parses_log_timestamps() {
    assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_utc("2026-12-01T08:11:55.123456Z"),
        Some(1_796_112_715)
    );
    assert_eq!(parse_utc("2000-03-01T00:00:01Z"), Some(951_868_801));
}
