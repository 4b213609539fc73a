// Type declarations for topics.js (ravyn_channels topics client, protocol ravyn.topics.v1).

export declare const PROTOCOL: "ravyn.topics.v1";

export type SocketState = "idle" | "connecting" | "open" | "retrying" | "refused" | "closed";
export type ChannelState = "closed" | "joining" | "joined" | "leaving" | "errored";
export type Unsubscribe = () => void;

export declare class ReplyError extends Error {
  readonly topic: string;
  readonly event: string;
  /** `response.reason` as a string. */
  readonly reason: string;
  /** The reply's whole `response`: `{reason, errors?, details?, retry?}`. */
  readonly response: unknown;
  /** The server asks to try again later (`response.retry === true`: the history store was unreachable); a rejoin does so by itself. */
  readonly retry: boolean;
}

export declare class TimeoutError extends Error {}

/** Milliseconds before reconnect attempt `attempt` (1, 2, ...): `base·2^(attempt-1)` capped, half of it random. */
export declare function backoffDelay(attempt: number, base?: number, cap?: number): number;

export interface SocketOptions {
  /** Sent as the `["bearer", token]` subprotocol pair. */
  token?: string | null;
  /** Milliseconds to wait for each reply (default 10000). */
  timeout?: number;
  /** Milliseconds between heartbeats (default 30000). */
  heartbeat?: number;
  /** Milliseconds to wait before reconnect attempt n. */
  backoff?: (attempt: number) => number;
  /** A WebSocket implementation (default: the browser's). */
  WebSocket?: typeof WebSocket;
}

export declare class Socket {
  constructor(url: string, options?: SocketOptions);
  readonly url: string;
  readonly state: SocketState;
  readonly isConnected: boolean;
  /** Successful opens so far (1, then +1 per reconnect). */
  readonly connections: number;
  /** Handshakes tried so far. */
  readonly attempts: number;
  /** Milliseconds until the next attempt while `state` is `"retrying"`. */
  readonly retryIn?: number;
  /** Why the socket stopped for good while `state` is `"refused"`. */
  readonly refusal?: string;
  readonly channels: Map<string, Channel>;
  connect(): this;
  disconnect(code?: number, reason?: string): void;
  channel(topic: string): Channel;
  onOpen(callback: () => void): Unsubscribe;
  onClose(callback: (code: number, reason: string) => void): Unsubscribe;
  onState(callback: (state: SocketState) => void): Unsubscribe;
}

export interface CallOptions {
  /** Milliseconds to wait for the reply (default: the socket's timeout). */
  timeout?: number;
}

export interface JoinOptions extends CallOptions {
  /** A topic with history: resume after this position ("<epoch>:<offset>") instead of the channel's own. */
  position?: string | null;
}

/** Why a topic with history could not continue from the client's position. */
export type ResyncReason = "malformed" | "epoch" | "future" | "expired";

/** The payload of a `resync` event: reload the topic's state; the messages that follow continue from `channel.position`. */
export interface ResyncPayload {
  reason: ResyncReason;
}

export declare class Channel {
  readonly socket: Socket;
  readonly topic: string;
  readonly state: ChannelState;
  /** Joins the server accepted (first join and rejoins). */
  readonly joins: number;
  /** The last join reply. */
  readonly reply: unknown;
  /** A topic with history: the last position received ("<epoch>:<offset>"), sent when the channel rejoins. */
  readonly position: string | null;
  joinPayload: unknown;
  join<R = unknown>(payload?: unknown, options?: JoinOptions): Promise<R>;
  leave(options?: CallOptions): Promise<void>;
  push<R = unknown>(event: string, payload?: unknown, options?: CallOptions): Promise<R>;
  send(event: string, payload?: unknown): void;
  /** `position` is set on pushes of a topic with history. */
  on(event: "resync", callback: (payload: ResyncPayload, position: string) => void): Unsubscribe;
  on<P = unknown>(event: string, callback: (payload: P, position?: string) => void): Unsubscribe;
  onState(callback: (state: ChannelState) => void): Unsubscribe;
}

export type PresenceInfo = Record<string, unknown>;

export declare class Presence {
  constructor(channel: Channel);
  /** `{connection_id: info}` as last known. */
  readonly state: Record<string, PresenceInfo>;
  /** This socket's own id in `state` (from the last presence_state), or null. */
  readonly me: string | null;
  list(): Array<{ id: string } & PresenceInfo>;
  /** Forget every member: the next presence_state starts afresh. */
  reset(): void;
  onSync(callback: (members: Array<{ id: string } & PresenceInfo>) => void): Unsubscribe;
  onJoin(callback: (id: string, info: PresenceInfo) => void): Unsubscribe;
  onLeave(callback: (id: string, info: PresenceInfo) => void): Unsubscribe;
  stop(): void;
}
