/**
 * What both transports need from the rest of the node, as narrow interfaces:
 * the composition root hands in the implementations.
 */

import type { Logger } from "pino";
import type { ErrorCode } from "../../../shared/src/codes.js";
import type { RequestType } from "../../../shared/src/requests.js";
import type { AuthFailureReason } from "../auth/verifier.js";
import type { ConnectionLimits } from "../limits/connection-limits.js";
import type { RateLimitMetrics } from "../limits/rate-limit-metrics.js";
import type { SessionDeps, TokenVerifier } from "./client-session.js";

export type Transport = "ws" | "socketio";

/**
 * What a received frame or event counts as in `gateway_messages_in_total{type}`:
 * its request type, `invalid` when it did not parse, `rate_limited` when the
 * connection's frame rate refused it, and on `/ws` also `binary` and
 * `oversized` frames, which are refused before parsing.
 */
export type ReceivedKind = RequestType | "invalid" | "rate_limited" | "binary" | "oversized";

/** What the transports record. */
export interface TransportMetrics extends RateLimitMetrics {
  connectionOpened(transport: Transport): void;
  /** `reason`: the server's own (drain, token_expired, slow_consumer, …) or the close as seen (normal, abnormal, …). */
  connectionClosed(transport: Transport, reason: string): void;
  upgradeRefused(transport: Transport, reason: "draining" | "unavailable"): void;
  authFailed(reason: AuthFailureReason): void;
  /** Once per client frame or event, when it arrives, on both transports alike. */
  frameReceived(transport: Transport, kind: ReceivedKind): void;
  /** Once per error reply, error frame or refused acknowledgement. */
  clientError(code: ErrorCode): void;
  sendDropped(kind: "backpressure" | "slow_consumer_close"): void;
  /** One Socket.IO room broadcast encoded on this node, whatever its number of recipients. */
  frameEncoded(protocol: "socketio"): void;
}

/** What every transport needs to authenticate connections and give them sessions. */
export interface TransportDeps {
  readonly verifier: TokenVerifier;
  readonly metrics: TransportMetrics;
  readonly log: Logger;
  /** Why the node takes no new connections right now, or null when it does. */
  readonly refusal: () => string | null;
  /** Per-address and per-user limits on new connections. */
  readonly limits: ConnectionLimits;
  /** Everything a session needs besides its connection. */
  readonly session: SessionDeps;
}
