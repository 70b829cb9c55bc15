/**
 * Local channel membership counts, and the broker subscription that follows
 * them: the node subscribes to a channel on the bus when its first local
 * subscriber arrives and unsubscribes a short while after the last one leaves
 * (so a client flapping between channels does not churn Redis).
 *
 * The hub never touches sockets or Redis: each client session takes one
 * reference per channel it joins and gives it back when it leaves or closes,
 * and the broker carries the subscription.
 */

import type { Broker } from "../broker/broker.js";

export interface HubTimers {
  setTimeout(callback: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(handle: NodeJS.Timeout): void;
}

/** Shared by every subscribed channel, so none keeps its own settled promise alive. */
const SUBSCRIBED: Promise<void> = Promise.resolve();

interface ChannelEntry {
  references: number;
  /** Settles when the broker subscription is in place (SUBSCRIBED once it is); null while not subscribed. */
  subscribed: Promise<void> | null;
  pendingUnsubscribe: NodeJS.Timeout | null;
}

export class ChannelHub {
  private readonly entries = new Map<string, ChannelEntry>();

  constructor(
    private readonly broker: Pick<Broker, "subscribe" | "unsubscribe">,
    private readonly unsubscribeDelayMs: number,
    private readonly timers: HubTimers = { setTimeout, clearTimeout },
  ) {}

  /**
   * Takes one reference on `channel` at once and resolves when the node
   * receives its deliveries. The reference is the caller's even when this
   * rejects: it must be given back with release().
   */
  acquire(channel: string): Promise<void> {
    let entry = this.entries.get(channel);
    if (entry === undefined) {
      entry = { references: 0, subscribed: null, pendingUnsubscribe: null };
      this.entries.set(channel, entry);
    }
    entry.references++;
    if (entry.pendingUnsubscribe !== null) {
      this.timers.clearTimeout(entry.pendingUnsubscribe);
      entry.pendingUnsubscribe = null;
    }
    if (entry.subscribed === null) {
      const subscribing = this.broker.subscribe(channel);
      entry.subscribed = subscribing;
      const current = entry;
      subscribing.then(
        () => {
          if (current.subscribed === subscribing) current.subscribed = SUBSCRIBED;
        },
        // A failed subscribe is forgotten so the next acquire tries again.
        () => {
          if (current.subscribed === subscribing) current.subscribed = null;
        },
      );
    }
    return entry.subscribed;
  }

  release(channel: string): void {
    const entry = this.entries.get(channel);
    if (entry === undefined || entry.references === 0) return;
    entry.references--;
    if (entry.references > 0) return;
    const unsubscribe = (): void => {
      entry.pendingUnsubscribe = null;
      if (entry.references > 0) return;
      this.entries.delete(channel);
      if (entry.subscribed !== null) void this.broker.unsubscribe(channel);
    };
    if (this.unsubscribeDelayMs === 0) unsubscribe();
    else entry.pendingUnsubscribe = this.timers.setTimeout(unsubscribe, this.unsubscribeDelayMs);
  }

  /** Local references on `channel` (sockets of every transport). */
  references(channel: string): number {
    return this.entries.get(channel)?.references ?? 0;
  }

  /** Channels this node holds a bus subscription for, or is about to drop. */
  size(): number {
    return this.entries.size;
  }
}
