//! The local services the tests run against, the project's rule for a
//! missing one, and scratch database names.
//!
//! The rule (DESIGN, "Tests"): a test that needs a missing service **fails
//! under `CI=true`**; elsewhere it is **skipped with a loud message**. Tests
//! isolate their data (fresh ids, or a scratch database per test or per
//! binary) so that they can run in parallel, and a crashed run's scratch
//! databases are dropped by a later run.
//!
//! ```ignore
//! use refund_core::testkit::services::{Scratch, POSTGRES};
//!
//! const SCRATCH: Scratch = Scratch::new("my_adapter_");
//!
//! async fn fresh() -> Option<Pool> {
//!     // `None`: skipped (outside CI), after a loud SKIPPED line.
//!     let admin = POSTGRES.connect(|url| async move { Pool::connect(&url).await }).await?;
//!     for name in list_databases(&admin, SCRATCH.like_pattern()).await {
//!         if SCRATCH.is_leftover(&name) { drop_database(&admin, &name).await }
//!     }
//!     let name = SCRATCH.name();
//!     create_database(&admin, &name).await;
//!     Some(Pool::connect(&with_database(&POSTGRES.url(), &name)).await.unwrap())
//! }
//! ```
//!
//! Nothing here depends on a database driver: each adapter brings its own
//! and passes its connect call to [`Service::connect`].

use std::fmt::{self, Display};
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long [`Service::connect`] waits for a service before calling it
/// missing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Scratch databases older than this are left over from a crashed or
/// killed run (no test binary runs this long) and may be dropped.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(60 * 60);

/// How `scripts/test` gets the servers it needs.
const SCRIPTS_SERVICES: &str =
    "scripts/services starts it (scripts/test runs scripts/services first)";

/// PostgreSQL: `$STORAGE_SQL_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`.
pub static POSTGRES: Service = Service::new(
    "PostgreSQL",
    "STORAGE_SQL_POSTGRES_URL",
    "postgres://postgres@127.0.0.1:5432/test",
    SCRIPTS_SERVICES,
);

/// MySQL or MariaDB: `$STORAGE_SQL_MYSQL_URL`, default
/// `mysql://root@127.0.0.1:3306/test`.
pub static MYSQL: Service = Service::new(
    "MySQL/MariaDB",
    "STORAGE_SQL_MYSQL_URL",
    "mysql://root@127.0.0.1:3306/test",
    SCRIPTS_SERVICES,
);

/// Redis: `$REDIS_URL`, default `redis://127.0.0.1:6379`.
pub static REDIS: Service = Service::new(
    "Redis",
    "REDIS_URL",
    "redis://127.0.0.1:6379",
    SCRIPTS_SERVICES,
);

/// MongoDB (or a MongoDB-wire test server): `$MONGODB_URL`, default
/// `mongodb://127.0.0.1:27017`.
pub static MONGODB: Service = Service::new(
    "MongoDB",
    "MONGODB_URL",
    "mongodb://127.0.0.1:27017",
    "storage-mongo/scripts/mongo-test-server.sh starts a MongoDB-wire test server \
     (scripts/services runs it; scripts/test runs scripts/services first)",
);

/// A server the tests need: where it runs, and what to say when it does
/// not answer. One `static` per service, so that a service found missing
/// once is missing for the rest of the process.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    env: &'static str,
    default_url: &'static str,
    started_by: &'static str,
    found_missing: AtomicBool,
}

impl Service {
    const fn new(
        name: &'static str,
        env: &'static str,
        default_url: &'static str,
        started_by: &'static str,
    ) -> Service {
        Service {
            name,
            env,
            default_url,
            started_by,
            found_missing: AtomicBool::new(false),
        }
    }

