//! Webhooks: the flood bounds both gateways' notices go through, PortOne
//! V2 notices and their Standard Webhooks signatures (V1's plain notices
//! are handled in `routes`).

pub(crate) mod gate;
pub(crate) mod portone;
pub(crate) mod standard;
