//! Rows to domain values and back: payments, refunds, and the cancel history
//! kept as JSON text.
//!
//! Reading is strict: a row that does not hold a valid payment or refund
//! (unknown currency or refund status, malformed history) is an error, never
//! a guess.

use refund_core::{
    Actor, Amount, CancelEntry, Currency, Failure, FailureKind, Payment, Refund, RefundId,
    RefundState, RefundStatus, Resolution, Review, StoredPayment,
};
use serde::{Deserialize, Serialize};

use crate::dialect::Dialect;
use crate::driver::Param;
use crate::error::SqlStoreError;

/// One cancellation as stored in `cancel_history`; amounts are integer minor
/// units, so they survive JSON exactly.
#[derive(Serialize, Deserialize)]
struct StoredCancelEntry {
    pg_tid: Option<String>,
    amount: i64,
    cancelled_at: i64,
    reason: Option<String>,
    cancellation_id: Option<String>,
    receipt_url: Option<String>,
}

/// The `cancel_history` column's JSON text.
pub(crate) fn cancel_history_json(history: &[CancelEntry]) -> Result<String, SqlStoreError> {
    let stored: Vec<StoredCancelEntry> = history
        .iter()
        .map(|entry| StoredCancelEntry {
            pg_tid: entry.pg_tid.clone(),
            amount: entry.amount.minor(),
            cancelled_at: entry.cancelled_at,
            reason: entry.reason.clone(),
            cancellation_id: entry.cancellation_id.clone(),
            receipt_url: entry.receipt_url.clone(),
        })
        .collect();
    serde_json::to_string(&stored)
        .map_err(|e| SqlStoreError::Corrupt(format!("cannot encode cancel_history: {e}")))
}

fn parse_cancel_history(json: &str) -> Result<Vec<CancelEntry>, SqlStoreError> {
    let stored: Vec<StoredCancelEntry> = serde_json::from_str(json)
        .map_err(|e| SqlStoreError::Corrupt(format!("cancel_history is not valid: {e}")))?;
    Ok(stored
        .into_iter()
        .map(|entry| CancelEntry {
            pg_tid: entry.pg_tid,
            amount: Amount::from_minor(entry.amount),
            cancelled_at: entry.cancelled_at,
            reason: entry.reason,
            cancellation_id: entry.cancellation_id,
            receipt_url: entry.receipt_url,
        })
        .collect())
}

/// Reads columns of one row of `DB`, turning driver errors into ours. With
/// a prefix, column `c` is read from `<prefix>c` (a payment's columns
/// beside a refund's in one row).
struct Columns<'r, DB: Dialect> {
    row: &'r DB::Row,
    prefix: &'static str,
}

impl<'r, DB: Dialect> Columns<'r, DB> {
    fn new(row: &'r DB::Row) -> Self {
        Columns { row, prefix: "" }
    }

