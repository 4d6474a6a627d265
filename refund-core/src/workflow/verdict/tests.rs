//! The decision, case by case, and as a property over random histories.

use std::time::Duration;

use proptest::prelude::*;

use super::{decide, in_sent_form, Context, Evidence, Others, Verdict, ENTRY_CLOCK_TOLERANCE};
use crate::money::{Amount, Currency};
use crate::payment::{CancelEntry, PayMethod, Payment, PaymentStatus};
use crate::refund::{Failure, FailureKind, Refund, RefundId, RefundState, RefundStatus};

const IN_FLIGHT: Duration = Duration::from_secs(100);
/// When the refund under test began, on the store's clock (ms).
const BEGAN: i64 = 1_800_000_000_000;
const REASON: &str = "size exchange";

fn payment(amount: i64, history: &[(i64, &str, i64)]) -> Payment {
    let cancel_history: Vec<CancelEntry> = history
        .iter()
        .enumerate()
        .map(|(i, (amount, reason, at_ms))| CancelEntry {
            pg_tid: Some(format!("pg-{i}")),
            amount: Amount::from_minor(*amount),
            cancelled_at: at_ms / 1000,
            reason: Some((*reason).to_owned()),
            cancellation_id: Some(format!("cxl-{i}")),
            receipt_url: None,
        })
        .collect();
    Payment {
        imp_uid: "imp_1".into(),
        merchant_uid: "ORD-1".into(),
        pay_method: PayMethod::Card,
        currency: Currency::Krw,
        amount: Amount::from_minor(amount),
        cancel_amount: Amount::from_minor(history.iter().map(|h| h.0).sum()),
        status: PaymentStatus::Paid,
        paid_at: 0,
        cancel_history,
        requested_cancels: Vec::new(),
        failed_cancels: Vec::new(),
    }
}

fn refund(base: i64, amount: i64, state: RefundState) -> Refund {
    Refund {
        id: RefundId::from_stored("rf_test"),
        merchant_uid: "ORD-1".into(),
        imp_uid: "imp_1".into(),
        currency: crate::money::Currency::Krw,
        amount: Amount::from_minor(amount),
        base_cancel_amount: Amount::from_minor(base),
        checksum: Amount::from_minor(10_000 - base),
        reason: Some(REASON.into()),
        idempotency_key: None,
        fingerprint: "f".into(),
        refund_account_masked: None,
        requested_by: None,
        state,
        created_at_ms: BEGAN,
        attempt_started_at_ms: BEGAN,
        attempt: crate::FIRST_ATTEMPT,
        updated_at_ms: BEGAN,
    }
}

fn pending(base: i64, amount: i64) -> Refund {
    refund(base, amount, RefundState::PENDING)
}

fn at(offset: Duration) -> Context<'static> {
    Context {
        now_ms: Some(BEGAN + i64::try_from(offset.as_millis()).unwrap()),
        in_flight: IN_FLIGHT,
        claimed: &[],
        journal: &[],
    }
}

fn young() -> Context<'static> {
    at(Duration::from_secs(10))
}

fn old() -> Context<'static> {
    at(IN_FLIGHT)
}

/// Entries credited to other refunds (by id); no other journal refund.
fn others<'a>(claimed: &'a [&'a str]) -> Others<'a> {
    Others {
        claimed,
        journal: &[],
    }
}

fn lookup(payment: &Payment) -> Evidence<'_> {
    Evidence::Lookup {
        payment: Some(payment),
        answered: false,
    }
}

fn status(verdict: &Verdict) -> Option<RefundStatus> {
    match verdict {
        Verdict::Unchanged | Verdict::Await(_) => None,
        Verdict::Settle(state) => Some(state.status()),
    }
}

fn failure_kind(verdict: &Verdict) -> Option<FailureKind> {
    match verdict {
        Verdict::Settle(RefundState::Failed(Failure { kind, .. })) => Some(*kind),
        _ => None,
    }
}

fn succeeded_with(id: &str) -> Verdict {
    Verdict::Settle(RefundState::Succeeded {
        cancellation_id: Some(id.to_owned()),
    })
}

/// Earlier refunds (the base) plus the given new entries, all dated after
/// the refund began.
fn after_base(new: &[(i64, &str)]) -> Payment {
    let mut history = vec![(1_000, "earlier", BEGAN - 86_400_000)];
    history.extend(new.iter().map(|(a, r)| (*a, *r, BEGAN + 1_000)));
    payment(10_000, &history)
}

#[test]
fn its_own_success_answer_credits_it_with_its_entry() {
    let after = after_base(&[(2_000, REASON)]);
    let verdict = decide(&pending(1_000, 2_000), Evidence::Applied(&after), young());
    assert_eq!(verdict, succeeded_with("cxl-1"));
}

#[test]
fn a_success_answer_without_history_is_credited_by_its_exact_total() {
    let mut after = payment(10_000, &[]);
    after.cancel_amount = Amount::from_minor(3_000);
    let verdict = decide(&pending(1_000, 2_000), Evidence::Applied(&after), young());
    assert_eq!(
        verdict,
        Verdict::Settle(RefundState::Succeeded {
            cancellation_id: None
        })
    );
}

#[test]
fn a_success_answer_that_cancelled_another_amount_goes_to_review() {
    // The gateway cancelled everything instead of 2,000.
    let after = after_base(&[(9_000, REASON)]);
    let verdict = decide(&pending(1_000, 2_000), Evidence::Applied(&after), young());
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
    let mut other = after_base(&[(2_000, REASON)]);
    other.imp_uid = "imp_other".into();
    let verdict = decide(&pending(1_000, 2_000), Evidence::Applied(&other), young());
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
}

#[test]
fn a_refusal_fails_it_unless_the_gateway_shows_it_applied() {
    let unchanged = after_base(&[]);
    for after in [None, Some(&unchanged)] {
        let verdict = decide(
            &pending(1_000, 2_000),
            Evidence::Rejected {
                code: Some("-1"),
                message: "over the limit",
                after,
            },
            young(),
        );
        assert_eq!(
            verdict,
            Verdict::Settle(RefundState::Failed(Failure {
                kind: FailureKind::Rejected,
                code: Some("-1".into()),
                message: "over the limit".into(),
            }))
        );
    }
    // An entry names it: an earlier attempt of this refund applied (the
    // refusal is this attempt's checksum meeting it). Credited, once.
    let applied = after_base(&[(2_000, REASON)]);
    let verdict = decide(
        &pending(1_000, 2_000),
        Evidence::Rejected {
            code: None,
            message: "HTTP 400",
            after: Some(&applied),
        },
        young(),
    );
    assert_eq!(verdict, succeeded_with("cxl-1"));
    // An entry of its amount that does not name it proves nothing: refused.
    let lookalike = after_base(&[(2_000, "console")]);
    let verdict = decide(
        &pending(1_000, 2_000),
        Evidence::Rejected {
            code: Some("-1"),
            message: "checksum",
            after: Some(&lookalike),
        },
        young(),
    );
    assert_eq!(failure_kind(&verdict), Some(FailureKind::Rejected));
}

