// The console's live parts: the queue refreshes itself, and a ticket's conversation shows new messages and sends
// replies without reloading. Plain DOM (textContent only, never innerHTML with data); the CSRF token comes from
// <meta name="csrf-token"> and goes in the X-CSRF-Token header or the forms' csrf field.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const page = document.currentScript.dataset.page;
  const EVERY = 2000;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children || []) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    return node;
  }

  async function getJSON(url) {
    const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (resp.status === 401) { window.location.href = "/console/login?next=" + encodeURIComponent(location.pathname); }
    if (!resp.ok) throw new Error(url + " " + resp.status);
    return resp.json();
  }

  // --- the queue -----------------------------------------------------------------------------------------------
  function claimForm(t) {
    const form = el("form", { method: "post", action: t.url + "/claim" });
    form.appendChild(el("input", { type: "hidden", name: "csrf", value: csrf }));
    form.appendChild(el("button", { type: "submit", class: "primary", text: "Nhận xử lý" }));
    return form;
  }

  function row(t, kind, remindAfter) {
    const tr = el("tr", { "data-ticket": String(t.id) });
    if (kind === "waiting" && t.waited >= remindAfter) tr.className = "late";
    const topic = [t.procedure || t.reason];
    if (t.procedure) topic.push(el("br"), el("small", { text: t.reason }));
    const when = [t.opened, el("br"), el("small", { text: t.waited + " phút" + (t.out_of_hours ? " · ngoài giờ" : "") })];
    let last;
    if (kind === "waiting") last = claimForm(t);
    else if (kind === "mine") last = el("a", { class: "button", href: t.url, text: "Mở" });
    else last = document.createTextNode(t.holder || "");
    for (const cell of [[el("a", { href: t.url, text: "#" + t.id })], [t.name, el("br"), el("small", { text: t.channel })],
                        topic, [t.last], when, [last]]) {
      tr.appendChild(el("td", {}, cell));
    }
    return tr;
  }

  const EMPTY = { waiting: "Không có phiếu nào đang chờ.", mine: "Anh/chị chưa nhận phiếu nào.", others: "Không có." };

  async function refreshQueue() {
    try {
      const data = await getJSON("/console/api/queue");
      for (const kind of ["waiting", "mine", "others"]) {
        const body = document.getElementById(kind);
        const rows = data[kind].map((t) => row(t, kind, data.remind_after));
        if (!rows.length) rows.push(el("tr", { class: "empty" }, [el("td", { colspan: "6", text: EMPTY[kind] })]));
        body.replaceChildren(...rows);
      }
      const count = document.getElementById("count-waiting");
      count.textContent = String(data.waiting.length);
      document.title = (data.waiting.length ? "(" + data.waiting.length + ") " : "") + "Hàng chờ – Trợ lý dịch vụ công";
      document.getElementById("live").textContent = "Cập nhật lúc " + new Date().toLocaleTimeString("vi-VN");
    } catch (e) {
      document.getElementById("live").textContent = "Mất kết nối, đang thử lại…";
    }
  }

  // --- a ticket ------------------------------------------------------------------------------------------------
  function whoOf(m) {
    if (m.sender === "citizen") return "Công dân";
    if (m.sender === "staff") return m.staff || "Nhân viên";
    return "Trợ lý";
  }

  function ticketPage() {
    const box = document.getElementById("ticket");
    const id = box.dataset.ticket;
    const log = document.getElementById("log");
    const form = document.getElementById("reply");
    const text = document.getElementById("text");
    const status = document.getElementById("reply-status");
    let last = 0;
    for (const li of log.querySelectorAll("li[data-id]")) last = Math.max(last, Number(li.dataset.id));
    log.scrollTop = log.scrollHeight;

    function add(m) {
      if (log.querySelector('li[data-id="' + m.id + '"]')) return;
      log.appendChild(el("li", { class: "line line--" + m.sender, "data-id": String(m.id) },
        [el("span", { class: "line__who", text: whoOf(m) + " · " + m.at }), el("span", { class: "line__text", text: m.text })]));
      last = Math.max(last, m.id);
      log.scrollTop = log.scrollHeight;
    }

    async function refresh() {
      try {
        const data = await getJSON("/console/api/tickets/" + id + "/messages?after=" + last);
        data.messages.forEach(add);
        if (data.status !== box.dataset.status) {
          // claimed, ended or transferred meanwhile (maybe from Telegram): the page's buttons must follow
          window.location.reload();
        }
      } catch (e) { /* the next tick tries again */ }
    }

    if (form) {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const value = text.value.trim();
        if (!value) return;
        const button = document.getElementById("send");
        button.disabled = true;
        status.textContent = "Đang gửi…";
        try {
          const resp = await fetch("/console/api/tickets/" + id + "/messages", {
            method: "POST", credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify({ text: value }) });
          const data = await resp.json().catch(() => ({}));
          if (resp.ok) { text.value = ""; status.textContent = ""; await refresh(); }
          else status.textContent = data.error || "Chưa gửi được, anh/chị thử lại.";
        } catch (e) {
          status.textContent = "Mất kết nối, chưa gửi được.";
        } finally {
          button.disabled = false;
          text.focus();
        }
      });
      text.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
      });
    }
    setInterval(refresh, EVERY);
  }

  if (page === "queue") setInterval(refreshQueue, EVERY);
  if (page === "ticket") ticketPage();
})();
