//! Mounting the scope in a merchant's app: side by side with the host's own
//! routes and settings, under another prefix, behind tracing-actix-web, and
//! in a real `HttpServer`.

mod common;

use std::net::{Ipv4Addr, TcpListener};

use actix_web::error::InternalError;
use actix_web::http::header::{ALLOW, CONTENT_TYPE};
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse, HttpServer};
use common::{admin, cancel_request, send, view_request, Env, ADMIN_TOKEN};
use serde_json::{json, Value};
use tracing_actix_web::{RequestId, TracingLogger};

/// The host's JSON settings: tiny bodies, text/plain accepted, its own error page.
fn host_json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(32)
        .content_type(|mime| mime == actix_web::mime::TEXT_PLAIN)
        .error_handler(|error, _| {
            InternalError::from_response(error, HttpResponse::ImATeapot().body("host says no"))
                .into()
        })
}

async fn host_orders(body: web::Json<Value>, shop: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"shop": shop.as_str(), "order": body.into_inner()}))
}

fn post(uri: &str, content_type: &str, body: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(admin())
        .insert_header((CONTENT_TYPE, content_type))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn the_hosts_json_config_and_data_stay_the_hosts() {
    let env = Env::start().await;
    let app = test::init_service(
        App::new()
            .app_data(host_json_config())
            .app_data(web::Data::new("corner shop".to_owned()))
            .route("/orders", web::post().to(host_orders))
            .service(env.scope()),
    )
    .await;
    let payment = env.seed_krw(10_000).await;

    // The host's routes still follow the host's settings...
    let small = send(
        &app,
        post("/orders", "text/plain", r#"{"id":1}"#).to_request(),
    )
    .await;
    assert_eq!(small.ok()["shop"], "corner shop");
    let big = format!(r#"{{"id":1,"note":"{}"}}"#, "x".repeat(64));
    let too_big = send(&app, post("/orders", "application/json", &big).to_request()).await;
    assert_eq!(
        (too_big.status.as_u16(), too_big.text.as_str()),
        (418, "host says no")
    );
    let broken = send(&app, post("/orders", "application/json", "{").to_request()).await;
    assert_eq!(broken.status.as_u16(), 418);

    // ...and ours follow ours: a body over the host's 32 bytes is fine, text
    // is not JSON, and errors have our shape.
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 1000, "reason": "longer than the host's limit"});
    assert_eq!(
        send(&app, cancel_request(body.clone()).to_request())
            .await
            .ok()["cancel_amount"],
        1000
    );
    send(
        &app,
        post("/payments/cancel", "text/plain", &body.to_string()).to_request(),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    send(
        &app,
        post("/payments/cancel", "application/json", "{").to_request(),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn configure_mounts_under_another_prefix() {
    let env = Env::start().await;
    let app = test::init_service(
        App::new()
            .route(
                "/payments/complete",
                web::post().to(HttpResponse::NoContent),
            )
            .configure(env.scope().prefix("refunds/").configure()),
    )
    .await;
    let payment = env.seed_krw(10_000).await;

    let view = TestRequest::get()
        .uri(&format!("/refunds/{}", payment.merchant_uid))
        .insert_header(admin());
    assert_eq!(send(&app, view.to_request()).await.ok()["amount"], 10_000);
    let complete = TestRequest::post().uri("/payments/complete");
    assert_eq!(send(&app, complete.to_request()).await.status.as_u16(), 204);
    let old = send(&app, view_request(&payment.merchant_uid).to_request()).await;
    assert_eq!(old.status.as_u16(), 404);
}

#[actix_web::test]
async fn host_routes_under_the_prefix_work_when_registered_first() {
    let env = Env::start().await;
    let app = test::init_service(
        App::new()
            .route(
                "/payments/complete",
                web::post().to(HttpResponse::NoContent),
            )
            .service(env.scope().into_scope()),
    )
    .await;
    let complete = TestRequest::post().uri("/payments/complete");
    assert_eq!(send(&app, complete.to_request()).await.status.as_u16(), 204);
}

#[actix_web::test]
async fn fixed_routes_are_not_read_as_order_ids_and_misses_answer_json() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;

    let wrong_method = send(&app, view_request("cancel").to_request()).await;
    wrong_method.assert_error(405, "method_not_allowed");
    assert_eq!(wrong_method.headers.get(ALLOW).unwrap(), "POST");
    let webhook = TestRequest::post()
        .uri("/payments/webhook")
        .set_json(json!({"imp_uid": "imp_000000000000"}));
    assert_eq!(send(&app, webhook.to_request()).await.ok()["code"], "ok");
    let sync_by_get = send(&app, view_request("order-1/sync").to_request()).await;
    sync_by_get.assert_error(405, "method_not_allowed");
    send(&app, view_request("a/b/c").to_request())
        .await
        .assert_error(404, "not_found");
    send(&app, view_request("").to_request())
        .await
        .assert_error(404, "not_found");
}

#[actix_web::test]
async fn works_behind_tracing_actix_web() {
    let env = Env::start().await;
    let app = test::init_service(
        App::new()
            .wrap(TracingLogger::default())
            .route(
                "/whoami",
                web::get().to(|id: RequestId| async move { id.to_string() }),
            )
            .service(env.scope()),
    )
    .await;
    let payment = env.seed_krw(10_000).await;

    let id = send(&app, TestRequest::get().uri("/whoami").to_request()).await;
    assert_eq!(id.status.as_u16(), 200);
    assert!(!id.text.is_empty());
    let body = json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 500});
    assert_eq!(
        send(&app, cancel_request(body).to_request()).await.ok()["cancel_amount"],
        500
    );
}

#[actix_web::test]
async fn serves_from_a_real_http_server() {
    let env = Env::start().await;
    let payment = env.seed_krw(10_000).await;
    let refunds = env.scope().webhook_allowlist([Ipv4Addr::LOCALHOST.into()]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || App::new().service(refunds.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let refunded = http
        .post(format!("{base}/payments/cancel"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", "real-1")
        .json(&json!({"merchant_uid": payment.merchant_uid, "cancel_request_amount": 1500}))
        .send()
        .await
        .unwrap();
    assert_eq!(refunded.status().as_u16(), 200);
    let view: Value = refunded.json().await.unwrap();
    assert_eq!(view["cancel_amount"], 1500);

    let webhook = http
        .post(format!("{base}/payments/webhook"))
        .form(&[("imp_uid", payment.imp_uid.as_str()), ("status", "paid")])
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status().as_u16(), 200);

    let oversized = http
        .post(format!("{base}/payments/cancel"))
        .bearer_auth(ADMIN_TOKEN)
        .header(CONTENT_TYPE.as_str(), "application/json")
        .body(format!(
            r#"{{"merchant_uid":"{}","reason":"{}"}}"#,
            payment.merchant_uid,
            "x".repeat(40_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status().as_u16(), 413);
    let body: Value = oversized.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
    handle.stop(false).await;
}
