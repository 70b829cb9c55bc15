/**
 * Every close code and error code the gateway emits, in one table.
 *
 * Clients decide whether to reconnect from `reconnect`, never from the number
 * alone; adding a code here is a protocol change and belongs in docs/protocol.md.
 */

export interface CloseCodeSpec {
  readonly code: number;
  /** Sent as the close frame's reason; at most 123 bytes by RFC 6455. */
  readonly reason: string;
  /** Whether a well-behaved client should reconnect (with backoff) after it. */
  readonly reconnect: boolean;
  readonly meaning: string;
}

export const CloseCodes = {
  messageTooBig: {
    code: 1009,
    reason: "message too big",
    reconnect: true,
    meaning: "A client frame was larger than MAX_FRAME_BYTES. Past 4x that (at least 64 KiB) the TCP connection is cut without a close frame (1006 at the client).",
  },
  serverRestart: {
    code: 1012,
    reason: "node draining, reconnect",
    reconnect: true,
    meaning: "The node is shutting down (SIGTERM drain). Reconnect at once, with jitter; NGINX routes to another node.",
  },
  tokenExpired: {
    code: 4001,
    reason: "token expired",
    reconnect: true,
    meaning: "The JWT expired and no refresh arrived in time. Reconnect with a fresh token.",
  },
  unavailable: {
    code: 1013,
    reason: "try again later",
    reconnect: true,
    meaning: "The node lost Redis while setting up the socket's personal channel. Reconnect with backoff.",
  },
  disconnected: {
    code: 4000,
    reason: "disconnected by the server",
    reconnect: false,
    meaning: "A backend disconnected this user on every node (POST /v1/disconnect); the close frame's reason is the one the backend gave, or this text. Do not reconnect by yourself: let the application decide (sign the user out, or ask the backend, then reconnect).",
  },
  tokenRevoked: {
    code: 4003,
    reason: "token revoked",
    reconnect: false,
    meaning: "The user's tokens issued before a point in time were revoked (POST /v1/revoke), this socket's among them. The same token is refused from now on: reconnect only with a new token, if the issuer still grants one.",
  },
  rateLimited: {
    code: 4029,
    reason: "rate limit exceeded",
    reconnect: true,
    meaning: "The socket went on sending past CLIENT_FRAMES_PER_S after its frames were refused with `rate_limited`, until the refused frames made up another CLIENT_FRAME_BURST. Reconnect with backoff, never at once, and send less.",
  },
} as const satisfies Record<string, CloseCodeSpec>;

export type CloseCodeName = keyof typeof CloseCodes;

export interface ObservedCloseCodeSpec {
  readonly code: number;
  /** The `reason` label of gateway_disconnects_total for a close with this code. */
  readonly label: string;
  readonly meaning: string;
}

/**
 * Standard RFC 6455 codes the gateway never sends but reports: what a client
 * closed with, or what the WebSocket layer says when no close frame came.
 * Server-initiated closes are in CloseCodes above.
 */
export const ObservedCloseCodes = {
  normal: { code: 1000, label: "normal", meaning: "The client closed the socket because it was done." },
  goingAway: { code: 1001, label: "going_away", meaning: "The client is going away: a page closed or navigated, an app quit." },
  noStatus: { code: 1005, label: "no_status", meaning: "The client's close frame carried no code. Never sent on the wire." },
  abnormal: {
    code: 1006,
    label: "abnormal",
    meaning: "The connection ended without a close frame: the network dropped, a process died, or the server cut a slow consumer or a frame past 4x MAX_FRAME_BYTES. Never sent on the wire.",
  },
} as const satisfies Record<string, ObservedCloseCodeSpec>;

export interface ErrorCodeSpec {
  readonly code: string;
  readonly meaning: string;
}

