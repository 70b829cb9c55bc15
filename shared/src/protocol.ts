/**
 * The raw WebSocket protocol on `/ws`: JSON text frames, one object per frame.
 * docs/protocol.md is the prose version of this file; keep them in step.
 */

import type { ErrorCode } from "./codes.js";
import type { PlaceBetResult } from "./commands.js";
import type { JsonValue } from "./json.js";
import type { RaceSnapshot } from "./race-events.js";
import type { FrameOf, RequestType } from "./requests.js";

export type { JsonValue } from "./json.js";

export interface ErrorBody {
  readonly code: ErrorCode;
  readonly message: string;
}

// ---- client → server -------------------------------------------------------
// The requests are a schema in ./requests.ts; these are its types as /ws frames.

export type SubscribeFrame = FrameOf<"subscribe">;
export type UnsubscribeFrame = FrameOf<"unsubscribe">;
export type RefreshFrame = FrameOf<"refresh">;
export type PingFrame = FrameOf<"ping">;
export type CommandFrame = FrameOf<"command">;
export type PresenceFrame = FrameOf<"presence">;

export type ClientFrame = { [T in RequestType]: FrameOf<T> }[RequestType];
export type ClientFrameType = RequestType;

// ---- server → client -------------------------------------------------------

/**
 * Where a client stands on a channel: the offset of the last message it has
 * (or, from the server, the last one it will not receive live), and the epoch
 * that numbering belongs to. What a client sends back as `since`.
 */
export interface ChannelPosition {
  readonly offset: number;
  readonly epoch: string;
}

export interface WelcomeFrame {
  readonly type: "welcome";
  /** The node serving this socket (NODE_ID). */
  readonly node: string;
  /** The token's `sub`. */
  readonly user: string;
  /** Server wall clock, ms since the epoch: lets screens estimate clock skew. */
  readonly serverTime: number;
  /** Channels the server subscribed on the client's behalf (`user:<sub>`). */
  readonly channels: readonly string[];
  /** Token expiry, ms since the epoch, or null when the token has no `exp`. */
  readonly expiresAt: number | null;
  /** Position of each channel in `channels`: live messages follow it. Keep it to resume with `since`. */
  readonly positions: Readonly<Record<string, ChannelPosition>>;
  /**
   * Only when the connection asked to resume its personal channel (`since`
   * on connect): true when every personal message after that position
   * follows this welcome, before live ones; false when some are gone.
   */
  readonly recovered?: boolean;
}

export interface SubscribeResult {
  readonly channel: string;
  /** The channel's position when the subscription went live: live messages follow it. */
  readonly offset?: number;
  readonly epoch?: string;
  /**
   * Only when the request carried `since`: true when every message after it
   * follows this reply, before live ones; false when some are no longer in
   * history (or the epoch changed), so the client must reload its state.
   */
  readonly recovered?: boolean;
  /** For `race` when not recovered: the round as it stands, so a screen need not wait for the next tick. */
  readonly snapshot?: RaceSnapshot;
}

export interface UnsubscribeResult {
  readonly channel: string;
}

export interface RefreshResult {
  readonly expiresAt: number | null;
  /** Channels dropped because the new token no longer grants them. */
  readonly unsubscribed: readonly string[];
}

export interface PingResult {
  readonly serverTime: number;
}

/** One user on a presence-enabled channel, with the connections it has there across the cluster. */
export interface PresenceMember {
  readonly user: string;
  readonly connections: number;
}

/**
 * Who is on a channel across the cluster: the answer to a `presence`
 * request and to GET /v1/presence. With `stats`, only the numbers.
 */
export interface PresenceResult {
  readonly channel: string;
  /** Distinct users subscribed, on every node. */
  readonly users: number;
  /** Subscribed connections, on every node, both transports. */
  readonly connections: number;
  /** Absent with `stats`; sorted by user, at most PRESENCE_MAX_MEMBERS of them. */
  readonly members?: readonly PresenceMember[];
  /** With members: true when there were more users than PRESENCE_MAX_MEMBERS. */
  readonly truncated?: boolean;
}

/** `data` of `presence_join` and `presence_leave`, published on channels of PRESENCE_JOIN_LEAVE namespaces. */
export interface PresenceChange {
  readonly user: string;
}

