//! Listing refund records across payments: the filter, the opaque cursor
//! and one page ([`PaymentStore::list_refunds`](crate::PaymentStore::list_refunds)).

use std::fmt;
use std::str::FromStr;

use crate::refund::{Refund, RefundId, RefundStatus};

/// The most refunds one page holds; a store caps larger limits to it.
pub const MAX_LIST_LIMIT: u32 = 200;

/// Which refunds a listing returns; every given condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefundFilter {
    /// Only refunds in this state.
    pub status: Option<RefundStatus>,
    /// Only refunds of this order, matched literally (byte for byte).
    pub merchant_uid: Option<String>,
}

/// Where a listing continues: just after the refund created at
/// `created_at_ms` with this id, in the listing's order (newest first).
///
/// Clients see it only as an opaque token ([`Display`](fmt::Display) and
/// [`FromStr`]); a token that was not made here is refused with
/// [`InvalidCursor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundCursor {
    /// The last listed refund's creation time, unix ms on the store's clock.
    pub created_at_ms: i64,
    /// The last listed refund's id (the tie-break among equal times).
    pub id: RefundId,
}

/// A cursor token that no listing gave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not one this API gave out")]
pub struct InvalidCursor;

/// Version tag inside the token, so its layout can change later.
const CURSOR_VERSION: &str = "c1";
/// Longest token accepted, in bytes (an id is at most 64 bytes).
const MAX_CURSOR_LEN: usize = 256;
/// Longest refund id a cursor may carry, in bytes.
const MAX_CURSOR_ID_LEN: usize = 64;

impl RefundCursor {
    /// The cursor just after `refund`.
    pub fn after(refund: &Refund) -> Self {
        RefundCursor {
            created_at_ms: refund.created_at_ms,
            id: refund.id.clone(),
        }
    }

    /// True when `refund` comes after this cursor in the listing's order
    /// (older, or as old with a smaller id).
    pub fn precedes(&self, refund: &Refund) -> bool {
        (refund.created_at_ms, &refund.id) < (self.created_at_ms, &self.id)
    }
}

/// The token: hex of `c1:<created_at_ms>:<id>`, so that it is plain URL-safe
/// ASCII and nobody is tempted to build one by hand.
impl fmt::Display for RefundCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = format!("{CURSOR_VERSION}:{}:{}", self.created_at_ms, self.id);
        for byte in plain.bytes() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for RefundCursor {
    type Err = InvalidCursor;

    fn from_str(token: &str) -> Result<Self, InvalidCursor> {
        if token.is_empty() || token.len() > MAX_CURSOR_LEN || token.len() % 2 != 0 {
            return Err(InvalidCursor);
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| {
                token
                    .get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(InvalidCursor)?;
        let plain = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let mut parts = plain.splitn(3, ':');
        let (Some(CURSOR_VERSION), Some(ms), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidCursor);
        };
        let created_at_ms: i64 = ms.parse().map_err(|_| InvalidCursor)?;
        let id_ok = !id.is_empty()
            && id.len() <= MAX_CURSOR_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if created_at_ms < 0 || !id_ok || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidCursor);
        }
        Ok(RefundCursor {
            created_at_ms,
            id: RefundId::from_stored(id),
        })
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundPage {
    /// The refunds, newest first (by `created_at_ms`, then id).
    pub refunds: Vec<Refund>,
    /// Where the next page starts; `None` when this page is the last.
    pub next_cursor: Option<RefundCursor>,
}

impl RefundPage {
    /// A page out of up to `limit + 1` refunds in listing order: the extra
    /// one only says that more follow (for store implementations).
    pub fn from_overfetch(mut refunds: Vec<Refund>, limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = refunds.len() > limit;
        refunds.truncate(limit);
        let next_cursor = if more {
            refunds.last().map(RefundCursor::after)
        } else {
            None
        };
        RefundPage {
            refunds,
            next_cursor,
        }
    }
}

/// The limit a store applies: at most [`MAX_LIST_LIMIT`].
pub fn capped_limit(limit: u32) -> u32 {
    limit.min(MAX_LIST_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = RefundCursor {
            created_at_ms: 1_764_000_000_123,
            id: RefundId::generate(),
        };
        let token = cursor.to_string();
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(token.parse::<RefundCursor>(), Ok(cursor));
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for garbage in [
            String::new(),
            "zz".to_owned(),
            "abc".to_owned(),
            "'; DROP TABLE refund_journal; --".to_owned(),
            "f".repeat(300),
            hex("c1:12:"),
            hex("c2:12:rf_1"),
            hex("c1:-5:rf_1"),
            hex("c1:+5:rf_1"),
            hex("c1:x:rf_1"),
            hex("c1:5:rf_1' OR 1=1"),
            hex("c1:99999999999999999999:rf_1"),
            "ffff".to_owned(),
        ] {
            assert_eq!(
                garbage.parse::<RefundCursor>(),
                Err(InvalidCursor),
                "{garbage}"
            );
        }
    }
}
