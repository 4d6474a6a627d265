//! The reliability tests' harness: the `iamport-sandbox` and
//! `merchant-server` binaries this package builds, run as real child
//! processes on loopback ports and driven over HTTP the way a client, an
//! operator and i'mport would. A process can be SIGKILLed and started again
//! on the same database, and everything it prints is kept for inspection.
//!
//! - [`SandboxProcess`], [`MerchantServer`] (`processes`): the gateway, with
//!   its `/sandbox` control endpoints, and the demo server, configured by
//!   `REFUND_*` variables.
//! - [`Answer`], [`View`], [`GatewayPayment`] (`answers`): what they answer.
//! - [`browser`]: headless Chromium over WebDriver, for the console's
//!   tests.
//! - [`TestDatabase`], [`redis_url`] (`databases`): a fresh database per
//!   test (SQLite file, PostgreSQL, MariaDB, MongoDB), dropped afterwards,
//!   and the Redis for the shared token cache.
//!
//! Services, their URLs (`STORAGE_SQL_POSTGRES_URL`, `STORAGE_SQL_MYSQL_URL`,
//! `MONGODB_URL`, `REDIS_URL`) and the rule for a missing one (a failure
//! under `CI=true`, a loud skip elsewhere) are
//! `refund_core::testkit::services`', shared with the storage crates' tests.

#![allow(dead_code)] // Each test binary uses the part it needs.

mod answers;
pub mod browser;
mod databases;
mod processes;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::RngCore;
use refund_core::testkit::services::{skip_or_fail, unix_secs};

// The names the test binaries use, each binary some of them.
#[allow(unused_imports)]
pub use answers::{minor, Answer, GatewayPayment, HistoryEntry, RefundRef, View};
#[allow(unused_imports)]
pub use databases::{redis_url, Engine, TestDatabase};
#[allow(unused_imports)]
pub use processes::{MerchantServer, Process, SandboxProcess};
#[allow(unused_imports)]
pub use refund_core::testkit::services::report;

/// Upper bound on any wait for a process or a condition: a safety net
/// against hangs, never a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// i'mport client settings that make unknown outcomes settle in seconds:
/// a 500 ms connect and 2 s call timeout (so an in-flight bound of
/// 4 × 2.5 s = 10 s), the settle age at that bound (the server clamps 0 up
/// to it) and a sweep five times a second.
pub const FAST_RECONCILIATION: [(&str, &str); 4] = [
    ("REFUND_IAMPORT_CONNECT_TIMEOUT_MS", "500"),
    ("REFUND_IAMPORT_TIMEOUT_MS", "2000"),
    ("REFUND_SETTLE_AFTER_MS", "0"),
    ("REFUND_SWEEP_INTERVAL_MS", "200"),
];

/// Called when this build lacks a cargo feature the test needs: like a
/// missing service, a failure under `CI=true` and a loud skip elsewhere.
pub fn feature_missing<T>(feature: &str) -> Option<T> {
    skip_or_fail(format!(
        "this build has no `{feature}` backend (build with --all-features, as scripts/test does)"
    ))
}

/// Where Debian's `faketime` package installs libfaketime (scripts/services
/// installs the package), for other layouts too.
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

/// Variables that run a child process with its wall clock `offset_secs`
/// ahead of the real one (libfaketime, preloaded) while its monotonic clock
/// (tokio's timers, the HTTP client's timeouts) is left alone; for
/// [`MerchantServer::start`]'s `extra`. `None` (skip) when libfaketime is
/// missing or does not shift a child's clock, outside CI; a failure under
/// `CI=true`. Checked by running `date +%s` under the same variables.
pub fn wall_clock_shifted(offset_secs: i64) -> Option<Vec<(&'static str, String)>> {
    let Some(library) = LIBFAKETIME
        .iter()
        .find(|path| std::path::Path::new(path).is_file())
    else {
        return skip_or_fail(format!(
            "libfaketime is not installed (none of {LIBFAKETIME:?}; \
             `apt-get install faketime`, as scripts/services does)"
        ));
    };
    let env = vec![
        ("LD_PRELOAD", (*library).to_owned()),
        ("FAKETIME", format!("{offset_secs:+}s")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ];
    let before = unix_secs();
    let shown = Command::new("date")
        .arg("+%s")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output();
    let after = unix_secs();
    let shown = match shown {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<i64>()
            .ok(),
        _ => None,
    };
    let expected = (before as i64 + offset_secs - 1)..=(after as i64 + offset_secs + 1);
    match shown {
        Some(shown) if expected.contains(&shown) => Some(env),
        shown => skip_or_fail(format!(
            "{library} does not shift a child's clock by {offset_secs} s \
             (`date +%s` under it said {shown:?}, expected {expected:?})"
        )),
    }
}

/// A random lowercase hex string of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `probe` until it yields a value, for at most [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
