// Calls to the refund scope, with the admin token the page holds.

import { $, PREFIX } from "./state.js";
import { sentence } from "./messages.js";

function authHeaders() {
  return { Authorization: "Bearer " + $("admin-token").value.trim() };
}

/** Calls the refund scope; never throws. `status` is 0 when unreachable. */
export async function api(method, path, body, extraHeaders) {
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

export function tokenProblem(text) {
  const problem = $("token-problem");
  problem.textContent = text || "";
  problem.hidden = !text;
  $("admin-token").setAttribute("aria-invalid", text ? "true" : "false");
}
