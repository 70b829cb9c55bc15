/**
 * How a delivery continues a channel's sequence. The gateway numbers every
 * channel gaplessly and changes its epoch only when the numbering restarts
 * (docs/protocol.md), and it replays from history what a resuming client
 * missed. So, against the last position a client processed, a delivery is the
 * next one, one it has already (a repeat across a reconnect), or proof that
 * continuity broke: the client must then resynchronise rather than go on.
 */

import type { ChannelPosition } from "./types.js";

export type Continuity = "next" | "duplicate" | "offset_gap" | "epoch_changed";

/** `last` undefined: nothing processed and no position known, so any delivery starts the sequence. */
export function continuity(last: ChannelPosition | undefined, offset: number, epoch: string): Continuity {
  if (last === undefined) return "next";
  if (last.epoch !== epoch) return "epoch_changed";
  if (offset <= last.offset) return "duplicate";
  return offset === last.offset + 1 ? "next" : "offset_gap";
}
