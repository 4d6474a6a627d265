//! The one decision: what the evidence proves about a refund.
//!
//! Every path that settles a refund (the cancel's own answer, sync,
//! webhook, the next refund of the payment, the sweep) describes what it
//! saw as [`Evidence`] and asks [`decide`]; none of them reasons about
//! totals on its own. The function is pure: the store's time comes in as a
//! number, so every rule is tested without a network or a sleep.
//!
//! The rules (DESIGN.md, "Reconciliation decides from evidence"):
//! - a refund is credited only by evidence that names it: its own success
//!   answer, or a gateway cancel entry of its amount not credited to another
//!   refund whose reason names the refund, at any position in the history
//!   and any date; for reasons from before they named the refund, one with
//!   its reason, after the entries its base already counted and not dated
//!   before it. Totals alone never credit it;
//! - a reason names a refund only in the form the workflow sends for it
//!   ([`sent_reason`]: the client's reason followed by `(<refund id>)`, or
//!   `refund <refund id>`), trimmed; the text before the id may differ (a
//!   PG that tags or tidies the reason keeps our id last), and one test
//!   decides both "names this refund" and "is another refund's", so a
//!   rewritten entry is never nobody's. A cancel entry in its form but of
//!   another amount sends it to review, pending or settled `not_applied`
//!   (late evidence that money moved under its name). A reason that merely
//!   contains the id does not: a client's "retry of rf_A" is sent for its
//!   own refund B as "retry of rf_A (rf_B)", which names B alone. And an
//!   entry whose reason has the form sent for another refund of the
//!   payment's journal ([`Context::journal`]) is that refund's, credited
//!   yet or not: never evidence for this one, nor a lookalike of it (a PG
//!   rewriting our reason could not put another refund's id in it);
//! - while the refund may still be on the wire (no answer yet, younger than
//!   the in-flight bound on the store's clock) only a crediting entry
//!   settles it;
//! - once it cannot be on the wire, no entry of its amount (and no
//!   cancellation of its amount still in progress) means it never applied
//!   (`failed`, kind `not_applied`: its key may run it again). What
//!   cannot be explained goes to review: history that does not add up, a
//!   payment the gateway forgot, or an unclaimed entry of exactly its amount
//!   that names no refund of the payment (it could be ours with a reason the
//!   PG changed, or someone else's: neither "applied" nor "changed nothing"
//!   is proven);
//! - late evidence wins: a `not_applied` refund that a crediting entry or
//!   its own answer later proves applied becomes `succeeded`. Nothing else
//!   that is settled ever changes;
//! - a gateway cancellation id is the strongest evidence: an entry with the
//!   id a pending refund was accepted under (PortOne V2), or the id its own
//!   success answer reported, credits it at any position in the history
//!   when it cancelled the refund's amount; one of another amount goes to
//!   review (the gateway finished our cancellation for a sum no refund
//!   asked for), as the V1 own answer of another amount does. An entry
//!   whose reason names the refund credits it at any position too (ids are
//!   unique), whatever the order the gateway lists entries of the same
//!   second in;
//! - a refund accepted under an id is proven not applied only by the
//!   gateway reporting that very cancellation failed; a lookup that does not
//!   list it at all (a lagging replica) proves nothing, and once that lasts
//!   past the in-flight bound plus [`LISTING_LAG`] an operator must look;
//! - a cancellation the gateway has taken but not finished (V2 `REQUESTED`,
//!   or a status the client does not know) that names the refund (by its
//!   cancellation id, or by a reason naming it) keeps it pending **whatever
//!   its age**: an asynchronous cancel may take hours, and judging it not
//!   applied would let it run again next to the one still in progress (a
//!   double refund). One of its amount that names no refund of the payment
//!   (a reason the PG rewrote?) is no proof either way: it stays pending
//!   too. An operator's review waits only for those that may be ours
//!   ([`may_be_ours`]); a console refund in progress of another amount,
//!   reason and id does not hold it up.

use std::time::Duration;

use crate::money::Amount;
use crate::payment::{CancelEntry, Payment};
use crate::refund::{Failure, FailureKind, Refund, RefundId, RefundState, Review};

/// How far a cancel entry's date may precede its journal row and still be
/// its own: the gateway's clock and the store's may disagree. Entries the
/// refund's base already counted are excluded by position, not by date, so
/// this only has to be generous.
pub(crate) const ENTRY_CLOCK_TOLERANCE: Duration = Duration::from_secs(10 * 60);