/** `error.code` values in `reply` and `error` frames and in HTTP error bodies. */
export const ErrorCodes = {
  badRequest: { code: "bad_request", meaning: "The frame or body is not valid JSON or misses a required field." },
  unknownType: { code: "unknown_type", meaning: "The frame's `type` is not one the server accepts." },
  invalidChannel: { code: "invalid_channel", meaning: "The channel name is empty, too long or has characters outside the allowed set." },
  forbidden: { code: "forbidden", meaning: "The token does not grant this channel." },
  alreadySubscribed: { code: "already_subscribed", meaning: "The socket is already subscribed to this channel." },
  notSubscribed: { code: "not_subscribed", meaning: "The socket is not subscribed to this channel." },
  limitExceeded: { code: "limit_exceeded", meaning: "The socket holds MAX_SUBSCRIPTIONS channels already." },
  invalidToken: { code: "invalid_token", meaning: "The token is malformed, badly signed, expired, not yet valid, or for another audience or issuer." },
  tokenRevoked: {
    code: "token_revoked",
    meaning: "The token was issued before its user's tokens were revoked (POST /v1/revoke): HTTP 401 at the upgrade, the Socket.IO connect error, or the refresh reply. Get a new token.",
  },
  presenceDisabled: { code: "presence_disabled", meaning: "Presence is not enabled for this channel's namespace (PRESENCE_NAMESPACES)." },
  unavailable: { code: "unavailable", meaning: "A dependency (Redis) failed; retry with backoff." },
  unknownCommand: { code: "unknown_command", meaning: "The command `name` is not one the server runs." },
  invalidCommand: { code: "invalid_command", meaning: "A command field is missing, of the wrong type or out of range; the message names it. Nothing was written." },
  roundClosed: { code: "round_closed", meaning: "The round is not open for bets (not the current round, or its race has started)." },
  oddsChanged: { code: "odds_changed", meaning: "The bet's `odds` are not the round's odds for that selection; nothing was written. Bet again at the odds the message gives." },
  conflict: { code: "conflict", meaning: "The idempotency key was already used for a different bet (round, selection, amount or odds); nothing was written. Use a new key for a new bet." },
  overloaded: { code: "overloaded", meaning: "The node's write queue is full; nothing was written. Retry later with the same idempotency key." },
  rateLimited: {
    code: "rate_limited",
    meaning: "The socket sent more than CLIENT_FRAMES_PER_S frames a second (bursts of CLIENT_FRAME_BURST); this one was not acted on. Slow down: a socket that keeps sending is closed with 4029.",
  },
  subscribeRateLimited: {
    code: "subscribe_rate_limited",
    meaning: "The socket sent more than SUBSCRIBES_PER_S subscribe and unsubscribe requests a second (bursts of SUBSCRIBE_BURST); this one was not acted on. Retry later.",
  },
  tooManyConnections: {
    code: "too_many_connections",
    meaning: "HTTP 429 at the upgrade, or the Socket.IO connect error: the user holds MAX_CONNECTIONS_PER_USER connections across the cluster already. Close one, or retry later.",
  },
  tooManyCommands: {
    code: "too_many_commands",
    meaning: "The user has MAX_COMMANDS_IN_FLIGHT_PER_USER commands unanswered on this node; nothing was written. Retry once a reply arrives, with the same idempotency key.",
  },
  connectRateLimited: {
    code: "connect_rate_limited",
    meaning: "HTTP 429 at the upgrade, or the Socket.IO connect error: this client address opened more than CONNECTS_PER_ADDRESS_PER_S connections a second (bursts of CONNECT_BURST_PER_ADDRESS). NGINX answers the same past its own rate. Retry with backoff.",
  },
  tooManyAddressConnections: {
    code: "too_many_address_connections",
    meaning: "HTTP 429 from NGINX: this client address holds as many sockets as NGINX allows one address (limit_conn). Close one, or retry later.",
  },
  unauthorized: { code: "unauthorized", meaning: "HTTP: missing or wrong credentials." },
  payloadTooLarge: { code: "payload_too_large", meaning: "HTTP: the body is larger than PUBLISH_MAX_BODY_BYTES." },
  notFound: { code: "not_found", meaning: "HTTP: no such route." },
  internal: { code: "internal", meaning: "HTTP: the node failed to answer; the request had no effect." },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]["code"];
