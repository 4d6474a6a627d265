//! In-process implementations: the embedded default for tests, demos and
//! single-instance deployments.

mod payment_store;
mod token_cache;

pub use payment_store::MemoryPaymentStore;
pub use token_cache::MemoryTokenCache;
