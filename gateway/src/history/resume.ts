/**
 * Resuming a channel where a client stopped. The client joins the node's live
 * flow for the channel at the node's forwarded position F; everything it
 * missed up to F must come from history, in order, before the join, and
 * nothing at or below F may reach it live afterwards. So the plan is the
 * messages in (since, F], read from history, and it holds only while F does
 * not move: the caller must send the reply, the planned messages and join
 * the live flow in one synchronous step once the plan resolves (no await in
 * between, so no delivery can slip in).
 */

import type { ChannelPosition, History } from "./history.js";

/** Where this node stands on each channel it serves. */
export interface ForwardedPositions {
  /** The offset last forwarded to local sockets, or null when not known yet. */
  position(channel: string): ChannelPosition | null;
}

export interface ResumeSource {
  readonly history: Pick<History, "since">;
  readonly forwarded: ForwardedPositions;
  /** Most messages one resume replays; a client that missed more is told `recovered: false`. */
  readonly maxMessages: number;
  /** Waits this long between attempts while this node catches up with Redis. */
  readonly pause: (ms: number) => Promise<void>;
}

export interface ResumePlan {
  /** True when `frames` are exactly the messages after `since`: the client loses nothing. */
  readonly recovered: boolean;
  /** The position the client is at once the frames are sent: live messages follow it. */
  readonly position: ChannelPosition;
  /** Message frames to send before joining, oldest first (empty unless recovered). */
  readonly frames: readonly Buffer[];
}

/**
 * Attempts while history was read before this node forwarded the newest
 * messages (or before it caught up with a client that was ahead on another
 * node). Each is one Redis round trip apart, so the node normally catches up
 * within the first.
 */
const ATTEMPTS = 20;
const ATTEMPT_PAUSE_MS = 5;

/** Rejects only when history cannot be read. */
export async function planResume(source: ResumeSource, channel: string, since: ChannelPosition): Promise<ResumePlan> {
  // The client stands where this node stands: it missed nothing, and no read
  // is needed (a reconnect storm's personal channels, mostly quiet).
  const now = source.forwarded.position(channel);
  if (now !== null && now.epoch === since.epoch && now.offset === since.offset) return { recovered: true, position: now, frames: [] };
  let fallback: ChannelPosition = since;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (attempt > 0) await source.pause(ATTEMPT_PAUSE_MS);
    const slice = await source.history.since(channel, since.offset, source.maxMessages);
    const live = source.forwarded.position(channel);
    // The node lost track of the channel (a failed repair): it resumes with the next delivery.
    if (live === null) return { recovered: false, position: slice.position, frames: [] };
    fallback = live;
    // Another epoch than the client's: nothing it holds can be continued.
    if (since.epoch !== slice.position.epoch && live.epoch === slice.position.epoch) return { recovered: false, position: live, frames: [] };
    // A client claiming a message Redis never numbered.
    if (since.epoch === slice.position.epoch && since.offset > slice.position.offset) return { recovered: false, position: live, frames: [] };
    // This node is behind what was read, or behind the client: let it catch up.
    if (live.epoch !== slice.position.epoch || live.offset > slice.position.offset || live.offset < since.offset) continue;
    const frames: Buffer[] = [];
    for (const message of slice.messages) {
      if (message.offset === since.offset + frames.length + 1 && message.offset <= live.offset) frames.push(message.frame);
    }
    const recovered = frames.length === live.offset - since.offset;
    return { recovered, position: live, frames: recovered ? frames : [] };
  }
  return { recovered: false, position: fallback, frames: [] };
}
