// Error answers of the refund scope, in the console's own words (never the
// API's field names).

import { money } from "./format.js";

/** One sentence for an error answer of the refund scope. */
export function sentence(status, answer, view) {
  const code = answer && answer.code;
  switch (code) {
    case "unauthorized":
      return "The admin token was refused. Enter the token the server printed when it started, or the one set in REFUND_ADMIN_TOKEN.";
    case "forbidden":
      return "This admin token is not allowed to do that.";
    case "payment_not_found":
      return "No payment with this order id is known, here or at the gateway.";
    case "already_refunded":
      return "Nothing is left to refund on this payment.";
    case "amount_exceeds_cancelable":
      return view
        ? "That is more than is left to refund: at most " + money(view.cancelable_amount, view.currency) + "."
        : "That is more than is left to refund.";
    case "refund_account_required":
      return "A virtual-account refund needs the account holder, the bank code and the account number.";
    case "refund_in_progress":
      return "Another refund of this payment is still pending, or the payment is held for review. Sync or resolve it first.";
    case "idempotency_key_reused":
      return "This request was already sent with different details. Check the amount and send it again.";
    case "payment_out_of_sync":
      return "The payment changed at the gateway (perhaps a refund made elsewhere). Its amounts are updated now: check them and try again.";
    case "not_refundable":
      return "This payment cannot be refunded: it is not paid, or it is a phone payment from an earlier month.";
    case "not_on_hold":
      return "This payment is no longer held for review; someone may have resolved it already.";
    case "gateway_rejected":
      return "The gateway refused the refund" + (answer.gateway_message ? ": " + answer.gateway_message : ".");
    case "gateway_error":
      return "The gateway could not be reached and nothing was refunded. Try again in a moment.";
    case "storage_unavailable":
      return "The refund database is unavailable and nothing was changed. Try again shortly.";
    case "payload_too_large":
      return "The request is too large: shorten the reason.";
    case "invalid_request":
      return "The request was not accepted: check the amount and the other fields.";
    default:
      if (status === 0) return "The server could not be reached. Check the connection and try again.";
      return "Something went wrong (HTTP " + status + "). Try again, or reload the page.";
  }
}