#[test]
fn a_rerun_needs_proof_that_nothing_of_it_moved() {
    use super::{rerun_proof, RerunProof};
    let not_applied = refund(
        1_000,
        2_000,
        RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx")),
    );
    let proof = |p: &Payment, claimed: &[&str]| rerun_proof(&not_applied, p, others(claimed));
    assert_eq!(proof(&after_base(&[]), &[]), RerunProof::NothingMoved);
    // Other amounts moved: still proof for ours.
    assert_eq!(
        proof(&after_base(&[(700, "console")]), &[]),
        RerunProof::NothingMoved
    );
    // Ours, or a lookalike of ours (a rewritten reason?), or a history that
    // does not add up: no proof, an operator looks.
    assert_eq!(
        proof(&after_base(&[(2_000, REASON)]), &[]),
        RerunProof::Ambiguous
    );
    assert_eq!(
        proof(&after_base(&[(2_000, "rewritten")]), &[]),
        RerunProof::Ambiguous
    );
    let mut broken = after_base(&[]);
    broken.cancel_amount = Amount::from_minor(5_000);
    assert_eq!(proof(&broken, &[]), RerunProof::Ambiguous);
    // A lookup older than its base (a lagging replica): not proven yet.
    assert_eq!(proof(&payment(10_000, &[]), &[]), RerunProof::NotYet);
    // A lookalike another refund is credited with is not ours to fear.
    assert_eq!(
        proof(&after_base(&[(2_000, "other")]), &["cxl-1"]),
        RerunProof::NothingMoved
    );
}

#[test]
fn a_reason_that_names_the_refund_is_evidence_at_any_date() {
    // A re-run restamps the row; its first attempt's entry, named by the
    // reason, is older than the new stamp by more than the tolerance.
    let mut r = pending(0, 2_000);
    let named = format!("size exchange ({})", r.id);
    r.reason = Some(named.clone());
    let tolerance = i64::try_from(ENTRY_CLOCK_TOLERANCE.as_millis()).unwrap();
    let long_before = [(2_000, named.as_str(), BEGAN - 3 * tolerance)];
    assert_eq!(
        decide(&r, lookup(&payment(10_000, &long_before)), old()),
        succeeded_with("cxl-0")
    );
    let refused = Evidence::Rejected {
        code: Some("-1"),
        message: "checksum",
        after: Some(&payment(10_000, &long_before)),
    };
    // (a temporary is fine: decide borrows it for the call)
    assert_eq!(decide(&r, refused, young()), succeeded_with("cxl-0"));
}

#[test]
fn not_sent_fails_it_and_no_answer_decides_nothing() {
    let verdict = decide(
        &pending(0, 2_000),
        Evidence::NotSent {
            message: "token endpoint down",
        },
        young(),
    );
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotSent));
    for context in [young(), old()] {
        assert_eq!(
            decide(&pending(0, 2_000), Evidence::NoAnswer, context),
            Verdict::Unchanged
        );
    }
}

#[test]
fn an_answered_5xx_is_settled_at_once_by_one_lookup() {
    let refund = pending(1_000, 2_000);
    let nothing = after_base(&[]);
    let answered = |payment| Evidence::Lookup {
        payment: Some(payment),
        answered: true,
    };
    // Young or not: the gateway answered, so it is not on the wire.
    let verdict = decide(&refund, answered(&nothing), young());
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    let applied = after_base(&[(2_000, REASON)]);
    assert_eq!(
        decide(&refund, answered(&applied), young()),
        succeeded_with("cxl-1")
    );
    // Even without a clock (the cancel path reads none).
    let no_clock = Context {
        now_ms: None,
        ..young()
    };
    let verdict = decide(&refund, answered(&nothing), no_clock);
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
}

#[test]
fn a_lookup_while_it_may_be_on_the_wire_only_credits() {
    let refund = pending(1_000, 2_000);
    let nothing = after_base(&[]);
    assert_eq!(
        decide(&refund, lookup(&nothing), young()),
        Verdict::Unchanged
    );
    let just_before = at(IN_FLIGHT - Duration::from_millis(1));
    assert_eq!(
        decide(&refund, lookup(&nothing), just_before),
        Verdict::Unchanged
    );
    let no_clock = Context {
        now_ms: None,
        ..old()
    };
    assert_eq!(
        decide(&refund, lookup(&nothing), no_clock),
        Verdict::Unchanged
    );
    let applied = after_base(&[(2_000, REASON)]);
    assert_eq!(
        decide(&refund, lookup(&applied), young()),
        succeeded_with("cxl-1")
    );
}

/// A refund run again keeps the time it was journaled; its in-flight bound
/// runs from the start of the attempt now on the wire.
#[test]
fn a_refund_run_again_is_on_the_wire_from_its_new_attempt() {
    let journaled_long_ago = Refund {
        created_at_ms: BEGAN - 10 * i64::try_from(IN_FLIGHT.as_millis()).unwrap(),
        ..pending(1_000, 2_000)
    };
    let nothing = after_base(&[]);
    assert_eq!(
        decide(&journaled_long_ago, lookup(&nothing), young()),
        Verdict::Unchanged,
        "an attempt begun 10 s ago may still be on the wire"
    );
    let verdict = decide(&journaled_long_ago, lookup(&nothing), old());
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
}

#[test]
fn past_its_in_flight_bound_no_entry_means_not_applied() {
    let refund = pending(1_000, 2_000);
    let nothing = after_base(&[]);
    let verdict = decide(&refund, lookup(&nothing), old());
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
}

#[test]
fn an_equal_console_refund_is_never_credited_to_ours() {
    // Ours timed out; the console refunded the same amount for another item.
    let refund = pending(1_000, 2_000);
    let console = after_base(&[(2_000, "damaged item, refunded by phone")]);
    assert_eq!(
        decide(&refund, lookup(&console), young()),
        Verdict::Unchanged
    );
    // Past its bound it is not "changed nothing" either: the entry could be
    // ours with a reason the PG rewrote. An operator decides.
    let verdict = decide(&refund, lookup(&console), old());
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
    // A console refund of another amount says nothing about ours.
    let other = after_base(&[(1_500, "damaged item")]);
    let verdict = decide(&refund, lookup(&other), old());
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    // Both applied: ours is credited, the console's stays outside.
    let both = after_base(&[(2_000, "damaged item"), (2_000, REASON)]);
    assert_eq!(
        decide(&refund, lookup(&both), young()),
        succeeded_with("cxl-2")
    );
}