/// How long past its in-flight bound a refund the gateway accepted under an
/// id may be missing from every list of the gateway's payment (read from a
/// lagging replica) before its absence goes to review. It never proves the
/// refund not applied: only a `FAILED` report of that id does.
pub(crate) const LISTING_LAG: Duration = Duration::from_secs(10 * 60);

/// What a path learned about a refund.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Evidence<'a> {
    /// The cancel call's own success answer: the payment afterwards, the
    /// answer naming no cancellation (i'mport V1).
    Applied(&'a Payment),
    /// The cancel call's own success answer under the gateway's id of the
    /// cancellation (PortOne V2), with the payment read afterwards: the
    /// entry with that id credits it; a read that does not list it yet
    /// keeps the refund pending under the id.
    AppliedUnder {
        after: &'a Payment,
        cancellation_id: &'a str,
    },
    /// The gateway took the cancel under this id and has not finished it.
    Accepted { cancellation_id: &'a str },
    /// The gateway refused the cancel. `after` is the payment looked up
    /// right after, when that lookup worked.
    Rejected {
        code: Option<&'a str>,
        message: &'a str,
        after: Option<&'a Payment>,
    },
    /// The cancel never reached the gateway.
    NotSent { message: &'a str },
    /// The cancel got no answer (timeout after sending, connection reset).
    NoAnswer,
    /// The gateway's payment, looked up (`None`: the gateway does not know
    /// it). `answered` is true when the cancel call itself was answered
    /// (a 5xx, an unreadable body) just before: the gateway is no longer
    /// working on it, so it is not on the wire whatever its age.
    Lookup {
        payment: Option<&'a Payment>,
        answered: bool,
    },
}

/// What the decision needs besides the refund and the evidence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// Now on the store's clock, unix milliseconds; `None` where the
    /// evidence is the call's own answer (an answered call is not on the
    /// wire). A lookup without it treats the refund as possibly on the wire.
    pub(crate) now_ms: Option<i64>,
    /// How long after its journal row a refund may still be on the wire.
    pub(crate) in_flight: Duration,
    /// Cancel entries already credited to other refunds of the payment.
    pub(crate) claimed: &'a [&'a str],
    /// The ids of the payment's journal refunds (this one's may be among
    /// them): an entry whose reason names one of them is that refund's and
    /// never evidence for another, credited yet or not. Empty where the
    /// evidence is the call's own answer (its checksum kept every other
    /// refund's entry from coming after its base).
    pub(crate) journal: &'a [&'a str],
}

/// What to do with the refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing is proven (yet): leave it as it is.
    Unchanged,
    /// Move it to this state.
    Settle(RefundState),
    /// Keep it pending, under this gateway id of its cancellation (to be
    /// recorded on the journal row).
    Await(String),
}

