/**
 * A token bucket kept as one number per client: the generic cell rate
 * algorithm's "theoretical arrival time" (tat). `burst` arrivals may come at
 * once; after that, one per 1/`perSecond` s. Refill is computed on arrival,
 * so a bucket needs no timer and no object of its own: its owner stores the
 * number (8 bytes) in a field and hands it in.
 *
 *   next = max(tat, now) + interval     the state after one more arrival
 *   admitted   when next - now <= burst × interval
 *
 * Owners that let refused arrivals advance the state too (frames) build up
 * debt: a client that keeps sending while refused falls further behind, and
 * once its refused arrivals make up another burst, overwhelmed() says so.
 */

export class RateGate {
  private readonly intervalMs: number;
  private readonly toleranceMs: number;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new RangeError(`a rate gate needs perSecond > 0 and burst >= 1, got ${perSecond}/${burst}`);
    this.intervalMs = 1000 / perSecond;
    this.toleranceMs = burst * this.intervalMs;
  }

  /** The state after one more arrival at `nowMs`, from the state `tat` (0 for a client never seen). */
  advance(tat: number, nowMs: number): number {
    return Math.max(tat, nowMs) + this.intervalMs;
  }

  /** Whether the arrival that advanced the state to `next` at `nowMs` is within the rate and burst. */
  admits(next: number, nowMs: number): boolean {
    return next - nowMs <= this.toleranceMs;
  }

  /** Whether refused arrivals, counted into `next`, make up another full burst past the allowance. */
  overwhelmed(next: number, nowMs: number): boolean {
    return next - nowMs > 2 * this.toleranceMs;
  }

  /** Whether the state `tat` holds nothing any more at `nowMs`: the bucket is full again, as for a new client. */
  idle(tat: number, nowMs: number): boolean {
    return tat <= nowMs;
  }
}
