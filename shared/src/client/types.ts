/**
 * The client SDK's public types: what handlers receive, what the client
 * reports, and the options it takes. Wire frames come from ../protocol.ts and
 * race payloads from ../race-events.ts, so the SDK and the gateway cannot drift.
 */

import type { ErrorCode } from "../codes.js";
import type { PlaceBetData, PlaceBetResult } from "../commands.js";
import type { ChannelPosition, JsonValue, PresenceChange } from "../protocol.js";
import type { RaceEventPayloads } from "../race-events.js";

export type { ChannelPosition } from "../protocol.js";

/**
 * A `forecast_update` on `forecasts` or `forecasts:<asset>`. Backends choose the
 * shape (docs/backend-feeds.md); the fields below are the usual ones, anything
 * else passes through untouched.
 */
export interface ForecastUpdate {
  /** Asset symbol, e.g. "BTC". */
  readonly asset?: string;
  /** Forecast value, e.g. a probability 0..1. */
  readonly p?: number;
  /** When the forecast was made, ms since the epoch. */
  readonly at?: number;
  readonly [field: string]: JsonValue | undefined;
}

/**
 * A `portfolio_update` on `user:<sub>`. Backends send the whole new state, not
 * a delta, so a missed or repeated update still leaves the screen right.
 */
export interface PortfolioUpdate {
  /** Cash balance, minor currency units. */
  readonly cash?: number;
  /** Open positions or bets, backend-defined entries. */
  readonly positions?: JsonValue[];
  readonly [field: string]: JsonValue | undefined;
}

/** Every event the SDK types; other events reach the `message` catch-all handler. */
export interface ChannelEventPayloads extends RaceEventPayloads {
  readonly forecast_update: ForecastUpdate;
  readonly portfolio_update: PortfolioUpdate;
  /** A user's first connection subscribed, on a channel of PRESENCE_JOIN_LEAVE. */
  readonly presence_join: PresenceChange;
  /** A user's last connection left it. */
  readonly presence_leave: PresenceChange;
}

export type ChannelEventName = keyof ChannelEventPayloads;

/** Where a delivery sits in its channel's sequence. */
export interface DeliveryMeta {
  readonly channel: string;
  readonly event: string;
  /** The channel offset; null for an event synthesised from a subscribe snapshot. */
  readonly offset: number | null;
  readonly epoch: string | null;
  /** Publish time at the accepting node (ms); null for a snapshot. */
  readonly ts: number | null;
  /** True when the event came from the subscribe reply's snapshot, not from a publish. */
  readonly fromSnapshot: boolean;
}

export type ChannelHandlers = {
  readonly [E in ChannelEventName]?: (data: ChannelEventPayloads[E], meta: DeliveryMeta) => void;
} & {
  /** Every delivery on the channel, typed or not, after the typed handler. */
  readonly message?: (event: string, data: JsonValue, meta: DeliveryMeta) => void;
  /** The server refused the (re)subscription, or a token refresh took the channel away. */
  readonly error?: (error: GatewayError) => void;
  /** The channel was joined again after a reconnect or a gap: whether nothing was lost (`client.on("resumed")`). */
  readonly resumed?: (info: ResumedInfo) => void;
};

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "disconnected";

/** Why a socket ended, as the SDK saw it. */
export interface DisconnectInfo {
  /** WebSocket close code; 1006 when the connection failed or dropped without a close frame. 4000: a backend disconnected the user; 4003: the token was revoked (neither reconnects). */
  readonly code: number;
  /** The close frame's reason: for 4000, the one the backend gave (e.g. "banned: cheating"). */
  readonly reason: string;
  /** Whether the SDK will reconnect by itself. */
  readonly willReconnect: boolean;
}

export interface ReconnectInfo {
  /** 1 for the first retry after a working connection; grows until a connection holds. */
  readonly attempt: number;
  readonly delayMs: number;
  /** The close that caused it. */
  readonly code: number;
  /** "drain" for the 1012 fast path, "backoff" otherwise. */
  readonly strategy: "drain" | "backoff";
}

export interface ConnectedInfo {
  /** The gateway node serving this socket (its NODE_ID). */
  readonly node: string;
  readonly user: string;
  readonly serverTime: number;
  readonly expiresAt: number | null;
  /** Channels the server joined for this socket (its personal channel). */
  readonly channels: readonly string[];
}