/// The verdict on `refund` given `evidence`.
pub(crate) fn decide(refund: &Refund, evidence: Evidence<'_>, context: Context<'_>) -> Verdict {
    let pending = matches!(refund.state, RefundState::Pending { .. });
    let not_applied = matches!(
        &refund.state,
        RefundState::Failed(Failure {
            kind: FailureKind::NotApplied,
            ..
        })
    );
    if !pending && !not_applied {
        return Verdict::Unchanged;
    }
    let others = Others {
        claimed: context.claimed,
        journal: context.journal,
    };
    match evidence {
        Evidence::Applied(after) => match credit_own_answer(refund, after, others) {
            Ok(cancellation_id) => succeeded(cancellation_id),
            Err(why) if pending => review(format!("the gateway confirmed the refund, but {why}")),
            // A late answer that cannot be matched proves nothing more.
            Err(_) => Verdict::Unchanged,
        },
        Evidence::AppliedUnder {
            after,
            cancellation_id,
        } => {
            let listed = |list: &[CancelEntry]| {
                after.imp_uid == refund.imp_uid
                    && list
                        .iter()
                        .any(|e| e.cancellation_id.as_deref() == Some(cancellation_id))
            };
            let succeeded_under_id = (after.imp_uid == refund.imp_uid)
                .then(|| under_id(refund, &after.cancel_history, cancellation_id))
                .flatten();
            if let Some(of_amount) = succeeded_under_id {
                match of_amount {
                    Ok(()) => succeeded(Some(cancellation_id.to_owned())),
                    Err(_) if !pending => Verdict::Unchanged,
                    Err(why) => review(why),
                }
            } else if !pending {
                Verdict::Unchanged
            } else if listed(&after.failed_cancels) {
                review(format!(
                    "the gateway confirmed the refund as cancellation {cancellation_id}, \
                     but its payment lists that cancellation as failed"
                ))
            } else {
                // A read that does not show it yet (a lagging replica): the
                // answer named it, so it is pending under that id.
                Verdict::Await(cancellation_id.to_owned())
            }
        }
        Evidence::Accepted { cancellation_id } if pending => {
            Verdict::Await(cancellation_id.to_owned())
        }
        Evidence::Rejected {
            code,
            message,
            after,
        } if pending => {
            match after.map(|after| attribute(refund, after, others)) {
                // An entry names this refund: an earlier attempt of it (run
                // again after it was judged not applied) did apply, and this
                // attempt's checksum was refused because of it.
                Some(Attribution::Ours(cancellation_id)) => succeeded(cancellation_id),
                // An earlier attempt of it is still being processed: this
                // refusal does not say how that one ends.
                Some(Attribution::InFlight) => Verdict::Unchanged,
                // The cancellation it was taken under moved another amount.
                Some(Attribution::Mismatched(why)) => review(why),
                _ => Verdict::Settle(RefundState::Failed(Failure {
                    kind: FailureKind::Rejected,
                    code: code.map(str::to_owned),
                    message: message.to_owned(),
                })),
            }
        }
        Evidence::NotSent { message } if pending => Verdict::Settle(RefundState::Failed(
            Failure::new(FailureKind::NotSent, message),
        )),
        Evidence::Lookup { payment, answered } => {
            let on_wire = pending
                && !answered
                && context
                    .now_ms
                    .is_none_or(|now| may_be_on_the_wire(refund, now, context.in_flight));
            let Some(payment) = payment else {
                return if pending && !on_wire {
                    review("the gateway no longer knows this payment".to_owned())
                } else {
                    Verdict::Unchanged
                };
            };
            match attribute(refund, payment, others) {
                Attribution::Ours(cancellation_id) => succeeded(cancellation_id),
                // The gateway finished a cancellation under the refund's id
                // or its sent reason, for another amount: whatever is on the
                // wire, and also for a refund settled `not_applied` (late
                // evidence that money moved under its name).
                Attribution::Mismatched(why) => review(why),
                // A later look can still credit it: decide nothing now.
                Attribution::Stale => Verdict::Unchanged,
                // Still being processed, however long ago it began; or a
                // cancellation of its amount in progress that may be it.
                Attribution::InFlight | Attribution::MaybeInFlight => Verdict::Unchanged,
                // The gateway reports the very cancellation it was taken
                // under as failed: it moved no money.
                Attribution::Failed if pending => {
                    Verdict::Settle(RefundState::Failed(Failure::new(
                        FailureKind::NotApplied,
                        "the gateway reports the refund's cancellation as failed",
                    )))
                }
                Attribution::Unlisted(id) if pending => {
                    let lag = context.in_flight.saturating_add(LISTING_LAG);
                    let lagged_too_long = context
                        .now_ms
                        .is_some_and(|now| !may_be_on_the_wire(refund, now, lag));
                    if lagged_too_long {
                        review(format!(
                            "the gateway took this refund as cancellation {id} but its \
                             payment no longer lists that cancellation"
                        ))
                    } else {
                        Verdict::Unchanged
                    }
                }
                _ if !pending || on_wire => Verdict::Unchanged,
                Attribution::Absent => Verdict::Settle(RefundState::Failed(Failure::new(
                    FailureKind::NotApplied,
                    "the gateway shows no cancel of this refund",
                ))),
                Attribution::Unexplained(why) => review(why),
                // Settled already (matched above while pending).
                Attribution::Failed | Attribution::Unlisted(_) => Verdict::Unchanged,
            }
        }
        Evidence::Rejected { .. }
        | Evidence::NotSent { .. }
        | Evidence::NoAnswer
        | Evidence::Accepted { .. } => Verdict::Unchanged,
    }
}

fn succeeded(cancellation_id: Option<String>) -> Verdict {
    Verdict::Settle(RefundState::Succeeded { cancellation_id })
}

