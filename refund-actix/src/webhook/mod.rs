//! Webhooks that are not i'mport V1's: PortOne V2 notices and their
//! Standard Webhooks signatures.

pub(crate) mod portone;
pub(crate) mod standard;
