//! What a run found, side by side with the baseline and checked against the
//! targets of issue 9, as a plain-text table plus a Markdown row for
//! BENCHMARKS.md. Everything is integer arithmetic: rates and ratios are
//! printed with fixed decimals, never computed in floating point.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use iamport_sandbox::Stats;

use super::load::LoadResult;
use super::options::{Backend, Gateway, Options, Stop};
use super::RunId;

/// Gateway calls the sandbox counted between two moments.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GatewayCalls {
    /// `POST /users/getToken` calls.
    pub get_token: u64,
    /// Of those, the ones that minted a new token.
    pub tokens_minted: u64,
    /// `POST /payments/cancel` calls.
    pub cancel_attempted: u64,
    /// Of those, the ones that refunded something.
    pub cancel_committed: u64,
    /// `GET /payments/...` calls (reconciliation, imports).
    pub payment_reads: u64,
    /// Calls refused for a bad token.
    pub unauthorized: u64,
}

impl GatewayCalls {
    /// The calls made after `before` and up to `after`.
    pub fn between(before: &Stats, after: &Stats) -> Self {
        let reads = |s: &Stats| s.get_payment + s.find_payment;
        GatewayCalls {
            get_token: after.get_token.requests - before.get_token.requests,
            tokens_minted: after.get_token.minted - before.get_token.minted,
            cancel_attempted: after.cancel.attempted - before.cancel.attempted,
            cancel_committed: after.cancel.committed - before.cancel.committed,
            payment_reads: reads(after) - reads(before),
            unauthorized: after.unauthorized - before.unauthorized,
        }
    }
}

/// How one server under test did.
#[derive(Debug)]
pub struct TargetResult {
    /// The unmeasured warm-up refunds (shown only if some failed).
    pub warmup: LoadResult,
    /// The measured refunds.
    pub load: LoadResult,
    /// Gateway calls during the measured refunds.
    pub measured_calls: GatewayCalls,
    /// Gateway calls over the server's whole life (start, import, warm-up,
    /// measured refunds).
    pub lifetime_calls: GatewayCalls,
    /// CPU time the server process used during the measured refunds.
    pub cpu: Option<Duration>,
    /// The server process's peak resident set (`VmHWM`), in KiB, read
    /// after the load.
    pub peak_rss_kib: Option<u64>,
}

impl TargetResult {
    fn percentile(&self, percent: u64) -> Option<u64> {
        percentile(&self.load.latencies_us, percent)
    }

    /// Server CPU time per refund (or per failed request), in µs.
    fn cpu_per_request_us(&self) -> Option<u64> {
        let requests = u128::from(self.load.refunded() + self.load.failed());
        let cpu = self.cpu?.as_micros();
        (requests > 0).then(|| u64::try_from(cpu / requests).unwrap_or(u64::MAX))
    }

    /// Refunds per second, in tenths.
    fn rate_tenths(&self) -> u64 {
        let micros = self.load.elapsed.as_micros().max(1);
        let tenths = u128::from(self.load.refunded()) * 10_000_000 / micros;
        u64::try_from(tenths).unwrap_or(u64::MAX)
    }
}

/// A whole run: the ceiling and the merchant server, measured alike.
#[derive(Debug)]
pub struct Report {
    /// What was asked for.
    pub options: Options,
    /// The run's id (scratch database and payment names).
    pub run: RunId,
    /// The bare forwarding handler.
    pub baseline: TargetResult,
    /// The merchant server with the chosen backend.
    pub merchant: TargetResult,
    /// The counting pass (none with `--count-refunds 0`).
    pub counted: Option<Counted>,
}

/// What the counting pass counted.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    /// Refunds answered 200 in the pass.
    pub refunds: u64,
    /// Requests of the pass that failed.
    pub failed: u64,
    /// Database round trips the relay counted (network backends).
    pub round_trips: Option<u64>,
    /// Statements the SQL store sent (SQL backends).
    pub statements: Option<u64>,
}

impl Counted {
    fn round_trips_per_refund(&self) -> String {
        self.round_trips
            .map_or("-".to_owned(), |n| per(n, self.refunds))
    }