fn review(message: String) -> Verdict {
    Verdict::Settle(RefundState::NeedsReview(Review::new(message)))
}

/// True while `refund`, whose current attempt began at
/// `attempt_started_at_ms` on the store's clock, may still be on the wire
/// at store time `now_ms`.
pub(crate) fn may_be_on_the_wire(refund: &Refund, now_ms: i64, in_flight: Duration) -> bool {
    let bound = i64::try_from(in_flight.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(refund.attempt_started_at_ms) < bound
}

/// What a gateway payment says about one refund.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attribution {
    /// A cancel entry names it (with the entry's id, when it has one).
    Ours(Option<String>),
    /// The history adds up and no entry is its own.
    Absent,
    /// Older than the refund's base, or another attempt of the order:
    /// says nothing about it.
    Stale,
    /// A cancellation the gateway took but has not finished names it.
    InFlight,
    /// No entry is its own, but a cancellation of its amount that does not
    /// name it is still being processed: it may be ours under a reason the
    /// PG rewrote, so nothing is proven while it is.
    MaybeInFlight,
    /// The gateway reports the cancellation it was accepted under failed.
    Failed,
    /// The gateway reports a cancellation that is the refund's (the one it
    /// was accepted under, or one carrying its sent reason) succeeded, for
    /// another amount than the refund's.
    Mismatched(String),
    /// It was accepted under this id, which the gateway lists nowhere (and
    /// no entry names it otherwise).
    Unlisted(String),
    /// The numbers do not add up.
    Unexplained(String),
}

/// The id a cancel entry is credited by.
pub(crate) fn entry_id(entry: &CancelEntry) -> Option<&str> {
    entry.cancellation_id.as_deref().or(entry.pg_tid.as_deref())
}

/// What belongs to the payment's other refunds, so never to this one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Others<'a> {
    /// Cancel entries (by id) credited to other refunds.
    pub(crate) claimed: &'a [&'a str],
    /// The ids of the payment's journal refunds: an entry naming another
    /// of them is that one's.
    pub(crate) journal: &'a [&'a str],
}

impl Others<'_> {
    /// True when `entry` is another refund's: credited to it, or naming it.
    fn is_theirs(&self, refund: &Refund, entry: &CancelEntry) -> bool {
        entry_id(entry).is_some_and(|id| self.claimed.contains(&id))
            || names_another(refund, entry, self.journal)
    }
}

/// The gateway's entries that came after the refund's base, not another
/// refund's; `Err` when the history cannot be read that way.
fn entries_after_base<'p>(
    refund: &Refund,
    payment: &'p Payment,
    others: Others<'_>,
) -> Result<Vec<&'p CancelEntry>, Attribution> {
    if payment.imp_uid != refund.imp_uid || payment.cancel_amount < refund.base_cancel_amount {
        return Err(Attribution::Stale);
    }
    // Oldest first, whatever order the gateway listed them in (a stable
    // sort: entries of the same second keep the gateway's order).
    let mut history: Vec<&CancelEntry> = payment.cancel_history.iter().collect();
    history.sort_by_key(|entry| entry.cancelled_at);
    let total = history
        .iter()
        .try_fold(Amount::ZERO, |sum, entry| sum.checked_add(entry.amount));
    if total != Some(payment.cancel_amount) {
        return Err(Attribution::Unexplained(
            "the gateway's cancel history does not add up to its cancelled total".to_owned(),
        ));
    }
    // The entries that were there when the refund began add up to its
    // base: they are the history's first ones (it is kept oldest first).
    let mut sum = Amount::ZERO;
    let mut first_new = 0;
    while sum < refund.base_cancel_amount {
        match history.get(first_new) {
            Some(entry) => sum = sum.checked_add(entry.amount).unwrap_or(sum),
            None => break,
        }
        first_new += 1;
    }
    if sum != refund.base_cancel_amount {
        return Err(Attribution::Unexplained(
            "no point in the gateway's cancel history matches the total the refund began from"
                .to_owned(),
        ));
    }
    Ok(history[first_new..]
        .iter()
        .copied()
        .filter(|entry| !others.is_theirs(refund, entry))
        .collect())
}

