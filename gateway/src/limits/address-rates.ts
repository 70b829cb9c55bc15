/**
 * New connections per client address, on this node: a RateGate per address
 * in one bounded map. An address whose bucket is full again carries no
 * information and is dropped (at most every PRUNE_EVERY_MS, on an arrival:
 * no timer); past MAX_ADDRESSES the oldest entries go too, so a flood of
 * spoofed or rotating addresses costs bounded memory and, at worst, gives
 * some addresses a fresh bucket.
 */

import type { RateGate } from "./rate-gate.js";

const MAX_ADDRESSES = 100_000;
const PRUNE_EVERY_MS = 10_000;

export class AddressRates {
  private readonly tats = new Map<string, number>();
  private nextPruneAt = 0;

  constructor(
    private readonly gate: RateGate,
    private readonly maxAddresses = MAX_ADDRESSES,
  ) {}

  /** Counts one new connection from `key` (see rateKey()); false when it is over the address's rate. */
  admit(key: string, nowMs: number): boolean {
    if (nowMs >= this.nextPruneAt) this.prune(nowMs);
    const next = this.gate.advance(this.tats.get(key) ?? 0, nowMs);
    if (!this.gate.admits(next, nowMs)) return false;
    if (!this.tats.has(key) && this.tats.size >= this.maxAddresses) this.evictOldest();
    this.tats.set(key, next);
    return true;
  }

  /** Addresses tracked now (for tests and the bound). */
  get size(): number {
    return this.tats.size;
  }

  private prune(nowMs: number): void {
    this.nextPruneAt = nowMs + PRUNE_EVERY_MS;
    for (const [key, tat] of this.tats) if (this.gate.idle(tat, nowMs)) this.tats.delete(key);
  }

  private evictOldest(): void {
    for (const key of this.tats.keys()) {
      this.tats.delete(key);
      if (this.tats.size < this.maxAddresses) return;
    }
  }
}
