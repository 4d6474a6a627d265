//! Listing refund records for operators.

use super::RefundService;
use crate::error::RefundError;
use crate::listing::{RefundCursor, RefundFilter, MAX_LIST_LIMIT};
use crate::record::RefundList;
use crate::refund::validate_payment_id;

/// How many records a listing holds when the caller does not say.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

impl RefundService {
    /// Refund records across payments matching `filter`, newest first, at
    /// most `limit` (1 to [`MAX_LIST_LIMIT`]), after `cursor`: one page, with
    /// the token of the next one. Reads the store only. A limit out of range
    /// or a malformed order id is `invalid_request`.
    #[tracing::instrument(skip(self))]
    pub async fn list_refunds(
        &self,
        filter: &RefundFilter,
        limit: u32,
        cursor: Option<&RefundCursor>,
    ) -> Result<RefundList, RefundError> {
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(RefundError::InvalidRequest(format!(
                "limit must be a whole number from 1 to {MAX_LIST_LIMIT}"
            )));
        }
        if let Some(merchant_uid) = &filter.merchant_uid {
            validate_payment_id("merchant_uid", merchant_uid)?;
        }
        let page = self.store.list_refunds(filter, limit, cursor).await?;
        Ok(RefundList::new(&page))
    }
}
