// The Request Refund form, opened beside the payment it refunds, with its
// result and its "processing" state in the form itself.

import { $, state } from "./state.js";
import { api } from "./api.js";
import { sentence } from "./messages.js";
import { money, decimalsOf } from "./format.js";
import { pendingOf, refundBlocked } from "./payment-state.js";
import { updatePaymentBody } from "./payments.js";
import { refresh } from "./app.js";

export function toggleRefundForm(uid) {
  const body = state.bodies.get(uid);
  const formRow = body.querySelector(".form-row");
  if (!formRow.hidden) return closeRefundForm(uid);
  let form = body.querySelector(".refund-form");
  if (!form) {
    form = $("refund-form-template").content.firstElementChild.cloneNode(true);
    for (const input of form.querySelectorAll("[data-name]")) {
      input.id = body.id + "-" + input.dataset.name;
    }
    for (const label of form.querySelectorAll("label[data-for]")) {
      label.htmlFor = body.id + "-" + label.dataset.for;
    }
    const hint = form.querySelector('[data-hint="amount"]');
    hint.id = body.id + "-amount-hint";
    form.querySelector('[data-name="amount"]').setAttribute("aria-describedby", hint.id);
    const result = form.querySelector(".refund-result");
    result.id = body.id + "-result";
    form.addEventListener("submit", (event) => { event.preventDefault(); requestRefund(uid, form); });
    form.querySelector(".refund-close").addEventListener("click", () => closeRefundForm(uid));
    form.addEventListener("input", (event) => event.target.setAttribute("aria-invalid", "false"));
    form.addEventListener("keydown", (event) => { if (event.key === "Escape") closeRefundForm(uid); });
    formRow.firstElementChild.append(form);
  }
  form.reset();
  showResult(form, "", "");
  formRow.hidden = false;
  body.querySelector(".open-refund").setAttribute("aria-expanded", "true");
  updatePaymentBody(body, state.views.get(uid));
  form.querySelector('[data-name="amount"]').focus();
}

function closeRefundForm(uid) {
  const body = state.bodies.get(uid);
  body.querySelector(".form-row").hidden = true;
  const open = body.querySelector(".open-refund");
  open.setAttribute("aria-expanded", "false");
  updatePaymentBody(body, state.views.get(uid));
  if (!open.disabled) open.focus();
}

export function updateRefundForm(form, view) {
  const decimals = decimalsOf(view.currency);
  form.querySelector(".refund-title").textContent = "Request Refund: " + view.merchant_uid;
  form.querySelector(".refund-left").textContent =
    money(view.cancelable_amount, view.currency) + " of " + money(view.amount, view.currency) + " left to refund.";
  form.querySelector('[data-hint="amount"]').textContent =
    "In " + view.currency + (decimals ? ", up to " + decimals + " decimals" : ", whole units") +
    ". Leave empty to refund everything that is left.";
  form.querySelector(".vbank-fields").hidden = view.pay_method !== "vbank";
  const bank = form.querySelector('[data-name="bank"]');
  if (view.gateway === "portone") {
    bank.maxLength = 32;
    bank.inputMode = "text";
    form.querySelector('label[data-for="bank"]').textContent = "Bank";
    bank.closest(".field").querySelector(".field-hint").textContent = "As PortOne names it, e.g. KOOKMIN.";
  }
  const submit = form.querySelector(".refund-submit");
  if (!form.hasAttribute("aria-busy")) {
    const blocked = refundBlocked(view);
    submit.disabled = Boolean(blocked);
    const result = form.querySelector(".refund-result");
    // A "pending" or "blocked" line says how things stood; once they have
    // changed it gives way to how they stand now.
    const stale = result.dataset.blocked ||
      (result.classList.contains("pending") && pendingOf(view).length === 0);
    if (blocked && (!result.textContent || stale)) {
      showResult(form, "failure", blocked.long);
      result.dataset.blocked = "true";
    } else if (!blocked && stale) {
      showResult(form, "", "");
    }
  }
}

function showResult(form, kind, text) {
  const result = form.querySelector(".refund-result");
  delete result.dataset.blocked;
  result.className = "refund-result " + kind;
  result.textContent = text;
  result.setAttribute("role", kind === "failure" ? "alert" : "status");
}

