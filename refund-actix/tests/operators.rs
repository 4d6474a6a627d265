//! The operators' routes over real HTTP handling: the refund listing with
//! its cursor, the review that lifts a hold, who acts, and an authorizer
//! that lets support staff look but not refund.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpRequest};
use common::{admin, order_id, send, Env, ADMIN_TOKEN};
use iamport_sandbox::{AdminCancel, Currency, Fault, FaultTarget, NewPayment};
use refund_actix::{
    async_trait, Action, Actor, Authorizer, BearerTokenAuthorizer, Denied, RefundScope,
};
use refund_core::testkit::{FaultyStore, ManualClock};
use refund_core::{
    IamportClient, IamportConfig, IamportCredentials, MemoryPaymentStore, RefundService,
};
use serde_json::{json, Value};

/// The actor the admin token names in these tests.
const OPERATOR: &str = "lee.finance";

/// A scope whose admin acts as [`OPERATOR`].
fn operator_scope(service: Arc<RefundService>) -> RefundScope {
    let authorizer = BearerTokenAuthorizer::new(ADMIN_TOKEN)
        .unwrap()
        .actor(Actor::new(OPERATOR).unwrap());
    RefundScope::new(service, authorizer)
}

fn list(query: &str) -> TestRequest {
    TestRequest::get()
        .uri(&format!("/payments/refunds{query}"))
        .insert_header(admin())
}

fn review(merchant_uid: &str, body: Value) -> TestRequest {
    TestRequest::post()
        .uri(&format!("/payments/{merchant_uid}/review"))
        .insert_header(admin())
        .set_json(body)
}

fn cancel(merchant_uid: &str, amount: i64) -> TestRequest {
    common::cancel_request(json!({"merchant_uid": merchant_uid, "cancel_request_amount": amount}))
}

/// A refund record's fields, exactly (DESIGN.md): nothing else, so no
/// idempotency key, fingerprint or account can slip in.
fn assert_record_shape(record: &Value) {
    let mut keys: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount",
            "created_at",
            "currency",
            "failure",
            "id",
            "imp_uid",
            "merchant_uid",
            "reason",
            "requested_by",
            "review",
            "status",
            "updated_at",
        ],
        "{record}"
    );
    for time in ["created_at", "updated_at"] {
        let text = record[time].as_str().unwrap();
        assert!(
            text.ends_with('Z') && text.contains('T') && text.len() >= 20,
            "{time}: {text}"
        );
    }
}

/// A sandbox and a service over an in-memory store whose clock the test
/// moves (so a pending refund can age past its in-flight bound at once).
struct Held {
    env: Env,
    clock: Arc<ManualClock>,
}

impl Held {
    async fn start() -> Held {
        let mut env = Env::start().await;
        let clock = Arc::new(ManualClock::now());
        let store = Arc::new(FaultyStore::new(Arc::new(MemoryPaymentStore::with_clock(
            clock.clone(),
        ))));
        let credentials = IamportCredentials::new(env.sandbox.imp_key(), env.sandbox.imp_secret());
        let client =
            IamportClient::new(IamportConfig::new(env.sandbox.base_url(), credentials)).unwrap();
        env.service = Arc::new(RefundService::new(store.clone(), Arc::new(client)));
        env.store = store;
        Held { env, clock }
    }
}

