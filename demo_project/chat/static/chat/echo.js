// The echo page: one socket to the seed's /ws/{client_id}.
"use strict";

const clientId = Math.floor(Math.random() * 1000);
document.getElementById("client").textContent = clientId;
const messages = document.getElementById("messages");
const text = document.getElementById("text");
const socket = liveSocket(`/ws/${clientId}`, (data) => addLine(messages, "message", data));

onSubmit(document.getElementById("say"), () => { if (socket.send(text.value)) text.value = ""; });
