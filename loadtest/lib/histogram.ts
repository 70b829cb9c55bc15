/**
 * Fixed-bucket latency histogram: constant memory whatever the message count,
 * mergeable across worker processes by adding bucket counts. 100k sockets ×
 * hundreds of messages would be tens of millions of samples; this keeps 11k
 * counters instead.
 *
 * Buckets: 0.1 ms wide below 100 ms (where fan-out latency should live), 1 ms
 * wide from 100 ms to 10 s, one overflow bucket beyond. A percentile is
 * reported as the upper edge of its bucket, so it never understates.
 */

const FINE_LIMIT_MS = 100;
const FINE_STEP_MS = 0.1;
const COARSE_LIMIT_MS = 10_000;
const FINE_BUCKETS = FINE_LIMIT_MS / FINE_STEP_MS; // 1000
const COARSE_BUCKETS = COARSE_LIMIT_MS - FINE_LIMIT_MS; // 9900, 1 ms each
export const BUCKETS = FINE_BUCKETS + COARSE_BUCKETS + 1;

/** Sparse wire form for IPC: [bucketIndex, count] pairs plus exact extremes. */
export interface HistogramSnapshot {
  readonly buckets: ReadonlyArray<readonly [number, number]>;
  readonly count: number;
  readonly sumMs: number;
  readonly maxMs: number;
}

function bucketOf(ms: number): number {
  if (!(ms > 0)) return 0; // negative (clock granularity) and NaN land in the first bucket
  if (ms < FINE_LIMIT_MS) return Math.floor(ms / FINE_STEP_MS);
  if (ms < COARSE_LIMIT_MS) return FINE_BUCKETS + Math.floor(ms - FINE_LIMIT_MS);
  return BUCKETS - 1;
}

function upperEdgeOf(bucket: number): number {
  if (bucket < FINE_BUCKETS) return (bucket + 1) * FINE_STEP_MS;
  if (bucket < BUCKETS - 1) return FINE_LIMIT_MS + (bucket - FINE_BUCKETS) + 1;
  return Number.POSITIVE_INFINITY;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumMs = 0;
  maxMs = 0;

  record(ms: number): void {
    this.counts[bucketOf(ms)]! += 1;
    this.count++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  merge(snapshot: HistogramSnapshot): void {
    for (const [bucket, n] of snapshot.buckets) {
      if (bucket >= 0 && bucket < BUCKETS) this.counts[bucket]! += n;
    }
    this.count += snapshot.count;
    this.sumMs += snapshot.sumMs;
    this.maxMs = Math.max(this.maxMs, snapshot.maxMs);
  }

  /** Upper bucket edge below which `p` percent of samples fall; NaN when empty; the exact max for p = 100. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    if (p >= 100) return this.maxMs;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.counts[bucket]!;
      if (seen >= rank) return Math.min(upperEdgeOf(bucket), this.maxMs);
    }
    return this.maxMs;
  }

  snapshot(): HistogramSnapshot {
    const buckets: Array<[number, number]> = [];
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      const n = this.counts[bucket]!;
      if (n > 0) buckets.push([bucket, n]);
    }
    return { buckets, count: this.count, sumMs: this.sumMs, maxMs: this.maxMs };
  }
}
