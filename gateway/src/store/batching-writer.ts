/**
 * A bounded queue in front of a batch write. Items wait in memory and go out
 * as one batch when `maxBatch` have gathered or `maxDelayMs` after the first
 * arrived. Each caller's promise settles only after its batch committed (or
 * was refused as a whole), so an acknowledgement is never ahead of the data.
 *
 * - Bounded: past `capacity` queued items, submit() answers "overloaded" at once.
 * - Retried: a batch that fails with a retryable error is written again, whole,
 *   after a capped, fully jittered backoff; the store writes it in one
 *   transaction, so a failed attempt leaves nothing behind. Items keep their
 *   place in line.
 * - Unhealthy: after consecutive failures new items are refused ("unavailable")
 *   instead of piling up behind a store that is down; queued ones keep waiting.
 * - Concurrent: up to `concurrency` batches are written at once; items of one
 *   client may commit out of order, each with its own acknowledgement.
 * - stop() refuses new items and flushes everything queued, within a deadline.
 */

import { backoffDelay, type BackoffPolicy } from "../../../shared/src/client/backoff.js";

export type Submitted<R> =
  | { readonly ok: true; readonly value: R }
  | { readonly ok: false; readonly code: "overloaded" | "unavailable" | "internal"; readonly message: string };

export interface BatchingWriterOptions<T, R> {
  readonly maxBatch: number;
  readonly maxDelayMs: number;
  readonly capacity: number;
  /**
   * Batches written at once, each its own transaction. Above 1, the next
   * batch commits while the previous one waits for its fsync.
   */
  readonly concurrency?: number;
  /** Writes one batch; results in input order. Must be all-or-nothing. */
  readonly write: (items: readonly T[]) => Promise<R[]>;
  /** Whether a failed write may be attempted again (connection loss, serialization) or is final. */
  readonly isRetryable: (err: unknown) => boolean;
  readonly metrics: WriterMetrics;
  readonly onError: (err: unknown, attempt: number, items: number) => void;
  /** Consecutive failed attempts after which new items are refused. */
  readonly unhealthyAfter?: number;
  /** Ceiling of the first retry's delay (the delay is uniform below it); doubles per attempt. */
  readonly minBackoffMs?: number;
  /** Largest ceiling. */
  readonly maxBackoffMs?: number;
}

export interface WriterMetrics {
  writerCapacity(capacity: number): void;
  writerQueued(depth: number): void;
  writerFlushed(items: number, seconds: number): void;
  writerFailed(): void;
  writerRejectedCommand(reason: string): void;
}

interface Pending<T, R> {
  readonly item: T;
  readonly resolve: (outcome: Submitted<R>) => void;
  /** The time limit counts from here, not from when the previous batch finished. */
  readonly queuedAt: number;
}

export class BatchingWriter<T, R> {
  /** Items not yet taken into a batch, oldest first. */
  private waiting: Array<Pending<T, R>> = [];
  /** Batches being written, each with its items. */
  private readonly inFlight = new Map<Promise<void>, ReadonlyArray<Pending<T, R>>>();
  private inFlightItems = 0;
  private timer: NodeJS.Timeout | null = null;
  private consecutiveFailures = 0;
  private stopping = false;
  /** Past the stop deadline: retries end, the process is about to exit. */
  private abandoned = false;
  private readonly unhealthyAfter: number;
  private readonly backoff: BackoffPolicy;
  private readonly concurrency: number;

  constructor(private readonly options: BatchingWriterOptions<T, R>) {
    this.unhealthyAfter = options.unhealthyAfter ?? 2;
    this.backoff = { initialDelayMs: options.minBackoffMs ?? 50, maxDelayMs: options.maxBackoffMs ?? 2000 };
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    options.metrics.writerCapacity(options.capacity);
    options.metrics.writerQueued(0);
  }

  /** Items waiting or being written. */
  depth(): number {
    return this.waiting.length + this.inFlightItems;
  }

  healthy(): boolean {
    return this.consecutiveFailures < this.unhealthyAfter;
  }

