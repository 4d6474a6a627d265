//! The refund protocol over the real PortOne V2 client, against a scripted
//! V2 server over real HTTP: each test plays answers the V2 schema allows
//! and checks that no refund is sent twice.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refund_core::testkit::ManualClock;
use refund_core::{
    CancelOutcome, CancelRequest, MemoryPaymentStore, PaymentGateway, PaymentRef, PortOneClient,
    PortOneConfig, RefundError, RefundService, RefundStatus,
};
use serde_json::{json, Value};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
const SECRET: &str = "test-api-secret";

/// What the scripted server answers to the next cancel.
struct Reply {
    status: u16,
    /// The cancellation, built from the request body (for its reason).
    cancellation: Box<dyn Fn(&Value) -> Value + Send>,
    /// Whether the cancellation is recorded on the payment (and counted in
    /// `amount.cancelled` when `SUCCEEDED`).
    record: bool,
    /// Held this long before answering (past the client's timeout: no answer).
    delay: Duration,
}

#[derive(Default)]
struct State {
    payment_id: String,
    total: i64,
    cancellations: Vec<Value>,
    /// Cancellation ids lookups leave out, as a lagging read replica would.
    hidden: Vec<String>,
    replies: VecDeque<Reply>,
    /// Every cancel body received.
    posts: Vec<Value>,
}

impl State {
    fn payment_json(&self) -> Value {
        let listed: Vec<&Value> = self
            .cancellations
            .iter()
            .filter(|c| !self.hidden.iter().any(|h| c["id"] == json!(h)))
            .collect();
        let cancelled: i64 = listed
            .iter()
            .filter(|c| c["status"] == "SUCCEEDED")
            .map(|c| c["totalAmount"].as_i64().unwrap())
            .sum();
        let status = if cancelled == 0 {
            "PAID"
        } else if cancelled < self.total {
            "PARTIAL_CANCELLED"
        } else {
            "CANCELLED"
        };
        json!({
            "status": status, "id": self.payment_id, "transactionId": "tx-1",
            "amount": {"total": self.total, "taxFree": 0, "discount": 0, "paid": self.total,
                       "cancelled": cancelled, "cancelledTaxFree": 0},
            "currency": "KRW",
            "method": {"type": "PaymentMethodCard"},
            "paidAt": "2026-01-02T03:04:05Z",
            "cancellations": listed,
        })
    }
}

struct Server {
    base_url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start(payment_id: &str, total: i64) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            payment_id: payment_id.to_owned(),
            total,
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Server { base_url, state }
    }

    fn reply(&self, reply: Reply) {
        self.state.lock().unwrap().replies.push_back(reply);
    }

    fn posts(&self) -> usize {
        self.state.lock().unwrap().posts.len()
    }

    fn hide(&self, id: &str) {
        self.state.lock().unwrap().hidden.push(id.to_owned());
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..];
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let (status, answer, delay) = {
        let mut state = state.lock().unwrap();
        if method == "POST" && path.ends_with("/cancel") {
            let request: Value = serde_json::from_slice(body).unwrap();
            state.posts.push(request.clone());
            let reply = state
                .replies
                .pop_front()
                .expect("an unscripted cancel was sent");
            let cancellation = (reply.cancellation)(&request);
            if reply.record {
                state.cancellations.push(cancellation.clone());
            }
            let answer = if reply.status == 200 {
                json!({ "cancellation": cancellation })
            } else {
                cancellation
            };
            (reply.status, answer.to_string(), reply.delay)
        } else if method == "GET" && path.starts_with("/payments/") {
            (200, state.payment_json().to_string(), Duration::ZERO)
        } else {
            (
                404,
                json!({"type": "PAYMENT_NOT_FOUND"}).to_string(),
                Duration::ZERO,
            )
        }
    };
    std::thread::sleep(delay);
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// A V2 cancellation of the amount and reason the request asked for.
fn cancellation(
    status: &'static str,
    id: &'static str,
    cancelled_at: bool,
) -> Box<dyn Fn(&Value) -> Value + Send> {
    Box::new(move |request: &Value| {
        let mut c = json!({
            "status": status, "id": id, "totalAmount": request["amount"],
            "taxFreeAmount": 0, "vatAmount": 0, "reason": request["reason"],
            "requestedAt": "2026-12-01T10:00:00Z", "trigger": "API",
        });
        if cancelled_at {
            c["cancelledAt"] = json!("2026-12-01T10:00:01Z");
        }
        c
    })
}

fn answered(cancellation: Box<dyn Fn(&Value) -> Value + Send>) -> Reply {
    Reply {
        status: 200,
        cancellation,
        record: true,
        delay: Duration::ZERO,
    }
}