    /// What messages call it, e.g. `PostgreSQL`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The variable that overrides [`default_url`](Self::default_url).
    pub fn env(&self) -> &'static str {
        self.env
    }

    /// Where it runs on a developer machine and in CI.
    pub fn default_url(&self) -> &'static str {
        self.default_url
    }

    /// The URL to use: the variable's value if it is set and not empty,
    /// otherwise the default. It may carry a password: never print it.
    pub fn url(&self) -> String {
        std::env::var(self.env)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| self.default_url.to_owned())
    }

    /// True once a test of this process found the service missing.
    pub fn known_missing(&self) -> bool {
        self.found_missing.load(Ordering::Relaxed)
    }

    /// Connects with `connect(self.url())`, giving up after
    /// [`CONNECT_TIMEOUT`]. On an error or a timeout, and at once when an
    /// earlier test found the service missing, calls
    /// [`missing`](Self::missing): under `CI=true` the test fails, elsewhere
    /// this returns `None` after a loud skip line.
    ///
    /// `connect` should make one attempt (a missing service must be told at
    /// once) and prove the server answers, e.g. with a ping. Errors are
    /// printed: one that may quote the URL should be mapped to a shorter
    /// message first.
    pub async fn connect<T, E, F, Fut>(&self, connect: F) -> Option<T>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
    {
        if self.known_missing() {
            return self.missing("found missing by an earlier test of this process");
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(self.url())).await {
            Ok(Ok(connected)) => Some(connected),
            Ok(Err(error)) => self.missing(error),
            Err(_) => self.missing(format_args!(
                "no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }

    /// The service did not answer (`error` says how): under `CI=true`
    /// panics, naming the service, its variable and how `scripts/test`
    /// starts it; elsewhere prints a loud skip line and returns `None`.
    /// Later tests of the process see [`known_missing`](Self::known_missing).
    pub fn missing<T>(&self, error: impl Display) -> Option<T> {
        self.found_missing.store(true, Ordering::Relaxed);
        skip_or_fail(format_args!(
            "{} is unreachable at {} ({error}); {}",
            self.name,
            self.location(),
            self.started_by
        ))
    }

    /// Where the service was looked for, without the URL when it comes
    /// from the variable (it may carry a password).
    fn location(&self) -> String {
        if std::env::var(self.env).is_ok_and(|url| !url.is_empty()) {
            format!("${}", self.env)
        } else {
            format!(
                "{} (the default; set ${} to change it)",
                self.default_url, self.env
            )
        }
    }
}

/// True when the tests run under CI (`CI=true`), where every service the
/// tests need must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// A test cannot run here, for the reason `why` (a service, a tool or a
/// cargo feature is missing): under `CI=true` it fails (panics); elsewhere
/// a loud skip line is printed and `None` returned, for the test to return
/// early.
pub fn skip_or_fail<T>(why: impl Display) -> Option<T> {
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => format!(" {name}"),
        _ => String::new(),
    };
    assert!(!in_ci(), "required under CI=true{test}: {why}");
    report(&format!(
        "\n!!!!! SKIPPED{test}: {why}; set CI=true to make this fail !!!!!\n"
    ));
    None
}

/// Writes `line` to the process's stderr, past the test harness's capture
/// (which takes `eprintln!` of passing tests), so that skips and figures
/// show in `cargo test` output.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Seconds since the unix epoch (0 for a clock before it).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default()
}

/// Names of scratch databases (or directories, or key prefixes):
/// `<prefix><unix seconds>_<12 random hex digits>`. The random part keeps
/// parallel tests apart; the time lets a later run tell a crashed run's
/// leftovers by their age ([`is_leftover`](Self::is_leftover)).
///
/// The prefix is lowercase ASCII letters, digits and `_`, starts with a
/// letter and ends with `_`, so that every name is a plain SQL identifier
/// and a valid MongoDB database name. Each test suite has its own prefix:
/// it drops only its own leftovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scratch {
    prefix: &'static str,
}

impl Scratch {
    /// Scratch names starting with `prefix`; panics (at compile time in a
    /// `const`) on a prefix outside the rule above.
    pub const fn new(prefix: &'static str) -> Scratch {
        let bytes = prefix.as_bytes();
        assert!(
            !bytes.is_empty() && bytes[0].is_ascii_lowercase() && bytes[bytes.len() - 1] == b'_',
            "a scratch prefix starts with a lowercase letter and ends with `_`"
        );
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            assert!(
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_',
                "a scratch prefix is lowercase ASCII letters, digits and `_`"
            );
            at += 1;
        }
        Scratch { prefix }
    }

    /// The prefix.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// A new name, used by no other test or run.
    pub fn name(&self) -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{}{}_{}", self.prefix, unix_secs(), &random[..12])
    }

    /// When `name` was made, in unix seconds; `None` when it is not one of
    /// this prefix's names.
    pub fn created_at(&self, name: &str) -> Option<u64> {
        let (secs, random) = name.strip_prefix(self.prefix)?.split_once('_')?;
        let random_ok = !random.is_empty() && random.bytes().all(|b| b.is_ascii_hexdigit());
        let secs_ok = !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit());
        (random_ok && secs_ok).then(|| secs.parse().ok()).flatten()
    }

    /// True for a name of this prefix made more than [`LEFTOVER_AGE`] ago:
    /// its run crashed or was killed before dropping it. Names of a run
    /// still going are never leftovers.
    pub fn is_leftover(&self, name: &str) -> bool {
        self.created_at(name)
            .is_some_and(|created| created.saturating_add(LEFTOVER_AGE.as_secs()) < unix_secs())
    }

    /// A SQL `LIKE` pattern (backslash escapes, the default of PostgreSQL
    /// and MySQL) for this prefix's names, to put between single quotes:
    /// `storage\_sql\_%` for `storage_sql_`. Filter the rows with
    /// [`is_leftover`](Self::is_leftover).
    pub fn like_pattern(&self) -> String {
        format!("{}%", self.prefix.replace('_', "\\_"))
    }
}

