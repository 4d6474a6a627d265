// The operator console: payments with their refund history, the queues of
// refunds pending and needing review, and the "Request Refund" flow, all
// against the refund scope mounted at /payments.
//
// Amounts arrive as JSON numbers in the currency's major unit. They are only
// ever formatted for display here: no decision about money is made from
// floating-point arithmetic (the server decides; the form sends the amount
// exactly as typed).

import { $, state } from "./state.js";
import { api, tokenProblem } from "./api.js";
import { sentence } from "./messages.js";
import { clearPayments, renderPayments } from "./payments.js";
import { renderQueue } from "./queues.js";

async function loadConfig() {
  try {
    state.config = await (await fetch("/demo/config")).json();
  } catch (_) {
    state.config = { sandbox: false, merchant_uids: [] };
  }
  if (state.config.sandbox) {
    $("mode").textContent = "Sandbox mode: payments are simulated";
    $("mode").hidden = false;
    if (!$("admin-token").value) $("admin-token").value = state.config.admin_token || "";
  }
}

/** Reloads the queues and every listed payment (one refresh at a time). */
export function refresh() {
  if (!state.refreshing) {
    state.refreshing = refreshOnce().finally(() => { state.refreshing = null; });
    return state.refreshing;
  }
  // One more after the running one, so that nothing done since is missed.
  return state.refreshing.then(() => refresh());
}

async function refreshOnce() {
  const [pending, review, recent] = await Promise.all([
    api("GET", "/refunds?status=pending&limit=50"),
    api("GET", "/refunds?status=needs_review&limit=50"),
    api("GET", "/refunds?limit=50"),
  ]);
  if (pending.status === 401) {
    clearPayments();
    renderQueue("pending", null, "Enter the admin token to see pending refunds.");
    renderQueue("review", null, "Enter the admin token to see refunds that need review.");
    return;
  }
  tokenProblem("");
  const listed = (a) => (a.status === 200 && Array.isArray(a.body.refunds) ? a.body.refunds : null);
  const orders = [];
  const add = (uid) => { if (uid && !orders.includes(uid)) orders.push(uid); };
  state.config.merchant_uids.forEach(add);
  state.extraOrders.forEach(add);
  for (const list of [listed(pending), listed(review), listed(recent)]) {
    (list || []).forEach((r) => add(r.merchant_uid));
  }
  const views = await Promise.all(orders.map((uid) => api("GET", "/" + encodeURIComponent(uid))));
  orders.forEach((uid, i) => {
    if (views[i].status === 200) state.views.set(uid, views[i].body);
  });
  renderPayments(orders.filter((uid) => state.views.has(uid)));
  renderQueue("pending", listed(pending), "The list of pending refunds is unavailable (HTTP " + pending.status + ").");
  renderQueue("review", listed(review), "The list of refunds to review is unavailable (HTTP " + review.status + ").");
}

async function findPayment(event) {
  event.preventDefault();
  const input = $("lookup-order");
  const result = $("lookup-result");
  const uid = input.value.trim();
  result.hidden = true;
  if (!uid) {
    result.textContent = "Enter an order id.";
    result.hidden = false;
    return input.focus();
  }
  let answer = await api("GET", "/" + encodeURIComponent(uid));
  // Not known here yet: ask the gateway (a sync imports a payment it knows).
  if (answer.status === 404) answer = await api("POST", "/" + encodeURIComponent(uid) + "/sync");
  if (answer.status === 200) {
    if (!state.extraOrders.includes(uid)) state.extraOrders.push(uid);
    state.views.set(uid, answer.body);
    input.value = "";
    await refresh();
    const row = state.bodies.get(uid);
    if (row) {
      row.scrollIntoView({ block: "center" });
      row.querySelector(".open-refund").focus();
    }
    return;
  }
  result.textContent = answer.status === 404
    ? "No payment with order id “" + uid + "” is known, here or at the gateway. Check the id: it is the order number your shop gave the payment."
    : sentence(answer.status, answer.body);
  result.hidden = false;
  input.setAttribute("aria-invalid", "true");
}

// ---------- start ----------

$("token-form").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
$("lookup-form").addEventListener("submit", findPayment);
$("lookup-order").addEventListener("input", () => {
  $("lookup-order").setAttribute("aria-invalid", "false");
  $("lookup-result").hidden = true;
});
loadConfig().then(refresh);
// Refunds also settle in the background (the server's sweep, webhooks):
// keep the queues current while the page is looked at.
setInterval(() => { if (!document.hidden) refresh(); }, 15000);
