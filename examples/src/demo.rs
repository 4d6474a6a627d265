//! Demo mode: the in-process sandbox (i'mport V1 or PortOne V2) with a few
//! seeded payments, and the operator console that lists them, their refunds
//! and the refunds waiting for an operator, and requests refunds.

use actix_web::{web, HttpResponse};
use iamport_sandbox::{AdminCancel, Api, Currency, NewPayment, Sandbox};
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

/// Seeds one payment per state the console shows: a card, a virtual
/// account (refunds need an account), a phone payment, dollars (cents), one
/// partly refunded outside this service (at the sandbox's admin console,
/// so its history shows a refund "made outside") and one refunded in full
/// there (nothing left: Refund is disabled). Each is recorded through the
/// service, as a webhook would. Order ids are unique per run.
pub async fn seed_payments(
    sandbox: &Sandbox,
    service: &RefundService,
) -> Result<Vec<String>, BoxError> {
    let run = sandbox.now();
    let outside = |amount, reason: &str| AdminCancel {
        amount,
        reason: Some(reason.to_owned()),
    };
    let payments = [
        (
            NewPayment::new(format!("demo-{run}-card"), 50_000, Currency::Krw),
            None,
        ),
        (
            NewPayment::new(format!("demo-{run}-vbank"), 30_000, Currency::Krw).pay_method("vbank"),
            None,
        ),
        (
            NewPayment::new(format!("demo-{run}-usd"), 2_550, Currency::Usd),
            None,
        ),
        (
            NewPayment::new(format!("demo-{run}-outside"), 1_280_000, Currency::Krw),
            Some(outside(Some(80_000), "goodwill credit by phone support")),
        ),
        (
            NewPayment::new(format!("demo-{run}-phone"), 12_000, Currency::Krw).pay_method("phone"),
            None,
        ),
        (
            NewPayment::new(format!("demo-{run}-refunded"), 9_900, Currency::Krw),
            Some(outside(None, "order cancelled before shipping")),
        ),
    ];
    let mut merchant_uids = Vec::with_capacity(payments.len());
    for (payment, cancelled_outside) in payments {
        let created = sandbox.create_payment(payment)?;
        if let Some(cancel) = cancelled_outside {
            sandbox.admin_cancel(&created.imp_uid, cancel)?;
        }
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

/// The console's page, scripts (ES modules) and style sheet, served under
/// `/demo/` by name.
const ASSETS: [(&str, &str); 12] = [
    ("index.html", include_str!("demo/index.html")),
    ("app.css", include_str!("demo/app.css")),
    ("app.js", include_str!("demo/app.js")),
    ("api.js", include_str!("demo/api.js")),
    ("dom.js", include_str!("demo/dom.js")),
    ("format.js", include_str!("demo/format.js")),
    ("messages.js", include_str!("demo/messages.js")),
    ("payment-state.js", include_str!("demo/payment-state.js")),
    ("payments.js", include_str!("demo/payments.js")),
    ("queues.js", include_str!("demo/queues.js")),
    ("refund-form.js", include_str!("demo/refund-form.js")),
    ("state.js", include_str!("demo/state.js")),
];

/// The content type of an asset, by its name's extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "text/html; charset=utf-8",
    }
}

/// The console and its assets, served by the binary (no CDN: works
/// offline).
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(|| asset("index.html")))
        .route("/demo/config", web::get().to(page_config))
        .route(
            "/demo/{file}",
            web::get().to(|file: web::Path<String>| asset(file.into_inner())),
        );
}

async fn asset(name: impl AsRef<str>) -> HttpResponse {
    match ASSETS.iter().find(|(file, _)| *file == name.as_ref()) {
        Some((file, body)) => HttpResponse::Ok()
            .content_type(content_type(file))
            .insert_header(("Cache-Control", "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn page_config(config: web::Data<PageConfig>) -> HttpResponse {
    HttpResponse::Ok().json(config.get_ref())
}
