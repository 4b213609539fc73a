// The chat page: one topic socket (/live, ravyn.topics.v1) for every room. Rooms are joined and
// left without reconnecting; the member list and the join/leave notices come from presence;
// typing indicators are a second event. Rooms keep history: joining shows the last messages,
// a rejoin after a reconnect gets the missed ones (topics.js sends the channel's last position);
// a "resync" (the server could not continue from it) reloads the list from what follows.
// start() gets the topics client module (topics.js).

export function start({ Socket, Presence }) {
  const $ = (id) => document.getElementById(id);
  const nick = $("nick");  // absent when logged in: the server uses the username
  const room = $("room"), privateBox = $("private"), messages = $("messages"), text = $("text");
  const members = $("members"), typingLine = $("typing"), refused = $("refused"), status = $("status");
  const socket = new Socket("/live");
  let channel = null, presence = null, offs = [], synced = false, typingSent = 0, typingTimer = null;
  const typists = new Map();  // name -> timer that forgets it

  socket.onState((state) => {
    const words = {
      idle: "not connected", closed: "not connected", connecting: "connecting…", open: "connected",
      retrying: `offline, retrying in ${((socket.retryIn ?? 0) / 1000).toFixed(1)} s`,
      refused: "refused by the server",
    };
    status.dataset.state = state;
    status.textContent = words[state] ?? state;
  });

  function fromHash() {  // "#salle%20caf%C3%A9" or "#private%3Astaff"; a malformed hash is ignored
    let value = "";
    try { value = decodeURIComponent(location.hash.slice(1)); } catch (error) { value = ""; }
    if (value.startsWith("private:")) { privateBox.checked = true; value = value.slice("private:".length); }
    return value;
  }

  function who(info) { return (info && info.meta) || {}; }

  function showMembers() {  // one entry per name, "×2" for a name with two connections
    const names = new Map();
    for (const info of Object.values(presence ? presence.state : {})) {
      const { user, auth } = who(info);
      if (typeof user !== "string") continue;
      const [isAuth, n] = names.get(user) || [auth, 0];
      names.set(user, [isAuth, n + 1]);
    }
    members.replaceChildren(...[...names].sort(([a], [b]) => a.localeCompare(b)).map(([name, [auth, n]]) => {
      const li = document.createElement("li");
      li.className = auth ? "user auth" : "user";
      li.textContent = n > 1 ? `${name} ×${n}` : name;
      return li;
    }));
  }

  function notice(kind, person, words) {
    addLine(messages, `notice ${kind}`, ["b", person.auth ? "user auth" : "user", String(person.user)], words);
  }

  function showTyping() {
    const names = [...typists.keys()];
    typingLine.textContent = names.length === 0 ? ""
      : `${names.join(" and ")} ${names.length === 1 ? "is" : "are"} typing…`;
  }

  function sendTyping(typing) {
    if (!channel || channel.state !== "joined") return;
    channel.send("typing", { typing });
    typingSent = typing ? Date.now() : 0;
  }

  function leaveRoom() {
    for (const off of offs) off();
    offs = [];
    if (presence) presence.stop();
    if (channel && channel.state !== "closed") channel.leave().catch(() => {});
    channel = presence = null;
    typists.clear();
    showTyping();
  }

  async function join() {
    if (nick) localStorage.setItem("nick", nick.value.trim());
    const name = room.value.trim();
    const isPrivate = privateBox.checked;
    const topic = (isPrivate ? "private:" : "room:") + name;
    leaveRoom();
    location.hash = encodeURIComponent(isPrivate ? `private:${name}` : name);
    $("title").textContent = isPrivate ? `${name} (private)` : name;
    $("chat").hidden = false;
    refused.hidden = true;
    messages.replaceChildren();
    socket.connect();
    const current = channel = socket.channel(topic);
    presence = new Presence(current);
    synced = false;
    showMembers();
    offs = [
      current.on("message", (m) => addLine(messages, "message", ["b", m.auth ? "user auth" : "user", String(m.user)],
        " ", ["span", "text", String(m.text)])),
      current.on("resync", () => {  // what the page shows cannot be continued: start the list again
        messages.replaceChildren();
        addLine(messages, "notice resync", "history reloaded: earlier messages may be missing");
      }),
      current.on("typing", (t) => {
        clearTimeout(typists.get(t.user));
        if (t.typing) typists.set(t.user, setTimeout(() => { typists.delete(t.user); showTyping(); }, 5000));
        else typists.delete(t.user);
        showTyping();
      }),
      current.onState((state) => {  // rejoining after a reconnect: the next presence_state starts afresh
        if (state === "joining") { synced = false; presence.reset(); showMembers(); }
      }),
      presence.onJoin((id, info) => { if (synced && id !== presence.me) notice("join", who(info), " joined"); }),
      presence.onLeave((id, info) => { if (synced && id !== presence.me) notice("leave", who(info), " left"); }),
      presence.onSync(() => {
        if (!synced && presence.me) { synced = true; notice("join", who(presence.state[presence.me]), " joined"); }
        showMembers();
      }),
    ];
    try {
      await current.join({ nick: nick ? nick.value.trim() : "" });
    } catch (error) {
      if (channel !== current) return;
      leaveRoom();
      $("chat").hidden = true;
      refused.hidden = false;
      refused.textContent = `You cannot join ${isPrivate ? "the private room " : ""}${name}: ${error.reason || error.message}`;
    }
    text.focus();
  }

  onSubmit($("join"), join);
  onSubmit($("say"), () => {
    if (!channel || channel.state !== "joined" || !text.value) return;  // not connected: keep the text
    channel.push("message", { text: text.value }).catch((error) => notice("error", { user: "!" }, ` ${error.reason || error.message}`));
    text.value = "";
    clearTimeout(typingTimer);
    if (typingSent) sendTyping(false);
  });
  text.addEventListener("input", () => {
    if (Date.now() - typingSent > 2000) sendTyping(true);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => sendTyping(false), 3000);
  });

  if (nick) nick.value = localStorage.getItem("nick") || "";
  room.value = fromHash() || room.value;
  if (location.hash && (!nick || nick.value)) join();  // a reload stays in the room
}
