/**
 * Per-channel resume bookkeeping: the last (offset, epoch) seen on each
 * channel, kept across reconnects. The gateway assigns offsets gaplessly per
 * channel and changes the epoch only when a channel's sequence restarts
 * (docs/protocol.md), so the next delivery tells whether anything was missed.
 */

import type { ChannelPosition, ResumeNotice } from "./types.js";

export type Observation =
  | { readonly kind: "next" }
  /** Offset at or below one already seen under the same epoch: already delivered. */
  | { readonly kind: "duplicate" }
  | { readonly kind: "notice"; readonly notice: ResumeNotice };

export class ResumeTracker {
  private readonly positions = new Map<string, ChannelPosition>();

  /** Records a delivery and says how it relates to the previous one on its channel. */
  observe(channel: string, offset: number, epoch: string): Observation {
    const previous = this.positions.get(channel);
    const current: ChannelPosition = { offset, epoch };
    if (previous === undefined) {
      this.positions.set(channel, current);
      return { kind: "next" };
    }
    if (previous.epoch !== epoch) {
      this.positions.set(channel, current);
      return { kind: "notice", notice: { channel, kind: "epoch_changed", previous, current, missed: null } };
    }
    if (offset <= previous.offset) return { kind: "duplicate" };
    this.positions.set(channel, current);
    if (offset === previous.offset + 1) return { kind: "next" };
    return { kind: "notice", notice: { channel, kind: "gap", previous, current, missed: offset - previous.offset - 1 } };
  }

  position(channel: string): ChannelPosition | undefined {
    return this.positions.get(channel);
  }

  forget(channel: string): void {
    this.positions.delete(channel);
  }
}
