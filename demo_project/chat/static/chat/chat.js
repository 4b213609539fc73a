// The chat page: join a room over /chat/{room}, show its JSON events and who is here, send plain text.
"use strict";

const nick = document.getElementById("nick");  // absent when logged in: the server uses the username
const room = document.getElementById("room");
const messages = document.getElementById("messages");
const text = document.getElementById("text");
const members = document.getElementById("members");
let socket = null;
let present = {};  // connection id -> {user_id, username, joined_at, meta: {user, auth}}, from presence frames

if (nick) nick.value = localStorage.getItem("nick") || "";
room.value = decodeURIComponent(location.hash.slice(1)) || room.value;

function showMembers() {  // one entry per name, "×2" for a name with two connections
  const names = new Map();
  for (const { meta } of Object.values(present)) {
    const [auth, n] = names.get(meta.user) || [meta.auth, 0];
    names.set(meta.user, [auth, n + 1]);
  }
  members.replaceChildren(...[...names].sort(([a], [b]) => a.localeCompare(b)).map(([name, [auth, n]]) => {
    const li = document.createElement("li");
    li.className = auth ? "user auth" : "user";
    li.textContent = n > 1 ? `${name} ×${n}` : name;
    return li;
  }));
}

function show(data) {
  const event = JSON.parse(data);
  if (event.type === "presence_state") {
    present = event.members;
    return showMembers();
  }
  if (event.type === "presence_diff") {
    for (const id of Object.keys(event.leaves)) delete present[id];
    Object.assign(present, event.joins);
    return showMembers();
  }
  const who = ["b", event.auth ? "user auth" : "user", event.user];
  if (event.type === "message") addLine(messages, "message", who, " ", ["span", "text", event.text]);
  else addLine(messages, `notice ${event.type}`, who, event.type === "join" ? " joined" : " left");
}

function join() {
  if (socket) socket.stop();
  if (nick) localStorage.setItem("nick", nick.value.trim());
  const name = room.value.trim();
  location.hash = encodeURIComponent(name);
  document.getElementById("title").textContent = name;
  document.getElementById("chat").hidden = false;
  messages.replaceChildren();
  present = {};
  showMembers();
  const query = nick ? `?nick=${encodeURIComponent(nick.value.trim())}` : "";
  socket = liveSocket(`/chat/${encodeURIComponent(name)}${query}`, show);
  text.focus();
}

onSubmit(document.getElementById("join"), join);
onSubmit(document.getElementById("say"), () => { if (socket.send(text.value)) text.value = ""; });
if (location.hash && (!nick || nick.value)) join();  // a reload stays in the room
