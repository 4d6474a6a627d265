//! HTTP routing: the simulated gateway of the configured API plus the
//! sandbox's control plane. The other API's routes are not mounted: they
//! answer 404 as on a gateway that does not speak it.

use actix_web::http::StatusCode;
use actix_web::web;

use crate::config::Api;

mod call;
mod control;
mod gateway;
mod portone;

/// Registers every route of `api` on an actix-web app.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, api: Api) {
    match api {
        Api::Iamport => {
            gateway::configure(cfg);
            cfg.default_service(web::to(|| async {
                crate::wire::failure(StatusCode::NOT_FOUND, "Not Found")
            }));
        }
        Api::Portone => {
            portone::configure(cfg);
            cfg.default_service(web::to(|| async {
                crate::portone_wire::error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
            }));
        }
    }
    control::configure(cfg);
}