impl Display for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix)
    }
}

/// `url` with its database (the path) replaced by `database`, the query
/// kept: for PostgreSQL, MySQL and MongoDB URLs.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |at| at + 3);
    let root = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRATCH: Scratch = Scratch::new("kit_test_");

    #[test]
    fn scratch_names_are_fresh_and_recognised() {
        let (a, b) = (SCRATCH.name(), SCRATCH.name());
        assert_ne!(a, b);
        assert!(a.starts_with("kit_test_"));
        let created = SCRATCH.created_at(&a).unwrap();
        assert!(created.abs_diff(unix_secs()) <= 1);
        assert!(!SCRATCH.is_leftover(&a), "a name of this run");
        assert_eq!(Scratch::new("kit_").created_at(&a), None, "another prefix");
    }

    #[test]
    fn only_old_names_of_the_prefix_are_leftovers() {
        let old = unix_secs() - LEFTOVER_AGE.as_secs() - 5;
        let recent = unix_secs() - LEFTOVER_AGE.as_secs() + 60;
        assert!(SCRATCH.is_leftover(&format!("kit_test_{old}_0123456789ab")));
        assert!(!SCRATCH.is_leftover(&format!("kit_test_{recent}_0123456789ab")));
        for other in [
            format!("other_{old}_0123456789ab"),
            format!("kit_test_{old}"),
            format!("kit_test_{old}_"),
            format!("kit_test_{old}_not-hex"),
            "kit_test_x_0123456789ab".to_owned(),
            "kit_test__0123456789ab".to_owned(),
        ] {
            assert!(!SCRATCH.is_leftover(&other), "{other}");
        }
    }

    #[test]
    fn like_patterns_escape_underscores() {
        assert_eq!(
            Scratch::new("storage_sql_").like_pattern(),
            r"storage\_sql\_%"
        );
    }

    #[test]
    fn with_database_replaces_the_path_only() {
        let cases = [
            ("postgres://u@h:5432/test", "postgres://u@h:5432/db"),
            ("postgres://u@h:5432", "postgres://u@h:5432/db"),
            (
                "mysql://root@h/test?ssl-mode=disabled",
                "mysql://root@h/db?ssl-mode=disabled",
            ),
            (
                "mongodb://h:27017/?retryWrites=false",
                "mongodb://h:27017/db?retryWrites=false",
            ),
            ("mongodb://h:27017", "mongodb://h:27017/db"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "db"), expected, "{url}");
        }
    }

    #[test]
    fn urls_default_and_never_show_an_overriding_url() {
        // A variable no test sets, so that this test races nobody.
        static UNSET: Service = Service::new("Nothing", "REFUND_TESTKIT_NEVER_SET", "x://h", "-");
        assert_eq!(UNSET.url(), "x://h");
        assert!(UNSET.location().starts_with("x://h (the default"));
        assert!(!UNSET.known_missing());
    }

    #[tokio::test]
    async fn a_failed_connect_is_a_skip_here_and_is_remembered() {
        if in_ci() {
            return; // Under CI the skip is a failure, by design.
        }
        static GONE: Service = Service::new("Gone", "REFUND_TESTKIT_NEVER_SET", "x://h", "-");
        let first = GONE.connect(|_| async { Err::<(), _>("refused") }).await;
        assert_eq!(first, None);
        assert!(GONE.known_missing());
        let again = GONE.connect(|_| async { Ok::<_, String>(()) }).await;
        assert_eq!(again, None, "known missing: not tried again");
    }
}
