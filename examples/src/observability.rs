//! What the demo server tells its operators: one log line per request and
//! the metrics at `GET /metrics` (Prometheus text).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rand::RngCore;
use tracing::Instrument;

/// The default log filter: our crates and one line per request at info,
/// the libraries' start-up chatter (worker counts, migration steps) only
/// when something is wrong. `RUST_LOG` replaces it.
pub const DEFAULT_LOG: &str = "info,actix_server=warn,storage_sql::migrate=warn";

/// Installs merchant-server's log subscriber: human-readable lines on
/// stdout, filtered by `RUST_LOG` or [`DEFAULT_LOG`]. Colours only when
/// stdout is a terminal: escape codes are noise in a file or a log
/// collector, and writing them costs a good share of each line's CPU.
pub fn init_logs() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG.into()),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

/// The request id header: taken from the caller when it is a plain token
/// (a proxy's id), else generated; always sent back.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Buckets of `refund_gateway_request_duration_seconds`, in seconds: a
/// gateway call takes tens of milliseconds to the cancel budget's minute.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed as the `metrics` facade's
/// global recorder on first use (without the exporter's own HTTP
/// listener: `/metrics` is an actix route). `None` if another recorder was
/// installed first (then that one receives the metrics).
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(refund_core::metrics::GATEWAY_REQUEST_DURATION.to_owned()),
                    &DURATION_BUCKETS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed: /metrics stays empty");
                return None;
            }
            let upkeep = handle.clone();
            // Drains histogram samples into their buckets now and then, so
            // that memory stays flat between scrapes.
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}

/// `GET /metrics`: every metric in Prometheus' text format.
pub async fn render_metrics(handle: web::Data<Option<PrometheusHandle>>) -> HttpResponse {
    match handle.get_ref() {
        Some(handle) => {
            handle.run_upkeep();
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(handle.render())
        }
        None => HttpResponse::NotFound().body("metrics go to another recorder in this process\n"),
    }
}

/// One line per request, once it is answered: method, path, status,
/// latency and request id (the span every log line of the request
/// carries). 5xx answers are warnings; everything else, 4xx included (the
/// client's doing), is info.
pub async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_plain_id(id))
        .map_or_else(random_id, str::to_owned);
    let method = request.method().clone();
    let path = request.path().to_owned();
    let span = tracing::info_span!("request", id = %id);
    let answer = next.call(request).instrument(span.clone()).await;
    let latency_ms = started.elapsed().as_millis();
    let _entered = span.enter();
    match answer {
        Ok(mut response) => {
            let status = response.status();
            if status.is_server_error() {
                tracing::warn!("{method} {path} {} {latency_ms}ms", status.as_u16());
            } else {
                tracing::info!("{method} {path} {} {latency_ms}ms", status.as_u16());
            }
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            Ok(response)
        }
        Err(error) => {
            tracing::warn!("{method} {path} failed after {latency_ms}ms: {error}");
            Err(error)
        }
    }
}

/// A caller's request id we may repeat in logs and headers.
fn is_plain_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn random_id() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
