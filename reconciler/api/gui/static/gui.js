// mesh-reconciler GUI: live refresh of a page's live parts, and the admin actions.
// No framework and no inline script (the Content-Security-Policy forbids it). Text that comes
// from the server is set with textContent; refreshed parts come from our own server-rendered,
// escaped pages, parsed by DOMParser (which runs no script).
"use strict";

(function () {
  const TOKEN_KEY = "reconciler.adminToken";
  const POLL_MS = 1500;

  // -- admin token: this tab's sessionStorage only (never a cookie or a URL) --------------
  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function showTokenState() {
    const state = document.getElementById("token-state");
    if (state) state.textContent = token() ? "token set for this tab" : "no token";
  }

  function setupTokenForm() {
    const form = document.getElementById("token-form");
    if (!form) return;
    const input = document.getElementById("admin-token");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const value = input.value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      input.value = "";
      showTokenState();
    });
    document.getElementById("token-forget").addEventListener("click", function () {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
    });
    showTokenState();
  }

  // -- actions: the admin API's own calls -------------------------------------------------
  function showResult(ok, text) {
    const box = document.getElementById("action-result");
    box.hidden = false;
    box.className = "action-result " + (ok ? "ok" : "error");
    box.textContent = text;
  }

  function describe(status, doc) {
    if (doc && typeof doc === "object") {
      if (doc.error) return "HTTP " + status + ": " + doc.error;
      if (doc.message) return "HTTP " + status + ": " + doc.message;
      if (doc.outcome) return "HTTP " + status + ": " + doc.outcome;
    }
    return "HTTP " + status;
  }

  const ACTIONS = {
    rollback: function (button) {
      return { path: "/rollback", body: { revision: button.dataset.revision }, what: "pin " + button.dataset.revision.slice(0, 12) };
    },
    resume: function () { return { path: "/resume", body: null, what: "resume" }; },
    reconcile: function () { return { path: "/reconcile", body: null, what: "reconcile now" }; },
  };

  async function runAction(button) {
    const action = ACTIONS[button.dataset.action];
    if (!action) return;
    const call = action(button);
    if (!token()) {
      showResult(false, call.what + ": paste the admin token into the field at the top first");
      return;
    }
    button.disabled = true;
    showResult(true, call.what + ": working…");
    try {
      const headers = { Authorization: "Bearer " + token() };
      const init = { method: "POST", headers: headers, credentials: "omit", cache: "no-store" };
      if (call.body !== null) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(call.body);
      }
      const response = await fetch(call.path, init);
      let doc = null;
      try { doc = await response.json(); } catch (e) { doc = null; }
      showResult(response.ok, call.what + ": " + describe(response.status, doc));
    } catch (e) {
      showResult(false, call.what + ": the control plane did not answer (" + e + ")");
    } finally {
      button.disabled = false;
      refresh(true);
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.action");
    if (button) runAction(button);
  });

  // -- live updates: poll a small fingerprint, re-read the page's live parts when it moves --
  let version = "";
  let busy = false;

  function liveState(text) {
    const el = document.getElementById("live-state");
    if (el) el.textContent = text;
  }

  async function replaceLiveParts() {
    const response = await fetch(window.location.href, { cache: "no-store", credentials: "omit" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const part of document.querySelectorAll("[data-live][id]")) {
      const next = fresh.getElementById(part.id);
      if (next) part.replaceWith(document.importNode(next, true));
    }
  }

  async function refresh(force) {
    // A tab in the background polls nothing; it catches up when shown again.
    if (busy || (document.hidden && !force)) return;
    busy = true;
    try {
      const response = await fetch("/gui/live", { cache: "no-store", credentials: "omit" });
      const doc = await response.json();
      if (force || doc.version !== version) {
        version = doc.version;
        await replaceLiveParts();
      }
      liveState("live");
    } catch (e) {
      liveState("control plane unreachable; retrying");
    } finally {
      busy = false;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const meta = document.querySelector('meta[name="live-version"]');
    version = meta ? meta.content : "";
    setupTokenForm();
    setInterval(function () { refresh(false); }, POLL_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(false); });
  });
})();
