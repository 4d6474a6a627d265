// What a payment's view says about it: its status as shown, its pending
// refunds, and whether (and why not) it takes a refund now.

/** What a payment's status cell says, and its tone. */
export function paymentStatus(view) {
  if (view.on_hold) return { text: "Held for review", tone: "warn" };
  if (pendingOf(view).length) return { text: "Refund pending", tone: "warn" };
  switch (view.status) {
    case "paid":
      return view.cancel_amount > 0
        ? { text: "Partly refunded", tone: "info" }
        : { text: "Paid", tone: "ok" };
    case "cancelled": return { text: "Fully refunded", tone: "muted" };
    case "ready": return { text: "Awaiting payment", tone: "muted" };
    case "failed": return { text: "Payment failed", tone: "bad" };
    default: return { text: view.status, tone: "muted" };
  }
}

export function pendingOf(view) {
  if (Array.isArray(view.refunds)) return view.refunds.filter((r) => r.status === "pending");
  return view.pending_refunds || [];
}

/** Why a payment takes no refund now, or null when it does: `short` for
 * beside its Refund button, `long` for its form. */
export function refundBlocked(view) {
  const nothingLeft = { short: "Nothing is left to refund.", long: "Nothing is left to refund." };
  if (view.status !== "paid") {
    return view.status === "cancelled"
      ? nothingLeft
      : { short: "Not paid.", long: "Only paid payments can be refunded." };
  }
  // cancelable_amount is compared with zero only: exact for any JSON number.
  if (!(view.cancelable_amount > 0)) return nothingLeft;
  if (view.on_hold) {
    return { short: "Held: resolve it first.", long: "Held for review: resolve the hold first (under Needs review)." };
  }
  if (pendingOf(view).length) {
    return { short: "Pending: sync it first.", long: "A refund is pending: sync it first (under Pending refunds)." };
  }
  return null;
}
