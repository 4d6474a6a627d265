//! The ceiling: a bare actix-web handler that forwards each refund request
//! straight to the gateway's cancel call (i'mport's `/payments/cancel` with
//! a token fetched once at start, or PortOne V2's
//! `/payments/{paymentId}/cancel` with the API secret). No storage, no journal, no checksum, no validation beyond
//! parsing: whatever the merchant server does on top costs the difference.

use actix_web::{web, App, HttpResponse, HttpServer};
use refund_core::BoxError;
use serde::{Deserialize, Serialize};

use super::child::{announce, wait_for_parent};
use refund_examples::settings::{GatewayChoice, Settings};

/// What the baseline forwards with: the gateway's cancel call, ready to
/// send (the token fetched once at start, or V2's API secret).
enum Forwarder {
    Iamport {
        http: reqwest::Client,
        cancel_url: String,
        token: String,
    },
    Portone {
        http: reqwest::Client,
        base_url: String,
        secret: String,
    },
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

/// PortOne V2's cancel body (the reason is required there).
#[derive(Serialize)]
struct PortoneCancel<'a> {
    amount: u64,
    reason: &'a str,
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

/// Child side of `serve-baseline`: reads `REFUND_LISTEN`, `REFUND_GATEWAY`
/// and the gateway's URL and credentials (`REFUND_IAMPORT_URL`, `_KEY`,
/// `_SECRET`, or `REFUND_PORTONE_URL`, `_SECRET`), gets one i'mport token
/// if it needs one and serves `POST /payments/cancel` until the benchmark
/// lets go.
pub async fn serve() -> Result<(), BoxError> {
    let settings = Settings::load(None)?;
    let http = reqwest::Client::new();
    let forwarder = match settings.gateway {
        GatewayChoice::Portone => {
            let (Some(url), Some(secret)) = (
                settings.portone_url.as_deref(),
                settings.portone_secret.as_deref(),
            ) else {
                return Err("the V2 baseline needs REFUND_PORTONE_URL and _SECRET".into());
            };
            Forwarder::Portone {
                http,
                base_url: url.to_owned(),
                secret: secret.to_owned(),
            }
        }
        GatewayChoice::Iamport => {
            let (Some(url), Some(key), Some(secret)) = (
                settings.iamport_url.as_deref(),
                settings.iamport_key.as_deref(),
                settings.iamport_secret.as_deref(),
            ) else {
                return Err("the baseline needs REFUND_IAMPORT_URL, _KEY and _SECRET".into());
            };
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
            Forwarder::Iamport {
                http,
                cancel_url: format!("{url}/payments/cancel"),
                token,
            }
        }
    };
    let forwarder = web::Data::new(forwarder);
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

/// Forwards one refund and passes the gateway's answer back, or answers
/// 502 in the merchant server's error shape.
async fn forward(forwarder: web::Data<Forwarder>, body: web::Json<RefundRequest>) -> HttpResponse {
    let (sent, v1) = match forwarder.get_ref() {
        Forwarder::Iamport {
            http,
            cancel_url,
            token,
        } => {
            let cancel = GatewayCancel {
                merchant_uid: &body.merchant_uid,
                amount: body.cancel_request_amount,
                reason: body.reason.as_deref(),
            };
            let sent = http.post(cancel_url).bearer_auth(token).json(&cancel);
            (sent.send().await, true)
        }
        Forwarder::Portone {
            http,
            base_url,
            secret,
        } => {
            let cancel = PortoneCancel {
                amount: body.cancel_request_amount,
                reason: body.reason.as_deref().unwrap_or("refund"),
            };
            let sent = http
                .post(format!("{base_url}/payments/{}/cancel", body.merchant_uid))
                .header("Authorization", format!("PortOne {secret}"))
                .json(&cancel);
            (sent.send().await, false)
        }
    };
    let answer = match sent {
        Ok(response) => {
            let ok = response.status().is_success();
            response.bytes().await.map(|body| (ok, body))
        }
        Err(error) => Err(error),
    };
    match answer {
        Ok((true, body))
            if !v1 || matches!(serde_json::from_slice(&body), Ok(Envelope { code: 0 })) =>
        {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        }
        Ok(_) => HttpResponse::BadGateway().json(serde_json::json!({"code": "gateway_rejected"})),
        Err(_) => HttpResponse::BadGateway().json(serde_json::json!({"code": "gateway_error"})),
    }
}
