//! The servers under test run as child processes, so that their memory can
//! be read on its own (`/proc/<pid>/status`) and the load generator and
//! sandbox do not share their process.
//!
//! A child is this very executable started with a hidden role argument
//! (`serve-merchant`, `serve-baseline`): it is therefore built with the
//! same features and code as the benchmark. It takes its configuration
//! from `REFUND_*` variables, prints `listening <addr>` on stdout once it
//! serves, and stops when its stdin closes, so it never outlives the
//! benchmark, even one that crashed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use refund_core::BoxError;

use crate::server;
use crate::settings::Settings;

/// What a child prints once it serves, before its address.
const LISTENING: &str = "listening ";

/// How long a child may take to start (migrations and indexes included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a child may take to stop once asked.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A server under test, running as a child process.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    /// Closing it asks the child to stop.
    stdin: Option<ChildStdin>,
    /// Kept open so that the child never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmHWM`: the peak resident set, in KiB.
    pub peak_kib: u64,
    /// `VmRSS`: the resident set now, in KiB.
    pub current_kib: u64,
}

impl ChildServer {
    /// Starts this executable in `role` with `env` (and no other `REFUND_*`
    /// variable from ours) and waits until it serves.
    pub async fn spawn(role: &str, env: BTreeMap<&str, String>) -> Result<Self, BoxError> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg(role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REFUND_") {
                command.env_remove(name);
            }
        }
        command.envs(env);
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("the child has no stdout")?);
        let started = tokio::time::timeout(
            START_TIMEOUT,
            tokio::task::spawn_blocking(move || read_address(stdout)),
        )
        .await;
        let (addr, stdout) = match started {
            Ok(joined) => joined??,
            Err(_) => {
                let _ = child.kill();
                return Err(
                    format!("the {role} child did not start within {START_TIMEOUT:?}").into(),
                );
            }
        };
        Ok(ChildServer {
            child,
            stdin,
            _stdout: stdout,
            addr,
        })
    }

    /// Where the child listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's resident memory now and at its peak, where `/proc` tells.
    pub fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|line| line.starts_with(name))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some(Memory {
            peak_kib: field("VmHWM:")?,
            current_kib: field("VmRSS:")?,
        })
    }

    /// Asks the child to stop and waits for it; kills it if it lingers.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return match status.success() {
                    true => Ok(()),
                    false => Err(format!("the server under test exited with {status}").into()),
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        Err(format!("the server under test did not stop within {STOP_TIMEOUT:?}; killed it").into())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // After a successful stop this finds the child gone already.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the child's stdout up to its `listening` line.
fn read_address(
    mut stdout: BufReader<ChildStdout>,
) -> Result<(SocketAddr, BufReader<ChildStdout>), BoxError> {
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line)? == 0 {
            return Err("the server under test exited before listening (its log is above)".into());
        }
        if let Some(addr) = line.trim_end().strip_prefix(LISTENING) {
            return Ok((addr.parse()?, stdout));
        }
    }
}

/// Child side: tells the benchmark where we listen.
pub fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING}{addr}")?;
    stdout.flush()
}

/// Child side: waits until the benchmark closes our stdin (or exits).
pub async fn wait_for_parent() {
    let _ = tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await;
}

/// Child side of `serve-merchant`: the merchant server exactly as
/// `merchant-server` runs it (same settings, same logging), on the
/// configuration the benchmark passed in `REFUND_*` variables.
pub async fn serve_merchant() -> Result<(), BoxError> {
    // merchant-server's subscriber, so the hot path pays the same logging.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let running = server::start(Settings::load(None)?).await?;
    announce(running.addr())?;
    wait_for_parent().await;
    running.stop().await;
    Ok(())
}