function markInvalid(form, names) {
  for (const input of form.querySelectorAll("[data-name]")) {
    input.setAttribute("aria-invalid", names.includes(input.dataset.name) ? "true" : "false");
  }
  if (names.length) form.querySelector('[data-name="' + names[0] + '"]').focus();
}

/** The typed amount as the JSON number token to send (exactly as typed,
 * without thousands separators), or a sentence saying what is wrong. */
function parseAmount(text, currency) {
  const typed = text.trim();
  if (typed === "") return { token: null };
  const plain = /^\d{1,3}(,\d{3})+(\.\d+)?$/.test(typed) ? typed.replace(/,/g, "") : typed;
  if (!/^\d+(\.\d+)?$/.test(plain)) {
    return { error: "Enter the amount as a number, e.g. 1000 or 1,000." };
  }
  const decimals = decimalsOf(currency);
  const fraction = plain.includes(".") ? plain.split(".")[1] : "";
  if (fraction.length > decimals) {
    return { error: decimals
      ? currency + " amounts have at most " + decimals + " decimals."
      : currency + " amounts are whole numbers, without decimals." };
  }
  if (/^[0.]*$/.test(plain)) return { error: "The amount must be more than zero." };
  // A JSON number token: no leading zeros.
  return { token: plain.replace(/^0+(?=\d)/, "") };
}

async function requestRefund(uid, form) {
  const view = state.views.get(uid);
  const field = (name) => form.querySelector('[data-name="' + name + '"]');
  const amount = parseAmount(field("amount").value, view.currency);
  if (amount.error) {
    markInvalid(form, ["amount"]);
    return showResult(form, "failure", amount.error);
  }
  const body = { merchant_uid: uid };
  if (amount.token !== null) body.cancel_request_amount = "__AMOUNT__";
  const reason = field("reason").value.trim();
  if (reason) body.reason = reason;
  if (view.pay_method === "vbank") {
    const missing = ["holder", "bank", "account"].filter((name) => !field(name).value.trim());
    if (missing.length) {
      markInvalid(form, missing);
      return showResult(form, "failure", sentence(400, { code: "refund_account_required" }));
    }
    body.refund_holder = field("holder").value.trim();
    body.refund_bank = field("bank").value.trim();
    body.refund_account = field("account").value.trim();
  }
  markInvalid(form, []);
  // The amount goes out as the typed digits: never through a float.
  const json = JSON.stringify(body).replace('"__AMOUNT__"', amount.token);
  // A retry of the same request after an unknown outcome keeps its key, so
  // that it can never refund twice.
  if (form.dataset.lastBody !== json) {
    form.dataset.key = crypto.randomUUID();
    form.dataset.lastBody = json;
  }
  const submit = form.querySelector(".refund-submit");
  form.setAttribute("aria-busy", "true");
  submit.disabled = true;
  submit.textContent = "Processing…";
  submit.classList.add("busy");
  showResult(form, "processing", "Processing the refund with the gateway…");
  const answer = await api("POST", "/cancel", json, { "Idempotency-Key": form.dataset.key });
  // Answered (done, journaled as pending, or refused): the next request is
  // a new refund with a new key. Unanswered (unreachable, 5xx): sending the
  // same request again keeps its key, so that it cannot refund twice.
  if (answer.status > 0 && answer.status < 500) delete form.dataset.lastBody;
  // Still busy until the payment's new numbers are shown: a second click
  // must not be made against the old ones.
  await refresh();
  form.removeAttribute("aria-busy");
  submit.textContent = "Request Refund";
  submit.classList.remove("busy");
  submit.disabled = false;
  const latest = state.views.get(uid) || view;
  if (answer.status === 200) {
    const refunded = answer.body.refund ? money(answer.body.refund.amount, answer.body.currency) : "The refund";
    showResult(form, "success", "Refunded " + refunded + ". " +
      money(answer.body.cancelable_amount, answer.body.currency) + " left to refund.");
    form.reset();
  } else if (answer.status === 202) {
    form.reset();
    showResult(form, "pending",
      "Refund pending: the gateway has not confirmed it yet. It is listed under Pending refunds; Sync settles it.");
  } else {
    const invalid = { amount_exceeds_cancelable: ["amount"], refund_account_required: ["holder", "bank", "account"] };
    markInvalid(form, invalid[answer.body.code] || []);
    showResult(form, "failure", sentence(answer.status, answer.body, latest));
  }
  updateRefundForm(form, latest);
}
