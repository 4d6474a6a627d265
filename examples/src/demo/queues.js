// The queues of refunds pending (Sync) and payments held for review
// (Resolve, with a note).

import { $, state } from "./state.js";
import { api } from "./api.js";
import { sentence } from "./messages.js";
import { money, when, givenReason } from "./format.js";
import { pendingOf } from "./payment-state.js";
import { el, placeChildren } from "./dom.js";
import { refresh } from "./app.js";

export function renderQueue(which, records, unavailable) {
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
  const reason = givenReason(record.reason, record.id);
  if (reason) meta.push("“" + reason + "”");
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
      : answer.body && answer.body.code === "payment_out_of_sync"
        ? "This review changed while you resolved it: someone else resolved it, or another refund needs review now. Nothing was recorded; look at the payment again."
        : sentence(answer.status, answer.body);
  }
  await refresh();
}