struct Harness {
    server: Server,
    clock: Arc<ManualClock>,
    store: Arc<MemoryPaymentStore>,
    gateway: Arc<PortOneClient>,
    service: RefundService,
    order: String,
}

impl Harness {
    async fn start(total: i64) -> Harness {
        let order = refund_core::testkit::unique("ORD");
        let server = Server::start(&order, total);
        let config = PortOneConfig::new(server.base_url.clone(), SECRET)
            .connect_timeout(CONNECT_TIMEOUT)
            .request_timeout(REQUEST_TIMEOUT);
        let gateway = Arc::new(PortOneClient::new(config).unwrap());
        let clock = Arc::new(ManualClock::now());
        let store = Arc::new(MemoryPaymentStore::with_clock(clock.clone()));
        let service = RefundService::new(store.clone(), gateway.clone())
            .settle_after(gateway.max_in_flight());
        service
            .refresh_payment(PaymentRef {
                imp_uid: "",
                merchant_uid: &order,
            })
            .await
            .unwrap()
            .expect("the payment is imported");
        Harness {
            server,
            clock,
            store,
            gateway,
            service,
            order,
        }
    }

    async fn cancel(&self, amount: i64, key: &str) -> Result<CancelOutcome, RefundError> {
        let request: CancelRequest = serde_json::from_str(&format!(
            r#"{{"merchant_uid":"{}","cancel_request_amount":{amount},"reason":"test"}}"#,
            self.order
        ))
        .unwrap();
        self.service
            .cancel(&refund_core::testkit::operator(), request, Some(key))
            .await
    }

    async fn cancel_with_reason(
        &self,
        amount: i64,
        key: &str,
        reason: &str,
    ) -> Result<CancelOutcome, RefundError> {
        let request: CancelRequest = serde_json::from_value(json!({
            "merchant_uid": self.order,
            "cancel_request_amount": amount,
            "reason": reason,
        }))
        .unwrap();
        self.service
            .cancel(&refund_core::testkit::operator(), request, Some(key))
            .await
    }

    fn past_in_flight(&self) {
        self.clock
            .advance(self.gateway.max_in_flight() + Duration::from_millis(1));
    }

    async fn status_by_key(&self, key: &str) -> RefundStatus {
        use refund_core::PaymentStore;
        self.store
            .refund_by_idempotency_key(key)
            .await
            .unwrap()
            .unwrap()
            .status()
    }
}

/// A cancellation V2 lists under a status this client does not know (the
/// schema's enums grow; DESIGN: unknown enum values are tolerated) is not
/// proof that nothing happened: the cancel answered with it must not be
/// judged `not_applied` at once, nor run again under the same key.
#[tokio::test]
async fn a_cancellation_in_an_unknown_status_is_not_run_again() {
    let h = Harness::start(10_000).await;
    h.server
        .reply(answered(cancellation("PENDING_AT_PG", "c-1", false)));
    let first = h.cancel(2_000, "k-1").await;
    // What the client is told: 502 gateway_error, "nothing happened".
    let told_nothing_happened = matches!(&first, Err(e) if e.code() == "gateway_error");
    // The client retries with the same key, as that answer invites.
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-2", true)));
    let _ = h.cancel(2_000, "k-1").await;
    assert_eq!(
        h.server.posts(),
        1,
        "a second cancel was sent while the first ({}) may still apply; first answer: {first:?}",
        "listed in a status the client does not know"
    );
    assert!(!told_nothing_happened, "answered gateway_error: {first:?}");
}

/// PortOne accepted the cancel (`REQUESTED`, id `c-1`); a lookup that does
/// not list `c-1` (a lagging replica) is not a report that it `FAILED`
/// (DESIGN step 4: it settles when that cancellation is *reported*
/// SUCCEEDED or FAILED). Judged `not_applied` on that absence, the same key
/// runs the refund again beside the one still in progress.
#[tokio::test]
async fn an_accepted_cancellation_missing_from_a_lookup_is_not_run_again() {
    let h = Harness::start(10_000).await;
    h.server
        .reply(answered(cancellation("REQUESTED", "c-1", false)));
    let first = h.cancel(2_000, "k-1").await;
    assert!(matches!(first, Ok(CancelOutcome::Pending(_))), "{first:?}");
    // The lookups lag: c-1 is not listed yet.
    h.server.hide("c-1");
    h.past_in_flight();
    h.service.sweep().await.unwrap();
    let after_sweep = h.status_by_key("k-1").await;
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-2", true)));
    let _ = h.cancel(2_000, "k-1").await;
    assert_eq!(
        h.server.posts(),
        1,
        "the refund accepted as c-1 was sent again (status after the sweep: {after_sweep:?})"
    );
    assert_eq!(after_sweep, RefundStatus::Pending);
}