#[test]
fn entries_its_base_counted_or_dated_long_before_it_are_not_its_own() {
    // An earlier refund with the same amount and reason is part of the base.
    let history = [
        (2_000, REASON, BEGAN - 3_600_000),
        (2_000, REASON, BEGAN - 60_000),
    ];
    let refund = pending(4_000, 2_000);
    let verdict = decide(&refund, lookup(&payment(10_000, &history)), old());
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    // A new entry dated far before the refund began does not name it (nor
    // prove it never applied: review)...
    let tolerance = i64::try_from(ENTRY_CLOCK_TOLERANCE.as_millis()).unwrap();
    let backdated = [(2_000, REASON, BEGAN - tolerance - 1_000)];
    let verdict = decide(
        &pending(0, 2_000),
        lookup(&payment(10_000, &backdated)),
        old(),
    );
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
    // ...but a gateway clock a little behind the store's is tolerated.
    let skewed = [(2_000, REASON, BEGAN - 30_000)];
    let verdict = decide(&pending(0, 2_000), lookup(&payment(10_000, &skewed)), old());
    assert_eq!(verdict, succeeded_with("cxl-0"));
}

#[test]
fn entries_credited_to_other_refunds_are_not_its_own() {
    // R1 failed as not applied; R2 (same amount and reason) then succeeded
    // with cxl-1. A lookup must not hand R2's entry to R1.
    let r1 = refund(
        1_000,
        2_000,
        RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx")),
    );
    let history = after_base(&[(2_000, REASON)]);
    let claimed = ["cxl-1"];
    let context = Context {
        claimed: &claimed,
        ..old()
    };
    assert_eq!(decide(&r1, lookup(&history), context), Verdict::Unchanged);
}

#[test]
fn late_evidence_turns_not_applied_into_succeeded_never_the_reverse() {
    let not_applied = RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx"));
    let r = refund(1_000, 2_000, not_applied);
    let applied = after_base(&[(2_000, REASON)]);
    assert_eq!(decide(&r, lookup(&applied), old()), succeeded_with("cxl-1"));
    assert_eq!(
        decide(&r, Evidence::Applied(&applied), old()),
        succeeded_with("cxl-1")
    );
    let nothing = after_base(&[]);
    assert_eq!(decide(&r, lookup(&nothing), old()), Verdict::Unchanged);
    let gone = Evidence::Lookup {
        payment: None,
        answered: false,
    };
    assert_eq!(decide(&r, gone, old()), Verdict::Unchanged);
    // Settled in any other way: nothing moves it.
    let settled = [
        RefundState::Succeeded {
            cancellation_id: None,
        },
        RefundState::Failed(Failure::new(FailureKind::Rejected, "no")),
        RefundState::Failed(Failure::new(FailureKind::NotSent, "down")),
        RefundState::NeedsReview(crate::refund::Review::new("odd")),
    ];
    for state in settled {
        let r = refund(1_000, 2_000, state);
        for evidence in [
            lookup(&applied),
            lookup(&nothing),
            Evidence::Applied(&applied),
            Evidence::NotSent { message: "x" },
            Evidence::Rejected {
                code: None,
                message: "x",
                after: None,
            },
            gone,
        ] {
            assert_eq!(decide(&r, evidence, old()), Verdict::Unchanged);
        }
    }
}

#[test]
fn what_cannot_be_explained_goes_to_review_once_it_cannot_be_on_the_wire() {
    let refund = pending(1_000, 2_000);
    let gone = Evidence::Lookup {
        payment: None,
        answered: false,
    };
    assert_eq!(decide(&refund, gone, young()), Verdict::Unchanged);
    assert_eq!(
        status(&decide(&refund, gone, old())),
        Some(RefundStatus::NeedsReview)
    );
    // A history that does not add up to the cancelled total.
    let mut broken = after_base(&[(500, "x")]);
    broken.cancel_amount = Amount::from_minor(9_000);
    assert_eq!(
        decide(&refund, lookup(&broken), young()),
        Verdict::Unchanged
    );
    assert_eq!(
        status(&decide(&refund, lookup(&broken), old())),
        Some(RefundStatus::NeedsReview)
    );
    // No point in the history adds up to the refund's base.
    let jumps = payment(10_000, &[(700, "a", BEGAN), (600, "b", BEGAN)]);
    assert_eq!(
        status(&decide(&refund, lookup(&jumps), old())),
        Some(RefundStatus::NeedsReview)
    );
}

#[test]
fn a_snapshot_older_than_its_base_says_nothing() {
    let refund = pending(3_000, 2_000);
    let older = payment(10_000, &[(1_000, "earlier", BEGAN - 1)]);
    assert_eq!(decide(&refund, lookup(&older), old()), Verdict::Unchanged);
    let mut other_attempt = after_base(&[(2_000, REASON)]);
    other_attempt.imp_uid = "imp_other".into();
    assert_eq!(
        decide(&refund, lookup(&other_attempt), old()),
        Verdict::Unchanged
    );
}

#[test]
fn reasons_compare_trimmed_and_blank_is_none() {
    let mut r = pending(0, 2_000);
    r.reason = Some("  size exchange ".into());
    let spaced = payment(10_000, &[(2_000, REASON, BEGAN)]);
    assert_eq!(decide(&r, lookup(&spaced), old()), succeeded_with("cxl-0"));
    r.reason = None;
    let blank = payment(10_000, &[(2_000, "  ", BEGAN)]);
    assert_eq!(decide(&r, lookup(&blank), old()), succeeded_with("cxl-0"));
}

/// One random history of a payment: the refunds before ours (the base),
/// then, in time order, console refunds and maybe ours.
#[derive(Debug, Clone)]
struct Story {
    base: Vec<i64>,
    ours: i64,
    /// (offset from BEGAN in ms, amount) of console refunds; some equal ours.
    console: Vec<(i64, i64)>,
    /// When ours applied (offset in ms, within the in-flight bound), if it did.
    applied_at: Option<i64>,
    /// When the gateway was looked up (offset in ms).
    looked_at: i64,
    /// How long before the lookup the store's clock was read (ms).
    clock_lead: i64,
    /// Whether the lookup followed an answered 5xx of ours.
    answered: bool,
    /// Whether the PG rewrote our entry's reason (it no longer names us).
    rewritten: bool,
}

