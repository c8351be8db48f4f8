// Web chat client: keeps a session token, sends messages, renders replies and buttons,
// and polls for messages that arrive later (for example from a staff member).
(function () {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const status = document.getElementById("status");
  const KEY = "dvcbot.webchat.session";
  let token = localStorage.getItem(KEY);
  let cursor = 0;
  let busy = false;
  const seen = new Set();

  function setStatus(text) { status.textContent = text || ""; }

  async function newSession() {
    const resp = await fetch("/api/webchat/sessions", { method: "POST" });
    if (resp.status !== 201) throw new Error("session " + resp.status);
    token = (await resp.json()).session;
    localStorage.setItem(KEY, token);
    cursor = 0;
  }

  async function api(method, url, body) {
    if (!token) await newSession();
    const opts = { method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp = await fetch(url, opts);
    if (resp.status === 401) {
      await newSession();
      opts.headers.Authorization = "Bearer " + token;
      resp = await fetch(url, opts);
    }
    return resp;
  }

  function add(kind, text, buttons, image) {
    const li = document.createElement("li");
    li.className = "msg msg--" + kind;
    if (kind === "staff") {
      const who = document.createElement("span");
      who.className = "msg__who";
      who.textContent = "Nhân viên bưu điện";
      li.appendChild(who);
    }
    if (text) li.appendChild(document.createTextNode(text));
    if (image) {
      const img = document.createElement("img");
      img.src = image; img.alt = "";
      li.appendChild(img);
    }
    if (buttons && buttons.length) {
      const box = document.createElement("div");
      box.className = "buttons";
      for (const b of buttons) {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.textContent = b.title;
        btn.addEventListener("click", () => send({ payload: b.payload, text: b.title }, b.title));
        box.appendChild(btn);
      }
      li.appendChild(box);
    }
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }

  function show(messages) {
    for (const m of messages) {
      if (m.id != null) {
        if (seen.has(m.id)) continue;
        seen.add(m.id);
        cursor = Math.max(cursor, m.id);
      }
      add(m.sender === "staff" ? "staff" : "bot", m.text, m.buttons, m.image);
    }
  }

  async function send(body, shown) {
    if (busy) return;
    busy = true;
    add("me", shown);
    setStatus("Đang trả lời…");
    try {
      const resp = await api("POST", "/api/webchat/messages", body);
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        setStatus(resp.status === 413 ? "Tin nhắn dài quá, anh/chị vui lòng gửi ngắn hơn." :
                  "Chưa gửi được tin nhắn, anh/chị vui lòng thử lại.");
      } else {
        setStatus("");
        show(data.messages || []);
      }
    } catch (e) {
      setStatus("Mất kết nối. Anh/chị vui lòng kiểm tra mạng và thử lại.");
    } finally {
      busy = false;
    }
  }

  async function poll() {
    if (!token || busy) return;
    try {
      const resp = await api("GET", "/api/webchat/messages?after=" + cursor);
      if (resp.ok) show((await resp.json()).messages || []);
    } catch (e) { /* offline: try again on the next tick */ }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text }, text);
  });
  const locate = document.getElementById("locate");
  if (navigator.geolocation) {
    locate.hidden = false;
    locate.addEventListener("click", () => {
      setStatus("Đang lấy vị trí…");
      navigator.geolocation.getCurrentPosition(
        (pos) => send({ location: { lat: pos.coords.latitude, lon: pos.coords.longitude } }, "📍 Vị trí của tôi"),
        () => setStatus("Chưa lấy được vị trí. Anh/chị có thể gõ tên phường/xã thay thế."),
        { timeout: 15000, maximumAge: 60000 });
    });
  }
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });

  (async function start() {
    try {
      if (token) await poll();
      if (!log.children.length) await send({ payload: "/greet", text: "Xin chào" }, "Xin chào");
    } catch (e) { setStatus("Chưa kết nối được máy chủ."); }
    setInterval(poll, 3000);
  })();
})();
