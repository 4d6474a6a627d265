//! Start-up errors of `merchant-server`: each failure is one human
//! sentence on stderr naming the setting and the fix (never a Rust `Debug`
//! dump), and the process exits with a failure status.
//!
//! The binary is spawned with `std::process::Command` in an empty
//! environment (only `PATH`), in a scratch folder for `./data`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iamport_sandbox::{Sandbox, SandboxConfig};

/// What a run printed and how it ended.
struct Run {
    success: bool,
    stderr: String,
    stdout: String,
}

impl Run {
    /// The sentence the server printed on its way out.
    fn sentence(&self) -> &str {
        self.stderr
            .lines()
            .rfind(|line| line.starts_with("merchant-server: "))
            .unwrap_or_else(|| panic!("no error sentence in:\n{}\n{}", self.stdout, self.stderr))
    }

    /// A failed start with one human sentence that contains every `part`.
    fn refused_with(&self, parts: &[&str]) -> &str {
        assert!(!self.success, "the server started:\n{}", self.stdout);
        let sentence = self.sentence();
        for part in parts {
            assert!(sentence.contains(part), "{part:?} not in: {sentence}");
        }
        for dump in ["Error: ", " { ", "Os {", "kind: "] {
            assert!(!sentence.contains(dump), "a Debug dump: {sentence}");
        }
        assert_eq!(
            self.stderr
                .lines()
                .filter(|l| l.starts_with("merchant-server: "))
                .count(),
            1,
            "one sentence: {}",
            self.stderr
        );
        sentence
    }
}

/// Runs `merchant-server` with exactly `env` (plus `PATH`) and `args` in
/// `dir`, up to 60 s, and collects its output.
fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_merchant-server"));
    command.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("merchant-server starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    Run {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a scratch folder")
}

const GOOD_TOKEN: &str = "startup-test-admin-token-0123456789";

#[test]
fn a_weak_admin_token_names_the_rule() {
    let dir = scratch();
    let run = run(dir.path(), &[("REFUND_ADMIN_TOKEN", "short")], &[]);
    let sentence = run.refused_with(&["REFUND_ADMIN_TOKEN", "at least 16"]);
    assert!(!sentence.contains("WeakAdminToken"), "{sentence}");
    assert!(
        !sentence.contains("short"),
        "the token is never printed: {sentence}"
    );
}

#[test]
fn an_unusable_admin_name_names_the_rule() {
    let dir = scratch();
    let run = run(dir.path(), &[("REFUND_ADMIN_NAME", " admin ")], &[]);
    run.refused_with(&["REFUND_ADMIN_NAME", "1 to 64 characters"]);
}

#[test]
fn a_misspelled_variable_is_refused_by_name() {
    let dir = scratch();
    let run = run(
        dir.path(),
        &[("REFUND_DATABSE_URL", "postgres://db/shop")],
        &[],
    );
    run.refused_with(&["REFUND_DATABSE_URL", "did you mean REFUND_DATABASE_URL?"]);
}

#[test]
fn an_unknown_configuration_key_is_refused_by_name() {
    let dir = scratch();
    let file = dir.path().join("server.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nadmin_tokn = \"x\"\n").unwrap();
    let run = run(dir.path(), &[], &["--config", file.to_str().unwrap()]);
    run.refused_with(&["`admin_tokn`", "did you mean `admin_token`?", "server.toml"]);
}

#[test]
fn a_missing_configuration_file_is_named() {
    let dir = scratch();
    let run = run(dir.path(), &[], &["--config", "nowhere.toml"]);
    run.refused_with(&["nowhere.toml", "--config"]);
}

#[test]
fn a_value_that_does_not_parse_names_its_variable() {
    let dir = scratch();
    let run = run(dir.path(), &[("REFUND_LISTEN", "localhost:http")], &[]);
    run.refused_with(&["REFUND_LISTEN"]);
}

#[test]
fn an_address_in_use_is_named() {
    let dir = scratch();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = run(dir.path(), &[("REFUND_LISTEN", &addr)], &[]);
    run.refused_with(&[
        &format!("cannot listen on {addr}"),
        "REFUND_LISTEN",
        "already",
    ]);
}

#[test]
fn an_unopenable_sqlite_file_is_named() {
    let dir = scratch();
    let url = "sqlite:///nonexistent-folder/refunds.db?mode=rwc";
    let run = run(dir.path(), &[("REFUND_DATABASE_URL", url)], &[]);
    run.refused_with(&[
        "/nonexistent-folder/refunds.db",
        "REFUND_DATABASE_URL",
        "unable to open database file",
    ]);
}

#[cfg(feature = "postgres")]
#[test]
fn an_unreachable_database_names_host_port_and_cause() {
    let dir = scratch();
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://shop:pa55word@127.0.0.1:{port}/shop");
    let run = run(
        dir.path(),
        &[
            ("REFUND_DATABASE_URL", &url),
            ("REFUND_ADMIN_TOKEN", GOOD_TOKEN),
        ],
        &[],
    );
    let sentence = run.refused_with(&[
        &format!("PostgreSQL at 127.0.0.1:{port}"),
        "REFUND_DATABASE_URL",
        "refused",
    ]);
    assert!(!sentence.contains("pa55word"), "{sentence}");
}

#[test]
fn a_missing_admin_token_outside_sandbox_mode_is_named() {
    let dir = scratch();
    let run = run(
        dir.path(),
        &[
            ("REFUND_IAMPORT_URL", "http://127.0.0.1:9"),
            ("REFUND_IAMPORT_KEY", "k"),
            ("REFUND_IAMPORT_SECRET", "s"),
        ],
        &[],
    );
    run.refused_with(&["REFUND_ADMIN_TOKEN is not set"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_gateway_credentials_stop_the_start() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let url = sandbox.base_url();
    let dir = scratch();
    let env = [
        ("REFUND_LISTEN", "127.0.0.1:0"),
        ("REFUND_IAMPORT_URL", url.as_str()),
        ("REFUND_IAMPORT_KEY", sandbox.imp_key()),
        ("REFUND_IAMPORT_SECRET", "not-the-secret"),
        ("REFUND_ADMIN_TOKEN", GOOD_TOKEN),
    ];
    let refused = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
            run(&dir, &env, &[])
        }
    })
    .await
    .unwrap();
    let sentence =
        refused.refused_with(&["refused REFUND_IAMPORT_KEY and REFUND_IAMPORT_SECRET", &url]);
    assert!(!sentence.contains("not-the-secret"), "{sentence}");
    assert_eq!(sandbox.stats().get_token.requests, 1, "asked once");
    sandbox.stop().await;
}