fn story() -> impl Strategy<Value = Story> {
    let bound = i64::try_from(IN_FLIGHT.as_millis()).unwrap();
    (
        prop::collection::vec(1..2_000i64, 0..4),
        1..3_000i64,
        prop::collection::vec((0..3 * bound, prop::bool::ANY, 1..3_000i64), 0..4),
        prop::option::of(0..bound),
        0..3 * bound,
        0..bound,
        prop::bool::ANY,
        prop::bool::weighted(0.2),
    )
        .prop_map(
            move |(base, ours, console, applied_at, looked_at, clock_lead, answered, rewritten)| {
                Story {
                    base,
                    ours,
                    console: console
                        .into_iter()
                        .map(|(at, equal, amount)| (at, if equal { ours } else { amount }))
                        .collect(),
                    applied_at,
                    looked_at,
                    clock_lead,
                    // An answered call is over before the lookup, so it applied
                    // (if at all) before the lookup too.
                    answered,
                    rewritten,
                }
            },
        )
}

impl Story {
    /// The gateway's payment as the lookup saw it.
    fn snapshot(&self) -> Payment {
        let mut history: Vec<(i64, String, i64)> = self
            .base
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, format!("earlier {i}"), BEGAN - 86_400_000 + i as i64))
            .collect();
        let mut later: Vec<(i64, String, i64)> = self
            .console
            .iter()
            .map(|(at, amount)| (*amount, "console".to_owned(), BEGAN + at))
            .collect();
        if let Some(at) = self.applied_at_for_lookup() {
            let reason = if self.rewritten { "환불" } else { REASON };
            later.push((self.ours, reason.to_owned(), BEGAN + at));
        }
        later.retain(|(_, _, at)| *at <= BEGAN + self.looked_at);
        later.sort_by_key(|(_, _, at)| *at);
        history.extend(later);
        let entries: Vec<(i64, &str, i64)> = history
            .iter()
            .map(|(a, r, t)| (*a, r.as_str(), *t))
            .collect();
        payment(1_000_000, &entries)
    }

    /// An answered call ended before the lookup: it applied before it.
    fn applied_at_for_lookup(&self) -> Option<i64> {
        self.applied_at.map(|at| {
            if self.answered {
                at.min(self.looked_at)
            } else {
                at
            }
        })
    }

    fn applied_by_lookup(&self) -> bool {
        self.applied_at_for_lookup()
            .is_some_and(|at| at <= self.looked_at)
    }
}

proptest! {
    /// Whatever console refunds happen and whenever the gateway is looked
    /// up: a credit means ours applied, `not_applied` means it never will,
    /// and a lookup that shows ours credits it.
    #[test]
    fn verdicts_follow_the_evidence(story in story()) {
        let refund = pending(story.base.iter().sum(), story.ours);
        let snapshot = story.snapshot();
        // The store's clock is read before the lookup is sent.
        let now = BEGAN + (story.looked_at - story.clock_lead).max(0);
        let context = Context { now_ms: Some(now), in_flight: IN_FLIGHT, claimed: &[], journal: &[] };
        let evidence = Evidence::Lookup { payment: Some(&snapshot), answered: story.answered };
        let verdict = decide(&refund, evidence, context);
        match &verdict {
            Verdict::Settle(RefundState::Succeeded { .. }) => {
                prop_assert!(story.applied_by_lookup(), "credited without applying: {verdict:?}");
                prop_assert!(!story.rewritten, "credited by an entry that does not name it");
            }
            Verdict::Settle(RefundState::Failed(f)) => {
                prop_assert_eq!(f.kind, FailureKind::NotApplied);
                prop_assert!(story.applied_at.is_none(), "declared not applied but it applies");
            }
            Verdict::Settle(RefundState::NeedsReview(_)) => {
                // Only an entry of our amount that does not name us (a
                // console refund of the same amount, or ours with its
                // reason rewritten) makes it ambiguous.
                let lookalike = story.console.iter().any(|(at, amount)| {
                    *amount == story.ours && *at <= story.looked_at
                }) || (story.rewritten && story.applied_by_lookup());
                prop_assert!(lookalike, "review without a lookalike entry: {verdict:?}");
                prop_assert!(
                    story.rewritten || !story.applied_by_lookup(),
                    "ours was there to credit"
                );
            }
            Verdict::Settle(other) => prop_assert!(false, "unexpected {other:?}"),
            Verdict::Await(_) => prop_assert!(false, "a lookup names no new id: {verdict:?}"),
            Verdict::Unchanged => {
                prop_assert!(
                    story.rewritten || !story.applied_by_lookup(),
                    "a lookup that shows it must credit it"
                );
            }
        }
    }
}

proptest! {
    /// Several instances judge the same refund in any order (each reads
    /// the store's clock, then looks the payment up), then its own answer
    /// may arrive late. Verdicts move only as `may_become` allows. At the
    /// end: credited exactly when it applied; if it applied, no instance
    /// ever declared it not applied; and its own success answer always
    /// wins.
    #[test]
    fn instances_judging_in_any_order_agree(
        story in story(),
        looks in prop::collection::vec((0..300_000i64, 0..100_000i64), 1..6),
        answer_arrives in prop::bool::ANY,
    ) {
        let mut refund = pending(story.base.iter().sum(), story.ours);
        let mut ever_not_applied = false;
        for (looked_at, lead) in looks {
            let story = Story { looked_at, answered: false, ..story.clone() };
            let snapshot = story.snapshot();
            let now = BEGAN + (looked_at - lead).max(0);
            let context = Context { now_ms: Some(now), in_flight: IN_FLIGHT, claimed: &[], journal: &[] };
            let evidence = Evidence::Lookup { payment: Some(&snapshot), answered: false };
            if let Verdict::Settle(state) = decide(&refund, evidence, context) {
                prop_assert!(refund.state.may_become(&state));
                ever_not_applied |= matches!(&state, RefundState::Failed(f) if f.kind == FailureKind::NotApplied);
                refund.state = state;
            }
        }
        let applied = story.applied_at.is_some();
        prop_assert!(!(applied && ever_not_applied), "an instance declared an applied refund not applied");
        if answer_arrives && applied {
            let after = Story { looked_at: i64::MAX / 4, answered: false, ..story.clone() }.snapshot();
            let context = Context { now_ms: None, in_flight: IN_FLIGHT, claimed: &[], journal: &[] };
            if let Verdict::Settle(state) = decide(&refund, Evidence::Applied(&after), context) {
                prop_assert!(refund.state.may_become(&state));
                refund.state = state;
            }
        }
        let credited = matches!(refund.state, RefundState::Succeeded { .. });
        if credited {
            prop_assert!(applied, "credited without applying");
        }
        if answer_arrives && applied {
            // Unless an operator already holds it for review.
            prop_assert!(credited || refund.status() == RefundStatus::NeedsReview, "{:?}", refund.state);
        }
    }
}

/// The reason a refund's cancel carries: it names the refund.
const NAMED: &str = "size exchange (rf_test)";

/// A pending refund whose reason names it, accepted under `id` if given.
fn accepted(base: i64, amount: i64, id: Option<&str>) -> Refund {
    let mut refund = refund(
        base,
        amount,
        RefundState::Pending {
            cancellation_id: id.map(str::to_owned),
        },
    );
    refund.reason = Some(NAMED.to_owned());
    refund
}

