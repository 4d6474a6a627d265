// Amounts, times and labels as the console shows them. Amounts arrive as
// JSON numbers in the currency's major unit: they are only formatted here,
// never computed with.

const LOCALE = "en-US";

const formatters = new Map();
function moneyFormat(currency) {
  if (!formatters.has(currency)) {
    let format;
    try {
      format = new Intl.NumberFormat(LOCALE, { style: "currency", currency });
    } catch (_) {
      format = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 20 });
    }
    formatters.set(currency, format);
  }
  return formatters.get(currency);
}

/** An amount in `currency`'s major unit, with its symbol and separators. */
export function money(amount, currency) {
  return moneyFormat(currency).format(amount);
}

/** How many decimals `currency` allows (KRW 0, USD 2). */
export function decimalsOf(currency) {
  return moneyFormat(currency).resolvedOptions().maximumFractionDigits;
}

const timeFormat = new Intl.DateTimeFormat(LOCALE, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  timeZoneName: "short",
});

/** An RFC 3339 string or Unix seconds, as a readable local time. */
export function when(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? "" : timeFormat.format(date);
}

export function timeOf(value) {
  return typeof value === "number" ? value * 1000 : Date.parse(value) || 0;
}

export const METHODS = { card: "Card", vbank: "Virtual account", phone: "Phone", trans: "Bank transfer" };

export const REFUND_STATUS = {
  pending: "Pending",
  succeeded: "Refunded",
  failed: "Failed",
  needs_review: "Needs review",
};

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

/** The reason an operator gave, without the refund id the service adds to
 * what it sends the gateway (so that the gateway's record names it). */
export function givenReason(reason, refundId) {
  if (!reason) return "";
  if (!refundId) return reason;
  if (reason === "refund " + refundId) return ""; // none was given
  const escaped = refundId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return reason.replace(new RegExp("\\s*\\(?" + escaped + "\\)?"), "").trim();
}
