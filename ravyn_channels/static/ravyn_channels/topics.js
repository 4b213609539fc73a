// ravyn_channels topics client (protocol ravyn.topics.v1): one ES module, no build step.
//
//   import { Socket, Presence } from "{% static 'ravyn_channels/topics.js' %}";
//   const socket = new Socket("/live").connect();
//   const room = socket.channel("room:42");
//   room.on("message", (payload) => show(payload));
//   await room.join({ nick: "ann" });              // the join reply, or a ReplyError
//   await room.push("message", { text: "hi" });    // the reply, ReplyError or TimeoutError
//
// Socket: the connection (reconnects with exponential backoff and jitter; never after a refused
// handshake or a policy close), Channel: one topic (rejoined after every reconnect),
// Presence: a member list kept in sync from presence_state + presence_diff.
// On a topic with history a Channel keeps the last `position` it received and sends it when it
// rejoins: the server replays what was missed, in order, once, or pushes a "resync" event
// (channel.on("resync", ...)) so the page reloads its state.

export const PROTOCOL = "ravyn.topics.v1";
const SOCKET_TOPIC = "ravyn";
const NO_RETRY_CODES = new Set([1008]);
// The close of a connection whose token expired: renewed when `token` is a function.
const EXPIRED_REASON = "token expired";

export class ReplyError extends Error {
  constructor(topic, event, response) {
    const reason = response && typeof response === "object" ? String(response.reason ?? "") : String(response);
    super(`${event} on ${topic} refused: ${reason}`);
    this.name = "ReplyError";
    this.topic = topic;
    this.event = event;
    this.reason = reason;
    this.response = response;
    /** The server asks to try again later (a join while the history store is unreachable). */
    this.retry = Boolean(response && typeof response === "object" && response.retry === true);
  }
}