/// `payment` with these cancellations still being processed.
fn with_requested(mut payment: Payment, requested: &[(i64, &str, Option<&str>)]) -> Payment {
    payment.requested_cancels = requested
        .iter()
        .map(|(amount, reason, id)| CancelEntry {
            pg_tid: None,
            amount: Amount::from_minor(*amount),
            cancelled_at: BEGAN / 1000,
            reason: Some((*reason).to_owned()),
            cancellation_id: id.map(str::to_owned),
            receipt_url: None,
        })
        .collect();
    payment
}

fn hours_later() -> Context<'static> {
    at(Duration::from_secs(6 * 3600))
}

#[test]
fn its_cancellation_id_credits_it_wherever_the_entry_sits() {
    // The gateway's entry has another reason and sits first, before the
    // entries its base counted: the id still names it.
    let mut after = payment(
        10_000,
        &[
            (2_000, "rewritten by the PG", BEGAN + 1_000),
            (1_000, "earlier", BEGAN + 2_000),
        ],
    );
    after.cancel_history[0].cancellation_id = Some("c-async".into());
    let verdict = decide(
        &accepted(1_000, 2_000, Some("c-async")),
        lookup(&after),
        hours_later(),
    );
    assert_eq!(verdict, succeeded_with("c-async"));
}

#[test]
fn a_requested_cancellation_keeps_it_pending_whatever_its_age() {
    let base = after_base(&[]);
    // By its id, whatever the entry's reason and amount say.
    let by_id = with_requested(base.clone(), &[(2_000, "other text", Some("c-async"))]);
    // With no id known: by its amount and the reason that names it.
    let by_reason = with_requested(base.clone(), &[(2_000, NAMED, Some("c-x"))]);
    for (refund, payment) in [
        (accepted(1_000, 2_000, Some("c-async")), &by_id),
        (accepted(1_000, 2_000, None), &by_reason),
    ] {
        for context in [young(), old(), hours_later()] {
            assert_eq!(
                decide(&refund, lookup(payment), context),
                Verdict::Unchanged
            );
        }
    }
    // One that names it under another amount keeps it pending too (it is
    // its own, whatever the PG made of it).
    let named_other_amount = with_requested(base.clone(), &[(500, NAMED, None)]);
    let verdict = decide(
        &accepted(1_000, 2_000, None),
        lookup(&named_other_amount),
        old(),
    );
    assert_eq!(verdict, Verdict::Unchanged);
    // One of its amount that does not name it may be it under a reason the
    // PG rewrote: nothing is proven while it is in progress, whatever the
    // age (judged not applied, a new refund could go out beside it).
    let lookalike = with_requested(base.clone(), &[(2_000, "console", None)]);
    for context in [old(), hours_later()] {
        let verdict = decide(&accepted(1_000, 2_000, None), lookup(&lookalike), context);
        assert_eq!(verdict, Verdict::Unchanged);
    }
    // One of another amount that does not name it proves nothing of it:
    // past its bound, with no entry of its own, it never applied.
    let other = with_requested(base, &[(500, "console", None)]);
    let verdict = decide(&accepted(1_000, 2_000, None), lookup(&other), old());
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
}

#[test]
fn a_known_cancellation_is_not_applied_only_when_reported_failed() {
    let unchanged = after_base(&[]);
    let refund = accepted(1_000, 2_000, Some("c-async"));
    // Listed nowhere (a lagging replica, or a gateway that lost it): never
    // "it changed nothing"; past its bound and the listing lag, review.
    let lag = IN_FLIGHT + super::LISTING_LAG;
    for context in [young(), old(), at(lag - Duration::from_millis(1))] {
        assert_eq!(
            decide(&refund, lookup(&unchanged), context),
            Verdict::Unchanged
        );
    }
    for context in [at(lag), hours_later()] {
        let verdict = decide(&refund, lookup(&unchanged), context);
        assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
    }
    // Without the store's clock (a webhook): nothing.
    let no_clock = Context {
        now_ms: None,
        ..hours_later()
    };
    assert_eq!(
        decide(&refund, lookup(&unchanged), no_clock),
        Verdict::Unchanged
    );
    // Reported failed under its id: it moved no money, at any age.
    let mut failed = unchanged.clone();
    failed.failed_cancels =
        with_requested(payment(0, &[]), &[(2_000, NAMED, Some("c-async"))]).requested_cancels;
    for context in [young(), hours_later()] {
        let verdict = decide(&refund, lookup(&failed), context);
        assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    }
    // Another cancellation reported failed says nothing of it.
    let mut others_failed = unchanged.clone();
    others_failed.failed_cancels =
        with_requested(payment(0, &[]), &[(2_000, NAMED, Some("c-other"))]).requested_cancels;
    assert_eq!(
        decide(&refund, lookup(&others_failed), old()),
        Verdict::Unchanged
    );
    // A history that does not add up goes to review past its bound.
    let mut broken = unchanged.clone();
    broken.cancel_amount = Amount::from_minor(4_000);
    let verdict = decide(&refund, lookup(&broken), hours_later());
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
}

#[test]
fn a_success_answer_under_an_id_is_credited_by_that_id_alone() {
    let refund = accepted(1_000, 2_000, None);
    let answer = |after| Evidence::AppliedUnder {
        after,
        cancellation_id: "c-1",
    };
    // Listed: credited by it, wherever it sits.
    let mut listed = after_base(&[(2_000, "rewritten")]);
    listed.cancel_history[1].cancellation_id = Some("c-1".into());
    assert_eq!(
        decide(&refund, answer(&listed), young()),
        succeeded_with("c-1")
    );
    // Not listed yet (a lagging read), even beside a console refund of the
    // same amount: pending under its id, never credited by another entry.
    for after in [after_base(&[]), after_base(&[(2_000, "console")])] {
        let evidence = Evidence::AppliedUnder {
            after: &after,
            cancellation_id: "c-1",
        };
        assert_eq!(
            decide(&refund, evidence, young()),
            Verdict::Await("c-1".into())
        );
    }
    // Listed as failed, against its own success answer: review.
    let mut contradicted = after_base(&[]);
    contradicted.failed_cancels =
        with_requested(payment(0, &[]), &[(2_000, NAMED, Some("c-1"))]).requested_cancels;
    let verdict = decide(&refund, answer(&contradicted), young());
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
    // Accepted, not finished: pending under its id.
    assert_eq!(
        decide(
            &refund,
            Evidence::Accepted {
                cancellation_id: "c-9"
            },
            young()
        ),
        Verdict::Await("c-9".into())
    );
}

