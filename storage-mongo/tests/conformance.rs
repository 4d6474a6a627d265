//! refund-core's store conformance suite against a real MongoDB-wire server.

mod common;

use std::sync::{Arc, LazyLock};

/// One fresh database for every case of this binary (cases use fresh ids).
static DATABASE: LazyLock<String> = LazyLock::new(|| common::SCRATCH.name());

// `None` (no server, outside CI) skips the case.
refund_core::store_conformance_tests!(async { common::store(&DATABASE).await.map(Arc::new) });