#[actix_web::test]
async fn a_held_payment_is_shown_kept_through_syncs_and_resolved_with_a_note() {
    // actix's test runtime runs every future of this test on this thread.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _recording = metrics::set_default_local_recorder(&recorder);
    let h = Held::start().await;
    let env = &h.env;
    let app = test::init_service(App::new().service(operator_scope(env.service.clone()))).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();

    // Our refund never reaches the gateway (no answer: it stays pending),
    // and someone refunds the same amount in the console meanwhile.
    env.sandbox
        .inject_fault(Fault::DropBeforeCommit, FaultTarget::Cancel, 1);
    let pending = send(&app, cancel(uid, 2_000).to_request()).await;
    assert_eq!(pending.status.as_u16(), 202, "{}", pending.text);
    let refund_id = pending.json["refund"]["id"].as_str().unwrap().to_owned();
    env.sandbox
        .admin_cancel(
            &payment.imp_uid,
            AdminCancel {
                amount: Some(2_000),
                reason: Some("console".into()),
            },
        )
        .unwrap();
    // Past the in-flight bound, the gateway's numbers cannot tell whose
    // the 2,000 is: the refund needs review and the payment is held.
    h.clock.advance(Duration::from_secs(3_600));
    let view = send(&app, common::sync_request(uid).to_request()).await;
    let view = view.ok();
    assert_eq!(view["on_hold"], true, "{view}");
    let reason = view["hold_reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    assert_eq!(view["gateway"], "iamport");
    let record = &view["refunds"][0];
    assert_record_shape(record);
    assert_eq!(record["id"], refund_id.as_str());
    assert_eq!(record["status"], "needs_review");
    assert_eq!(record["review"]["message"], reason);
    assert_eq!(record["review"]["resolved_by"], Value::Null);
    assert_eq!(record["requested_by"], OPERATOR);
    assert_eq!(record["amount"], 2000);
    assert_eq!(record["currency"], "KRW");

    // Held: the next refund is refused without a gateway call.
    let attempted = env.cancels_attempted();
    send(&app, cancel(uid, 100).to_request())
        .await
        .assert_error(409, "refund_in_progress");
    assert_eq!(env.cancels_attempted(), attempted);
    // A sync keeps the hold (it used to lift it).
    let view = send(&app, common::sync_request(uid).to_request()).await;
    assert_eq!(view.ok()["on_hold"], true);
    send(&app, cancel(uid, 100).to_request())
        .await
        .assert_error(409, "refund_in_progress");
    let shown = send(&app, common::view_request(uid).to_request()).await;
    assert_eq!(shown.ok()["on_hold"], true);
    assert_eq!(shown.ok()["hold_reason"], reason);

    // The queue of refunds needing review lists it.
    let queue = send(&app, list("?status=needs_review").to_request()).await;
    let queued = queue.ok()["refunds"].as_array().unwrap();
    assert!(queued.iter().all(|r| r["status"] == "needs_review"));
    assert!(queued.iter().any(|r| r["id"] == refund_id.as_str()));

    // The operator resolves it with a note: the hold is lifted, and the
    // journal says who, when and why.
    let note = "the 2,000 in the console was ours — confirmed with the PG";
    let resolved = send(&app, review(uid, json!({ "note": note })).to_request()).await;
    let resolved = resolved.ok();
    assert_eq!(resolved["on_hold"], false, "{resolved}");
    assert_eq!(resolved["hold_reason"], Value::Null);
    let record = &resolved["refunds"][0];
    assert_eq!(
        record["status"], "needs_review",
        "the verdict stays on record"
    );
    assert_eq!(record["review"]["resolved_by"], OPERATOR);
    assert_eq!(record["review"]["note"], note);
    assert!(record["review"]["resolved_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(resolved["cancel_amount"], 2000, "the gateway's numbers");
    send(&app, review(uid, json!({ "note": "again" })).to_request())
        .await
        .assert_error(409, "not_on_hold");
    let counted = metrics.render();
    assert!(
        counted.contains(r#"refund_settlements_total{status="needs_review",via="review"} 1"#),
        "{counted}"
    );

    // The listing shows the resolution; refunds resume.
    let listed = send(&app, list(&format!("?merchant_uid={uid}")).to_request()).await;
    let listed = listed.ok();
    assert_eq!(listed["next_cursor"], Value::Null);
    let records = listed["refunds"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_record_shape(&records[0]);
    assert_eq!(records[0]["review"]["resolved_by"], OPERATOR);
    let refunded = send(&app, cancel(uid, 100).to_request()).await;
    assert_eq!(refunded.ok()["cancel_amount"], 2100);
    assert_eq!(refunded.ok()["refunds"][0]["status"], "succeeded");
    assert_eq!(refunded.ok()["refunds"][0]["requested_by"], OPERATOR);
}

#[actix_web::test]
async fn the_listing_pages_with_its_cursor_and_refuses_bad_queries() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(operator_scope(env.service.clone()))).await;
    let usd = env
        .seed(NewPayment::new(order_id(), 10_000, Currency::Usd))
        .await;
    let uid = usd.merchant_uid.as_str();
    for _ in 0..3 {
        let done = send(
            &app,
            common::cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1.25}))
                .to_request(),
        )
        .await;
        done.ok();
    }
    let first = send(
        &app,
        list(&format!("?merchant_uid={uid}&limit=2")).to_request(),
    )
    .await;
    let first = first.ok();
    let page = first["refunds"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    for record in page {
        assert_record_shape(record);
        assert_eq!(record["amount"], 1.25);
        assert_eq!(record["currency"], "USD");
        assert_eq!(record["status"], "succeeded");
        assert_eq!(record["failure"], Value::Null);
        assert_eq!(record["review"], Value::Null);
        assert_eq!(record["requested_by"], OPERATOR);
    }
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = send(
        &app,
        list(&format!("?merchant_uid={uid}&limit=2&cursor={cursor}")).to_request(),
    )
    .await;
    let second = second.ok();
    let rest = second["refunds"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    assert!(
        page.iter().all(|r| r["id"] != rest[0]["id"]),
        "no duplicate"
    );
    assert!(first["refunds"][0]["created_at"].as_str() >= rest[0]["created_at"].as_str());

    // The view lists the same records, newest first.
    let view = send(&app, common::view_request(uid).to_request()).await;
    let records = view.ok()["refunds"].as_array().unwrap().clone();
    assert_eq!(records.len(), 3);
    assert_eq!(records[..2], page[..]);
    assert_eq!(view.ok()["on_hold"], false);
    assert_eq!(view.ok()["hold_reason"], Value::Null);

    // Defaults, and filters that match nothing (hostile ones are data).
    let all = send(&app, list("").to_request()).await;
    assert!(all.ok()["refunds"].as_array().unwrap().len() >= 3);
    for query in [
        "?merchant_uid=%25",
        "?merchant_uid=%27%20OR%20%271%27%3D%271",
        "?merchant_uid=_",
        "?status=pending&merchant_uid=nobody",
    ] {
        let none = send(&app, list(query).to_request()).await;
        assert_eq!(none.ok()["refunds"], json!([]), "{query}");
        assert_eq!(none.ok()["next_cursor"], Value::Null, "{query}");
    }

    let calls = env.gateway_calls();
    for query in [
        "?status=refunded",
        "?status=PENDING",
        "?limit=201",
        "?limit=0",
        "?limit=-1",
        "?limit=ten",
        "?cursor=garbage",
        "?cursor=00",
        "?merchant_id=x",
        "?status=pending&status=failed",
        &format!("?merchant_uid={}", "x".repeat(129)),
    ] {
        let refused = send(&app, list(query).to_request()).await;
        refused.assert_error(400, "invalid_request");
        assert!(
            !refused.json["message"]
                .as_str()
                .unwrap()
                .contains("refunded")
                && !refused.json["message"]
                    .as_str()
                    .unwrap()
                    .contains("garbage"),
            "{query}: never repeats the value: {}",
            refused.text
        );
    }
    assert_eq!(env.gateway_calls(), calls, "listing never asks the gateway");
    // Not authenticated: 401 before the query is looked at.
    let anonymous = TestRequest::get()
        .uri("/payments/refunds?status=refunded")
        .to_request();
    send(&app, anonymous)
        .await
        .assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn a_review_needs_a_note_and_a_hold() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(operator_scope(env.service.clone()))).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let calls = env.gateway_calls();
    for body in [
        json!({}),
        json!({"note": ""}),
        json!({"note": "   "}),
        json!({"note": "x".repeat(501)}),
        json!({"note": "a\u{0}b"}),
        json!({"note": 5}),
        json!({"note": "ok", "lift": true}),
    ] {
        send(&app, review(uid, body.clone()).to_request())
            .await
            .assert_error(400, "invalid_request");
    }
    let not_json = TestRequest::post()
        .uri(&format!("/payments/{uid}/review"))
        .insert_header(admin())
        .insert_header(("content-type", "text/plain"))
        .set_payload("note")
        .to_request();
    send(&app, not_json)
        .await
        .assert_error(415, "unsupported_media_type");
    // Not held: refused before the gateway is asked.
    send(
        &app,
        review(uid, json!({"note": "x".repeat(500)})).to_request(),
    )
    .await
    .assert_error(409, "not_on_hold");
    assert_eq!(env.gateway_calls(), calls);
    send(&app, review(&order_id(), json!({"note": "n"})).to_request())
        .await
        .assert_error(404, "payment_not_found");
    // Not authenticated: 401 whatever the body.
    let anonymous = TestRequest::post()
        .uri(&format!("/payments/{uid}/review"))
        .insert_header(("content-type", "application/json"))
        .set_payload("{not json")
        .to_request();
    send(&app, anonymous)
        .await
        .assert_error(401, "unauthorized");
}

/// Support staff may look (view, list) but not refund, sync or resolve.
struct LookOnly;

#[async_trait(?Send)]
impl Authorizer for LookOnly {
    async fn authorize(&self, _: &HttpRequest, action: Action<'_>) -> Result<Actor, Denied> {
        if action.is_read_only() {
            Ok(Actor::new("kim.support").unwrap())
        } else {
            Err(Denied::Forbidden)
        }
    }
}

#[actix_web::test]
async fn support_staff_may_look_but_not_refund_or_resolve() {
    let env = Env::start().await;
    let app =
        test::init_service(App::new().service(RefundScope::new(env.service.clone(), LookOnly)))
            .await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let look = |uri: String| TestRequest::get().uri(&uri).to_request();
    assert_eq!(
        send(&app, look(format!("/payments/{uid}"))).await.ok()["merchant_uid"],
        uid
    );
    assert!(send(&app, look("/payments/refunds".into())).await.ok()["refunds"].is_array());
    let calls = env.gateway_calls();
    let post = |uri: String, body: Value| TestRequest::post().uri(&uri).set_json(body).to_request();
    for request in [
        post(
            "/payments/cancel".into(),
            json!({"merchant_uid": uid, "cancel_request_amount": 1000}),
        ),
        post(format!("/payments/{uid}/review"), json!({"note": "looked"})),
        post(format!("/payments/{uid}/sync"), json!({})),
    ] {
        send(&app, request).await.assert_error(403, "forbidden");
    }
    assert_eq!(env.gateway_calls(), calls, "nothing reached the gateway");
    assert_eq!(env.cancels_attempted(), 0);
}

/// A review answers 409 `payment_out_of_sync` and records nothing when the
/// payment's open reviews change while it runs: here, during its gateway
/// lookup, someone else resolves the review and a second refund of the
/// payment needs review (a note about the first must not land on it).
#[actix_web::test]
async fn a_review_whose_reviews_changed_meanwhile_records_nothing() {
    use refund_core::testkit::{pending_refund, review as needs_review};
    use refund_core::PaymentStore;

    let env = Env::start().await;
    let app = test::init_service(App::new().service(operator_scope(env.service.clone()))).await;
    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.clone();
    let store = env.store.clone();
    let seen = store.payment(&uid).await.unwrap().unwrap().payment;
    let first = pending_refund(&seen, 1_000, None);
    store.begin_refund(&first).await.unwrap();
    store
        .finish_refund(&first.id, first.attempt, &needs_review("first"), None)
        .await
        .unwrap();
    // The review's lookup is answered after a hold.
    let lookups = env.sandbox.stats().get_payment;
    env.sandbox.inject_fault(
        Fault::HoldAfterCommit(Duration::from_secs(2)),
        FaultTarget::Get,
        1,
    );
    let meanwhile = async {
        while env.sandbox.stats().get_payment == lookups {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let bob = Actor::new("bob").unwrap();
        store
            .resolve_review(&uid, std::slice::from_ref(&first.id), &bob, "checked", None)
            .await
            .unwrap();
        let second = pending_refund(&seen, 2_000, None);
        store.begin_refund(&second).await.unwrap();
        store
            .finish_refund(&second.id, second.attempt, &needs_review("second"), None)
            .await
            .unwrap();
        second
    };
    let request = review(&uid, json!({"note": "about the first refund"})).to_request();
    let (answer, second) = tokio::join!(send(&app, request), meanwhile);
    answer.assert_error(409, "payment_out_of_sync");
    let second = store.refund(&second.id).await.unwrap().unwrap();
    assert_eq!(second.state, needs_review("second"), "left unresolved");
    assert!(store.payment(&uid).await.unwrap().unwrap().on_hold);
    let first = store.refund(&first.id).await.unwrap().unwrap();
    let resolution = first.state.review().unwrap().resolution.clone().unwrap();
    assert_eq!(resolution.note, "checked");
}