#[test]
fn an_entry_naming_it_with_another_amount_is_never_not_applied() {
    let named = after_base(&[(9_000, NAMED)]);
    let refund = accepted(1_000, 2_000, None);
    let verdict = decide(&refund, lookup(&named), old());
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
}

#[test]
fn a_refusal_while_an_earlier_attempt_is_in_flight_decides_nothing() {
    let in_flight = with_requested(after_base(&[]), &[(2_000, NAMED, Some("c-async"))]);
    let verdict = decide(
        &accepted(1_000, 2_000, None),
        Evidence::Rejected {
            code: Some("CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT"),
            message: "too much",
            after: Some(&in_flight),
        },
        young(),
    );
    assert_eq!(verdict, Verdict::Unchanged);
}

#[test]
fn no_rerun_while_a_cancellation_of_its_amount_is_in_flight() {
    use super::{rerun_proof, RerunProof};
    let mut not_applied = accepted(1_000, 2_000, None);
    not_applied.state = RefundState::Failed(Failure::new(FailureKind::NotApplied, "x"));
    // Whoever it names: it may yet apply.
    for reason in [NAMED, "console"] {
        let in_flight = with_requested(after_base(&[]), &[(2_000, reason, None)]);
        assert_eq!(
            rerun_proof(&not_applied, &in_flight, others(&[])),
            RerunProof::NotYet
        );
    }
    let other_amount = with_requested(after_base(&[]), &[(700, "console", None)]);
    assert_eq!(
        rerun_proof(&not_applied, &other_amount, others(&[])),
        RerunProof::NothingMoved
    );
}

proptest! {
    /// An asynchronous cancel of ours sits `REQUESTED` until it settles,
    /// however long that takes, then succeeds or fails (and vanishes from
    /// what counts). Looked up at any time, with or without its id known,
    /// among console refunds of other amounts: it is credited only once it
    /// succeeded, declared not applied only once it failed, and never run
    /// again while it is in flight.
    #[test]
    fn an_asynchronous_cancel_is_judged_only_once_it_settles(
        settles_at in 0..50 * 100_000i64,
        succeeds in prop::bool::ANY,
        looked_at in 0..60 * 100_000i64,
        id_known in prop::bool::ANY,
        console in prop::collection::vec((0..60 * 100_000i64, 1..1_999i64), 0..3),
    ) {
        let ours = 2_000;
        let id = id_known.then_some("c-async");
        let refund = accepted(1_000, ours, id);
        let mut history = vec![(1_000, "earlier", BEGAN - 86_400_000)];
        history.extend(
            console
                .iter()
                .filter(|(at, _)| *at <= looked_at)
                .map(|(at, amount)| (*amount, "console", BEGAN + at)),
        );
        let settled = looked_at >= settles_at;
        if settled && succeeds {
            history.push((ours, NAMED, BEGAN + settles_at));
        }
        history.sort_by_key(|(_, _, at)| *at);
        let mut snapshot = payment(1_000_000, &history);
        if let Some(entry) = snapshot.cancel_history.iter_mut().find(|e| e.amount.minor() == ours) {
            entry.cancellation_id = Some("c-async".into());
        }
        if !settled {
            snapshot = with_requested(snapshot, &[(ours, NAMED, Some("c-async"))]);
        } else if !succeeds {
            // V2 lists a failed cancellation as such.
            snapshot.failed_cancels = with_requested(payment(0, &[]), &[(ours, NAMED, Some("c-async"))])
                .requested_cancels;
        }
        let context = Context { now_ms: Some(BEGAN + looked_at), in_flight: IN_FLIGHT, claimed: &[], journal: &[] };
        let verdict = decide(&refund, lookup(&snapshot), context);
        match &verdict {
            Verdict::Settle(RefundState::Succeeded { cancellation_id }) => {
                prop_assert!(settled && succeeds);
                prop_assert_eq!(cancellation_id.as_deref(), Some("c-async"));
            }
            Verdict::Settle(RefundState::Failed(f)) => {
                prop_assert_eq!(f.kind, FailureKind::NotApplied);
                prop_assert!(settled && !succeeds, "judged not applied while in flight or applied");
            }
            Verdict::Settle(other) => prop_assert!(false, "unexpected {other:?}"),
            Verdict::Await(_) => prop_assert!(false, "a lookup names no new id: {verdict:?}"),
            Verdict::Unchanged => prop_assert!(!(settled && succeeds), "a success must credit it"),
        }
        let mut rerun = refund.clone();
        rerun.state = RefundState::Failed(Failure::new(FailureKind::NotApplied, "x"));
        if !settled {
            prop_assert_eq!(super::rerun_proof(&rerun, &snapshot, others(&[])), super::RerunProof::NotYet);
        }
    }
}

#[test]
fn a_requested_cancellation_of_its_amount_that_does_not_name_it_proves_nothing() {
    // The refund got no answer (no id known); PortOne lists a cancellation
    // of exactly its amount still being processed, under a reason the PG
    // rewrote. As with a completed entry of its amount that does not name
    // it, neither "applied" nor "changed nothing" is proven: it must not be
    // judged not applied (the payment would take a new refund beside it).
    let in_flight = with_requested(
        after_base(&[]),
        &[(2_000, "rewritten by the PG", Some("c-x"))],
    );
    let refund = accepted(1_000, 2_000, None);
    for evidence in [
        lookup(&in_flight),
        Evidence::Lookup {
            payment: Some(&in_flight),
            answered: true,
        },
    ] {
        let verdict = decide(&refund, evidence, hours_later());
        assert_ne!(
            failure_kind(&verdict),
            Some(FailureKind::NotApplied),
            "{evidence:?}"
        );
    }
}

#[test]
fn its_named_entry_is_credited_when_the_gateway_lists_the_same_second_newest_first() {
    // Refund A (1,000) and this refund (1,000) applied within the same
    // second; the gateway lists its cancellations newest first. Entry
    // cxl-1 is A's (claimed); cxl-0, with this refund's reason, is its own.
    let after = payment(
        10_000,
        &[
            (1_000, NAMED, BEGAN + 1_000),
            (1_000, "earlier (rf_a)", BEGAN + 1_000),
        ],
    );
    let claimed = ["cxl-1"];
    let context = Context {
        claimed: &claimed,
        ..old()
    };
    // Judged not applied, a retry of it would be proven free to run again.
    let mut not_applied = accepted(1_000, 1_000, None);
    not_applied.state = RefundState::Failed(Failure::new(FailureKind::NotApplied, "x"));
    assert_ne!(
        super::rerun_proof(&not_applied, &after, others(&claimed)),
        super::RerunProof::NothingMoved,
        "a rerun would refund it a second time"
    );
    let verdict = decide(&accepted(1_000, 1_000, None), lookup(&after), context);
    assert_eq!(verdict, succeeded_with("cxl-0"));
}

