// Shared helpers of every dashboard page: API calls with the session's CSRF token, formatting.
"use strict";
window.gradq = (() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  // fetch() on the same origin: the HttpOnly session cookie goes along by itself; state-changing
  // calls add the CSRF token the server expects next to the cookie.
  async function api(path, { method = "GET", json, body, headers = {} } = {}) {
    const sent = Object.assign({}, headers);
    if (csrf && method !== "GET") sent["X-CSRF-Token"] = csrf;
    if (json !== undefined) {
      sent["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const response = await fetch(path, { method, body, headers: sent, credentials: "same-origin" });
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    return { ok: response.ok, status: response.status, data };
  }

  // FastAPI's [{loc: ["body", "model", "layers", 2, "units"], msg}] -> "model.layers[2].units":
  // the path as the user wrote it in their JSON, the way the CLI prints it
  function where(loc) {
    const parts = (loc || []).filter((p, i) => !(i === 0 && p === "body"));
    return parts.reduce((s, p) => (typeof p === "number" ? `${s}[${p}]` : s ? `${s}.${p}` : String(p)), "") || "spec";
  }

  function detailText(detail) {
    if (Array.isArray(detail)) {
      return detail.map((d) => `${where(d.loc)}: ${d.msg}`).join("; ");
    }
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }

  const fmt = (v, digits = 4) => (typeof v === "number" && isFinite(v) ? Number(v.toPrecision(digits)).toString() : "—");
  const pct = (v) => (typeof v === "number" && isFinite(v) ? (100 * v).toFixed(1) + "%" : "—");
  const FINAL = ["succeeded", "failed", "cancelled"];

  function setStatus(el, status) {
    el.textContent = status;
    el.className = "status s-" + status;
  }

  return { api, csrf, detailText, where, fmt, pct, setStatus, FINAL };
})();
