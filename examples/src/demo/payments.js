// The payments table: one <tbody> per payment (its row, its refund form,
// its refund history), kept across refreshes.

import { $, state } from "./state.js";
import { el, badge } from "./dom.js";
import { money, when, timeOf, METHODS, REFUND_STATUS, givenReason } from "./format.js";
import { paymentStatus, refundBlocked } from "./payment-state.js";
import { toggleRefundForm, updateRefundForm } from "./refund-form.js";

export function clearPayments() {
  for (const body of state.bodies.values()) body.remove();
  state.bodies.clear();
  $("payments-empty").hidden = false;
}

export function renderPayments(orders) {
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

export function updatePaymentBody(body, view) {
  const cell = (field) => body.querySelector('.payment-row [data-field="' + field + '"]');
  cell("order").textContent = view.merchant_uid;
  cell("method").textContent = METHODS[view.pay_method] || view.pay_method;
  cell("amount").textContent = money(view.amount, view.currency);
  cell("refunded").textContent = money(view.cancel_amount, view.currency);
  cell("refundable").textContent = money(view.cancelable_amount, view.currency);
  const status = paymentStatus(view);
  const statusCell = cell("status");
  statusCell.replaceChildren(badge(status.text, status.tone));

  const blocked = refundBlocked(view);
  const open = body.querySelector(".open-refund");
  const blockedNote = body.querySelector(".blocked");
  const formOpen = !body.querySelector(".form-row").hidden;
  open.disabled = Boolean(blocked) && !formOpen;
  blockedNote.textContent = blocked && !formOpen ? blocked.short : "";
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
  const reason = givenReason((record && record.reason) || (entry && entry.reason), record && record.id);
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