#[test]
fn another_refunds_reason_that_mentions_its_id_does_not_credit_it() {
    // This refund (rf_test, 2,000) was judged not applied. The client then
    // asked for a new refund of 2,000 with the reason "retry of rf_test";
    // the workflow sent it as "retry of rf_test (rf_other)". That entry is
    // rf_other's (its reason ends with rf_other's id), not this refund's:
    // crediting it here turns a refund that moved nothing into succeeded
    // and leaves rf_other without its entry (judged not applied, its key
    // runs it again: the customer is refunded twice).
    let mut not_applied = accepted(1_000, 2_000, None);
    not_applied.state = RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx"));
    let other = after_base(&[(2_000, "retry of rf_test (rf_other)")]);
    let verdict = decide(&not_applied, lookup(&other), old());
    assert_eq!(
        verdict,
        Verdict::Unchanged,
        "credited by another refund's entry"
    );
    // The same entry is the other refund's own: pending, no answer, it is
    // credited by it.
    let mut rf_other = accepted(1_000, 2_000, None);
    rf_other.id = RefundId::from_stored("rf_other");
    rf_other.reason = Some("retry of rf_test (rf_other)".into());
    assert_eq!(
        decide(&rf_other, lookup(&other), old()),
        succeeded_with("cxl-1")
    );
}

#[test]
fn a_cancellation_under_its_id_of_another_amount_goes_to_review() {
    // PortOne reports our cancellation c-1 SUCCEEDED, but for 9,000 where
    // the refund asked for 2,000 (as the V1 rule says for its own answer:
    // gateway numbers no refund accounts for go to review, not succeeded).
    let mut after = after_base(&[(9_000, NAMED)]);
    after.cancel_history[1].cancellation_id = Some("c-1".into());
    let answer = Evidence::AppliedUnder {
        after: &after,
        cancellation_id: "c-1",
    };
    let verdict = decide(&accepted(1_000, 2_000, None), answer, young());
    assert_eq!(
        status(&verdict),
        Some(RefundStatus::NeedsReview),
        "its own answer: {verdict:?}"
    );
    // The same entry seen by a lookup of a refund accepted under c-1.
    let verdict = decide(&accepted(1_000, 2_000, Some("c-1")), lookup(&after), old());
    assert_eq!(
        status(&verdict),
        Some(RefundStatus::NeedsReview),
        "a lookup: {verdict:?}"
    );
}

#[test]
fn an_entry_naming_another_refund_is_no_lookalike_of_a_rerun() {
    use super::{rerun_proof, RerunProof};
    // rf_test (2,000) was judged not applied. The client made a new refund
    // rf_other of 2,000 (its answer lost: pending, not yet credited), then
    // retried rf_test under its key. The entry of 2,000 names rf_other: a
    // PG that rewrote rf_test's reason could not have put rf_other's id in
    // it, so it is no lookalike of rf_test. The retry may answer "in
    // progress" (rf_other is pending), but it must not put rf_test up for
    // review and hold the payment.
    let mut not_applied = accepted(1_000, 2_000, None);
    not_applied.state = RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx"));
    let others = after_base(&[(2_000, "test (rf_other)")]);
    let journal = super::Others {
        claimed: &[],
        journal: &["rf_other", "rf_test"],
    };
    assert_ne!(
        rerun_proof(&not_applied, &others, journal),
        RerunProof::Ambiguous
    );
}

#[test]
fn in_progress_cancellations_name_a_refund_only_in_its_sent_form() {
    let base = after_base(&[]);
    // A cancellation in progress whose reason merely mentions this refund's
    // id (another refund's "retry of rf_test", sent as "retry of rf_test
    // (rf_other)") does not keep it pending as its own; of another amount,
    // it is no lookalike either: past its bound, it never applied.
    let mentions = with_requested(base.clone(), &[(500, "retry of rf_test (rf_other)", None)]);
    let verdict = decide(&accepted(1_000, 2_000, None), lookup(&mentions), old());
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    // Its own reason, trimmed, still does.
    let own = with_requested(base.clone(), &[(500, "  size exchange (rf_test) ", None)]);
    let verdict = decide(&accepted(1_000, 2_000, None), lookup(&own), old());
    assert_eq!(verdict, Verdict::Unchanged);
    // One of its amount naming another refund of the journal is that
    // refund's, not a lookalike of this one: it proves nothing of this one.
    let anothers = with_requested(base.clone(), &[(2_000, "test (rf_other)", None)]);
    let journal = ["rf_test", "rf_other"];
    let with_journal = Context {
        journal: &journal,
        ..old()
    };
    let verdict = decide(
        &accepted(1_000, 2_000, None),
        lookup(&anothers),
        with_journal,
    );
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    // Without knowing rf_other is a refund of the payment, it may be ours
    // under a reason the PG rewrote: nothing is proven.
    let verdict = decide(&accepted(1_000, 2_000, None), lookup(&anothers), old());
    assert_eq!(verdict, Verdict::Unchanged);
}

#[test]
fn an_entry_naming_another_journal_refund_is_never_this_ones() {
    // Completed: an entry of its amount naming rf_other is no lookalike of
    // this refund (no review), and never credits it.
    let anothers = after_base(&[(2_000, "test (rf_other)")]);
    let journal = ["rf_test", "rf_other"];
    let with_journal = Context {
        journal: &journal,
        ..old()
    };
    let verdict = decide(
        &accepted(1_000, 2_000, None),
        lookup(&anothers),
        with_journal,
    );
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    // Without the journal it is an unexplained lookalike, as before.
    let verdict = decide(&accepted(1_000, 2_000, None), lookup(&anothers), old());
    assert_eq!(status(&verdict), Some(RefundStatus::NeedsReview));
}

#[test]
fn a_refusal_beside_its_cancellation_of_another_amount_goes_to_review() {
    let mut after = after_base(&[(9_000, NAMED)]);
    after.cancel_history[1].cancellation_id = Some("c-1".into());
    let refusal = Evidence::Rejected {
        code: Some("CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN"),
        message: "changed",
        after: Some(&after),
    };
    let verdict = decide(&accepted(1_000, 2_000, Some("c-1")), refusal, young());
    assert_eq!(
        status(&verdict),
        Some(RefundStatus::NeedsReview),
        "{verdict:?}"
    );
}

