/**
 * Tells bettors how their bets ended. After a round is settled or voided,
 * every bet gets one `bet_settled` message on its owner's `user:<sub>`, all
 * of a round's messages in one batch publish (split only past the publish
 * batch limit). Each message carries the idempotency key
 * `bet-settled:<betId>`, so a pass repeated after a crash, or run by two nodes
 * at once, publishes nothing twice within IDEMPOTENCY_WINDOW_S.
 *
 * Nothing waits in memory: what is owed lives in Postgres (settled rounds not
 * yet marked notified), so a kick only schedules a pass, and a pass that
 * fails (Redis or Postgres away) is retried with backoff until it succeeds.
 */

import type { Logger } from "pino";
import { BetEvents, type BetSettled } from "../../../shared/src/commands.js";
import type { PublishRequest, PublishResult } from "../../../shared/src/protocol.js";
import type { SettledBet, SettlementStore } from "../store/settlement-store.js";
import { RetryBackoff } from "../time/retry-backoff.js";

/** Rounds read per query; a pass continues until none is left. */
const ROUNDS_PER_QUERY = 20;

export interface NoticePublisher {
  /** Publishes the batch atomically, or rejects having published none of it. */
  publish(requests: readonly PublishRequest[]): Promise<PublishResult[]>;
}

export interface SettlementMetrics {
  /** `bet_settled` messages published (not counting idempotent repeats), by status. */
  betNoticesSent(status: string, count: number): void;
  betNoticePassFailed(): void;
}

export interface SettlementNotifierDeps {
  readonly store: SettlementStore;
  readonly publisher: NoticePublisher;
  /** Most messages in one publish (PUBLISH_MAX_BATCH). */
  readonly maxBatch: number;
  readonly metrics: SettlementMetrics;
  readonly log: Logger;
}

export function betSettledNotice(bet: SettledBet): PublishRequest {
  const data: BetSettled = {
    betId: bet.betId,
    roundId: bet.roundId,
    selection: bet.selection,
    amount: bet.amount,
    odds: bet.odds,
    status: bet.status,
    payout: bet.payout,
    settledAt: bet.settledAt,
  };
  return { channel: `user:${bet.userId}`, event: BetEvents.betSettled, data: { ...data }, idempotencyKey: `bet-settled:${bet.betId}` };
}

export class SettlementNotifier {
  private readonly backoff = new RetryBackoff({ initialDelayMs: 200, maxDelayMs: 5000 });
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** A kick arrived during a pass: run another one right after it. */
  private again = false;
  private stopped = false;

  constructor(private readonly deps: SettlementNotifierDeps) {}

  /** Something was settled (or may have been, by a previous authority): notify soon. */
  kick(): void {
    if (this.stopped) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /** Stops scheduling; a pass in progress finishes (its publishes are atomic per batch). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.again = false;
      this.running = this.pass().then(
        () => {
          this.backoff.reset();
          this.running = null;
          if (this.again) this.schedule(0);
        },
        (err: unknown) => {
          this.running = null;
          const retryInMs = this.backoff.next();
          this.deps.metrics.betNoticePassFailed();
          this.deps.log.warn({ err, retryInMs }, "settlement notices failed; retrying");
          this.schedule(retryInMs);
        },
      );
    }, delayMs);
  }

  private async pass(): Promise<void> {
    const { store } = this.deps;
    for (;;) {
      const rounds = await store.unnotifiedRounds(ROUNDS_PER_QUERY);
      for (const roundId of rounds) {
        if (this.stopped) return;
        await this.notifyRound(roundId);
      }
      if (rounds.length < ROUNDS_PER_QUERY) return;
    }
  }

  private async notifyRound(roundId: number): Promise<void> {
    const { store, publisher, maxBatch, metrics, log } = this.deps;
    const bets = await store.settledBets(roundId);
    const sent = new Map<string, number>();
    for (let from = 0; from < bets.length; from += maxBatch) {
      const chunk = bets.slice(from, from + maxBatch);
      const results = await publisher.publish(chunk.map(betSettledNotice));
      chunk.forEach((bet, i) => {
        if (results[i]?.duplicate !== true) sent.set(bet.status, (sent.get(bet.status) ?? 0) + 1);
      });
    }
    await store.markNotified(roundId);
    for (const [status, count] of sent) metrics.betNoticesSent(status, count);
    log.info({ roundId, bets: bets.length, sent: Object.fromEntries(sent) }, "bettors notified of settlement");
  }
}
