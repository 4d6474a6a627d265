//! The runnable side of the project: the `merchant-server` demo (an
//! actix-web shop with the refund scope mounted), the `iamport-sandbox`
//! binary, and the pieces they share.
//!
//! - [`settings`]: configuration from a TOML file and `REFUND_*` variables.
//! - [`backends`]: the store and token cache a URL names, per cargo feature.
//! - [`demo`]: sandbox mode's seeded payments and the demo page.
//! - [`gateways`]: the i'mport V1 or PortOne V2 client (or sandbox) the
//!   configuration names.
//! - [`observability`]: the request log line and `GET /metrics`.
//! - [`server`]: wiring it all into a running server.

pub mod backends;
pub mod demo;
pub mod gateways;
pub mod observability;
pub mod server;
pub mod settings;
