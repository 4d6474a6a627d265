//! `handle_signals` + `wait()`: what the standalone binary relies on. In its
//! own test binary because it sends SIGINT to the whole process.

#![cfg(unix)]

use std::time::Duration;

use iamport_sandbox::{Sandbox, SandboxConfig};

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_a_sandbox_that_handles_signals() {
    let sandbox = Sandbox::start(SandboxConfig {
        handle_signals: true,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let addr = sandbox.addr();
    let waiting = tokio::spawn(sandbox.wait());

    // The shell's builtin `kill`: no dependency on a kill binary or libc.
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {}", std::process::id())])
        .status()
        .expect("sh runs");
    assert!(status.success());

    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the sandbox stops on SIGINT")
        .unwrap()
        .unwrap();
    std::net::TcpListener::bind(addr).expect("the port is released");
}
