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
