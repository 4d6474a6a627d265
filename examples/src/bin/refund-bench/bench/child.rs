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

use refund_examples::server;
use refund_examples::settings::Settings;

/// What a child prints once it serves, before its address.
const LISTENING: &str = "listening ";

/// What the benchmark writes on a child's stdin to ask for its count of
/// database statements sent.
const COUNT_REQUEST: &str = "count-statements";

/// What the child answers on stdout, before the count.
const COUNT_ANSWER: &str = "refund-bench-statements ";

/// How long a child may take to start (migrations and indexes included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A command prefix (words split on whitespace) to start each child
/// under, for profiling: e.g. `valgrind --tool=callgrind` (see
/// BENCHMARKS.md). The figures of such a run measure the tool too.
const WRAPPER_ENV: &str = "REFUND_BENCH_CHILD_WRAPPER";

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, which Linux fixes
/// at 100 per second for user space on every architecture it ships.
const MILLIS_PER_CLOCK_TICK: u64 = 10;

/// How long a child may take to stop once asked.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A server under test, running as a child process.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    /// Closing it asks the child to stop.
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    /// The child's answers to [`COUNT_REQUEST`].
    counts: std::sync::mpsc::Receiver<u64>,
}

impl ChildServer {
    /// Starts this executable in `role` with `env` (and no other `REFUND_*`
    /// variable from ours) and waits until it serves.
    pub async fn spawn(role: &str, env: BTreeMap<&str, String>) -> Result<Self, BoxError> {
        let exe = std::env::current_exe()?;
        let wrapper = std::env::var(WRAPPER_ENV).unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut command = Command::new(tool);
                command.args(words).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
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
        let (addr, counts) = match started {
            Ok(joined) => joined??,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(
                    format!("the {role} child did not start within {START_TIMEOUT:?}").into(),
                );
            }
        };
        Ok(ChildServer {
            child,
            stdin,
            addr,
            counts,
        })
    }

    /// How many statements the child's SQL store has sent to its database
    /// so far (`storage_sql::statements_sent`), as the child tells; `None`
    /// if it does not answer within 5 s.
    pub fn statements_sent(&mut self) -> Option<u64> {
        let stdin = self.stdin.as_mut()?;
        writeln!(stdin, "{COUNT_REQUEST}").ok()?;
        stdin.flush().ok()?;
        self.counts.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Where the child listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's peak resident set (`VmHWM`) in KiB, where `/proc` tells.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        parse_peak_rss_kib(&status)
    }

    /// CPU time (user + system) the child has used so far, where `/proc`
    /// tells. The load is CPU-bound on a small machine, so CPU per refund
    /// says more than throughput alone.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        parse_cpu_time(&stat)
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

/// `VmHWM` out of `/proc/<pid>/status`.
fn parse_peak_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `utime + stime` out of `/proc/<pid>/stat`.
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    // The fields after the command name, which is in parentheses and may
    // hold spaces and parentheses: state is field 3, utime and stime are
    // fields 14 and 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * MILLIS_PER_CLOCK_TICK,
    ))
}

/// What [`read_address`] gives: the address, and the child's statement
/// counts as it answers them.
type Started = (SocketAddr, std::sync::mpsc::Receiver<u64>);

/// Reads the child's stdout up to its `listening` line, then hands the rest
/// (merchant-server logs to stdout) to a thread that copies it to our
/// stderr, so that the child never blocks on a full pipe, and passes the
/// answers to count requests on.
fn read_address(mut stdout: BufReader<ChildStdout>) -> Result<Started, BoxError> {
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line)? == 0 {
            return Err("the server under test exited before listening (its log is above)".into());
        }
        if let Some(addr) = line.trim_end().strip_prefix(LISTENING) {
            let addr = addr.parse()?;
            let (counts, answers) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                while matches!(stdout.read_line(&mut line), Ok(n) if n > 0) {
                    match line.trim_end().strip_prefix(COUNT_ANSWER) {
                        Some(count) => {
                            let _ = counts.send(count.parse().unwrap_or(0));
                        }
                        None => eprint!("{line}"),
                    }
                    line.clear();
                }
            });
            return Ok((addr, answers));
        }
        eprint!("{line}");
    }
}

/// Child side: tells the benchmark where we listen.
pub fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING}{addr}")?;
    stdout.flush()
}

/// Child side: waits until the benchmark closes our stdin (or exits),
/// answering its count requests meanwhile.
pub async fn wait_for_parent() {
    let _ = tokio::task::spawn_blocking(|| {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == COUNT_REQUEST {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{COUNT_ANSWER}{}", statements_sent());
                let _ = stdout.flush();
            }
        }
    })
    .await;
}

/// Statements this process's SQL store sent (0 without one).
fn statements_sent() -> u64 {
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    return storage_sql::statements_sent();
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
    return 0;
}

/// Child side of `serve-merchant`: the merchant server exactly as
/// `merchant-server` runs it (same settings, same logging), on the
/// configuration the benchmark passed in `REFUND_*` variables.
pub async fn serve_merchant() -> Result<(), BoxError> {
    // merchant-server's subscriber, so the hot path pays the same logging.
    refund_examples::observability::init_logs();
    let running = server::start(Settings::load(None)?).await?;
    announce(running.addr())?;
    wait_for_parent().await;
    running.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_comes_from_the_status_file() {
        let status =
            "Name:\trefund-bench\nVmPeak:\t  900000 kB\nVmHWM:\t   16856 kB\nVmRSS:\t   15000 kB\n";
        assert_eq!(parse_peak_rss_kib(status), Some(16_856));
        assert_eq!(parse_peak_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_time_is_user_plus_system_ticks() {
        // A command name with a space and a parenthesis, as `comm` allows.
        let stat =
            "4242 (refund (b)ench) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 17 0";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_millis(1_750)));
        assert_eq!(parse_cpu_time("4242 (x) S 1"), None);
    }
}
