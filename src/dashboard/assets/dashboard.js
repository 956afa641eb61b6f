// registre-monitor dashboard: live updates over server-sent events (closed
// while the tab is hidden, reopened when it shows), times as "… ago", the
// timeline filter without a reload, and actions behind a confirmation.
"use strict";
(function () {
  const conn = document.getElementById("conn");
  const notice = document.getElementById("notice");
  const form = document.getElementById("filter");
  const csrf = document.querySelector('meta[name="csrf-token"]');
  const deferred = new Map(); // section id -> html held while a confirmation is open
  let source = null;

  function say(text, tone) {
    conn.textContent = text;
    conn.className = "conn " + (tone || "");
  }

  function tell(text, ok) {
    notice.hidden = false;
    notice.textContent = text;
    notice.className = "notice " + (ok ? "t-ok" : "t-bad");
  }

  function query() {
    const params = new URLSearchParams();
    if (form) {
      for (const el of form.elements) {
        if (el.name && el.value) params.set(el.name, el.value);
      }
    }
    const q = params.toString();
    return q ? "?" + q : "";
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h " + (Math.floor(s / 60) % 60) + " min ago";
    return Math.floor(s / 86400) + " d ago";
  }

  function ages() {
    for (const t of document.querySelectorAll("time[data-at]")) {
      t.textContent = ago(Number(t.dataset.at));
    }
  }

  function replace(id, html) {
    const old = document.getElementById(id);
    if (!old) return;
    if (old.querySelector(".confirm")) {
      deferred.set(id, html); // not under the person's finger
      return;
    }
    const open = Array.from(old.querySelectorAll("details[open]"), (d) => d.id);
    old.outerHTML = html;
    for (const d of open) {
      const el = document.getElementById(d);
      if (el) el.open = true;
    }
  }

  function apply(sections) {
    for (const [id, html] of sections) replace(id, html);
    ages();
  }

  function connect() {
    if (source || !window.EventSource) return;
    source = new EventSource("/events" + query());
    say("connecting…", "warn");
    source.addEventListener("open", () => say("live", "ok"));
    source.addEventListener("update", (e) => {
      apply(JSON.parse(e.data).sections);
      say("live", "ok");
    });
    source.addEventListener("error", () => {
      if (source && source.readyState === EventSource.CLOSED) {
        say("disconnected: reload the page", "warn");
      } else {
        say("reconnecting…", "warn");
      }
    });
  }

  function disconnect() {
    if (source) source.close();
    source = null;
    say("paused while the tab is hidden");
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) disconnect();
    else connect();
  });

  if (form) {
    const refilter = () => {
      history.replaceState(null, "", "/" + query());
      if (source) {
        source.close();
        source = null;
      }
      connect();
    };
    form.addEventListener("change", refilter);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      refilter();
    });
  }

  function closeConfirm(box) {
    const section = box.closest("[id]");
    box.previousElementSibling.hidden = false;
    box.remove();
    for (const [id, html] of deferred) {
      const el = document.getElementById(id);
      if (!el || !el.querySelector(".confirm")) {
        deferred.delete(id);
        replace(id, html);
      }
    }
    return section;
  }

  async function act(button) {
    const d = button.dataset;
    const body = {};
    for (const k of ["project", "id", "key", "seen", "worker", "started", "count"]) {
      if (d[k] !== undefined) body[k] = d[k];
    }
    const headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf.content;
    try {
      const res = await fetch("/actions/" + d.action, {
        method: "POST",
        headers: headers,
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      const answer = await res.json().catch(() => ({}));
      if (res.ok) tell(answer.message || "Done.", answer.count > 0);
      else tell("Refused (" + res.status + "): " + (answer.error || res.statusText), false);
    } catch (err) {
      tell("The request failed: " + err, false);
    }
  }

  document.addEventListener("click", (e) => {
    const target = e.target;
    if (!(target instanceof Element)) return;
    const start = target.closest("button.act");
    if (start) {
      const box = document.createElement("span");
      box.className = "confirm";
      const text = document.createElement("span");
      text.textContent = start.dataset.confirm;
      const yes = document.createElement("button");
      yes.type = "button";
      yes.className = "act-yes";
      yes.textContent = "Confirm";
      const no = document.createElement("button");
      no.type = "button";
      no.className = "act-no";
      no.textContent = "Cancel";
      box.append(text, " ", yes, " ", no);
      start.hidden = true;
      start.after(box);
      no.focus();
      return;
    }
    const yes = target.closest("button.act-yes");
    if (yes) {
      const box = yes.closest(".confirm");
      const button = box.previousElementSibling;
      yes.disabled = true;
      act(button).finally(() => closeConfirm(box));
      return;
    }
    const no = target.closest("button.act-no");
    if (no) closeConfirm(no.closest(".confirm"));
  });

  ages();
  setInterval(() => {
    if (!document.hidden) ages();
  }, 1000);
  if (!document.hidden) connect();
  else say("paused while the tab is hidden");
})();