/// `cancelledAt` is optional on a `SUCCEEDED` V2 cancellation. Refund A
/// (1,000) succeeded; refund B (1,000) applied but its answer was lost
/// (timeout), and its entry comes without `cancelledAt`. B must be
/// credited, not judged `not_applied` and sent again.
#[tokio::test]
async fn a_succeeded_cancellation_without_cancelled_at_is_credited() {
    let h = Harness::start(10_000).await;
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-a", true)));
    let a = h.cancel(1_000, "k-a").await;
    assert!(matches!(a, Ok(CancelOutcome::Refunded(_))), "{a:?}");
    // B applies, but the answer never comes back in time.
    h.server.reply(Reply {
        status: 200,
        cancellation: cancellation("SUCCEEDED", "c-b", false),
        record: true,
        delay: REQUEST_TIMEOUT * 3,
    });
    let b = h.cancel(1_000, "k-b").await;
    assert!(matches!(b, Ok(CancelOutcome::Pending(_))), "{b:?}");
    h.past_in_flight();
    h.service.sweep().await.unwrap();
    let after_sweep = h.status_by_key("k-b").await;
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-b2", true)));
    let _ = h.cancel(1_000, "k-b").await;
    assert_eq!(
        h.server.posts(),
        2,
        "refund B was sent again after it applied (status after the sweep: {after_sweep:?})"
    );
    assert_eq!(after_sweep, RefundStatus::Succeeded);
}

/// Control for the test above: the same story with `cancelledAt` present
/// credits B and sends nothing again.
#[tokio::test]
async fn control_a_succeeded_cancellation_with_cancelled_at_is_credited() {
    let h = Harness::start(10_000).await;
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-a", true)));
    let a = h.cancel(1_000, "k-a").await;
    assert!(matches!(a, Ok(CancelOutcome::Refunded(_))), "{a:?}");
    h.server.reply(Reply {
        status: 200,
        cancellation: cancellation("SUCCEEDED", "c-b", true),
        record: true,
        delay: REQUEST_TIMEOUT * 3,
    });
    let b = h.cancel(1_000, "k-b").await;
    assert!(matches!(b, Ok(CancelOutcome::Pending(_))), "{b:?}");
    h.past_in_flight();
    h.service.sweep().await.unwrap();
    assert_eq!(h.status_by_key("k-b").await, RefundStatus::Succeeded);
    let _ = h.cancel(1_000, "k-b").await;
    assert_eq!(h.server.posts(), 2);
}

/// Control: an accepted cancellation that lookups list as `REQUESTED`
/// stays pending past its bound and is not sent again.
#[tokio::test]
async fn control_a_listed_requested_cancellation_stays_pending() {
    let h = Harness::start(10_000).await;
    h.server
        .reply(answered(cancellation("REQUESTED", "c-1", false)));
    let first = h.cancel(2_000, "k-1").await;
    assert!(matches!(first, Ok(CancelOutcome::Pending(_))), "{first:?}");
    h.past_in_flight();
    h.service.sweep().await.unwrap();
    assert_eq!(h.status_by_key("k-1").await, RefundStatus::Pending);
    let _ = h.cancel(2_000, "k-1").await;
    assert_eq!(h.server.posts(), 1);
}

/// PortOne answered `SUCCEEDED` with the cancellation's id, but the payment
/// read back right after does not list it yet (a lagging replica). The
/// answer names the refund by that id: it must not be put up for review
/// (holding the payment), and it is credited under that id.
#[tokio::test]
async fn a_succeeded_answer_is_credited_by_its_id_when_the_read_back_lags() {
    let h = Harness::start(10_000).await;
    h.server.hide("c-1");
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-1", true)));
    let first = h.cancel(2_000, "k-1").await;
    let status = h.status_by_key("k-1").await;
    assert_ne!(status, RefundStatus::NeedsReview, "answer: {first:?}");
    // Once the lookup catches up, the refund is credited by c-1.
    h.server.state.lock().unwrap().hidden.clear();
    h.past_in_flight();
    h.service.sweep().await.unwrap();
    use refund_core::PaymentStore;
    let refund = h
        .store
        .refund_by_idempotency_key("k-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        refund.state.cancellation_id(),
        Some("c-1"),
        "{:?}",
        refund.state
    );
}