    fn statements_per_refund(&self) -> String {
        self.statements
            .map_or("-".to_owned(), |n| per(n, self.refunds))
    }
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u64], percent: u64) -> Option<u64> {
    let count = u64::try_from(sorted.len()).ok()?;
    let rank = (percent * count).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

/// `1234` µs as `1.23 ms`.
fn ms(micros: Option<u64>) -> String {
    match micros {
        Some(us) => format!("{}.{:02} ms", us / 1000, us % 1000 / 10),
        None => "-".to_owned(),
    }
}

/// A latency difference in µs as `+1.23 ms` or `-0.05 ms`.
fn added_ms(ours: Option<u64>, base: Option<u64>) -> String {
    match (ours, base) {
        (Some(ours), Some(base)) if ours >= base => format!("+{}", ms(Some(ours - base))),
        (Some(ours), Some(base)) => format!("-{}", ms(Some(base - ours))),
        _ => "-".to_owned(),
    }
}

fn micros(value: Option<u64>) -> String {
    value.map_or("n/a".to_owned(), |us| format!("{us} µs"))
}

fn tenths(value: u64) -> String {
    format!("{}.{}", value / 10, value % 10)
}

/// `part / whole` with two decimals.
fn per(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    let hundredths = u128::from(part) * 100 / u128::from(whole);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_owned(), |kib| {
        format!("{} MiB", tenths(kib * 10 / 1024))
    })
}

fn failures(outcomes: &BTreeMap<String, u64>) -> String {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|(label, _)| label.as_str() != super::load::REFUNDED)
        .map(|(label, count)| format!("{label} {count}"))
        .collect();
    match failed.is_empty() {
        true => "none".to_owned(),
        false => failed.join(", "),
    }
}

/// Issue 15's targets (issue 9's p99 bound kept for reference).
const MAX_ADDED_P50_US: u64 = 1_500;
const MAX_ADDED_P99_US: u64 = 5_000;
const MIN_THROUGHPUT_PERMILLE: u64 = 500;
const MAX_CPU_PER_REFUND_US: u64 = 600;
const MAX_PEAK_RSS_KIB: u64 = 30 * 1024;
/// Database round trips per refund on PostgreSQL, in hundredths.
const MAX_ROUND_TRIPS_HUNDREDTHS: u64 = 400;

