//! refund-core's store conformance suite against a real MongoDB-wire server.

mod common;

use std::sync::{Arc, LazyLock};

use refund_core::PaymentStore;

/// One fresh database for every case of this binary (cases use fresh ids).
static DATABASE: LazyLock<String> = LazyLock::new(common::database_name);

// The macro awaits this expression at the start of each case. It is a plain
// block (not an async block), so its `return` ends the case early: that is
// how a missing server skips the case outside CI.
refund_core::store_conformance_tests!({
    let Some(store) = common::store(&DATABASE).await else {
        return;
    };
    std::future::ready(Arc::new(store) as Arc<dyn PaymentStore>)
});
