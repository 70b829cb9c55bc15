/**
 * The gateway client SDK: `connect(url, { getToken })`, typed `subscribe`,
 * `command`, reconnection with full-jitter backoff, resume with `since` and
 * token refresh. Runs in browsers, Electron (renderer and main) and Node
 * (pass the `ws` package as `options.WebSocket` on Node 20). docs/client-sdk.md.
 */

export { connect, GatewayClient, type Subscription } from "./client.js";
export { backoffCeiling, backoffDelay, drainDelay, refreshDelay, type BackoffPolicy } from "./backoff.js";
export * from "./types.js";
export type { RaceEventPayloads, RaceSnapshot, RaceStarted, RaceSync, RoundFinished, RoundStarted, Screen, TimerUpdate } from "../race-events.js";
export type { PlaceBetData, PlaceBetResult, PlacedBetView } from "../commands.js";
export type { JsonValue, PresenceChange, PresenceMember, PresenceResult } from "../protocol.js";
// verifyRound() itself lives in ./verify-round.ts, bundled on its own as /verify-round.js:
// it would take the main bundle past its budget, and most screens never verify.
export type { RoundProof, RoundVerification } from "./verify-round.js";