    fn name<'c>(&self, column: &'c str) -> std::borrow::Cow<'c, str> {
        if self.prefix.is_empty() {
            column.into()
        } else {
            format!("{}{column}", self.prefix).into()
        }
    }

    fn int(&self, column: &str) -> Result<i64, SqlStoreError> {
        DB::int(self.row, &self.name(column)).map_err(SqlStoreError::Database)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, SqlStoreError> {
        DB::opt_int(self.row, &self.name(column)).map_err(SqlStoreError::Database)
    }

    fn amount(&self, column: &str) -> Result<Amount, SqlStoreError> {
        self.int(column).map(Amount::from_minor)
    }

    fn flag(&self, column: &str) -> Result<bool, SqlStoreError> {
        DB::flag(self.row, &self.name(column)).map_err(SqlStoreError::Database)
    }

    fn text(&self, column: &str) -> Result<String, SqlStoreError> {
        DB::text(self.row, &self.name(column), DB::BINARY_TEXT).map_err(SqlStoreError::Database)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, SqlStoreError> {
        DB::opt_text(self.row, &self.name(column), DB::BINARY_TEXT).map_err(SqlStoreError::Database)
    }
}

/// The `currency` column.
fn currency<DB: Dialect>(columns: &Columns<'_, DB>) -> Result<Currency, SqlStoreError> {
    let currency = columns.text("currency")?;
    currency
        .parse()
        .map_err(|_| SqlStoreError::Corrupt(format!("unknown currency {currency:?}")))
}

/// A `refund_payments` row.
pub(crate) fn stored_payment<DB: Dialect>(row: &DB::Row) -> Result<StoredPayment, SqlStoreError> {
    payment_columns(Columns::<DB>::new(row), None)
}

/// The payment in a settlement row: its columns carry the
/// [`SETTLED_PAYMENT_PREFIX`](crate::dialect::SETTLED_PAYMENT_PREFIX);
/// `None` on the rows that list the payment's other refunds.
///
/// `written` is the cancel history the statement wrote, as JSON text and
/// as entries: when the row holds that very text, its entries are those
/// (the text is [`cancel_history_json`] of them, which reads back
/// exactly), so it is not parsed again.
pub(crate) fn settled_payment<DB: Dialect>(
    row: &DB::Row,
    written: Option<(&str, &[CancelEntry])>,
) -> Result<Option<StoredPayment>, SqlStoreError> {
    let columns = Columns::<DB> {
        row,
        prefix: crate::dialect::SETTLED_PAYMENT_PREFIX,
    };
    if columns.opt_text("merchant_uid")?.is_none() {
        return Ok(None);
    }
    payment_columns(columns, written).map(Some)
}

fn payment_columns<DB: Dialect>(
    columns: Columns<'_, DB>,
    written: Option<(&str, &[CancelEntry])>,
) -> Result<StoredPayment, SqlStoreError> {
    let currency = currency::<DB>(&columns)?;
    let history = columns.text("cancel_history")?;
    let cancel_history = match written {
        Some((json, entries)) if json == history => entries.to_vec(),
        _ => parse_cancel_history(&history)?,
    };
    Ok(StoredPayment {
        payment: Payment {
            imp_uid: columns.text("imp_uid")?,
            merchant_uid: columns.text("merchant_uid")?,
            pay_method: columns.text("pay_method")?.as_str().into(),
            currency,
            amount: columns.amount("amount")?,
            cancel_amount: columns.amount("cancel_amount")?,
            status: columns.text("status")?.as_str().into(),
            paid_at: columns.int("paid_at")?,
            cancel_history,
            // Not stored: only ever read from the gateway's own answers.
            requested_cancels: Vec::new(),
            failed_cancels: Vec::new(),
        },
        pending_refund: columns
            .opt_text("pending_refund_id")?
            .map(RefundId::from_stored),
        on_hold: columns.flag("on_hold")?,
    })
}

/// A `refund_journal` row.
pub(crate) fn refund<DB: Dialect>(row: &DB::Row) -> Result<Refund, SqlStoreError> {
    let columns = Columns::<DB>::new(row);
    let state = refund_state::<DB>(&columns)?;
    let created_at_ms = columns.int("created_at_ms")?;
    // A row the release before migration 0004 wrote has no attempt start:
    // its attempt began when it was journaled, and that release restamps
    // the journal time when it runs a refund again (so the later of the
    // two is the attempt's start either way).
    let attempt_started_at_ms = columns
        .opt_int("attempt_started_at_ms")?
        .map_or(created_at_ms, |at| at.max(created_at_ms));
    // No attempt counted (a row journaled before migration 0004, or one the
    // release before it wrote): its first.
    let attempt = match columns.opt_int("attempt")? {
        None => refund_core::FIRST_ATTEMPT,
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n >= refund_core::FIRST_ATTEMPT)
            .ok_or_else(|| SqlStoreError::Corrupt(format!("refund attempt {n} out of range")))?,
    };
    Ok(Refund {
        id: RefundId::from_stored(columns.text("id")?),
        merchant_uid: columns.text("merchant_uid")?,
        imp_uid: columns.text("imp_uid")?,
        currency: currency::<DB>(&columns)?,
        amount: columns.amount("amount")?,
        base_cancel_amount: columns.amount("base_cancel_amount")?,
        checksum: columns.amount("checksum")?,
        reason: columns.opt_text("reason")?,
        idempotency_key: columns.opt_text("idempotency_key")?,
        fingerprint: columns.text("fingerprint")?,
        refund_account_masked: columns.opt_text("refund_account_masked")?,
        requested_by: columns.opt_text("requested_by")?.map(Actor::from_stored),
        state,
        created_at_ms,
        attempt_started_at_ms,
        attempt,
        updated_at_ms: columns.int("updated_at_ms")?,
    })
}