impl Report {
    fn token_cache(&self) -> &'static str {
        match self.options.redis {
            true => "redis",
            false => "memory",
        }
    }

    fn amount_of_load(&self) -> String {
        match self.options.stop() {
            Stop::AfterRefunds(count) => format!("{count} refunds"),
            Stop::After(duration) => format!("{} s", duration.as_secs()),
        }
    }

    /// The merchant server's throughput as a share of the baseline's, in ‰.
    fn throughput_permille(&self) -> Option<u64> {
        let base = self.baseline.rate_tenths();
        (base > 0).then(|| self.merchant.rate_tenths() * 1000 / base)
    }

    fn added(&self, percent: u64) -> Option<u64> {
        let ours = self.merchant.percentile(percent)?;
        let base = self.baseline.percentile(percent)?;
        Some(ours.saturating_sub(base))
    }

    fn write_targets(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let latency_applies =
            self.options.backend == Backend::Postgres && self.options.concurrency == 1;
        let throughput_applies =
            self.options.backend == Backend::Postgres && self.options.concurrency == 64;
        let line = |f: &mut fmt::Formatter<'_>,
                    met: Option<bool>,
                    what: &str,
                    value: String,
                    applies: bool,
                    scope: &str| {
            let verdict = match met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "n/a",
            };
            let scope = match applies {
                true => String::new(),
                false => format!("  (the target is for {scope}; shown for reference)"),
            };
            writeln!(f, "  {verdict:<8} {what}: {value}{scope}")
        };
        writeln!(f, "targets:")?;
        let latency_scope = "postgres at concurrency 1";
        let p50 = self.added(50);
        line(
            f,
            p50.map(|us| us <= MAX_ADDED_P50_US),
            "added latency p50 <= 1.5 ms",
            added_ms(self.merchant.percentile(50), self.baseline.percentile(50)),
            latency_applies,
            latency_scope,
        )?;
        let p99 = self.added(99);
        line(
            f,
            p99.map(|us| us <= MAX_ADDED_P99_US),
            "added latency p99 <= 5 ms",
            added_ms(self.merchant.percentile(99), self.baseline.percentile(99)),
            latency_applies,
            latency_scope,
        )?;
        let share = self.throughput_permille();
        line(
            f,
            share.map(|permille| permille >= MIN_THROUGHPUT_PERMILLE),
            "throughput >= 50% of the baseline",
            share.map_or("-".to_owned(), |permille| format!("{} %", tenths(permille))),
            throughput_applies,
            "postgres at concurrency 64 (with a 30 ms gateway)",
        )?;
        let cpu = self.merchant.cpu_per_request_us();
        line(
            f,
            cpu.map(|us| us <= MAX_CPU_PER_REFUND_US),
            "server CPU per refund <= 0.6 ms",
            micros(cpu),
            throughput_applies,
            "postgres at concurrency 64",
        )?;
        let trips = self.counted.and_then(|c| {
            let hundredths = u128::from(c.round_trips?) * 100 / u128::from(c.refunds.max(1));
            Some(u64::try_from(hundredths).unwrap_or(u64::MAX))
        });
        line(
            f,
            trips.map(|t| t <= MAX_ROUND_TRIPS_HUNDREDTHS),
            "database round trips per refund <= 4",
            self.counted
                .map_or("-".to_owned(), |c| c.round_trips_per_refund()),
            self.options.backend == Backend::Postgres,
            "postgres",
        )?;
        let tokens = self.merchant.lifetime_calls.get_token;
        // PortOne V2 authenticates with the API secret itself: no tokens.
        let (wanted, target) = match self.options.gateway {
            Gateway::Iamport => (1, "1 getToken call per run"),
            Gateway::Portone => (0, "0 token calls per run (V2: API secret)"),
        };
        line(
            f,
            Some(tokens == wanted),
            target,
            tokens.to_string(),
            true,
            "",
        )?;
        let peak = self.merchant.peak_rss_kib;
        line(
            f,
            peak.map(|kib| kib <= MAX_PEAK_RSS_KIB),
            "server peak RSS <= 30 MiB",
            mib(peak),
            true,
            "",
        )
    }

    /// The run as one row of BENCHMARKS.md's results table.
    pub fn markdown_row(&self) -> String {
        let share = self
            .throughput_permille()
            .map_or("-".to_owned(), |permille| format!("{} %", tenths(permille)));
        format!(
            "| {gateway} | {backend} | {cache} | {latency} | {concurrency} | {refunds} | {base_rate} | {rate} | {share} | {base_p50} / {base_p99} | {p50} / {p99} / {max} | {added_p50} / {added_p99} | {cancels} | {tokens} | {rss} | {cpu} | {trips} | {failures} |",
            gateway = self.options.gateway.name(),
            backend = self.options.backend.feature(),
            cache = self.token_cache(),
            latency = self.options.latency_ms,
            concurrency = self.options.concurrency,
            refunds = self.merchant.load.refunded(),
            base_rate = tenths(self.baseline.rate_tenths()),
            rate = tenths(self.merchant.rate_tenths()),
            base_p50 = ms(self.baseline.percentile(50)),
            base_p99 = ms(self.baseline.percentile(99)),
            p50 = ms(self.merchant.percentile(50)),
            p99 = ms(self.merchant.percentile(99)),
            max = ms(self.merchant.load.latencies_us.last().copied()),
            added_p50 = added_ms(self.merchant.percentile(50), self.baseline.percentile(50)),
            added_p99 = added_ms(self.merchant.percentile(99), self.baseline.percentile(99)),
            cancels = per(
                self.merchant.measured_calls.cancel_attempted,
                self.merchant.load.refunded()
            ),
            tokens = self.merchant.lifetime_calls.get_token,
            rss = mib(self.merchant.peak_rss_kib),
            cpu = micros(self.merchant.cpu_per_request_us()),
            trips = self.counted.map_or("-".to_owned(), |c| format!(
                "{} / {}",
                c.round_trips_per_refund(),
                c.statements_per_refund()
            )),
            failures = failures(&self.merchant.load.outcomes),
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "refund-bench run {run}: gateway {gateway}, backend {backend}, token cache {cache}, sandbox latency {latency} ms, \
             {payments} payments per target, concurrency {concurrency}, {load} per target after {warmup} warm-up refunds",
            run = self.run,
            gateway = o.gateway.name(),
            backend = o.backend.feature(),
            cache = self.token_cache(),
            latency = o.latency_ms,
            payments = o.payments,
            concurrency = o.concurrency,
            load = self.amount_of_load(),
            warmup = o.warmup_refunds(),
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<16} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
            "", "refunds", "failed", "refunds/s", "p50", "p90", "p99", "max", "peak RSS", "CPU/req"
        )?;
        for (name, target) in [
            ("baseline", &self.baseline),
            ("merchant-server", &self.merchant),
        ] {
            writeln!(
                f,
                "{name:<16} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
                target.load.refunded(),
                target.load.failed(),
                tenths(target.rate_tenths()),
                ms(target.percentile(50)),
                ms(target.percentile(90)),
                ms(target.percentile(99)),
                ms(target.load.latencies_us.last().copied()),
                mib(target.peak_rss_kib),
                micros(target.cpu_per_request_us()),
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "merchant-server vs baseline: {} of the throughput; added latency p50 {}, p90 {}, p99 {}",
            self.throughput_permille()
                .map_or("-".to_owned(), |permille| format!("{} %", tenths(permille))),
            added_ms(self.merchant.percentile(50), self.baseline.percentile(50)),
            added_ms(self.merchant.percentile(90), self.baseline.percentile(90)),
            added_ms(self.merchant.percentile(99), self.baseline.percentile(99)),
        )?;
        let measured = &self.merchant.measured_calls;
        let refunds = self.merchant.load.refunded();
        writeln!(
            f,
            "gateway calls per refund (measured, merchant-server): cancel {} attempted, {} committed; \
             payment reads {}; getToken {}",
            per(measured.cancel_attempted, refunds),
            per(measured.cancel_committed, refunds),
            per(measured.payment_reads, refunds),
            per(measured.get_token, refunds),
        )?;
        if let Some(counted) = &self.counted {
            writeln!(
                f,
                "database per refund (counting pass: {} refunds one at a time, {} failed, through a \
                 counting TCP relay; SQLite: the store's statement counter): round trips {}, statements {}",
                counted.refunds,
                counted.failed,
                counted.round_trips_per_refund(),
                counted.statements_per_refund(),
            )?;
        }
        let lifetime = &self.merchant.lifetime_calls;
        writeln!(
            f,
            "getToken over the merchant server's run (import, warm-up, load): {} calls, {} minted, {} refused with 401",
            lifetime.get_token, lifetime.tokens_minted, lifetime.unauthorized,
        )?;
        writeln!(
            f,
            "failures by code: baseline: {}; merchant-server: {}",
            failures(&self.baseline.load.outcomes),
            failures(&self.merchant.load.outcomes),
        )?;
        for (name, target) in [
            ("baseline", &self.baseline),
            ("merchant-server", &self.merchant),
        ] {
            if target.warmup.failed() > 0 {
                writeln!(
                    f,
                    "warm-up failures ({name}): {}",
                    failures(&target.warmup.outcomes)
                )?;
            }
            if let Some(first) = target
                .load
                .first_failure
                .as_ref()
                .or(target.warmup.first_failure.as_ref())
            {
                writeln!(f, "first failure ({name}): {first}")?;
            }
        }
        writeln!(
            f,
            "latency is over refunded (200) answers; peak RSS and CPU/req are each server process's own \
             (VmHWM; user+system time over the measured requests); the sandbox and the load generator \
             run in the benchmark's process; the database in its own (SQLite: in the server's)"
        )?;
        writeln!(f)?;
        self.write_targets(f)?;
        writeln!(f)?;
        writeln!(f, "BENCHMARKS.md row:")?;
        writeln!(f, "{}", self.markdown_row())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50), Some(50));
        assert_eq!(percentile(&samples, 99), Some(99));
        assert_eq!(percentile(&samples, 100), Some(100));
        assert_eq!(percentile(&[7], 1), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn numbers_are_printed_with_fixed_decimals() {
        assert_eq!(ms(Some(1_234)), "1.23 ms");
        assert_eq!(ms(Some(5)), "0.00 ms");
        assert_eq!(added_ms(Some(900), Some(1_000)), "-0.10 ms");
        assert_eq!(per(3, 2), "1.50");
        assert_eq!(per(1, 0), "-");
        assert_eq!(tenths(505), "50.5");
    }
}
