/**
 * History reads asked for in the same turn of the event loop with the same
 * arguments share one read, issued after all of them were asked. A reconnect
 * storm resumes thousands of clients on the same public channel from the same
 * offset within a second or two: without this, each is its own Redis read of
 * the same slice.
 *
 * Sharing keeps History's promise: the read happens after every caller asked,
 * so each gets a position no older than its own request (the sequencer's seed
 * relies on that), and every caller gets the same slice, which none changes.
 */

import type { History, HistorySlice } from "./history.js";

interface Waiter {
  readonly resolve: (slice: HistorySlice) => void;
  readonly reject: (err: unknown) => void;
}

interface Pending {
  readonly channel: string;
  readonly since: number;
  readonly limit: number;
  readonly waiters: Waiter[];
}

export class CoalescedHistory implements History {
  private pending = new Map<string, Pending>();
  private scheduled = false;

  constructor(private readonly inner: History) {}

  since(channel: string, since: number, limit: number): Promise<HistorySlice> {
    return new Promise((resolve, reject) => {
      const key = `${since}:${limit}:${channel}`;
      let entry = this.pending.get(key);
      if (entry === undefined) {
        entry = { channel, since, limit, waiters: [] };
        this.pending.set(key, entry);
      }
      entry.waiters.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = new Map();
    this.scheduled = false;
    for (const { channel, since, limit, waiters } of batch.values()) {
      this.inner.since(channel, since, limit).then(
        (slice) => {
          for (const waiter of waiters) waiter.resolve(slice);
        },
        (err: unknown) => {
          for (const waiter of waiters) waiter.reject(err);
        },
      );
    }
  }
}
