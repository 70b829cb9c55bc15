/**
 * Failed publish attempts per pending ingest entry, so that one entry that
 * can never be published (a Lua error on its channel's keys, a publish that
 * hangs every time) is set aside instead of blocking the stream for every
 * node forever.
 *
 * The policy: a batch is published whole while none of its entries has
 * failed `maxAttempts` times. After that the batch goes out one entry at a
 * time, in stream order; an entry that then fails on its own is the one
 * that cannot be published, and only it is set aside. Only failures while
 * the broker reports ready count: an outage is nobody's entry's fault.
 *
 * Counts are this node's: entries taken over by another node start again
 * there. Memory is bounded by the batch size, since entries no longer in
 * the batch being published are forgotten.
 */

export class PublishAttempts {
  private readonly failures = new Map<string, number>();

  constructor(private readonly maxAttempts: number) {}

  /** Forgets every entry not in `ids` (published, set aside or taken over meanwhile). */
  keepOnly(ids: readonly string[]): void {
    if (this.failures.size === 0) return;
    const current = new Set(ids);
    for (const id of this.failures.keys()) if (!current.has(id)) this.failures.delete(id);
  }

  /** One more failed publish that included each of `ids`. */
  failed(ids: readonly string[]): void {
    for (const id of ids) this.failures.set(id, (this.failures.get(id) ?? 0) + 1);
  }

  /** Failed publishes that included `id`. */
  count(id: string): number {
    return this.failures.get(id) ?? 0;
  }

  /** Whether the batch must go out one entry at a time: one of its entries has failed maxAttempts times. */
  mustIsolate(ids: readonly string[]): boolean {
    return ids.some((id) => this.count(id) >= this.maxAttempts);
  }
}
