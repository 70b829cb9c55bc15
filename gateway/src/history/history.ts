/**
 * The seam between a node and the cluster's per-channel history: what a
 * reconnecting client, a node repairing a gap, and a backend reading back
 * messages all ask for.
 */

import type { Delivery } from "../broker/broker.js";

/** Where a channel stands: the offset of its last message, and the epoch that numbering belongs to. */
export interface ChannelPosition {
  readonly offset: number;
  readonly epoch: string;
}

export interface HistorySlice {
  /** The channel's position at the instant the slice was read. */
  readonly position: ChannelPosition;
  /**
   * Retained messages after the requested offset, oldest first, consecutive,
   * at most the limit asked for. Starts later than requested when the older
   * ones were trimmed or expired, so callers check the first offset.
   */
  readonly messages: readonly Delivery[];
}

export interface History {
  /**
   * The channel's position and its retained messages after `since`, read in
   * one atomic step, so no publish falls between the two. A channel that has
   * no epoch yet gets one (offset 0): every position a client is ever told
   * can be resumed from. Rejects when the store is unreachable.
   */
  since(channel: string, since: number, limit: number): Promise<HistorySlice>;
}

/** Whether no message after `since` has left history: the slice starts right after it (or nothing came after it). */
export function startsAfter(slice: HistorySlice, since: number): boolean {
  return slice.position.offset <= since || slice.messages[0]?.offset === since + 1;
}

/** Whether `slice` holds every message after `since` up to its position. */
export function coversFrom(slice: HistorySlice, since: number): boolean {
  return startsAfter(slice, since) && slice.messages.length === Math.max(0, slice.position.offset - since);
}
