//! Keeps a webhook flood from becoming a gateway flood (DESIGN.md, "HTTP
//! contract").
//!
//! The webhook route is public and every notice costs a gateway lookup, so
//! anyone can make us hammer the gateway. Three rules bound that cost:
//! - **Notices for one payment share lookups.** A notice is answered by a
//!   lookup that *started after it arrived* (one that started earlier may
//!   have read the payment before the change the notice announces), so the
//!   notices that arrive while a lookup runs all wait for one more, and
//!   share it: a burst of any size costs at most two lookups.
//! - **Ids the gateway does not know are remembered** for a while
//!   ([`WebhookLimits::unknown_for`]): repeats of a forged id cost nothing.
//! - **At most [`WebhookLimits::max_lookups`] lookups run at once** per
//!   scope (shared by its workers); a notice that waits longer than
//!   [`WebhookLimits::queue_wait`] for its turn is answered 503
//!   `overloaded` (gateways resend on 5xx; sync and the sweep stay the
//!   safety net).
//!
//! Lookups run in their own task: a notifier that hangs up does not cancel
//! the lookup the others are waiting for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use crate::error::ApiError;

/// How hard the webhook route may lean on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WebhookLimits {
    /// Lookups running at once, at most.
    pub(crate) max_lookups: usize,
    /// How long a notice may wait for a free lookup before 503.
    pub(crate) queue_wait: Duration,
    /// How long an id the gateway did not know is answered without asking.
    pub(crate) unknown_for: Duration,
    /// How many such ids are remembered at most (a flood of distinct forged
    /// ids must not grow memory without bound).
    pub(crate) unknown_capacity: usize,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        WebhookLimits {
            max_lookups: 16,
            queue_wait: Duration::from_secs(2),
            unknown_for: Duration::from_secs(60),
            unknown_capacity: 10_000,
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// The gateway knows the payment; it was reconciled.
    Known,
    /// The gateway has no such payment.
    Unknown,
}

type Outcome = Result<Found, ApiError>;

/// The lookups in progress and the ids the gateway did not know, shared
/// by every worker of one scope.
#[derive(Debug)]
pub(crate) struct WebhookGate {
    limits: WebhookLimits,
    permits: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per payment id with notices in progress.
    keys: HashMap<String, Key>,
    /// Ids the gateway did not know, with when that stops being trusted.
    unknown: HashMap<String, Instant>,
}

/// One payment id's lookups: runs are numbered; a notice needs the first
/// run numbered above those started before it arrived.
#[derive(Debug)]
struct Key {
    started: u64,
    finished: u64,
    running: bool,
    /// Notices waiting; the entry goes when the last one is answered.
    waiting: usize,
    /// The last finished run's outcome.
    last: Option<Outcome>,
    done: watch::Sender<u64>,
}

impl WebhookGate {
    pub(crate) fn new(limits: WebhookLimits) -> Self {
        WebhookGate {
            permits: Arc::new(Semaphore::new(limits.max_lookups.max(1))),
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// Answers a notice for `id` with a lookup made by `lookup`, under the
    /// rules above. `lookup` is only called when this notice has to start
    /// the run it needs.
    pub(crate) async fn notice<F, Fut>(self: &Arc<Self>, id: &str, lookup: F) -> Outcome
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let (needed, mut done) = {
            let mut state = self.lock();
            if state.is_known_unknown(id) {
                return Ok(Found::Unknown);
            }
            let key = state.keys.entry(id.to_owned()).or_insert_with(|| Key {
                started: 0,
                finished: 0,
                running: false,
                waiting: 0,
                last: None,
                done: watch::channel(0).0,
            });
            key.waiting += 1;
            (key.started + 1, key.done.subscribe())
        };
        let _leave = Leave { gate: self, id };
        loop {
            let start = {
                let mut state = self.lock();
                let key = state
                    .keys
                    .get_mut(id)
                    .expect("a waiting notice keeps its key");
                if key.finished >= needed {
                    return key.last.clone().expect("a finished run left its outcome");
                }
                if key.running {
                    None
                } else {
                    key.started = needed;
                    key.running = true;
                    Some(needed)
                }
            };
            if let Some(run) = start {
                tokio::spawn(Arc::clone(self).run(id.to_owned(), run, lookup()));
            }
            if done.changed().await.is_err() {
                // Unreachable while this notice holds the key; ask again.
                continue;
            }
        }
    }

    /// One run: wait for a permit (or give up), look up, publish. If the
    /// run never finishes (the lookup panicked, or its runtime shut down),
    /// [`Publish`]'s drop answers its notices `503` instead, so they and
    /// the gateway's resends are never left waiting on it.
    async fn run<Fut>(self: Arc<Self>, id: String, run: u64, lookup: Fut)
    where
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let mut publish = Publish {
            gate: Arc::clone(&self),
            id,
            run,
            outcome: None,
        };
        let outcome = match tokio::time::timeout(
            self.limits.queue_wait,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(_permit)) => lookup.await,
            // Timed out waiting (or the semaphore closed, which it never is).
            _ => Err(ApiError::overloaded()),
        };
        publish.outcome = Some(outcome);
    }

    fn publish(&self, id: &str, run: u64, outcome: Outcome) {
        let mut state = self.lock();
        if matches!(outcome, Ok(Found::Unknown)) {
            state.remember_unknown(id, self.limits);
        }
        if let Some(key) = state.keys.get_mut(id) {
            key.finished = run;
            key.running = false;
            key.last = Some(outcome);
            key.done.send_replace(run);
            if key.waiting == 0 {
                // Every notice that wanted it hung up.
                state.keys.remove(id);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements: a panic elsewhere
        // cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes a run's outcome when the run ends, however it ends: a run
/// dropped before its lookup finished answers `503 overloaded`.
struct Publish {
    gate: Arc<WebhookGate>,
    id: String,
    run: u64,
    outcome: Option<Outcome>,
}

impl Drop for Publish {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or_else(|| {
            tracing::error!("a webhook lookup died before answering; its notices get 503");
            Err(ApiError::overloaded())
        });
        self.gate.publish(&self.id, self.run, outcome);
    }
}

/// Drops a notice's claim on its key when it is answered (or its request
/// is dropped), removing the key once nobody waits and nothing runs.
struct Leave<'a> {
    gate: &'a WebhookGate,
    id: &'a str,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        if let Some(key) = state.keys.get_mut(self.id) {
            key.waiting -= 1;
            if key.waiting == 0 && !key.running {
                state.keys.remove(self.id);
            }
        }
    }
}

