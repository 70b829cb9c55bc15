/**
 * The welcome, built in one place for both transports: `/ws` sends it as a
 * frame with `type: "welcome"`, Socket.IO as the `welcome` event's payload.
 */

import type { ChannelPosition, WelcomeFrame } from "../../../shared/src/protocol.js";
import type { Clock } from "../time/clock.js";
import type { ClientSession } from "./client-session.js";

export type Welcome = Omit<WelcomeFrame, "type">;

/**
 * Starts the session and resolves with its welcome once the personal channel
 * is live, so no personal message published after the welcome can miss the
 * client; null when the session could not start (it has closed the
 * connection) or closed meanwhile. With `since` (the personal channel's
 * position the client reconnects with), the transport must call afterSent()
 * on the welcome right after sending it: the missed messages follow it.
 */
export async function startAndWelcome(session: ClientSession<unknown>, nodeId: string, since?: ChannelPosition, clock: Clock = Date): Promise<Welcome | null> {
  const started = await session.start(since);
  if (started === null || !session.isOpen()) return null;
  // Spread, so the afterSent work (a symbol, never sent) travels with it.
  return { node: nodeId, user: session.principal.sub, serverTime: clock.now(), ...started, expiresAt: session.principal.expiresAt };
}
