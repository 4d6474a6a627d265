//! The sandbox's notion of "now".
//!
//! Everything time-dependent (token expiry, `paid_at`, the phone-payment
//! month rule) reads this clock, so tests can jump it forward instead of
//! sleeping for half an hour.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall clock plus an adjustable forward offset, in unix seconds.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// Current sandbox time in unix seconds.
    pub(crate) fn now(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        wall.saturating_add(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves the clock forward; returns the total offset now in force.
    pub(crate) fn advance(&self, by: Duration) -> i64 {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        let previous = self.offset_secs.fetch_add(secs, Ordering::Relaxed);
        previous.saturating_add(secs)
    }
}

/// Unix seconds as an RFC 3339 UTC date-time (`2024-04-25T10:00:00Z`), the
/// way V2 writes every `date-time`. Unrepresentable values clamp to the
/// epoch rather than fail a reply.
pub(crate) fn rfc3339(unix_secs: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_714_039_200), "2024-04-25T10:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