export type OkReplyFrame<Result extends object = object> = {
  readonly type: "reply";
  readonly id: number;
  readonly ok: true;
} & Result;

export interface ErrorReplyFrame {
  readonly type: "reply";
  readonly id: number;
  readonly ok: false;
  readonly error: ErrorBody;
}

export type ReplyFrame =
  | OkReplyFrame<SubscribeResult>
  | OkReplyFrame<UnsubscribeResult>
  | OkReplyFrame<RefreshResult>
  | OkReplyFrame<PingResult>
  | OkReplyFrame<CommandResult>
  | OkReplyFrame<PresenceResult>
  | ErrorReplyFrame;

/** The `ok` reply to a command carries its result, e.g. PlaceBetResult. */
export interface CommandResult {
  readonly result: PlaceBetResult;
}

/** For a frame the server cannot attribute to a request id. */
export interface ErrorFrame {
  readonly type: "error";
  readonly error: ErrorBody;
}

/**
 * A delivery. `offset` grows by exactly one per channel per publish; `epoch`
 * changes only when the channel's offset sequence was reset, so a client that
 * sees a new epoch knows its stored offset means nothing any more.
 */
export interface MessageFrame<Data extends JsonValue = JsonValue> {
  readonly type: "message";
  readonly channel: string;
  readonly event: string;
  readonly data: Data;
  readonly offset: number;
  readonly epoch: string;
  /** Publish time at the accepting node, ms since the epoch. */
  readonly ts: number;
}

/**
 * Messages of `channel` after `offset` (of `epoch`) were lost on the way to
 * this socket and are no longer in history, or the channel's numbering was
 * reset (`epoch_changed`). The socket stays subscribed and live messages go
 * on after this frame; after `epoch_changed` they start with the new epoch's
 * offset 1 (replayed from history as far as it holds them). To resynchronise, unsubscribe and subscribe again with
 * `since` set to the last message processed: the reply says whether anything
 * could be recovered and gives the channel's current position.
 */
export interface GapFrame {
  readonly type: "gap";
  readonly channel: string;
  readonly offset: number;
  readonly epoch: string;
  readonly reason: "history_lost" | "epoch_changed" | "unavailable";
}

export type ServerFrame = WelcomeFrame | ReplyFrame | ErrorFrame | MessageFrame | GapFrame;

// ---- publish API (POST /v1/publish) -----------------------------------------

export interface PublishRequest {
  readonly channel: string;
  readonly event: string;
  readonly data: JsonValue;
  /**
   * Optional. The same key on the same channel within IDEMPOTENCY_WINDOW_S
   * publishes nothing and answers the first publish's offset and epoch with
   * `duplicate: true`. Retry a publish whose answer was lost with its key.
   */
  readonly idempotencyKey?: string;
}

export interface PublishBatchRequest {
  readonly messages: readonly PublishRequest[];
}

export interface PublishResult {
  readonly offset: number;
  readonly epoch: string;
  /** Present (true) only when the idempotency key was seen: nothing was published this time. */
  readonly duplicate?: true;
}

export interface PublishBatchResult {
  readonly results: readonly PublishResult[];
}

export const MAX_IDEMPOTENCY_KEY_LENGTH = 128;
const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9_\-.:@|=+/]+$/;

export function isValidIdempotencyKey(key: string): boolean {
  return key.length > 0 && key.length <= MAX_IDEMPOTENCY_KEY_LENGTH && IDEMPOTENCY_KEY_PATTERN.test(key);
}

export const MAX_EVENT_NAME_LENGTH = 64;
const EVENT_PATTERN = /^[A-Za-z0-9_\-.:]+$/;

export function isValidEventName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_EVENT_NAME_LENGTH && EVENT_PATTERN.test(name);
}

/**
 * The WebSocket subprotocol of `/ws`. A client that offers it gets it back in
 * the handshake answer; a client that sends its token as a subprotocol must
 * offer it, because the server answers with one protocol the client offered
 * and never with the token.
 */
export const WS_SUBPROTOCOL = "gateway.v1";

/**
 * The subprotocol that carries a token where a client cannot set headers
 * (browsers): `new WebSocket(url, [WS_SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + jwt])`.
 * A JWT is base64url and dots, all valid in a subprotocol name.
 */
export const BEARER_SUBPROTOCOL_PREFIX = "bearer.";
