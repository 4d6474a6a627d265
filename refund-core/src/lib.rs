//! Safe refunds for merchants on i'mport (PortOne V1) and PortOne V2.
//!
//! A refund touches money in two places, our database and the gateway, and
//! either call can fail, time out, or race another server instance. This
//! crate makes the refund safe anyway:
//!
//! - a write-ahead **journal**: each refund is recorded as `pending` in the
//!   [`PaymentStore`] before the gateway is called, and at most one refund
//!   per payment is pending at a time, across every server instance;
//! - the gateway's **balance check** (V1 `checksum`, V2
//!   `currentCancellableAmount`: the cancelable amount we believe in) on
//!   every cancel, so a stale request cannot refund twice;
//! - **reconciliation**: an unknown outcome (timeout, 5xx) stays pending and
//!   is settled later from the gateway's numbers, by a sync, a webhook, the
//!   next refund, or the background [`RefundService::sweep`];
//! - **exact money**: [`Amount`]s are integers in the currency's minor unit,
//!   converted from and to i'mport's JSON numbers by their text (PortOne V2
//!   already speaks minor units).
//!
//! The gateway is [`IamportClient`] (V1) or [`PortOneClient`] (V2, whose
//! asynchronous cancels stay pending under their cancellation id until the
//! payment shows them finished).
//!
//! # Using it
//! Most merchants use it through the `refund-actix` scope. Directly:
//!
//! ```no_run
//! use std::sync::Arc;
//! use refund_core::{
//!     Actor, CancelRequest, IamportClient, IamportConfig, IamportCredentials, MemoryPaymentStore,
//!     RefundService,
//! };
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let credentials = IamportCredentials::new("imp_key", "imp_secret");
//! let gateway = IamportClient::new(IamportConfig::new(IamportConfig::PRODUCTION_URL, credentials))?;
//! let service = Arc::new(RefundService::new(Arc::new(MemoryPaymentStore::new()), Arc::new(gateway)));
//! tokio::spawn(service.clone().run_sweeper(std::time::Duration::from_secs(60)));
//!
//! // Record a paid payment (e.g. from the checkout callback or a webhook).
//! service.refresh("imp_123456789012").await?;
//! let request: CancelRequest = serde_json::from_str(r#"{"merchant_uid":"ORD-1","cancel_request_amount":2000}"#)?;
//! // Who asks: the journal records it as the refund's `requested_by`.
//! let agent = Actor::new("kim.support")?;
//! let outcome = service.cancel(&agent, request, Some("click-42")).await?;
//! # let _ = outcome; Ok(()) }
//! ```
//!
//! # Extending it
//! - A storage backend implements [`PaymentStore`] and runs
//!   [`store_conformance_tests!`] (feature `testkit`) against a real server.
//! - A shared token cache implements [`TokenCache`].
//! - Another gateway implements [`PaymentGateway`].

#![warn(missing_docs, unreachable_pub)]

mod actor;
mod clock;
mod error;
mod gateway;
mod listing;
mod masking;
pub mod memory;
pub mod metrics;
mod money;
mod payment;
mod record;
mod refund;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod token;
mod view;
mod workflow;

pub use actor::{Actor, InvalidActor, MAX_ACTOR_CHARS};
pub use clock::{now_ms, Clock, SystemClock};
pub use error::RefundError;
pub use gateway::{
    is_portone_bank, CancelCommand, CancelReceipt, GatewayError, GatewayKind, IamportClient,
    IamportConfig, IamportCredentials, PaymentGateway, PaymentRef, PortOneAuth, PortOneClient,
    PortOneConfig, Secret, PORTONE_BANKS,
};
pub use listing::{
    capped_limit, InvalidCursor, RefundCursor, RefundFilter, RefundPage, MAX_LIST_LIMIT,
};
pub use masking::mask_gateway_message;
pub use memory::{MemoryPaymentStore, MemoryTokenCache};
pub use money::{Amount, AmountError, Currency, DecimalText};
pub use payment::{CancelEntry, PayMethod, Payment, PaymentStatus, StoredPayment};
pub use record::{FailureRecord, RefundList, RefundRecord, ReviewRecord};
pub use refund::{
    CancelRequest, Failure, FailureKind, Refund, RefundAccount, RefundId, RefundState,
    RefundStatus, RequestAmounts, RequestError, Resolution, Review, ValidRequest, FIRST_ATTEMPT,
};
pub use store::{
    BoxError, PaymentStore, PendingCursor, Settlement, StoreError, SETTLEMENT_RECENT_REFUNDS,
};
pub use token::{AccessToken, TokenCache, TokenSource};
pub use view::{CancelView, PaymentView, RefundView};
pub use workflow::{
    CancelOutcome, RefundService, ReviewRequest, SweepReport, DEFAULT_LIST_LIMIT, MAX_NOTE_CHARS,
};
