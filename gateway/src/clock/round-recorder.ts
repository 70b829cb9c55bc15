/**
 * Records rounds in the store without ever stalling the clock: screens must
 * keep ticking while Postgres restarts. Records wait in a small map (one
 * entry per round, merged) and are retried with capped backoff until written,
 * in round id order: a round's finish is written before the next round's
 * start, whose write voids whatever earlier round is still unfinished.
 */

import type { Logger } from "pino";
import type { RoundRecord, RoundStore } from "../store/round-store.js";
import { RetryBackoff } from "../time/retry-backoff.js";

/** More unrecorded rounds than this means Postgres has been gone for a long time; keep the newest. */
const MAX_PENDING = 1000;

function merge(older: RoundRecord | undefined, newer: RoundRecord): RoundRecord {
  if (older === undefined) return newer;
  return {
    id: newer.id,
    startedAt: older.startedAt,
    bettingClosesAt: older.bettingClosesAt,
    runners: older.runners,
    odds: older.odds,
    raceStartedAt: newer.raceStartedAt ?? older.raceStartedAt,
    commitment: newer.commitment ?? older.commitment,
    finishedAt: newer.finishedAt ?? older.finishedAt,
    seed: newer.seed ?? older.seed,
    result: newer.result ?? older.result,
  };
}

export class RoundRecorder {
  private readonly pending = new Map<number, RoundRecord>();
  private readonly backoff = new RetryBackoff({ initialDelayMs: 100, maxDelayMs: 5000 });
  /** Before the next pass: 0 after a pass that wrote everything it tried, a backoff after a failure. */
  private nextPassInMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly store: RoundStore,
    private readonly recordedBy: string,
    private readonly log: Logger,
    /** A write settled or voided bets: their owners are owed a notice. */
    private readonly onSettled: () => void = () => undefined,
  ) {}

  record(round: RoundRecord): void {
    this.pending.set(round.id, merge(this.pending.get(round.id), round));
    if (this.pending.size > MAX_PENDING) {
      const oldest = Math.min(...this.pending.keys());
      this.pending.delete(oldest);
      this.log.error({ roundId: oldest }, "round dropped from the record queue: postgres unavailable too long");
    }
    this.schedule(0);
  }

  /** One last attempt to write what is pending, bounded by `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const attempt = this.flushing ?? this.flush();
    await Promise.race([attempt, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    if (this.pending.size > 0) this.log.warn({ rounds: [...this.pending.keys()] }, "rounds left unrecorded at shutdown; the next authority records them");
  }

  private schedule(delayMs: number): void {
    if (this.timer !== null || this.flushing !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
        if (this.pending.size > 0) this.schedule(this.nextPassInMs);
      });
    }, delayMs);
  }

  private async flush(): Promise<void> {
    for (const id of [...this.pending.keys()].sort((a, b) => a - b)) {
      const round = this.pending.get(id);
      if (round === undefined) continue;
      try {
        const outcome = await this.store.record(round, this.recordedBy);
        if (outcome.voided.length > 0) this.log.warn({ roundId: id, voided: outcome.voided }, "unfinished earlier rounds voided; their stakes are returned");
        if (outcome.settled || outcome.voided.length > 0) this.onSettled();
      } catch (err) {
        this.nextPassInMs = this.backoff.next();
        this.log.warn({ err, roundId: id, retryInMs: this.nextPassInMs }, "recording round failed");
        return;
      }
      // A newer state may have arrived while writing; keep it for the next pass.
      if (this.pending.get(id) === round) this.pending.delete(id);
      this.backoff.reset();
      this.nextPassInMs = 0;
    }
  }
}
