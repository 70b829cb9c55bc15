/**
 * A backend that publishes the way docs/protocol.md asks: round robin over the
 * gateway nodes, and every publish that fails (node gone, 503, connection cut,
 * timeout) retried on the next node with the same idempotency key until it is
 * acknowledged, so each message is published once and acknowledged once.
 * Used by the fault drills and the soak, which then check that every client
 * holds every acknowledged offset exactly once.
 */

import { setTimeout as sleep } from "node:timers/promises";

export interface Acked {
  readonly offset: number;
  readonly epoch: string;
}

export interface PublisherOptions {
  /** The nodes' base URLs now (a restarted node keeps its URL). */
  readonly nodes: () => readonly string[];
  readonly publishKey: string;
  /** Which channel message `seq` goes to. */
  readonly channelOf: (seq: number) => string;
  /** Pause between two publishes. */
  readonly intervalMs: number;
  /** Upper bounds of the run: it stops at whichever comes first. */
  readonly maxMessages: number;
  readonly maxDurationMs: number;
  /** How long one message may take to be acknowledged before the run fails. */
  readonly ackTimeoutMs?: number;
  /** Called with each acknowledgement (for latency bookkeeping, progress). */
  readonly onAck?: (seq: number, channel: string, acked: Acked) => void;
}

export class IdempotentPublisher {
  /** Per channel, the acknowledged positions in publish order. */
  readonly acked = new Map<string, Acked[]>();
  /** Attempts that failed and were retried. */
  retries = 0;
  private seq = 0;
  private stopped = false;
  private running: Promise<void> | null = null;
  private waiters: Array<{ readonly target: number; readonly resolve: () => void }> = [];

  constructor(private readonly options: PublisherOptions) {}

  start(): void {
    this.running = this.loop();
    // Surface a failure to waiters too, instead of leaving them hanging.
    this.running.catch(() => this.wakeAll());
  }

  /** Resolves once `count` more messages were acknowledged (or the run ended). */
  waitFor(count: number): Promise<void> {
    const target = this.seq + count;
    if (this.running === null || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }

  /** Resolves when the run ends by its own bounds; rejects if it failed. */
  async finished(): Promise<void> {
    await this.running;
  }

  /** Stops after the message in flight; rejects if the run failed. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  published(): number {
    return this.seq;
  }

  private async loop(): Promise<void> {
    const deadline = Date.now() + this.options.maxDurationMs;
    try {
      while (!this.stopped && this.seq < this.options.maxMessages && Date.now() < deadline) {
        const seq = this.seq;
        const channel = this.options.channelOf(seq);
        const acked = await this.publishOnce(channel, seq);
        const list = this.acked.get(channel) ?? [];
        list.push(acked);
        this.acked.set(channel, list);
        this.seq++;
        this.options.onAck?.(seq, channel, acked);
        this.waiters = this.waiters.filter((waiter) => {
          if (this.seq < waiter.target) return true;
          waiter.resolve();
          return false;
        });
        if (this.options.intervalMs > 0) await sleep(this.options.intervalMs);
      }
    } finally {
      this.stopped = true;
      this.wakeAll();
    }
  }

  private wakeAll(): void {
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters = [];
  }

  private async publishOnce(channel: string, seq: number): Promise<Acked> {
    const body = JSON.stringify({ channel, event: "sequenced", data: { seq, sentAt: Date.now() }, idempotencyKey: `seq-${seq}` });
    const deadline = Date.now() + (this.options.ackTimeoutMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      const nodes = this.options.nodes();
      const node = nodes[(seq + attempt) % nodes.length] as string;
      try {
        const res = await fetch(`${node}/v1/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.options.publishKey}`, "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(2000),
        });
        if (res.status === 200) return (await res.json()) as Acked;
        await res.body?.cancel();
      } catch {
        // The node is gone or slow; the next attempt goes to another one, same key.
      }
      this.retries++;
      if (Date.now() > deadline) throw new Error(`publish ${seq} to ${channel} not acknowledged within ${this.options.ackTimeoutMs ?? 30_000} ms`);
      await sleep(Math.min(200, 10 * (attempt + 1)));
    }
  }
}

/** The offsets a channel acknowledged in `epoch`, in publish order. */
export function ackedOffsets(acked: readonly Acked[] | undefined, epoch: string): number[] {
  return (acked ?? []).filter((a) => a.epoch === epoch).map((a) => a.offset);
}