/// The cancel's answer is lost (timeout) and PortOne lists the cancellation
/// `REQUESTED` under a reason the PG rewrote. Past the in-flight bound it
/// must not be judged `not_applied`: the client, told nothing happened,
/// asks again under a new key, and a second cancel of the same amount goes
/// out beside the one still in progress.
#[tokio::test]
async fn a_requested_cancellation_with_a_rewritten_reason_blocks_a_new_refund() {
    let h = Harness::start(10_000).await;
    h.server.reply(Reply {
        status: 200,
        cancellation: Box::new(|request: &Value| {
            json!({
                "status": "REQUESTED", "id": "c-1", "totalAmount": request["amount"],
                "taxFreeAmount": 0, "vatAmount": 0, "reason": "고객 요청 환불",
                "requestedAt": "2026-12-01T10:00:00Z",
            })
        }),
        record: true,
        delay: REQUEST_TIMEOUT * 3,
    });
    let first = h.cancel(2_000, "k-1").await;
    assert!(matches!(first, Ok(CancelOutcome::Pending(_))), "{first:?}");
    h.past_in_flight();
    h.service.sweep().await.unwrap();
    let after_sweep = h.status_by_key("k-1").await;
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-2", true)));
    let second = h.cancel(2_000, "k-2").await;
    assert_eq!(
        h.server.posts(),
        1,
        "a second cancel of 2,000 went out while c-1 is REQUESTED (first: {after_sweep:?}, second: {second:?})"
    );
}

/// Refund A (1,000) got a typed 500 and the lookup showed nothing: it is
/// `not_applied`, and the client is told nothing happened. The client asks
/// for a new refund B of 1,000 "retry of <A's id>" (the id it saw in the
/// payment's refunds); B applies but its answer is lost. B's entry names B
/// (its reason ends with B's id) and merely mentions A. The sweep must
/// credit B with it, not A: credited to A, B is judged `not_applied` and
/// the same key sends B a second time (2,000 refunded for one 1,000 refund).
#[tokio::test]
async fn a_reason_that_mentions_an_older_refund_does_not_credit_it() {
    use refund_core::PaymentStore;
    let h = Harness::start(10_000).await;
    h.server.reply(Reply {
        status: 500,
        cancellation: Box::new(|_| json!({"type": "INTERNAL_SERVER_ERROR", "message": "oops"})),
        record: false,
        delay: Duration::ZERO,
    });
    let a = h.cancel(1_000, "k-a").await;
    assert!(matches!(&a, Err(e) if e.code() == "gateway_error"), "{a:?}");
    let a_id = h
        .store
        .refund_by_idempotency_key("k-a")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(h.status_by_key("k-a").await, RefundStatus::Failed);
    // B begins after A on the store's clock (as it would in real time).
    h.clock.advance(Duration::from_secs(1));
    // B applies, but its answer never comes back in time.
    h.server.reply(Reply {
        status: 200,
        cancellation: cancellation("SUCCEEDED", "c-b", true),
        record: true,
        delay: REQUEST_TIMEOUT * 3,
    });
    let b = h
        .cancel_with_reason(1_000, "k-b", &format!("retry of {a_id}"))
        .await;
    assert!(matches!(b, Ok(CancelOutcome::Pending(_))), "{b:?}");
    h.past_in_flight();
    h.service.sweep().await.unwrap();
    let a_after = h.status_by_key("k-a").await;
    let b_after = h.status_by_key("k-b").await;
    // The client retries B with its key, as a 502 for it would invite.
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-b2", true)));
    let _ = h
        .cancel_with_reason(1_000, "k-b", &format!("retry of {a_id}"))
        .await;
    assert_eq!(
        h.server.posts(),
        2,
        "refund B was sent again after it applied (after the sweep: A {a_after:?}, B {b_after:?})"
    );
    assert_eq!(
        (a_after, b_after),
        (RefundStatus::Failed, RefundStatus::Succeeded)
    );
}