/**
 * Why a channel was joined again: the connection came back (`reconnect`), the
 * server sent a `gap` frame (its `reason`), or a delivery did not continue the
 * sequence the client holds (`offset_gap`, `epoch_changed`).
 */
export type ResumeCause = "reconnect" | "history_lost" | "epoch_changed" | "unavailable" | "offset_gap";

/**
 * A channel joined again, once the server answered. With `recovered` every
 * message after `since` is delivered next (replayed, then live): nothing was
 * lost. Without it, some are gone: reload the channel's state. For `race` the
 * SDK hands the reply's snapshot to the handlers right after this event.
 */
export interface ResumedInfo {
  readonly channel: string;
  readonly recovered: boolean;
  readonly cause: ResumeCause;
  /** The position the client asked to resume from; null when it had none. */
  readonly since: ChannelPosition | null;
  /** The channel's position at the join: live messages follow it (replayed ones lead up to it). Null when the server did not say. */
  readonly position: ChannelPosition | null;
}

export interface ClientEvents {
  /** Every state change, with the details of the event named after the new state. */
  readonly state: { readonly state: ConnectionState; readonly previous: ConnectionState };
  readonly connecting: { readonly attempt: number };
  readonly connected: ConnectedInfo;
  readonly disconnected: DisconnectInfo;
  readonly reconnecting: ReconnectInfo;
  /** A channel was joined again; per channel, after the connection's `connected`. */
  readonly resumed: ResumedInfo;
  /** The token was swapped on the open socket. */
  readonly refreshed: { readonly expiresAt: number | null };
  /** Something failed that the SDK recovers from by itself (a refresh, getToken, a handler). */
  readonly error: GatewayError;
}

/** `code`: a server error code, or what went wrong on the client side. */
export type ClientErrorCode = ErrorCode | "timeout" | "disconnected" | "closed" | "token_unavailable" | "handler_failed" | "protocol";

export class GatewayError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly channel?: string,
  ) {
    super(message);
    this.name = "GatewayError";
  }
}

/** Commands the gateway runs, with their data and what their `ok` reply carries. */
export interface CommandMap {
  readonly place_bet: { readonly data: PlaceBetData; readonly reply: { readonly result: PlaceBetResult } };
}

/**
 * The part of the standard WebSocket the SDK uses. Browsers' and Electron's
 * WebSocket, Node 22's global one and the `ws` package all fit it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ readonly data: unknown }> | null;
  onclose: Handler<{ readonly code: number; readonly reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

// Method syntax makes the parameter bivariant, so implementations whose event
// types carry more fields (DOM MessageEvent, ws's MessageEvent) still fit.
type Handler<E> = { bivariance(event: E): void }["bivariance"];

export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

/** Injected in tests; defaults to the platform's clock and timers. */
export interface Timers {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export type TokenSource = { readonly token: string } | { readonly getToken: () => Promise<string> };

export interface ClientOptions {
  /** Required where there is no global WebSocket (Node 20): pass `ws`'s default export. */
  readonly WebSocket?: WebSocketConstructor;
  /** Ceiling of the first retry's delay; doubles per failed attempt. Default 1000 ms. */
  readonly initialDelayMs?: number;
  /** Cap on the backoff ceiling. Default 30 000 ms. */
  readonly maxDelayMs?: number;
  /** After a 1012 (node draining), reconnect after a uniform 0..this delay. Default 1000 ms. */
  readonly drainJitterMs?: number;
  /** A connection that stayed up this long resets the attempt counter. Default 5000 ms. */
  readonly stableAfterMs?: number;
  /** A connection attempt without a welcome is abandoned after this. Default 10 000 ms. */
  readonly connectTimeoutMs?: number;
  /** Default timeout of command() and other requests. Default 10 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Refresh at most this long before expiry. Default 30 000 ms. */
  readonly refreshLeadMs?: number;
  /** Retry a failed refresh after this (while the token is still valid). Default 5000 ms. */
  readonly refreshRetryMs?: number;
  /** Uniform random in [0, 1); default Math.random. */
  readonly random?: () => number;
  readonly timers?: Timers;
}