/// The typed state of a `refund_journal` row.
fn refund_state<DB: Dialect>(columns: &Columns<'_, DB>) -> Result<RefundState, SqlStoreError> {
    let status = columns.text("status")?;
    let status = RefundStatus::parse(&status)
        .ok_or_else(|| SqlStoreError::Corrupt(format!("unknown refund status {status:?}")))?;
    let message = || {
        columns
            .opt_text("gateway_message")?
            .ok_or_else(|| SqlStoreError::Corrupt(format!("a {status} refund without a message")))
    };
    Ok(match status {
        RefundStatus::Pending => RefundState::Pending {
            cancellation_id: columns.opt_text("cancellation_id")?,
        },
        RefundStatus::Succeeded => RefundState::Succeeded {
            cancellation_id: columns.opt_text("cancellation_id")?,
        },
        RefundStatus::Failed => {
            let kind = columns.opt_text("failure_kind")?.unwrap_or_default();
            let kind = FailureKind::parse(&kind)
                .ok_or_else(|| SqlStoreError::Corrupt(format!("unknown failure kind {kind:?}")))?;
            RefundState::Failed(Failure {
                kind,
                code: columns.opt_text("failure_code")?,
                message: message()?,
            })
        }
        RefundStatus::NeedsReview => RefundState::NeedsReview(Review {
            message: message()?,
            resolution: resolution::<DB>(columns)?,
        }),
        other => {
            return Err(SqlStoreError::Corrupt(format!(
                "unknown refund status {other}"
            )))
        }
    })
}

/// A review's resolution: all three columns, or none.
fn resolution<DB: Dialect>(columns: &Columns<'_, DB>) -> Result<Option<Resolution>, SqlStoreError> {
    match (
        columns.opt_text("resolved_by")?,
        columns.opt_int("resolved_at_ms")?,
        columns.opt_text("review_note")?,
    ) {
        (Some(by), Some(at), Some(note)) => Ok(Some(Resolution {
            resolved_by: Actor::from_stored(by),
            resolved_at_ms: at,
            note,
        })),
        (None, None, None) => Ok(None),
        _ => Err(SqlStoreError::Corrupt(
            "a review resolution with missing parts".into(),
        )),
    }
}

/// A state's columns, for `settle_refund`: status, failure kind, failure
/// code, message, cancellation id.
pub(crate) fn state_params(state: &RefundState) -> [Param<'_>; 5] {
    let (kind, code, message) = match state {
        RefundState::Failed(failure) => (
            Some(failure.kind.as_str()),
            failure.code.as_deref(),
            Some(failure.message.as_str()),
        ),
        RefundState::NeedsReview(review) => (None, None, Some(review.message.as_str())),
        _ => (None, None, None),
    };
    [
        Param::Text(state.status().as_str()),
        Param::OptText(kind),
        Param::OptText(code),
        Param::OptText(message),
        Param::OptText(state.cancellation_id()),
    ]
}

/// A new refund's values in `NEW_REFUND_COLUMNS` order, for `insert_refund`.
pub(crate) fn refund_params(refund: &Refund) -> [Param<'_>; 13] {
    [
        Param::Text(refund.id.as_str()),
        Param::Text(&refund.merchant_uid),
        Param::Text(&refund.imp_uid),
        Param::Int(refund.amount.minor()),
        Param::Int(refund.base_cancel_amount.minor()),
        Param::Int(refund.checksum.minor()),
        Param::OptText(refund.reason.as_deref()),
        Param::OptText(refund.idempotency_key.as_deref()),
        Param::Text(&refund.fingerprint),
        Param::OptText(refund.refund_account_masked.as_deref()),
        // Always recorded as pending: the journal is write-ahead.
        Param::Text(RefundStatus::Pending.as_str()),
        Param::Text(refund.currency.code()),
        Param::OptText(refund.requested_by.as_ref().map(Actor::as_str)),
    ]
}

