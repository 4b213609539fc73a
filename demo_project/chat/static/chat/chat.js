// The chat page: join a room over /chat/{room}, show its JSON events, send plain text.
"use strict";

const nick = document.getElementById("nick");  // absent when logged in: the server uses the username
const room = document.getElementById("room");
const messages = document.getElementById("messages");
const text = document.getElementById("text");
let socket = null;

if (nick) nick.value = localStorage.getItem("nick") || "";
room.value = decodeURIComponent(location.hash.slice(1)) || room.value;

function show(data) {
  const event = JSON.parse(data);
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
  const query = nick ? `?nick=${encodeURIComponent(nick.value.trim())}` : "";
  socket = liveSocket(`/chat/${encodeURIComponent(name)}${query}`, show);
  text.focus();
}

onSubmit(document.getElementById("join"), join);
onSubmit(document.getElementById("say"), () => { if (socket.send(text.value)) text.value = ""; });
if (location.hash && (!nick || nick.value)) join();  // a reload stays in the room