export class TimeoutError extends Error {
  constructor(topic, event, ms) {
    super(`no reply to ${event} on ${topic} within ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/** Milliseconds before reconnect attempt n (1, 2, ...): base·2^(n-1) capped at cap, half of it random. */
export function backoffDelay(attempt, base = 500, cap = 30000) {
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function wsUrl(url) {
  const absolute = new URL(url, globalThis.location ? globalThis.location.href : undefined);
  if (absolute.protocol === "http:") absolute.protocol = "ws:";
  if (absolute.protocol === "https:") absolute.protocol = "wss:";
  return absolute.toString();
}

class Listeners {
  constructor() { this.map = new Map(); }
  on(name, callback) {
    if (!this.map.has(name)) this.map.set(name, new Set());
    this.map.get(name).add(callback);
    return () => this.map.get(name)?.delete(callback);
  }
  emit(name, ...args) {
    for (const callback of [...(this.map.get(name) ?? [])]) {
      try { callback(...args); } catch (error) { console.error(`ravyn topics: ${name} handler failed`, error); }
    }
  }
}

export class Socket {
  /**
   * @param {string} url  ws(s):// URL or a path ("/live") on the page's host
   * @param {object} [options] token (a string, or a function returning one or a promise of one, called
   *   before every connection: then a close for an expired token reconnects with a fresh token),
   *   timeout (ms, per reply), heartbeat (ms), backoff(attempt) -> ms
   */
  constructor(url, options = {}) {
    this.url = wsUrl(url);
    this.token = options.token ?? null;
    this.timeout = options.timeout ?? 10000;
    this.heartbeat = options.heartbeat ?? 30000;
    this.backoff = options.backoff ?? backoffDelay;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    /** "idle" | "connecting" | "open" | "retrying" | "refused" | "closed" */
    this.state = "idle";
    this.channels = new Map();
    this.connections = 0;   // successful opens so far
    this.attempts = 0;      // handshakes tried so far
    this.ws = null;
    this._ref = 0;
    this._replies = new Map();
    this._queue = [];
    this._attempt = 0;
    this._suspect = false;  // a handshake failed while the server answered HTTP: one more decides
    this._retryTimer = null;
    this._beatTimer = null;
    this._beatRef = null;
    this._listeners = new Listeners();
  }

  onOpen(callback) { return this._listeners.on("open", callback); }
  onClose(callback) { return this._listeners.on("close", callback); }
  onState(callback) { return this._listeners.on("state", callback); }
  get isConnected() { return this.state === "open"; }

  /** The Channel of a topic (one per topic on this socket). */
  channel(topic) {
    let channel = this.channels.get(topic);
    if (!channel) { channel = new Channel(this, topic); this.channels.set(topic, channel); }
    return channel;
  }

  connect() {
    if (this.state === "idle" || this.state === "closed" || this.state === "refused") this._open();
    return this;
  }

  /** Close for good: no reconnect; every timer stops. */
  disconnect(code = 1000, reason = "") {
    this._setState("closed");
    this._clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onopen = ws.onclose = ws.onmessage = ws.onerror = null; ws.close(code, reason); }
    this._failReplies(new Error("socket closed"));
    for (const channel of this.channels.values()) channel._settle("reject", new Error("socket closed"));
    this._queue = [];
  }

  _setState(state) {
    if (this.state !== state) { this.state = state; this._listeners.emit("state", state); }
  }

  _clearTimers() {
    clearTimeout(this._retryTimer); this._retryTimer = null;
    for (const channel of this.channels.values()) { clearTimeout(channel._retryTimer); channel._retryTimer = null; }
    clearInterval(this._beatTimer); this._beatTimer = null;
    this._beatRef = null;
  }

  _open() {
    this._setState("connecting");
    this.attempts += 1;
    if (typeof this.token !== "function") { this._openWith(this.token); return; }
    Promise.resolve().then(() => this.token()).then(
      (token) => { if (this.state === "connecting") this._openWith(token); },
      (error) => { console.warn("ravyn topics: token function failed:", error); if (this.state === "connecting") this._retry(); });
  }

  _openWith(token) {
    const protocols = token ? [PROTOCOL, "bearer", token] : [PROTOCOL];
    const ws = new this.WebSocket(this.url, protocols);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (ws.protocol !== PROTOCOL) { ws.onclose = null; ws.close(1000); this._refused("the server did not accept " + PROTOCOL); return; }
      opened = true;
      this._attempt = 0;
      this._suspect = false;
      this.connections += 1;
      this._setState("open");
      this._beatTimer = setInterval(() => this._beat(), this.heartbeat);
      const queued = this._queue; this._queue = [];
      for (const text of queued) ws.send(text);
      for (const channel of this.channels.values()) channel._rejoin();
      this._listeners.emit("open");
    };
    ws.onmessage = (event) => this._onMessage(event.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._clearTimers();
      this._failReplies(new Error(`connection closed (${event.code})`));
      for (const channel of this.channels.values()) channel._connectionLost();
      this._listeners.emit("close", event.code, event.reason);
      if (this.state === "closed") return;
      const renew = typeof this.token === "function" && event.reason === EXPIRED_REASON;
      if (opened && NO_RETRY_CODES.has(event.code) && !renew) { this._refused(`closed by the server with ${event.code}`); return; }
      if (!opened) { this._probe(); return; }
      this._retry();
    };
  }

  // A handshake that failed before opening: was the server down (retry) or did it refuse (stop)?
  // Browsers hide the HTTP status of a websocket handshake, so ask the server over HTTP: no answer
  // (or a gateway error from a proxy) means down; any other answer means it is up: then one more
  // handshake, and a second failure while it answers means it refused us.
  async _probe() {
    const http = this.url.replace(/^ws/, "http");
    let up = false;
    try {
      const response = await fetch(http, { method: "GET", cache: "no-store", credentials: "omit", redirect: "manual" });
      up = response.type !== "opaque" && ![502, 503, 504].includes(response.status);
    } catch (error) {
      up = false;
    }
    if (this.state === "closed") return;
    if (!up) { this._suspect = false; this._retry(); return; }
    // Up now, but it may have been down a moment ago (a restart finishing between the handshake and
    // the probe): one more handshake decides. Failing again while the server answers is a refusal.
    if (this._suspect) { this._suspect = false; this._refused("handshake refused"); return; }
    this._suspect = true;
    this._retry();
  }

  _refused(why) {
    this._setState("refused");
    this.refusal = why;
    for (const channel of this.channels.values()) channel._socketRefused(why);
    this._failReplies(new Error(why));
  }

  _retry() {
    this._attempt += 1;
    this._setState("retrying");
    this.retryIn = this.backoff(this._attempt);
    this._retryTimer = setTimeout(() => { this._retryTimer = null; if (this.state === "retrying") this._open(); }, this.retryIn);
  }

  _beat() {
    const ws = this.ws;
    if (!ws) return;
    if (this._beatRef !== null) { ws.close(4000, "heartbeat timeout"); return; }  // onclose reconnects
    const ref = this._beatRef = this._nextRef();
    this._request(SOCKET_TOPIC, "heartbeat", {}, this.heartbeat, ref).then(
      () => { if (this._beatRef === ref) this._beatRef = null; }, () => {});
  }

  _nextRef() { this._ref += 1; return String(this._ref); }

  _send(frame) {
    const text = JSON.stringify(frame);
    if (this.ws && this.state === "open") this.ws.send(text); else this._queue.push(text);
  }

  _request(topic, event, payload, timeout, ref = this._nextRef(), extra = null) {
    const ms = timeout ?? this.timeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this._replies.delete(ref); reject(new TimeoutError(topic, event, ms)); }, ms);
      this._replies.set(ref, { topic, event, resolve, reject, timer, whole: extra !== null });
      this._send({ topic, event, payload: payload ?? {}, ref, ...(extra ?? {}) });
    });
  }

  _failReplies(error) {
    const replies = this._replies;
    this._replies = new Map();
    for (const reply of replies.values()) { clearTimeout(reply.timer); reply.reject(error); }
  }

  _onMessage(data) {
    let frame;
    try { frame = JSON.parse(data); } catch (error) { return; }
    if (!frame || typeof frame !== "object") return;
    if (frame.event === "reply") {
      const reply = this._replies.get(String(frame.ref));
      if (!reply) return;
      this._replies.delete(String(frame.ref));
      clearTimeout(reply.timer);
      const payload = frame.payload ?? {};
      if (payload.status === "ok") reply.resolve(reply.whole ? frame : payload.response);
      else reply.reject(new ReplyError(reply.topic, reply.event, payload.response));
      return;
    }
    const channel = this.channels.get(frame.topic);
    if (channel) channel._dispatch(frame.event, frame.payload, frame.position);
    else if (frame.event === "error") console.warn("ravyn topics:", frame.payload?.reason);
  }
}

// A join reply's position beyond the last push received, in the same history (pushes the server
// skipped for this socket, e.g. broadcast with exclude).
function later(position, than) {
  if (than === null) return true;
  const [epoch, offset] = position.split(":");
  const [oldEpoch, oldOffset] = than.split(":");
  return epoch === oldEpoch && Number(offset) > Number(oldOffset);
}

export class Channel {
  constructor(socket, topic) {
    this.socket = socket;
    this.topic = topic;
    /** "closed" | "joining" | "joined" | "leaving" | "errored" */
    this.state = "closed";
    this.joins = 0;            // joins the server accepted (first join and rejoins)
    this.reply = undefined;    // the last join reply
    this.joinPayload = {};
    /** The last position received on a topic with history ("<epoch>:<offset>"), sent on rejoin. */
    this.position = null;
    this._pushed = false;      // a frame with a position arrived since the last join was sent
    this._wanted = false;
    this._joinedOn = 0;        // the connection number this channel last sent its join on
    this._retries = 0;         // rejoins the server asked to retry since the last accepted join
    this._retryTimer = null;
    this._waiters = [];
    this._listeners = new Listeners();
  }

  /** Call callback(payload) for each event pushed on this topic; returns an unsubscribe function. */
  on(event, callback) { return this._listeners.on(event, callback); }
  onState(callback) { return this._listeners.on("$state", callback); }

  _setState(state) {
    if (this.state !== state) { this.state = state; this._listeners.emit("$state", state); }
  }

  /**
   * Join (now, or as soon as the socket opens); resolves with the join reply, rejects with ReplyError.
   * `position` (a topic with history) resumes after a position the page kept, e.g. the one its
   * server-rendered messages end at.
   */
  join(payload = {}, { timeout, position } = {}) {
    this.joinPayload = payload ?? {};
    if (position !== undefined && position !== null) this.position = String(position);
    this._wanted = true;
    if (this.state === "joined" && this._joinedOn === this.socket.connections) return Promise.resolve(this.reply);
    const promise = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.socket.state === "open") this._sendJoin(timeout);
    else this._setState("joining");
    return promise;
  }

  _sendJoin(timeout) {
    const socket = this.socket;
    if (this._joinedOn === socket.connections) return;  // one join per connection, never two
    this._joinedOn = socket.connections;
    this._setState("joining");
    this._pushed = false;
    const extra = this.position === null ? {} : { position: this.position };
    socket._request(this.topic, "join", this.joinPayload, timeout, undefined, extra).then(
      (frame) => {
        const response = frame.payload?.response;
        const position = frame.position;
        if (typeof position !== "string") this.position = null;  // no history (now): nothing to resume
        else if (!this._pushed || later(position, this.position)) this.position = position;
        this.joins += 1;
        this._retries = 0;
        this.reply = response;
        this._setState("joined");
        this._settle("resolve", response);
      },
      (error) => {
        if (error instanceof ReplyError && error.retry && this.joins > 0 && this._wanted) {
          // A rejoin the server could not serve now (history store unreachable): again after a backoff.
          const connection = socket.connections;
          this._retries += 1;
          this._joinedOn = 0;
          this._setState("joining");
          this._retryTimer = setTimeout(() => {
            this._retryTimer = null;
            if (socket.state === "open" && socket.connections === connection) this._rejoin();
          }, socket.backoff(this._retries));
        } else if (error instanceof ReplyError) {
          this._wanted = false;
          this._setState("errored");
          this._settle("reject", error);
        } else if (error instanceof TimeoutError) {
          this._joinedOn = 0;
          this._setState("errored");
          this._settle("reject", error);
        }  // a dropped connection: the next one rejoins
      });
  }

  _settle(how, value) {
    const waiters = this._waiters; this._waiters = [];
    for (const waiter of waiters) waiter[how](value);
  }

  _rejoin() { if (this._wanted) this._sendJoin(); }
  _connectionLost() { if (this._wanted) this._setState("joining"); }
  _socketRefused(why) {
    if (this._wanted) this._setState("errored");
    this._settle("reject", new Error(why));
  }

  /** Leave the topic and stop rejoining it. */
  async leave({ timeout } = {}) {
    this._wanted = false;
    clearTimeout(this._retryTimer); this._retryTimer = null;
    this._joinedOn = 0;
    this.position = null;
    this._setState("leaving");
    try {
      if (this.socket.state === "open") await this.socket._request(this.topic, "leave", {}, timeout);
    } finally {
      this._setState("closed");
    }
  }

  /** Send event and wait for its reply: resolves with the response; ReplyError or TimeoutError. */
  push(event, payload = {}, { timeout } = {}) {
    return this.socket._request(this.topic, event, payload, timeout);
  }

  /** Send event without asking for a reply. */
  send(event, payload = {}) { this.socket._send({ topic: this.topic, event, payload }); }

  _dispatch(event, payload, position) {
    if (typeof position === "string" && this._wanted) { this.position = position; this._pushed = true; }
    this._listeners.emit(event, payload, position);
  }
}

export class Presence {
  /** Members of a topic with presence=True: state is {connection_id: info}; callbacks get diffs. */
  constructor(channel) {
    this.state = {};
    this.me = null;  // this socket's own id in state (from presence_state)
    this._listeners = new Listeners();
    this._off = channel.on("presence", (change) => this._apply(change));
  }

  onSync(callback) { return this._listeners.on("sync", callback); }
  onJoin(callback) { return this._listeners.on("join", callback); }
  onLeave(callback) { return this._listeners.on("leave", callback); }
  list() { return Object.entries(this.state).map(([id, info]) => ({ id, ...info })); }
  /** Forget every member (e.g. while rejoining): the next presence_state starts afresh, with no diffs. */
  reset() { this.state = {}; this.me = null; }
  stop() { this._off(); }

  _apply(change) {
    if (!change || typeof change !== "object") return;
    let joins = {}, leaves = {};
    if (change.type === "presence_state") {
      if (change.me !== undefined) this.me = change.me;
      const next = change.members ?? {};
      for (const [id, info] of Object.entries(next)) if (!(id in this.state)) joins[id] = info;
      for (const [id, info] of Object.entries(this.state)) if (!(id in next)) leaves[id] = info;
      this.state = { ...next };
    } else if (change.type === "presence_diff") {
      leaves = change.leaves ?? {};
      joins = change.joins ?? {};
      for (const id of Object.keys(leaves)) delete this.state[id];
      Object.assign(this.state, joins);
    } else {
      return;
    }
    for (const [id, info] of Object.entries(joins)) this._listeners.emit("join", id, info);
    for (const [id, info] of Object.entries(leaves)) this._listeners.emit("leave", id, info);
    this._listeners.emit("sync", this.list());
  }
}
