//! The ceiling: a bare actix-web handler that forwards each refund request
//! straight to the gateway's `/payments/cancel` with a token fetched once
//! at start. No storage, no journal, no checksum, no validation beyond
//! parsing: whatever the merchant server does on top costs the difference.

use actix_web::{web, App, HttpResponse, HttpServer};
use refund_core::BoxError;
use serde::{Deserialize, Serialize};

use super::child::{announce, wait_for_parent};
use refund_examples::settings::Settings;

/// What the baseline forwards with.
struct Forwarder {
    http: reqwest::Client,
    cancel_url: String,
    token: String,
}

/// The part of the merchant's refund request the gateway needs.
#[derive(Deserialize)]
struct RefundRequest {
    merchant_uid: String,
    cancel_request_amount: u64,
    reason: Option<String>,
}

/// i'mport's cancel body, as the baseline sends it.
#[derive(Serialize)]
struct GatewayCancel<'a> {
    merchant_uid: &'a str,
    amount: u64,
    reason: Option<&'a str>,
}

/// The part of i'mport's envelope that says whether it worked.
#[derive(Deserialize)]
struct Envelope {
    code: i64,
}

#[derive(Deserialize)]
struct TokenEnvelope {
    response: TokenResponse,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// Child side of `serve-baseline`: reads `REFUND_LISTEN`, `REFUND_IAMPORT_URL`,
/// `REFUND_IAMPORT_KEY` and `REFUND_IAMPORT_SECRET`, gets one token and
/// serves `POST /payments/cancel` until the benchmark lets go.
pub async fn serve() -> Result<(), BoxError> {
    let settings = Settings::load(None)?;
    let (Some(url), Some(key), Some(secret)) = (
        settings.iamport_url.as_deref(),
        settings.iamport_key.as_deref(),
        settings.iamport_secret.as_deref(),
    ) else {
        return Err("the baseline needs REFUND_IAMPORT_URL, _KEY and _SECRET".into());
    };
    let http = reqwest::Client::new();
    let token = http
        .post(format!("{url}/users/getToken"))
        .json(&serde_json::json!({"imp_key": key, "imp_secret": secret}))
        .send()
        .await?
        .error_for_status()?
        .json::<TokenEnvelope>()
        .await?
        .response
        .access_token;
    let forwarder = web::Data::new(Forwarder {
        http,
        cancel_url: format!("{url}/payments/cancel"),
        token,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(forwarder.clone())
            .route("/payments/cancel", web::post().to(forward))
    })
    .disable_signals()
    .bind(settings.listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or("the baseline bound no address")?;
    let server = server.run();
    let handle = server.handle();
    let running = tokio::spawn(server);
    announce(addr)?;
    wait_for_parent().await;
    handle.stop(true).await;
    running.await??;
    Ok(())
}

/// Forwards one refund and passes the gateway's payment back, or answers
/// 502 in the merchant server's error shape.
async fn forward(forwarder: web::Data<Forwarder>, body: web::Json<RefundRequest>) -> HttpResponse {
    let cancel = GatewayCancel {
        merchant_uid: &body.merchant_uid,
        amount: body.cancel_request_amount,
        reason: body.reason.as_deref(),
    };
    let sent = forwarder
        .http
        .post(&forwarder.cancel_url)
        .bearer_auth(&forwarder.token)
        .json(&cancel)
        .send()
        .await;
    let body = match sent {
        Ok(response) => response.bytes().await,
        Err(error) => Err(error),
    };
    match body {
        Ok(body) => match serde_json::from_slice::<Envelope>(&body) {
            Ok(Envelope { code: 0 }) => HttpResponse::Ok()
                .content_type("application/json")
                .body(body),
            _ => HttpResponse::BadGateway().json(serde_json::json!({"code": "gateway_rejected"})),
        },
        Err(_) => HttpResponse::BadGateway().json(serde_json::json!({"code": "gateway_error"})),
    }
}
