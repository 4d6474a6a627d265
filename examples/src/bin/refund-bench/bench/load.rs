//! The load generator: partial refunds over real HTTP (one keep-alive
//! connection per worker), at a fixed concurrency, each worker refunding
//! only its own share of the payments so that no two refunds of one
//! payment are ever in flight together.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use refund_core::BoxError;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::options::Stop;

/// Every refund is 100 won: small enough that a payment takes millions.
pub const REFUND_AMOUNT: u64 = 100;

/// The outcome label of a 200 answer.
pub const REFUNDED: &str = "refunded";

/// Where the refunds go.
#[derive(Debug)]
pub struct Target {
    /// `http://addr/payments/cancel`.
    pub cancel_url: String,
    /// The bearer token the merchant server wants (the baseline ignores it).
    pub admin_token: String,
}

/// What one load phase measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// From the first request sent to the last answer read.
    pub elapsed: Duration,
    /// Latency of each refunded (200) answer, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Answers by outcome: [`REFUNDED`], `refund_pending` (202), the
    /// error's `code`, `http_<status>` or `transport_error`.
    pub outcomes: BTreeMap<String, u64>,
    /// The first failure's details, to show what went wrong.
    pub first_failure: Option<String>,
}

impl LoadResult {
    /// Refunds answered 200.
    pub fn refunded(&self) -> u64 {
        self.outcomes.get(REFUNDED).copied().unwrap_or(0)
    }

    /// Requests answered otherwise.
    pub fn failed(&self) -> u64 {
        self.outcomes.values().sum::<u64>() - self.refunded()
    }

    fn merge(&mut self, other: LoadResult) {
        self.latencies_us.extend(other.latencies_us);
        for (outcome, count) in other.outcomes {
            *self.outcomes.entry(outcome).or_default() += count;
        }
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// An HTTP client with a keep-alive connection for each of `concurrency`
/// workers.
pub fn http_client(concurrency: u64) -> Result<reqwest::Client, BoxError> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(concurrency)?)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Sends refunds to `target` from `concurrency` workers until `stop`.
/// Worker `w` refunds payments `w`, `w + concurrency`, ... in turn.
pub async fn drive(
    client: &reqwest::Client,
    target: &Arc<Target>,
    payments: &Arc<[String]>,
    concurrency: u64,
    stop: Stop,
) -> Result<LoadResult, BoxError> {
    let budget = Arc::new(Budget::new(stop));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for worker in 0..usize::try_from(concurrency)? {
        let share: Vec<usize> = (worker..payments.len())
            .step_by(usize::try_from(concurrency)?)
            .collect();
        workers.spawn(run_worker(
            client.clone(),
            Arc::clone(target),
            Arc::clone(payments),
            share,
            Arc::clone(&budget),
        ));
    }
    let mut result = LoadResult::default();
    while let Some(worker) = workers.join_next().await {
        result.merge(worker?);
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// How many more refunds may be sent.
enum Budget {
    Count(AtomicU64),
    Until(Instant),
}

impl Budget {
    fn new(stop: Stop) -> Self {
        match stop {
            Stop::AfterRefunds(count) => Budget::Count(AtomicU64::new(count)),
            Stop::After(duration) => Budget::Until(Instant::now() + duration),
        }
    }

    /// Takes one refund from the budget; false once it is spent.
    fn take(&self) -> bool {
        match self {
            Budget::Count(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            Budget::Until(deadline) => Instant::now() < *deadline,
        }
    }
}

async fn run_worker(
    client: reqwest::Client,
    target: Arc<Target>,
    payments: Arc<[String]>,
    share: Vec<usize>,
    budget: Arc<Budget>,
) -> LoadResult {
    let mut tally = LoadResult::default();
    for &payment in share.iter().cycle() {
        if !budget.take() {
            break;
        }
        let started = Instant::now();
        let outcome = refund(&client, &target, &payments[payment]).await;
        let latency = started.elapsed();
        let label = match outcome {
            Ok(()) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                tally.latencies_us.push(micros);
                REFUNDED.to_owned()
            }
            Err(Failure { label, detail }) => {
                tally.first_failure.get_or_insert(detail);
                label
            }
        };
        *tally.outcomes.entry(label).or_default() += 1;
    }
    tally
}

/// The merchant's refund request (the seed guide's body).
#[derive(Serialize)]
struct RefundBody<'a> {
    merchant_uid: &'a str,
    cancel_request_amount: u64,
    reason: &'a str,
}

/// The error body both servers answer with.
#[derive(Deserialize)]
struct ErrorBody {
    code: String,
}

/// A request that did not refund: its outcome label and what to show.
struct Failure {
    label: String,
    detail: String,
}

/// One partial refund; reads the whole answer so the connection is reused.
async fn refund(
    client: &reqwest::Client,
    target: &Target,
    merchant_uid: &str,
) -> Result<(), Failure> {
    let body = RefundBody {
        merchant_uid,
        cancel_request_amount: REFUND_AMOUNT,
        reason: "refund-bench",
    };
    let transport = |error: reqwest::Error| Failure {
        label: "transport_error".to_owned(),
        detail: format!("transport error: {error}"),
    };
    let response = client
        .post(&target.cancel_url)
        .bearer_auth(&target.admin_token)
        .json(&body)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    let answer = response.bytes().await.map_err(transport)?;
    if status == reqwest::StatusCode::OK {
        return Ok(());
    }
    let label = match serde_json::from_slice::<ErrorBody>(&answer) {
        Ok(error) => error.code,
        Err(_) => format!("http_{}", status.as_u16()),
    };
    Err(Failure {
        label,
        detail: format!("HTTP {status}: {}", String::from_utf8_lossy(&answer)),
    })
}
