// The demo page: lists payments and runs the seed guide's "Request Refund"
// flow against the refund scope mounted at /payments.
"use strict";

const $ = (id) => document.getElementById(id);
let selected = null;
// Orders looked up by hand (outside sandbox mode nothing is seeded).
const extraOrders = [];

function authHeaders() {
  return { Authorization: "Bearer " + $("admin-token").value.trim() };
}

async function loadPayments() {
  const config = await (await fetch("/demo/config")).json();
  if (config.sandbox) {
    $("mode").textContent = "SANDBOX MODE: payments are simulated";
    if (!$("admin-token").value) $("admin-token").value = config.admin_token || "";
  }
  const orders = config.merchant_uids.concat(extraOrders.filter((uid) => !config.merchant_uids.includes(uid)));
  const rows = await Promise.all(
    orders.map(async (uid) => {
      const res = await fetch("/payments/" + encodeURIComponent(uid), { headers: authHeaders() });
      return res.ok ? res.json() : null;
    })
  );
  const body = $("payments").querySelector("tbody");
  body.replaceChildren();
  for (const p of rows.filter(Boolean)) {
    const tr = document.createElement("tr");
    tr.dataset.merchantUid = p.merchant_uid;
    const cells = [
      p.merchant_uid,
      p.pay_method,
      p.amount + " " + p.currency,
      p.cancel_amount,
      p.cancelable_amount,
      p.pending_refunds.length ? p.status + " (refund pending)" : p.status,
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i >= 2 && i <= 4) td.className = "num";
      td.dataset.field = ["order", "method", "amount", "refunded", "refundable", "status"][i];
      tr.appendChild(td);
    });
    const action = document.createElement("td");
    const button = document.createElement("button");
    button.textContent = "Refund";
    button.className = "open-refund";
    button.addEventListener("click", () => openRefund(p));
    action.appendChild(button);
    tr.appendChild(action);
    body.appendChild(tr);
  }
}

function openRefund(payment) {
  selected = payment;
  $("refund-order").textContent = payment.merchant_uid;
  $("refund-form").reset();
  $("vbank-fields").hidden = payment.pay_method !== "vbank";
  $("refund-result").textContent = "";
  $("refund-result").className = "";
  $("refund-panel").hidden = false;
}

function showResult(kind, text) {
  $("refund-result").className = kind;
  $("refund-result").textContent = text;
}

async function requestRefund(event) {
  event.preventDefault();
  const body = { merchant_uid: selected.merchant_uid };
  const amount = $("refund-amount").value.trim();
  if (amount !== "") {
    // Sent as a JSON number token, exactly as typed (no float round trip).
    if (!/^\d+(\.\d+)?$/.test(amount)) {
      showResult("failure", "Refund failed: the amount must be a number");
      return;
    }
    body.cancel_request_amount = "__AMOUNT__";
  }
  const reason = $("refund-reason").value.trim();
  if (reason) body.reason = reason;
  if (selected.pay_method === "vbank") {
    body.refund_holder = $("refund-holder").value.trim();
    body.refund_bank = $("refund-bank").value.trim();
    body.refund_account = $("refund-account").value.trim();
  }
  const json = JSON.stringify(body).replace('"__AMOUNT__"', amount);
  $("refund-submit").disabled = true;
  try {
    const res = await fetch("/payments/cancel", {
      method: "POST",
      headers: Object.assign(
        { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
        authHeaders()
      ),
      body: json,
    });
    const answer = await res.json().catch(() => ({}));
    if (res.status === 200) {
      showResult("success", "Refund successful: " + answer.refund.amount + " " + answer.currency +
        " refunded, " + answer.cancelable_amount + " left");
    } else if (res.status === 202) {
      showResult("pending", "Refund pending: the outcome is not known yet; it will be reconciled");
    } else {
      const detail = answer.gateway_message ? " (" + answer.gateway_message + ")" : "";
      showResult("failure", "Refund failed: " + (answer.message || res.statusText) + detail);
    }
  } catch (error) {
    showResult("failure", "Refund failed: " + error.message);
  } finally {
    $("refund-submit").disabled = false;
    await loadPayments();
  }
}

$("refund-form").addEventListener("submit", requestRefund);
$("lookup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const uid = $("lookup-order").value.trim();
  if (uid && !extraOrders.includes(uid)) extraOrders.push(uid);
  loadPayments();
});
$("refund-close").addEventListener("click", () => { $("refund-panel").hidden = true; });
$("admin-token").addEventListener("change", loadPayments);
loadPayments();
