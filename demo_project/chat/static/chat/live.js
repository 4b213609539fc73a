// A websocket that reconnects by itself (backoff 0.5 s → 8 s) and shows its state in #status.
"use strict";

function liveSocket(path, onMessage) {
  const status = document.getElementById("status");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
  let ws, timer, delay = 500, stopped = false;

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function open() {
    show("connecting", "connecting…");
    ws = new WebSocket(url);
    ws.onopen = () => { delay = 500; show("open", "connected"); };
    ws.onmessage = (event) => onMessage(event.data);
    ws.onclose = () => {
      if (stopped) return;
      show("retrying", `offline, retrying in ${(delay / 1000).toFixed(1)} s`);
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 8000);
    };
  }

  open();
  return {
    send(text) {  // false when not connected: the caller keeps the text
      if (ws.readyState !== WebSocket.OPEN) return false;
      ws.send(text);
      return true;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      ws.close(1000);
      show("idle", "not connected");
    },
  };
}

function addLine(list, className, ...parts) {  // parts: strings or [tag, className, text]
  const li = document.createElement("li");
  li.className = className;
  for (const part of parts) {
    if (typeof part === "string") { li.append(part); continue; }
    const [tag, cls, text] = part;
    const el = document.createElement(tag);
    el.className = cls;
    el.textContent = text;
    li.append(el);
  }
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function onSubmit(form, handler) {
  form.addEventListener("submit", (event) => { event.preventDefault(); handler(); });
}
