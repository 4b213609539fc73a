// The chat page: join a room over /chat/{room}, show its JSON events and who is here, send plain text.
"use strict";

const nick = document.getElementById("nick");  // absent when logged in: the server uses the username
const room = document.getElementById("room");
const messages = document.getElementById("messages");
const text = document.getElementById("text");
const members = document.getElementById("members");
let socket = null;
let present = {};  // opaque member id -> {meta: {user, auth}}, from presence frames

function fromHash() {  // the room in the URL's #fragment; a malformed one (#%E0%A4%A) is ignored
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch (error) {
    return "";
  }
}

if (nick) nick.value = localStorage.getItem("nick") || "";
room.value = fromHash() || room.value;

function userClass(auth) {  // logged-in users get the ✓, guests (nicknames) a "guest" mark: never the same look
  return auth === true ? "user auth" : "user guest";
}

function showMembers() {  // one entry per person, "×2" for one with two connections
  const people = new Map();  // a guest "alice" and the user alice are two people
  for (const { meta } of Object.values(present)) {
    const auth = meta.auth === true;
    const key = `${auth ? "user" : "guest"}:${meta.user}`;
    const [, , n] = people.get(key) || [meta.user, auth, 0];
    people.set(key, [String(meta.user), auth, n + 1]);
  }
  const sorted = [...people.values()].sort(([a, aa], [b, ba]) => a.localeCompare(b) || aa - ba);
  members.replaceChildren(...sorted.map(([name, auth, n]) => {
    const li = document.createElement("li");
    li.className = userClass(auth);
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
  const who = ["b", userClass(event.auth), event.user];
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