  /**
   * An outside probe saw the store answer again. Without it, a writer that
   * turned unhealthy with an empty queue would refuse every item forever,
   * since only a successful write clears the failure count.
   */
  storeIsUp(): void {
    if (this.inFlight.size === 0) this.consecutiveFailures = 0;
  }

  submit(item: T): Promise<Submitted<R>> {
    if (this.stopping) return Promise.resolve(this.refuse("unavailable", "node is shutting down; retry on another node with the same idempotency key"));
    if (!this.healthy()) return Promise.resolve(this.refuse("unavailable", "database unavailable; retry later with the same idempotency key"));
    if (this.depth() >= this.options.capacity) return Promise.resolve(this.refuse("overloaded", "write queue full; retry later with the same idempotency key"));
    return new Promise((resolve) => {
      this.waiting.push({ item, resolve, queuedAt: Date.now() });
      this.options.metrics.writerQueued(this.depth());
      this.schedule();
    });
  }

  /** Refuses new items and writes every queued one; gives up at the deadline. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const deadline = Date.now() + timeoutMs;
    while (this.depth() > 0 && Date.now() < deadline) {
      this.flushNow();
      await Promise.race([...this.inFlight.keys(), new Promise((resolve) => setTimeout(resolve, Math.max(1, deadline - Date.now())))]);
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.abandoned = true;
    // Still unwritten at the deadline: never acknowledged, so the outcome is
    // unknown to the client, which retries elsewhere with the same key and
    // learns it (the key makes the retry a no-op if this write landed).
    const unanswered = [...this.waiting, ...[...this.inFlight.values()].flat()];
    this.waiting = [];
    for (const pending of unanswered) pending.resolve({ ok: false, code: "unavailable", message: "node shut down before the write was confirmed; retry with the same idempotency key" });
    this.options.metrics.writerQueued(0);
  }

  private refuse(code: "overloaded" | "unavailable", message: string): Submitted<R> {
    this.options.metrics.writerRejectedCommand(code);
    return { ok: false, code, message };
  }

  private schedule(): void {
    if (this.inFlight.size >= this.concurrency) return;
    if (this.waiting.length >= this.options.maxBatch) {
      this.flushNow();
      return;
    }
    const oldest = this.waiting[0];
    if (oldest === undefined) return;
    this.timer ??= setTimeout(() => this.flushNow(), Math.max(0, oldest.queuedAt + this.options.maxDelayMs - Date.now()));
  }

  private flushNow(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    while (this.inFlight.size < this.concurrency && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.options.maxBatch);
      this.inFlightItems += batch.length;
      const writing: Promise<void> = this.writeWithRetry(batch).finally(() => {
        this.inFlight.delete(writing);
        this.inFlightItems -= batch.length;
        this.options.metrics.writerQueued(this.depth());
        if (!this.abandoned) this.schedule();
      });
      this.inFlight.set(writing, batch);
    }
  }

  private async writeWithRetry(batch: ReadonlyArray<Pending<T, R>>): Promise<void> {
    const items = batch.map((pending) => pending.item);
    for (let attempt = 1; ; attempt++) {
      const started = process.hrtime.bigint();
      let results: R[];
      try {
        results = await this.options.write(items);
      } catch (err) {
        this.consecutiveFailures++;
        this.options.metrics.writerFailed();
        this.options.onError(err, attempt, items.length);
        if (this.abandoned) return;
        if (!this.options.isRetryable(err)) {
          // The store answered: it is up, this batch is just unwritable.
          this.consecutiveFailures = 0;
          for (const pending of batch) pending.resolve({ ok: false, code: "internal", message: "the write failed and was not applied; retry with the same idempotency key" });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, this.backoff, Math.random)));
        continue;
      }
      this.consecutiveFailures = 0;
      this.options.metrics.writerFlushed(items.length, Number(process.hrtime.bigint() - started) / 1e9);
      batch.forEach((pending, i) => pending.resolve({ ok: true, value: results[i] as R }));
      return;
    }
  }
}
