// The operator console: payments with their refund history, the queues of
// refunds pending and needing review, and the "Request Refund" flow, all
// against the refund scope mounted at /payments.
//
// Amounts arrive as JSON numbers in the currency's major unit. They are only
// ever formatted for display here: no decision about money is made from
// floating-point arithmetic (the server decides; the form sends the amount
// exactly as typed).
"use strict";

const PREFIX = "/payments";
const LOCALE = "en-US";
const $ = (id) => document.getElementById(id);

const state = {
  config: { sandbox: false, merchant_uids: [] },
  // Orders found by hand, shown after the configured ones.
  extraOrders: [],
  // merchant_uid -> the payment's <tbody>, kept across refreshes so that an
  // open refund form keeps what the operator typed.
  bodies: new Map(),
  // merchant_uid -> its latest view.
  views: new Map(),
  refreshing: null,
  nextId: 0,
};

// ---------- formatting ----------

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
function money(amount, currency) {
  return moneyFormat(currency).format(amount);
}

/** How many decimals `currency` allows (KRW 0, USD 2). */
function decimalsOf(currency) {
  return moneyFormat(currency).resolvedOptions().maximumFractionDigits;
}

const timeFormat = new Intl.DateTimeFormat(LOCALE, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  timeZoneName: "short",
});

/** An RFC 3339 string or Unix seconds, as a readable local time. */
function when(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? "" : timeFormat.format(date);
}

function timeOf(value) {
  return typeof value === "number" ? value * 1000 : Date.parse(value) || 0;
}

const METHODS = { card: "Card", vbank: "Virtual account", phone: "Phone", trans: "Bank transfer" };

const REFUND_STATUS = {
  pending: "Pending",
  succeeded: "Refunded",
  failed: "Failed",
  needs_review: "Needs review",
};

