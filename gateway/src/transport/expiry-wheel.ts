/**
 * Token expiry for every connection of a node, on one timer. A Timeout per
 * socket costs about 300 bytes of heap; at 20,000 sockets a process that is
 * 6 MB for nothing. Expiries land in one-second buckets, and a connection is
 * closed within a second after its token's `exp` plus the clock tolerance.
 */

export interface Expiring {
  /** The bucket (second) the item sits in, or null; owned by the wheel. */
  expiryBucket: number | null;
  expire(): void;
}

export class ExpiryWheel {
  private readonly buckets = new Map<number, Set<Expiring>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  /** (Re)schedules `item` to expire at `atMs`. */
  schedule(item: Expiring, atMs: number): void {
    this.cancel(item);
    const second = Math.ceil(atMs / 1000);
    let bucket = this.buckets.get(second);
    if (bucket === undefined) {
      bucket = new Set();
      this.buckets.set(second, bucket);
    }
    bucket.add(item);
    item.expiryBucket = second;
    this.timer ??= setInterval(() => this.tick(), 1000).unref();
  }

  cancel(item: Expiring): void {
    if (item.expiryBucket === null) return;
    const bucket = this.buckets.get(item.expiryBucket);
    bucket?.delete(item);
    if (bucket?.size === 0) this.buckets.delete(item.expiryBucket);
    item.expiryBucket = null;
  }

  size(): number {
    let total = 0;
    for (const bucket of this.buckets.values()) total += bucket.size;
    return total;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const nowSecond = Math.floor(this.now() / 1000);
    for (const [second, bucket] of this.buckets) {
      if (second > nowSecond) continue;
      this.buckets.delete(second);
      for (const item of bucket) {
        item.expiryBucket = null;
        item.expire();
      }
    }
    if (this.buckets.size === 0) this.stop();
  }
}
