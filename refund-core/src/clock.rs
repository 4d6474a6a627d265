//! Time in the units the journal and i'mport use, and the clock the
//! in-memory store reads.
//!
//! Time that decides money comes from the store (see
//! [`PaymentStore::now_ms`](crate::PaymentStore::now_ms)): a database
//! reads its server's clock, the in-memory store reads a [`Clock`], which
//! tests replace with a manual one so the protocol's timing needs no sleep.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now on this process's wall clock, in unix milliseconds. For what is
/// local to the process (token lifetimes); never for a refund's verdict.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A source of the current time, in unix milliseconds.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The process's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}
