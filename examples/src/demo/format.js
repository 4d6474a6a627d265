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

/** The reason an operator gave, without the refund id the service adds to
 * what it sends the gateway (so that the gateway's record names it). */
export function givenReason(reason, refundId) {
  if (!reason) return "";
  if (!refundId) return reason;
  if (reason === "refund " + refundId) return ""; // none was given
  const escaped = refundId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return reason.replace(new RegExp("\\s*\\(?" + escaped + "\\)?"), "").trim();
}