/// What a lookup proves about running a refund judged `not_applied` (or
/// never sent) again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RerunProof {
    /// The history adds up and no entry of the refund's amount came after
    /// its base but other refunds' (credited to them, or naming them): it
    /// may run again.
    NothingMoved,
    /// The lookup is older than the refund's base: ask again later.
    NotYet,
    /// An entry of its amount that names no refund of the payment, or
    /// numbers that do not add up: an operator must look.
    Ambiguous,
}

/// What `payment` proves about `refund` running again (see [`RerunProof`]).
///
/// A cancellation of the refund's amount that the gateway is still
/// processing, whoever it names, is `NotYet`: it may yet apply, and running
/// the refund beside it could refund twice. An entry that names another
/// refund of the payment (`others.journal`) is that refund's, not a
/// lookalike of this one (a PG rewriting our reason could not put another
/// refund's id in it): it proves nothing moved for this one. If that other
/// refund is still pending, the store refuses to re-open this one beside
/// it (at most one pending refund per payment) and the retry is told the
/// refund is in progress.
pub(crate) fn rerun_proof(refund: &Refund, payment: &Payment, others: Others<'_>) -> RerunProof {
    if payment.imp_uid == refund.imp_uid
        && payment
            .requested_cancels
            .iter()
            .any(|entry| entry.amount == refund.amount)
    {
        return RerunProof::NotYet;
    }
    match attribute(refund, payment, others) {
        Attribution::Absent => RerunProof::NothingMoved,
        // (A refund that may run again carries no cancellation id, so the
        // last three do not arise; none would prove anything.)
        Attribution::Stale
        | Attribution::InFlight
        | Attribution::MaybeInFlight
        | Attribution::Failed
        | Attribution::Unlisted(_) => RerunProof::NotYet,
        Attribution::Ours(_) | Attribution::Unexplained(_) | Attribution::Mismatched(_) => {
            RerunProof::Ambiguous
        }
    }
}

/// Whether the entries with `id` in `list` are the refund's: `None` when
/// none has it, `Err` (why, for the review) when it moved another amount.
fn under_id(refund: &Refund, list: &[CancelEntry], id: &str) -> Option<Result<(), String>> {
    let mut listed = list
        .iter()
        .filter(|entry| entry.cancellation_id.as_deref() == Some(id))
        .peekable();
    let first = listed.peek().map(|entry| entry.amount)?;
    if listed.any(|entry| entry.amount == refund.amount) {
        return Some(Ok(()));
    }
    let currency = refund.currency;
    Some(Err(format!(
        "the gateway reports the refund's cancellation {id} succeeded for {}, but the refund \
         asked for {}",
        currency.format_major(first),
        currency.format_major(refund.amount)
    )))
}

/// Whether `payment` shows `refund` applied, by an entry that names it.
fn attribute(refund: &Refund, payment: &Payment, others: Others<'_>) -> Attribution {
    if payment.imp_uid != refund.imp_uid {
        return Attribution::Stale;
    }
    let own_id = match &refund.state {
        RefundState::Pending { cancellation_id } => cancellation_id.as_deref(),
        _ => None,
    };
    // The id the gateway accepted the refund under names it alone: an entry
    // with it is the refund's, wherever it sits in the history (of another
    // amount, an operator must look); in progress it keeps it pending;
    // reported failed, it moved nothing.
    if let Some(id) = own_id {
        let lists = |list: &[CancelEntry]| {
            list.iter()
                .any(|entry| entry.cancellation_id.as_deref() == Some(id))
        };
        match under_id(refund, &payment.cancel_history, id) {
            Some(Ok(())) => return Attribution::Ours(Some(id.to_owned())),
            Some(Err(why)) => return Attribution::Mismatched(why),
            None => {}
        }
        if lists(&payment.requested_cancels) {
            return Attribution::InFlight;
        }
        if lists(&payment.failed_cancels) {
            return Attribution::Failed;
        }
    }
    match attribute_by_entries(refund, payment, others) {
        // Not shown under the id the gateway took it under, nor otherwise:
        // the lookup lags (or the gateway lost it), it did not fail.
        Attribution::Absent | Attribution::MaybeInFlight if own_id.is_some() => {
            Attribution::Unlisted(own_id.unwrap_or_default().to_owned())
        }
        other => other,
    }
}

