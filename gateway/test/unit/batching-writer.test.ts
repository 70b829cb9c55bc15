/**
 * The batching writer's own rules, against an in-process write function: how
 * batches form, the bound, retries and stop(). Postgres itself is exercised
 * by the bets integration tests.
 */

import { describe, expect, it } from "vitest";
import { BatchingWriter, type WriterMetrics } from "../../src/store/batching-writer.js";

const metrics: WriterMetrics = {
  writerCapacity: () => undefined,
  writerQueued: () => undefined,
  writerFlushed: () => undefined,
  writerFailed: () => undefined,
  writerRejectedCommand: () => undefined,
};

function writer(options: {
  maxBatch?: number;
  maxDelayMs?: number;
  capacity?: number;
  concurrency?: number;
  write: (items: readonly number[]) => Promise<number[]>;
  retryable?: boolean;
  onError?: (err: unknown, attempt: number) => void;
}): BatchingWriter<number, number> {
  return new BatchingWriter<number, number>({
    maxBatch: options.maxBatch ?? 10,
    maxDelayMs: options.maxDelayMs ?? 5,
    capacity: options.capacity ?? 100,
    concurrency: options.concurrency ?? 1,
    write: options.write,
    isRetryable: () => options.retryable ?? true,
    metrics,
    onError: options.onError ?? (() => undefined),
    minBackoffMs: 1,
    maxBackoffMs: 5,
  });
}

describe("BatchingWriter", () => {
  it("writes a full batch at once and a partial one after the delay, answering in order", async () => {
    const batches: number[][] = [];
    const w = writer({ maxBatch: 3, maxDelayMs: 30, write: async (items) => (batches.push([...items]), items.map((i) => i * 10)) });
    const started = Date.now();
    const answers = await Promise.all([1, 2, 3, 4].map((i) => w.submit(i)));
    expect(batches).toEqual([[1, 2, 3], [4]]);
    expect(answers.map((a) => (a.ok ? a.value : -1))).toEqual([10, 20, 30, 40]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });

  it("answers overloaded past capacity without queueing", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const w = writer({ maxBatch: 2, capacity: 2, write: async (items) => (await gate, [...items]) });
    const queued = [w.submit(1), w.submit(2)];
    expect(await w.submit(3)).toMatchObject({ ok: false, code: "overloaded" });
    release();
    expect((await Promise.all(queued)).every((a) => a.ok)).toBe(true);
  });

  it("retries a failed batch whole, and refuses new items while failing repeatedly", async () => {
    let attempts = 0;
    const seen: number[][] = [];
    let secondFailure: () => void = () => undefined;
    const failedTwice = new Promise<void>((resolve) => (secondFailure = resolve));
    const w = writer({
      maxBatch: 2,
      write: async (items) => {
        attempts++;
        seen.push([...items]);
        if (attempts <= 3) throw new Error("connection refused");
        return [...items];
      },
      // Called as each failure is counted, before the backoff timer: the check below runs inside that wait.
      onError: (_err, attempt) => {
        if (attempt === 2) secondFailure();
      },
    });
    const pending = [w.submit(1), w.submit(2)];
    // After two failed attempts the writer stops taking new work.
    await failedTwice;
    expect(w.healthy()).toBe(false);
    expect(await w.submit(3)).toMatchObject({ ok: false, code: "unavailable" });
    expect((await Promise.all(pending)).map((a) => a.ok)).toEqual([true, true]);
    expect(seen.every((batch) => batch.join() === "1,2")).toBe(true);
    expect(w.healthy()).toBe(true);
  });

  it("fails a batch once with internal when the error is permanent, and stays healthy", async () => {
    const w = writer({ retryable: false, write: async () => Promise.reject(new Error("check constraint")) });
    expect(await w.submit(1)).toMatchObject({ ok: false, code: "internal" });
    expect(w.healthy()).toBe(true);
  });

  it("writes up to `concurrency` batches at once", async () => {
    let active = 0;
    let peak = 0;
    // No batch finishes until two are being written at once; with less concurrency the test times out.
    let bothActive: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (bothActive = resolve));
    const w = writer({ maxBatch: 2, concurrency: 2, write: async (items) => {
      active++;
      peak = Math.max(peak, active);
      if (active === 2) bothActive();
      await gate;
      active--;
      return [...items];
    } });
    await Promise.all([1, 2, 3, 4, 5, 6].map((i) => w.submit(i)));
    expect(peak).toBe(2);
  });

  it("stop() flushes what is queued, then refuses", async () => {
    const written: number[] = [];
    const w = writer({ maxDelayMs: 10_000, write: async (items) => (written.push(...items), [...items]) });
    const queued = [w.submit(1), w.submit(2)];
    await w.stop(1000);
    expect(written).toEqual([1, 2]);
    expect((await Promise.all(queued)).every((a) => a.ok)).toBe(true);
    expect(await w.submit(3)).toMatchObject({ ok: false, code: "unavailable" });
  });
});