/** What a payment's status cell says, and its tone. */
function paymentStatus(view) {
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

function pendingOf(view) {
  if (Array.isArray(view.refunds)) return view.refunds.filter((r) => r.status === "pending");
  return view.pending_refunds || [];
}

/** Why a payment takes no refund now, or null when it does. */
function refundBlocked(view) {
  if (view.status !== "paid") {
    return view.status === "cancelled" ? "Nothing is left to refund." : "Only paid payments can be refunded.";
  }
  // cancelable_amount is compared with zero only: exact for any JSON number.
  if (!(view.cancelable_amount > 0)) return "Nothing is left to refund.";
  if (view.on_hold) return "Held for review: resolve the hold first (under Needs review).";
  if (pendingOf(view).length) return "A refund is pending: sync it first (under Pending refunds).";
  return null;
}

// ---------- errors in the console's own words ----------

/** One sentence for an error answer of the refund scope. */
function sentence(status, answer, view) {
  const code = answer && answer.code;
  switch (code) {
    case "unauthorized":
      return "The admin token was refused. Enter the token the server printed when it started (REFUND_ADMIN_TOKEN).";
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

// ---------- the API ----------

function authHeaders() {
  return { Authorization: "Bearer " + $("admin-token").value.trim() };
}

/** Calls the refund scope; never throws. `status` is 0 when unreachable. */
async function api(method, path, body, extraHeaders) {
  const headers = Object.assign({}, authHeaders(), extraHeaders || {});
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(PREFIX + path, { method, headers, body });
  } catch (_) {
    return { status: 0, body: {} };
  }
  const answer = await res.json().catch(() => ({}));
  if (res.status === 401) tokenProblem(sentence(401, { code: "unauthorized" }));
  return { status: res.status, body: answer };
}

function tokenProblem(text) {
  const problem = $("token-problem");
  problem.textContent = text || "";
  problem.hidden = !text;
  $("admin-token").setAttribute("aria-invalid", text ? "true" : "false");
}

// ---------- loading ----------

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
function refresh() {
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

// ---------- the payments table ----------

function el(tag, props, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of [].concat(children || [])) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function badge(text, tone) {
  return el("span", { class: "badge " + tone, text });
}

function clearPayments() {
  for (const body of state.bodies.values()) body.remove();
  state.bodies.clear();
  $("payments-empty").hidden = false;
}

function renderPayments(orders) {
  const table = $("payments");
  for (const [uid, body] of state.bodies) {
    if (!orders.includes(uid)) { body.remove(); state.bodies.delete(uid); }
  }
  let previous = table.tHead;
  for (const uid of orders) {
    let body = state.bodies.get(uid);
    if (!body) {
      body = createPaymentBody(uid);
      state.bodies.set(uid, body);
    }
    // Moved only when out of place: moving a node drops the focus inside it.
    if (previous.nextElementSibling !== body) previous.after(body);
    previous = body;
    updatePaymentBody(body, state.views.get(uid));
  }
  $("payments-empty").hidden = orders.length > 0;
}

function createPaymentBody(uid) {
  const id = "p" + state.nextId++;
  const body = el("tbody", { class: "payment", id, dataset: { merchantUid: uid } });
  const row = el("tr", { class: "payment-row", dataset: { merchantUid: uid } });
  const cells = [
    ["order", "Order"], ["method", "Method"], ["amount", "Paid"],
    ["refunded", "Refunded"], ["refundable", "Refundable"], ["status", "Status"],
  ];
  for (const [field, label] of cells) {
    const cell = el(field === "order" ? "th" : "td", {
      dataset: { field, label },
      class: ["amount", "refunded", "refundable"].includes(field) ? "num" : undefined,
      scope: field === "order" ? "row" : undefined,
    });
    row.append(cell);
  }
  const open = el("button", {
    type: "button", class: "primary open-refund", text: "Refund",
    "aria-expanded": "false", "aria-controls": id + "-form",
    onclick: () => toggleRefundForm(uid),
  });
  row.append(el("td", { class: "row-actions", dataset: { label: "" } }, [open, el("p", { class: "blocked" })]));
  const formRow = el("tr", { class: "form-row", hidden: true },
    el("td", { colspan: "7", id: id + "-form" }));
  const historyRow = el("tr", { class: "history-row", hidden: true },
    el("td", { colspan: "7" }, [
      el("h3", { class: "history-title", text: "Refund history" }),
      el("ol", { class: "history" }),
    ]));
  body.append(row, formRow, historyRow);
  return body;
}

function updatePaymentBody(body, view) {
  const cell = (field) => body.querySelector('.payment-row [data-field="' + field + '"]');
  cell("order").textContent = view.merchant_uid;
  cell("method").textContent = METHODS[view.pay_method] || view.pay_method;
  cell("amount").textContent = money(view.amount, view.currency);
  cell("refunded").textContent = money(view.cancel_amount, view.currency);
  cell("refundable").textContent = money(view.cancelable_amount, view.currency);
  const status = paymentStatus(view);
  const statusCell = cell("status");
  statusCell.replaceChildren(badge(status.text, status.tone));
  if (view.on_hold && view.hold_reason) {
    statusCell.append(el("span", { class: "hold-reason", text: view.hold_reason }));
  }

  const blocked = refundBlocked(view);
  const open = body.querySelector(".open-refund");
  const blockedNote = body.querySelector(".blocked");
  const formOpen = !body.querySelector(".form-row").hidden;
  open.disabled = Boolean(blocked) && !formOpen;
  blockedNote.textContent = blocked && !formOpen ? blocked : "";
  blockedNote.id = body.id + "-blocked";
  if (open.disabled) open.setAttribute("aria-describedby", blockedNote.id);
  else open.removeAttribute("aria-describedby");

  const form = body.querySelector(".refund-form");
  if (form) updateRefundForm(form, view);

  const items = historyItems(view);
  const list = body.querySelector(".history");
  list.replaceChildren(...items.map((item) => historyEntry(item, view.currency)));
  body.querySelector(".history-row").hidden = items.length === 0;
}

/** The payment's refunds, ours (from the journal) and those made outside
 * (gateway cancellations credited to no refund of ours), newest first. */
function historyItems(view) {
  const items = [];
  const history = view.cancel_history || [];
  const records = Array.isArray(view.refunds) ? view.refunds : null;
  const known = new Set((records || []).map((r) => r.id));
  for (const record of records || []) {
    const entry = history.find((c) => c.refund_id === record.id);
    items.push({ kind: "ours", time: timeOf(record.created_at), record, entry });
  }
  if (!records) {
    for (const r of view.pending_refunds || []) items.push({ kind: "ours", time: Infinity, record: r });
  }
  for (const entry of history) {
    if (entry.refund_id === null || entry.refund_id === undefined) {
      items.push({ kind: "outside", time: timeOf(entry.cancelled_at), entry });
    } else if (!known.has(entry.refund_id)) {
      items.push({ kind: "ours", time: timeOf(entry.cancelled_at), entry,
        record: { id: entry.refund_id, amount: entry.amount, status: "succeeded" } });
    }
  }
  return items.sort((a, b) => b.time - a.time);
}

function historyEntry(item, currency) {
  const { record, entry } = item;
  const li = el("li", { class: "entry " + item.kind, dataset: { kind: item.kind } });
  const head = el("div", { class: "entry-head" });
  if (item.kind === "outside") {
    head.append(
      el("span", { class: "entry-amount", text: money(entry.amount, currency) }),
      badge("Made outside this console", "outside"),
    );
    li.dataset.status = "outside";
  } else {
    const resolved = record.status === "needs_review" && record.review && record.review.resolved_at;
    const tone = resolved ? "info"
      : { succeeded: "ok", pending: "warn", failed: "bad", needs_review: "warn" }[record.status] || "muted";
    head.append(
      el("span", { class: "entry-amount", text: money(record.amount, currency) }),
      badge(resolved ? "Review resolved" : REFUND_STATUS[record.status] || record.status, tone),
    );
    li.dataset.status = record.status;
  }
  li.append(head);

  const meta = [];
  if (item.kind === "outside") {
    meta.push("refunded at the gateway " + when(entry.cancelled_at));
  } else {
    if (record.requested_by) meta.push("by " + record.requested_by);
    const at = record.created_at || (entry && entry.cancelled_at);
    if (at) meta.push(when(at));
  }
  const reason = (record && record.reason) || (entry && entry.reason);
  const metaLine = el("p", { class: "entry-meta", text: meta.join(" · ") });
  if (reason) metaLine.append(el("span", { class: "entry-reason", text: "“" + reason + "”" }));
  li.append(metaLine);

  if (record && record.failure && record.failure.message) {
    li.append(el("p", { class: "entry-note bad", text: "Gateway: " + record.failure.message }));
  }
  if (record && record.review) {
    const review = record.review;
    if (review.resolved_at) {
      li.append(el("p", { class: "entry-note resolved", dataset: { field: "resolution" },
        text: "Resolved by " + review.resolved_by + " " + when(review.resolved_at) + ": " + review.note }));
    } else if (review.message) {
      li.append(el("p", { class: "entry-note warn", text: review.message }));
    }
  }
  if (entry && entry.receipt_url) {
    li.append(el("a", { class: "receipt", href: entry.receipt_url, target: "_blank", rel: "noopener noreferrer",
      text: "Receipt", "aria-label": "Receipt for " + money(entry.amount, currency) }));
  }
  return li;
}

// ---------- the Request Refund form ----------

function toggleRefundForm(uid) {
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

function updateRefundForm(form, view) {
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
    if (blocked && !form.querySelector(".refund-result").textContent) showResult(form, "failure", blocked);
  }
}

function showResult(form, kind, text) {
  const result = form.querySelector(".refund-result");
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
  form.removeAttribute("aria-busy");
  submit.textContent = "Request Refund";
  submit.classList.remove("busy");
  submit.disabled = false;
  if (answer.status === 200 || (answer.status >= 400 && answer.status < 500)) {
    delete form.dataset.lastBody; // settled: a new request gets a new key
  }
  await refresh();
  const latest = state.views.get(uid) || view;
  if (answer.status === 200) {
    const refunded = answer.body.refund ? money(answer.body.refund.amount, answer.body.currency) : "The refund";
    showResult(form, "success", "Refunded " + refunded + ". " +
      money(answer.body.cancelable_amount, answer.body.currency) + " left to refund.");
    form.reset();
  } else if (answer.status === 202) {
    showResult(form, "pending",
      "Refund pending: the gateway has not confirmed it yet. It is listed under Pending refunds; Sync settles it.");
  } else {
    const invalid = { amount_exceeds_cancelable: ["amount"], refund_account_required: ["holder", "bank", "account"] };
    markInvalid(form, invalid[answer.body.code] || []);
    showResult(form, "failure", sentence(answer.status, answer.body, latest));
  }
  updateRefundForm(form, latest);
}

// ---------- the queues ----------

function renderQueue(which, records, unavailable) {
  const list = $(which + "-queue");
  const empty = $(which + "-empty");
  const count = $(which + "-count");
  if (!records) {
    list.replaceChildren();
    count.textContent = "";
    empty.textContent = unavailable;
    empty.hidden = false;
    return;
  }
  let shown = records;
  if (which === "review") {
    // One hold per payment; a resolved one is no longer waiting.
    const seen = new Set();
    shown = records.filter((r) => {
      if ((r.review && r.review.resolved_at) || seen.has(r.merchant_uid)) return false;
      seen.add(r.merchant_uid);
      return true;
    });
  }
  // Keep the item (and a half-typed note) of a refund still listed.
  const existing = new Map([...list.children].map((li) => [li.dataset.refundId, li]));
  const items = shown.map((record) => {
    const li = existing.get(record.id) || queueItem(which, record);
    updateQueueItem(li, record);
    return li;
  });
  placeChildren(list, items);
  count.textContent = shown.length ? "(" + shown.length + ")" : "";
  empty.textContent = which === "pending" ? "Nothing pending." : "Nothing to review.";
  empty.hidden = shown.length > 0;
}

/** Makes `items` the children of `list`, in order, moving only what is out
 * of place (so that a note being typed keeps its focus). */
function placeChildren(list, items) {
  for (const child of [...list.children]) {
    if (!items.includes(child)) child.remove();
  }
  let previous = null;
  for (const item of items) {
    const expected = previous ? previous.nextElementSibling : list.firstElementChild;
    if (expected !== item) {
      if (previous) previous.after(item);
      else list.prepend(item);
    }
    previous = item;
  }
}

function queueItem(which, record) {
  const id = "q" + state.nextId++;
  const li = el("li", { class: "queue-item", dataset: { refundId: record.id, merchantUid: record.merchant_uid } });
  li.append(
    el("div", { class: "queue-head" }, [
      el("span", { class: "queue-order", text: record.merchant_uid }),
      el("span", { class: "queue-amount" }),
    ]),
    el("p", { class: "queue-meta" }),
    el("p", { class: "queue-why" }),
  );
  if (which === "pending") {
    li.append(el("div", { class: "actions" }, [
      el("button", { type: "button", class: "primary sync", text: "Sync",
        "aria-label": "Sync " + record.merchant_uid, onclick: (e) => syncPayment(record, e.currentTarget) }),
    ]));
  } else {
    const form = el("form", { class: "resolve-form", novalidate: true }, [
      el("label", { for: id + "-note", text: "Resolution note" }),
      el("textarea", { id: id + "-note", class: "note", rows: "2", maxlength: "500", required: true,
        "aria-describedby": id + "-note-hint" }),
      el("p", { class: "field-hint", id: id + "-note-hint",
        text: "What you checked and decided (required, up to 500 characters)." }),
      el("p", { class: "resolve-result", role: "status" }),
      el("div", { class: "actions" }, [
        el("button", { type: "submit", class: "primary resolve", text: "Resolve" }),
      ]),
    ]);
    form.addEventListener("submit", (event) => { event.preventDefault(); resolveHold(record, form); });
    li.append(form);
  }
  return li;
}

function updateQueueItem(li, record) {
  li.querySelector(".queue-amount").textContent = money(record.amount, record.currency);
  const meta = [];
  if (record.requested_by) meta.push("by " + record.requested_by);
  meta.push(when(record.created_at));
  if (record.reason) meta.push("“" + record.reason + "”");
  li.querySelector(".queue-meta").textContent = meta.join(" · ");
  const view = state.views.get(record.merchant_uid);
  const why = record.status === "needs_review"
    ? (record.review && record.review.message) || (view && view.hold_reason) || "The gateway's records do not match ours."
    : "Sent " + when(record.created_at) + "; no answer from the gateway yet.";
  li.querySelector(".queue-why").textContent = why;
}

function consoleStatus(kind, text) {
  const status = $("console-status");
  status.className = "console-status " + kind;
  status.textContent = text;
}

async function syncPayment(record, button) {
  button.disabled = true;
  button.textContent = "Syncing…";
  const answer = await api("POST", "/" + encodeURIComponent(record.merchant_uid) + "/sync");
  button.disabled = false;
  button.textContent = "Sync";
  if (answer.status !== 200) {
    consoleStatus("failure", record.merchant_uid + ": " + sentence(answer.status, answer.body));
    return;
  }
  const view = answer.body;
  state.views.set(view.merchant_uid, view);
  const now = (view.refunds || []).find((r) => r.id === record.id);
  const status = now ? now.status : pendingOf(view).some((r) => r.id === record.id) ? "pending" : null;
  const amount = money(record.amount, record.currency);
  const text = {
    succeeded: "the refund of " + amount + " went through at the gateway.",
    failed: "the refund of " + amount + " never reached the gateway; nothing was refunded.",
    pending: "the gateway still has no answer for the refund of " + amount + "; try again later.",
    needs_review: "the gateway's records do not match the refund of " + amount + "; it needs review.",
  }[status] || "synced with the gateway.";
  consoleStatus(status === "succeeded" ? "success" : status === "failed" ? "failure" : "pending",
    "Synced " + record.merchant_uid + ": " + text);
  await refresh();
}

async function resolveHold(record, form) {
  const note = form.querySelector(".note");
  const result = form.querySelector(".resolve-result");
  const text = note.value.trim();
  if (!text) {
    note.setAttribute("aria-invalid", "true");
    note.focus();
    result.className = "resolve-result failure";
    result.textContent = "Write what you checked and decided before resolving.";
    return;
  }
  note.setAttribute("aria-invalid", "false");
  const button = form.querySelector(".resolve");
  button.disabled = true;
  button.textContent = "Resolving…";
  result.className = "resolve-result processing";
  result.textContent = "Checking the payment with the gateway…";
  const answer = await api("POST", "/" + encodeURIComponent(record.merchant_uid) + "/review",
    JSON.stringify({ note: text }));
  button.disabled = false;
  button.textContent = "Resolve";
  if (answer.status === 200) {
    consoleStatus("success", "Resolved the hold on " + record.merchant_uid + ": it takes refunds again.");
  } else {
    result.className = "resolve-result failure";
    result.textContent = answer.status === 400
      ? "Write a note of at most 500 characters."
      : sentence(answer.status, answer.body);
  }
  await refresh();
}

// ---------- finding an order ----------

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
    ? "No payment with order id “" + uid + "” is known, here or at the gateway. Check the id (it is the merchant_uid of your order)."
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
