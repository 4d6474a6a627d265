//! HTTP routing: the simulated gateway plus the sandbox's control plane.

use actix_web::http::StatusCode;
use actix_web::web;

use crate::wire::failure;

mod control;
mod gateway;

/// Registers every route on an actix-web app.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    gateway::configure(cfg);
    control::configure(cfg);
    cfg.default_service(web::to(|| async {
        failure(StatusCode::NOT_FOUND, "Not Found")
    }));
}