/// [`attribute`] from the entries alone (by reason, amount and position).
fn attribute_by_entries(refund: &Refund, payment: &Payment, others: Others<'_>) -> Attribution {
    let unclaimed = |entry: &&CancelEntry| !others.is_theirs(refund, entry);
    // An entry whose reason is the one sent for this refund is its own at
    // any position in the history (the gateway may list entries of the same
    // second in any order, or date one oddly): that reason ends with the
    // refund's id, unique to it.
    let mut named = payment
        .cancel_history
        .iter()
        .filter(unclaimed)
        .filter(|entry| names_refund(refund, entry));
    if let Some(first) = named.next() {
        let of_amount = std::iter::once(first)
            .chain(named)
            .find(|entry| entry.amount == refund.amount);
        return match of_amount {
            Some(entry) => Attribution::Ours(entry_id(entry).map(str::to_owned)),
            // Money moved under its name, but not its amount: an operator
            // must look, whatever state the refund is in (one settled
            // `not_applied` included: late evidence that it moved money).
            None => Attribution::Mismatched(
                "the gateway shows a cancel that names this refund, of another amount".to_owned(),
            ),
        };
    }
    if payment
        .requested_cancels
        .iter()
        .any(|entry| names_refund(refund, entry))
    {
        return Attribution::InFlight;
    }
    let later = match entries_after_base(refund, payment, others) {
        Ok(later) => later,
        Err(attribution) => return attribution,
    };
    // A reason that does not name the refund's id (rows from before reasons
    // named the refund) must match and not be dated long before it began.
    let tolerance = i64::try_from(ENTRY_CLOCK_TOLERANCE.as_millis()).unwrap_or(i64::MAX);
    let not_before = refund.attempt_started_at_ms.saturating_sub(tolerance);
    let mut of_amount = later
        .into_iter()
        .filter(|e| e.amount == refund.amount)
        .peekable();
    if of_amount.peek().is_none() {
        // A cancellation of its amount still in progress that names no
        // other refund may be it under a rewritten reason: not proof of
        // absence.
        let lookalike_in_flight = payment
            .requested_cancels
            .iter()
            .filter(unclaimed)
            .any(|entry| entry.amount == refund.amount);
        return if lookalike_in_flight {
            Attribution::MaybeInFlight
        } else {
            Attribution::Absent
        };
    }
    let mut lookalikes = 0;
    for entry in of_amount {
        if same_reason(entry.reason.as_deref(), refund.reason.as_deref())
            && entry.cancelled_at.saturating_mul(1000) >= not_before
        {
            return Attribution::Ours(entry_id(entry).map(str::to_owned));
        }
        lookalikes += 1;
    }
    Attribution::Unexplained(format!(
        "the gateway shows {lookalikes} unclaimed cancel(s) of this refund's amount that do not \
         name it (another reason or date): applied with a changed reason, or made outside"
    ))
}

/// The reason the workflow sends for refund `id`: the client's (validated:
/// trimmed, not blank) followed by the id in parentheses, or `refund <id>`
/// when it gave none. A cancel entry names a refund only by carrying
/// exactly this reason (see [`names_refund`]).
pub(crate) fn sent_reason(id: &RefundId, client: Option<&str>) -> String {
    match client {
        Some(reason) => format!("{reason} ({id})"),
        None => format!("refund {id}"),
    }
}

/// True when `reason`, trimmed, has the form [`sent_reason`] gives refund
/// `id`, with whatever a PG put in front: anything ending in `(<id>)`, or
/// in `refund <id>` where `refund` starts the text or follows a space or a
/// `]` ("[PG] refund <id>"). A reason that
/// merely mentions the id elsewhere ("retry of <id>", sent for another
/// refund as "retry of <id> (<its id>)") does not.
fn in_sent_form(reason: &str, id: &str) -> bool {
    let reason = reason.trim();
    // `refund <id>`, alone or after a PG's tag ("[PG] refund <id>"): the
    // word starts the text or follows a space or a closing bracket.
    let no_reason_form = reason
        .strip_suffix(id)
        .and_then(|r| r.strip_suffix("refund "))
        .is_some_and(|before| {
            before.is_empty() || before.ends_with(|c: char| c.is_whitespace() || c == ']')
        });
    no_reason_form
        || reason
            .strip_suffix(')')
            .and_then(|r| r.strip_suffix(id))
            .is_some_and(|r| r.ends_with('('))
}