/// A snapshot's values for `upsert_payment`: `merchant_uid`, then
/// `SNAPSHOT_COLUMNS` in order.
pub(crate) fn snapshot_params<'a>(
    snapshot: &'a Payment,
    cancel_history: &'a str,
    now_ms: i64,
) -> [Param<'a>; 10] {
    [
        Param::Text(&snapshot.merchant_uid),
        Param::Text(&snapshot.imp_uid),
        Param::Text(snapshot.pay_method.as_str()),
        Param::Text(snapshot.currency.code()),
        Param::Int(snapshot.amount.minor()),
        Param::Text(snapshot.status.as_str()),
        Param::Int(snapshot.paid_at),
        Param::Text(cancel_history),
        Param::Int(now_ms),
        Param::Int(snapshot.cancel_amount.minor()),
    ]
}

/// Values for the payment assignments of a settlement
/// ([`settle_payment_set`](crate::dialect::settle_payment_set)), in order:
/// the refund whose slot is freed (only where the statement binds it), the
/// hold flag, the payment's `updated_at_ms`, then for each snapshot column
/// the apply condition's three values and the column's new value.
pub(crate) fn settle_payment_params<'a>(
    free_id: Option<&'a str>,
    hold: bool,
    now_ms: i64,
    snapshot: Option<(&'a Payment, &'a str)>,
) -> Vec<Param<'a>> {
    let mut params = Vec::with_capacity(3 + 4 * crate::dialect::SNAPSHOT_COLUMNS.len());
    params.extend(free_id.map(Param::Text));
    params.push(Param::Int(i64::from(hold)));
    params.push(Param::Int(now_ms));
    let (apply, merchant_uid, cancel_amount, values) = match snapshot {
        Some((snapshot, history)) => (
            1,
            snapshot.merchant_uid.as_str(),
            snapshot.cancel_amount.minor(),
            Some(snapshot_params(snapshot, history, now_ms)),
        ),
        None => (0, "", 0, None),
    };
    for (i, column) in crate::dialect::SNAPSHOT_COLUMNS.iter().enumerate() {
        if *column == "updated_at_ms" {
            continue;
        }
        params.push(Param::Int(apply));
        params.push(Param::Text(merchant_uid));
        params.push(Param::Int(cancel_amount));
        params.push(match &values {
            Some(values) => values[i + 1],
            // Never used (the condition is false), but typed like the column.
            None if crate::dialect::INT_SNAPSHOT_COLUMNS.contains(column) => Param::Int(0),
            None => Param::Text(""),
        });
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `settled_payment` reuses the entries it wrote when the row holds
    /// their JSON: that is only right if the JSON reads back as exactly
    /// those entries.
    #[test]
    fn the_cancel_history_json_reads_back_exactly() {
        let entries = vec![
            CancelEntry {
                pg_tid: Some("pg_1".into()),
                amount: Amount::from_minor(1_500),
                cancelled_at: 1_764_000_000,
                reason: Some("환불 \"부분\" (rf_1)\n".into()),
                cancellation_id: None,
                receipt_url: Some("https://example.com/r?a=1&b=2".into()),
            },
            CancelEntry {
                pg_tid: None,
                amount: Amount::from_minor(i64::MAX),
                cancelled_at: 0,
                reason: None,
                cancellation_id: Some("c_2".into()),
                receipt_url: None,
            },
        ];
        let json = cancel_history_json(&entries).unwrap();
        assert_eq!(parse_cancel_history(&json).unwrap(), entries);
        assert_eq!(
            parse_cancel_history(&cancel_history_json(&[]).unwrap()).unwrap(),
            vec![]
        );
    }
}
