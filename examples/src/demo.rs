//! Demo mode: the in-process sandbox (i'mport V1 or PortOne V2) with a few
//! seeded payments,
//! and the page that lists them and requests refunds.

use actix_web::{web, HttpResponse};
use iamport_sandbox::{Api, Currency, NewPayment, Sandbox};
use refund_core::{BoxError, PaymentRef, RefundService};
use serde::Serialize;

/// What the page needs to know: whether this is the sandbox, the seeded
/// orders, and (in sandbox mode only) the admin token to prefill.
#[derive(Debug, Clone, Serialize)]
pub struct PageConfig {
    /// Sandbox mode (simulated gateway).
    pub sandbox: bool,
    /// Orders to list.
    pub merchant_uids: Vec<String>,
    /// Prefilled only when the server generated it (sandbox mode), in
    /// which case it is printed at start anyway; a configured one never is.
    pub admin_token: Option<String>,
}

/// Seeds one payment per interesting kind (card, virtual account, phone,
/// dollars) at the sandbox and records them through the service, as a
/// webhook would. Order ids are unique per run.
pub async fn seed_payments(
    sandbox: &Sandbox,
    service: &RefundService,
) -> Result<Vec<String>, BoxError> {
    let run = sandbox.now();
    let payments = [
        NewPayment::new(format!("demo-{run}-card"), 50_000, Currency::Krw),
        NewPayment::new(format!("demo-{run}-vbank"), 30_000, Currency::Krw).pay_method("vbank"),
        NewPayment::new(format!("demo-{run}-phone"), 12_000, Currency::Krw).pay_method("phone"),
        NewPayment::new(format!("demo-{run}-usd"), 2_550, Currency::Usd),
    ];
    let mut merchant_uids = Vec::with_capacity(payments.len());
    for payment in payments {
        let created = sandbox.create_payment(payment)?;
        // V1 looks it up by imp_uid, V2 by the order id (paymentId).
        let imp_uid = match sandbox.api() {
            Api::Portone => &created.transaction_id,
            _ => &created.imp_uid,
        };
        service
            .refresh_payment(PaymentRef {
                imp_uid,
                merchant_uid: &created.merchant_uid,
            })
            .await?;
        merchant_uids.push(created.merchant_uid);
    }
    Ok(merchant_uids)
}

/// The page and its assets, served by the binary (no CDN: works offline).
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/",
            web::get().to(|| asset("text/html; charset=utf-8", include_str!("demo/index.html"))),
        )
        .route(
            "/demo/app.js",
            web::get().to(|| {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("demo/app.js"),
                )
            }),
        )
        .route(
            "/demo/app.css",
            web::get().to(|| asset("text/css; charset=utf-8", include_str!("demo/app.css"))),
        )
        .route("/demo/config", web::get().to(page_config));
}

async fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).body(body)
}

async fn page_config(config: web::Data<PageConfig>) -> HttpResponse {
    HttpResponse::Ok().json(config.get_ref())
}