impl State {
    fn is_known_unknown(&mut self, id: &str) -> bool {
        match self.unknown.get(id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.unknown.remove(id);
                false
            }
            None => false,
        }
    }

    fn remember_unknown(&mut self, id: &str, limits: WebhookLimits) {
        let now = Instant::now();
        if self.unknown.len() >= limits.unknown_capacity {
            self.unknown.retain(|_, until| *until > now);
        }
        // Still full of live entries: this id is simply not remembered
        // (it costs a lookup again, within the concurrency bound).
        if self.unknown.len() < limits.unknown_capacity {
            self.unknown.insert(id.to_owned(), now + limits.unknown_for);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn gate(limits: WebhookLimits) -> Arc<WebhookGate> {
        Arc::new(WebhookGate::new(limits))
    }

    /// A lookup that takes `ms` and counts itself.
    fn counted(
        calls: &Arc<AtomicU64>,
        ms: u64,
        found: Found,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>> {
        let calls = Arc::clone(calls);
        move || {
            let calls = Arc::clone(&calls);
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(found)
            })
        }
    }

    #[tokio::test]
    async fn a_notice_during_a_lookup_gets_a_later_one() {
        let gate = gate(WebhookLimits::default());
        let calls = Arc::new(AtomicU64::new(0));
        let lookup = counted(&calls, 50, Found::Known);
        let first = {
            let gate = Arc::clone(&gate);
            let lookup = counted(&calls, 50, Found::Known);
            tokio::spawn(async move { gate.notice("imp_1", lookup).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Arrives while the first lookup runs: that one may have read the
        // payment too early for this notice, so a second one runs after it.
        let (a, b) = tokio::join!(gate.notice("imp_1", &lookup), gate.notice("imp_1", &lookup));
        assert_eq!((a.ok(), b.ok()), (Some(Found::Known), Some(Found::Known)));
        assert_eq!(first.await.unwrap().ok(), Some(Found::Known));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(gate.lock().keys.is_empty(), "answered keys are dropped");
    }

    #[tokio::test]
    async fn unknown_ids_are_remembered_until_they_expire() {
        let limits = WebhookLimits {
            unknown_for: Duration::from_millis(100),
            ..WebhookLimits::default()
        };
        let gate = gate(limits);
        let calls = Arc::new(AtomicU64::new(0));
        let lookup = counted(&calls, 1, Found::Unknown);
        assert_eq!(
            gate.notice("forged", &lookup).await.ok(),
            Some(Found::Unknown)
        );
        assert_eq!(
            gate.notice("forged", &lookup).await.ok(),
            Some(Found::Unknown)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            gate.notice("forged", &lookup).await.ok(),
            Some(Found::Unknown)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_unknown_memory_is_bounded() {
        let limits = WebhookLimits {
            unknown_capacity: 3,
            ..WebhookLimits::default()
        };
        let gate = gate(limits);
        let calls = Arc::new(AtomicU64::new(0));
        let lookup = counted(&calls, 0, Found::Unknown);
        for id in ["a", "b", "c", "d", "e"] {
            gate.notice(id, &lookup).await.unwrap();
        }
        assert_eq!(gate.lock().unknown.len(), 3);
        // "d" was not remembered: it costs a lookup again.
        gate.notice("d", &lookup).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_notice_that_waits_too_long_is_overloaded_and_others_still_run() {
        let limits = WebhookLimits {
            max_lookups: 1,
            queue_wait: Duration::from_millis(20),
            ..WebhookLimits::default()
        };
        let gate = gate(limits);
        let calls = Arc::new(AtomicU64::new(0));
        let slow = counted(&calls, 100, Found::Known);
        let (a, b) = tokio::join!(gate.notice("one", &slow), gate.notice("two", &slow));
        let outcomes = [a, b];
        assert!(
            outcomes.iter().any(|o| matches!(o, Ok(Found::Known))),
            "{outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .any(|o| o.as_ref().is_err_and(|e| e.code() == "overloaded")),
            "{outcomes:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // An overloaded outcome is not remembered: the next notice tries.
        assert_eq!(gate.notice("two", &slow).await.ok(), Some(Found::Known));
    }

    #[tokio::test]
    async fn a_notifier_hanging_up_does_not_cancel_the_shared_lookup() {
        let gate = gate(WebhookLimits::default());
        let calls = Arc::new(AtomicU64::new(0));
        let lookup = counted(&calls, 50, Found::Known);
        let hung_up = tokio::time::timeout(Duration::from_millis(10), gate.notice("p", &lookup));
        assert!(hung_up.await.is_err());
        // The run it started finishes and answers the next notice that
        // arrived after it... by a run that started after that notice.
        assert_eq!(gate.notice("p", &lookup).await.ok(), Some(Found::Known));
        assert!(calls.load(Ordering::SeqCst) <= 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(gate.lock().keys.is_empty());
    }
}
