//! `refund-bench` end to end on SQLite (needs no service): a tiny run
//! prints the comparison with every refund made, one gateway cancel each,
//! and cleans up its scratch database. It checks what the run reports, never
//! how fast it was.

use std::process::Command;

#[test]
fn a_small_run_reports_both_targets_and_removes_its_scratch_database() {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_refund-bench"))
        .args(["--payments", "4", "--concurrency", "2", "--refunds", "20"])
        .args(["--warmup", "2"])
        .env("TMPDIR", scratch.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{stdout}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    // Name, refunds, failed, then the figures.
    assert_eq!(row("baseline")[1..3], ["20", "0"], "{stdout}");
    assert_eq!(row("merchant-server")[1..3], ["20", "0"], "{stdout}");
    assert!(
        stdout.contains("cancel 1.00 attempted, 1.00 committed; payment reads 0.00"),
        "{stdout}"
    );
    assert!(
        stdout.contains("failures by code: baseline: none; merchant-server: none"),
        "{stdout}"
    );
    assert!(
        stdout.contains("met      1 getToken call per run: 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| sqlite | memory | 0 | 2 | 20 |"),
        "{stdout}"
    );

    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}

#[test]
fn a_backend_missing_from_the_build_is_refused_naming_its_feature() {
    let missing = [
        ("postgres", cfg!(feature = "postgres")),
        ("mongo", cfg!(feature = "mongo")),
    ];
    for (backend, compiled) in missing {
        if compiled {
            continue;
        }
        let output = Command::new(env!("CARGO_BIN_EXE_refund-bench"))
            .args(["--backend", backend])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            stderr.contains(&format!("--features {backend}")),
            "{stderr}"
        );
    }
}