/// Refund A (1,000) got a typed 500 and the lookup showed nothing: it is
/// `not_applied`, and the client is told nothing happened. The PG applied
/// it after all, and PortOne lists the cancellation under the reason sent
/// with the PG's own tag in front: "[PG] size exchange (<A's id>)". The
/// reason still ends with A's id (the workflow treats it as A's for every
/// other refund), so late evidence must win: a sync credits A. Left
/// `failed`, the client (told A changed nothing) refunds the customer
/// again under a new request, and nothing in the journal ever shows the
/// 1,000 that A moved.
#[tokio::test]
async fn a_late_cancellation_under_a_pg_tagged_reason_credits_its_refund() {
    use refund_core::PaymentStore;
    let h = Harness::start(10_000).await;
    h.server.reply(Reply {
        status: 500,
        cancellation: Box::new(|_| json!({"type": "INTERNAL_SERVER_ERROR", "message": "oops"})),
        record: false,
        delay: Duration::ZERO,
    });
    let a = h.cancel_with_reason(1_000, "k-a", "size exchange").await;
    assert!(matches!(&a, Err(e) if e.code() == "gateway_error"), "{a:?}");
    assert_eq!(h.status_by_key("k-a").await, RefundStatus::Failed);
    let a_id = h
        .store
        .refund_by_idempotency_key("k-a")
        .await
        .unwrap()
        .unwrap()
        .id;
    // The PG finishes A's cancel late, under its tag.
    h.server.state.lock().unwrap().cancellations.push(json!({
        "status": "SUCCEEDED", "id": "c-a", "totalAmount": 1_000,
        "taxFreeAmount": 0, "vatAmount": 0,
        "reason": format!("[PG] size exchange ({a_id})"),
        "requestedAt": "2026-12-01T10:00:00Z", "cancelledAt": "2026-12-01T10:00:01Z",
        "trigger": "API",
    }));
    h.clock.advance(Duration::from_secs(1));
    let view = h.service.sync(&h.order).await.unwrap();
    let stored = h.store.payment(&h.order).await.unwrap().unwrap();
    assert_eq!(stored.payment.cancel_amount.minor(), 1_000, "{view:?}");
    assert_eq!(
        h.status_by_key("k-a").await,
        RefundStatus::Succeeded,
        "A's own cancellation is on the gateway; held: {}",
        stored.on_hold
    );
}

/// Refunds A (2,000) and B (3,000) each got a typed 500 and lookups showed
/// nothing: both are `not_applied`. The PG then applies A after all, but
/// for 3,000 (a sum no refund asked for), under the reason sent for A. The
/// client retries B under its key. That entry is A's (its reason is A's),
/// so B's retry runs: 3,000 more go out while the 3,000 under A's name are
/// explained by no refund, A stays `failed` and nothing holds the payment
/// for an operator (DESIGN: what cannot be explained goes to review).
#[tokio::test]
async fn a_late_cancellation_of_another_amount_under_a_refunds_reason_is_reviewed() {
    use refund_core::PaymentStore;
    let h = Harness::start(10_000).await;
    let typed_500 = || Reply {
        status: 500,
        cancellation: Box::new(|_| json!({"type": "INTERNAL_SERVER_ERROR", "message": "oops"})),
        record: false,
        delay: Duration::ZERO,
    };
    h.server.reply(typed_500());
    let a = h.cancel_with_reason(2_000, "k-a", "size exchange").await;
    assert!(matches!(&a, Err(e) if e.code() == "gateway_error"), "{a:?}");
    h.clock.advance(Duration::from_secs(1));
    h.server.reply(typed_500());
    let b = h.cancel_with_reason(3_000, "k-b", "gift").await;
    assert!(matches!(&b, Err(e) if e.code() == "gateway_error"), "{b:?}");
    let a_refund = h
        .store
        .refund_by_idempotency_key("k-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a_refund.status(), RefundStatus::Failed);
    assert_eq!(h.status_by_key("k-b").await, RefundStatus::Failed);
    // The PG finishes A's cancel late, for 3,000.
    h.server.state.lock().unwrap().cancellations.push(json!({
        "status": "SUCCEEDED", "id": "c-a", "totalAmount": 3_000,
        "taxFreeAmount": 0, "vatAmount": 0,
        "reason": a_refund.reason.clone().unwrap(),
        "requestedAt": "2026-12-01T10:00:00Z", "cancelledAt": "2026-12-01T10:00:01Z",
        "trigger": "API",
    }));
    h.clock.advance(Duration::from_secs(1));
    // The client retries B under its key.
    h.server
        .reply(answered(cancellation("SUCCEEDED", "c-b", true)));
    let retry = h.cancel_with_reason(3_000, "k-b", "gift").await;
    let stored = h.store.payment(&h.order).await.unwrap().unwrap();
    assert_eq!(
        h.server.posts(),
        2,
        "B was sent again beside 3,000 refunded under A's name (retry: {:?}; A: {:?})",
        retry.as_ref().map_err(RefundError::code),
        h.status_by_key("k-a").await
    );
    // (Before reasons were matched in their sent form, B's retry was held
    // for review over that entry; A itself going to review would do too.)
    assert!(
        stored.on_hold,
        "nothing holds the payment for an operator (A: {:?})",
        h.status_by_key("k-a").await
    );
}
