//! The store conformance suite against the in-memory store.

use std::sync::Arc;

use refund_core::{MemoryPaymentStore, PaymentStore};

async fn store() -> Arc<dyn PaymentStore> {
    Arc::new(MemoryPaymentStore::new())
}

refund_core::store_conformance_tests!(store());