/// True when `entry`'s reason names `refund`: the refund's own reason is in
/// the form the workflow sends for it (rows from before reasons named the
/// refund never are) and the entry's reason is in that form too, ending
/// with the refund's id. The text before the id may differ: a PG that tags
/// or normalises the reason ("[PG] size exchange (rf_..)") keeps the id
/// last, and the same test decides that an entry is another refund's
/// ([`names_another`]), so an entry is never nobody's for being rewritten.
fn names_refund(refund: &Refund, entry: &CancelEntry) -> bool {
    match (refund.reason.as_deref(), entry.reason.as_deref()) {
        (Some(ours), Some(theirs)) => {
            let id = refund.id.as_str();
            in_sent_form(ours, id) && in_sent_form(theirs, id)
        }
        _ => false,
    }
}

/// True when `entry`'s reason has the form sent for a refund of `journal`
/// other than `refund`: the entry is that refund's.
fn names_another(refund: &Refund, entry: &CancelEntry, journal: &[&str]) -> bool {
    entry.reason.as_deref().is_some_and(|reason| {
        journal
            .iter()
            .any(|id| *id != refund.id.as_str() && in_sent_form(reason, id))
    })
}

/// True when `cancel`, one the gateway has not finished, could be one of
/// the payment's `refunds` (its own success could still move their
/// money): it carries the cancellation id one was accepted under, its
/// reason has the form sent for one (see [`sent_reason`]),
/// or it is of the amount of one held for review or settled `not_applied`
/// (one of those under a reason the PG rewrote?). Any other is a refund
/// made outside, in progress: it does not hold up an operator's review.
pub(crate) fn may_be_ours(refunds: &[Refund], cancel: &CancelEntry) -> bool {
    refunds.iter().any(|refund| {
        let by_id = cancel.cancellation_id.is_some()
            && cancel.cancellation_id.as_deref() == refund.state.cancellation_id();
        let by_reason = cancel
            .reason
            .as_deref()
            .is_some_and(|reason| in_sent_form(reason, refund.id.as_str()));
        let open = matches!(
            &refund.state,
            RefundState::NeedsReview(_)
                | RefundState::Failed(Failure {
                    kind: FailureKind::NotApplied,
                    ..
                })
        );
        by_id || by_reason || (open && cancel.amount == refund.amount)
    })
}

/// The entry the refund's own success answer created. The answer names
/// the refund; the entry is the one whose reason names it, else the first
/// new one of its amount that is no other refund's (preferring its
/// reason), or none when the gateway keeps no history but the total shows
/// exactly this refund on top of its base.
fn credit_own_answer(
    refund: &Refund,
    after: &Payment,
    others: Others<'_>,
) -> Result<Option<String>, String> {
    if after.imp_uid != refund.imp_uid {
        return Err(format!("for another payment ({})", after.imp_uid));
    }
    let expected = refund.base_cancel_amount.checked_add(refund.amount);
    if after.cancel_history.is_empty() && Some(after.cancel_amount) == expected {
        return Ok(None);
    }
    let named = after
        .cancel_history
        .iter()
        .filter(|entry| !others.is_theirs(refund, entry))
        .find(|entry| entry.amount == refund.amount && names_refund(refund, entry));
    if let Some(entry) = named {
        return Ok(entry_id(entry).map(str::to_owned));
    }
    let later =
        entries_after_base(refund, after, others).map_err(|attribution| match attribution {
            Attribution::Unexplained(why) => why,
            _ => "its cancelled total is below the refund's base".to_owned(),
        })?;
    let of_amount = || later.iter().filter(|e| e.amount == refund.amount);
    of_amount()
        .find(|e| same_reason(e.reason.as_deref(), refund.reason.as_deref()))
        .or_else(|| of_amount().next())
        .map(|entry| entry_id(entry).map(str::to_owned))
        .ok_or_else(|| {
            let currency = after.currency;
            format!(
                "its history shows no cancel of {}",
                currency.format_major(refund.amount)
            )
        })
}

/// Reasons match when equal once trimmed; a missing and a blank reason are
/// the same.
fn same_reason(entry: Option<&str>, ours: Option<&str>) -> bool {
    fn norm(reason: Option<&str>) -> Option<&str> {
        reason.map(str::trim).filter(|r| !r.is_empty())
    }
    norm(entry) == norm(ours)
}

#[cfg(test)]
mod tests;