#[test]
fn a_cancellation_in_progress_may_be_ours_only_by_id_reason_or_open_amount() {
    use super::may_be_ours;
    let in_progress = |amount: i64, reason: &str, id: &str| CancelEntry {
        pg_tid: None,
        amount: Amount::from_minor(amount),
        cancelled_at: 0,
        reason: Some(reason.to_owned()),
        cancellation_id: Some(id.to_owned()),
        receipt_url: None,
    };
    let held = refund(
        0,
        4_000,
        RefundState::NeedsReview(crate::refund::Review::new("unexplained")),
    );
    let mut succeeded = accepted(0, 1_000, None);
    succeeded.id = RefundId::from_stored("rf_done");
    succeeded.reason = Some("refund rf_done".into());
    succeeded.state = RefundState::Succeeded {
        cancellation_id: Some("c-done".into()),
    };
    let journal = [held, succeeded];
    // The held refund's amount: it may be the held one under a rewritten reason.
    assert!(may_be_ours(&journal, &in_progress(4_000, "console", "x-1")));
    // A journal refund's cancellation id, or a reason sent for one.
    assert!(may_be_ours(
        &journal,
        &in_progress(700, "console", "c-done")
    ));
    assert!(may_be_ours(
        &journal,
        &in_progress(700, "refund rf_done", "x-2")
    ));
    assert!(may_be_ours(
        &journal,
        &in_progress(700, "x (rf_test)", "x-3")
    ));
    // A console refund of another amount, reason and id: none of ours.
    assert!(!may_be_ours(
        &journal,
        &in_progress(700, "고객센터 환불 (rf_test 문의)", "console-1")
    ));
    // A succeeded refund's amount is no reason to wait.
    assert!(!may_be_ours(
        &journal,
        &in_progress(1_000, "console", "x-4")
    ));
}

#[test]
fn its_sent_form_under_a_pg_tag_is_its_own_for_it_too() {
    // rf_test (2,000) was sent "size exchange (rf_test)" and judged not
    // applied; the PG applied it after all and lists it under a tag of its
    // own in front: "[PG] size exchange (rf_test)". The reason still ends
    // with rf_test's id, the form only the workflow sends for rf_test.
    let tagged = "[PG] size exchange (rf_test)";
    let after = after_base(&[(2_000, tagged)]);
    let journal = ["rf_test", "rf_other"];
    let with_journal = Context {
        journal: &journal,
        ..old()
    };
    // For every other refund of the payment the entry is rf_test's: a
    // pending rf_other of the same amount is judged not applied over it.
    let mut other = accepted(1_000, 2_000, None);
    other.id = RefundId::from_stored("rf_other");
    other.reason = Some("gift (rf_other)".into());
    let verdict = decide(&other, lookup(&after), with_journal);
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
    // For rf_test itself it must then be evidence too (late evidence wins:
    // credited; at the very least an operator must look). Left unchanged,
    // rf_test stays failed while its money moved, and no other refund
    // ever sees the entry either.
    let mut not_applied = accepted(1_000, 2_000, None);
    not_applied.state = RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx"));
    let verdict = decide(&not_applied, lookup(&after), with_journal);
    assert!(
        matches!(
            status(&verdict),
            Some(RefundStatus::Succeeded | RefundStatus::NeedsReview)
        ),
        "{verdict:?}"
    );
}

#[test]
fn a_not_applied_refund_shown_applied_for_another_amount_goes_to_review() {
    use super::{rerun_proof, RerunProof};
    // rf_test (2,000) was judged not applied; the PG applied it after all,
    // for 3,000 (a sum no refund asked for), under the reason sent for it.
    let after = after_base(&[(3_000, NAMED)]);
    let journal = ["rf_test", "rf_other"];
    // The entry is rf_test's for every other refund: a retry of rf_other
    // (3,000, not applied) runs again over it, so rf_test's own verdict is
    // the only place the unexplained 3,000 can surface.
    let mut other = refund(
        1_000,
        3_000,
        RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx")),
    );
    other.id = RefundId::from_stored("rf_other");
    other.reason = Some("gift (rf_other)".into());
    let theirs = Others {
        claimed: &[],
        journal: &journal,
    };
    assert_eq!(
        rerun_proof(&other, &after, theirs),
        RerunProof::NothingMoved
    );
    // The gateway moved money under rf_test's name for another amount: as
    // for its own answer of another amount, an operator must look.
    let mut not_applied = accepted(1_000, 2_000, None);
    not_applied.state = RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx"));
    for now_ms in [None, old().now_ms] {
        let context = Context {
            now_ms,
            journal: &journal,
            ..old()
        };
        let verdict = decide(&not_applied, lookup(&after), context);
        assert_eq!(
            status(&verdict),
            Some(RefundStatus::NeedsReview),
            "{verdict:?}"
        );
    }
}

#[test]
fn the_no_reason_sent_form_under_a_pg_tag_is_its_own_too() {
    // rf_test (2,000) had no client reason, so it was sent as
    // "refund rf_test", and was judged not applied; the PG applied it after
    // all and lists it under a tag of its own in front, as it does for a
    // reason with a client's text: "[PG] refund rf_test". The reason still
    // ends with rf_test's id, in a form only the workflow sends for it.
    let tagged = "[PG] refund rf_test";
    let after = after_base(&[(2_000, tagged)]);
    let journal = ["rf_test", "rf_other"];
    let with_journal = Context {
        journal: &journal,
        ..old()
    };
    let mut not_applied = refund(
        1_000,
        2_000,
        RefundState::Failed(Failure::new(FailureKind::NotApplied, "5xx")),
    );
    not_applied.reason = Some("refund rf_test".into());
    // Late evidence wins: credited (at the very least, an operator looks).
    let verdict = decide(&not_applied, lookup(&after), with_journal);
    assert!(
        matches!(
            status(&verdict),
            Some(RefundStatus::Succeeded | RefundStatus::NeedsReview)
        ),
        "{verdict:?}"
    );
    // And for every other refund the entry is rf_test's, as the tagged
    // form with a client's text is: a pending rf_other of the same amount
    // is judged not applied over it, not held for review.
    let mut other = accepted(1_000, 2_000, None);
    other.id = RefundId::from_stored("rf_other");
    other.reason = Some("gift (rf_other)".into());
    let verdict = decide(&other, lookup(&after), with_journal);
    assert_eq!(failure_kind(&verdict), Some(FailureKind::NotApplied));
}

#[test]
fn the_sent_forms_tolerate_a_pg_tag_in_front_and_nothing_else() {
    let id = "rf_0123456789abcdef0123456789abcdef";
    for named in [
        format!("refund {id}"),
        format!("  refund {id} "),
        format!("[PG] refund {id}"),
        format!("[PG]refund {id}"),
        format!("size exchange ({id})"),
        format!("[PG] size exchange ({id})"),
    ] {
        assert!(in_sent_form(&named, id), "{named:?} names the refund");
    }
    for other in [
        format!("xrefund {id}"),
        format!("refund {id} (rf_other)"),
        format!("retry of {id} (rf_other)"),
        format!("refund {id}x"),
        format!("({id}) later"),
        format!("refund  {id}"),
        id.to_owned(),
    ] {
        assert!(
            !in_sent_form(&other, id),
            "{other:?} does not name the refund"
        );
    }
}
