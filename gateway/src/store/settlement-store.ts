/**
 * The outbox of settlement notices: a round whose `settled_at` is set and
 * whose `notified_at` is not still owes its bettors their `bet_settled`
 * messages. The notifier reads the bets from here, publishes, then marks the
 * round; a crash in between leaves the round unmarked, and the next pass
 * publishes again under the same idempotency keys.
 */

import type pg from "pg";
import type { BetSettled, BetStatus } from "../../../shared/src/commands.js";

/** A settled bet as its owner is told (`bet_settled`), and who owns it. */
export interface SettledBet extends BetSettled {
  readonly userId: string;
}

export interface SettlementStore {
  /** Settled or voided rounds whose bettors have not been told yet, oldest first. */
  unnotifiedRounds(limit: number): Promise<number[]>;
  /** Every bet of a settled round, in bet id order. */
  settledBets(roundId: number): Promise<SettledBet[]>;
  markNotified(roundId: number): Promise<void>;
}

interface SettledRow {
  readonly id: string;
  readonly user_id: string;
  readonly round_id: string;
  readonly selection: number;
  readonly amount: string;
  readonly odds: string;
  readonly status: BetStatus;
  readonly payout: string;
  readonly settled_at: Date;
}

export class PgSettlementStore implements SettlementStore {
  constructor(private readonly pool: pg.Pool) {}

  async unnotifiedRounds(limit: number): Promise<number[]> {
    const { rows } = await this.pool.query<{ id: string }>(
      "SELECT id::text FROM rounds WHERE settled_at IS NOT NULL AND notified_at IS NULL ORDER BY id LIMIT $1",
      [limit],
    );
    return rows.map((row) => Number(row.id));
  }

  async settledBets(roundId: number): Promise<SettledBet[]> {
    // Bets from before odds were recorded were priced at the fair `runners`.
    const { rows } = await this.pool.query<SettledRow>(
      `SELECT b.id::text, b.user_id, b.round_id::text, b.selection, b.amount::text, COALESCE(b.odds, r.runners)::text AS odds,
              b.status, b.payout::text, b.settled_at
         FROM bets b JOIN rounds r ON r.id = b.round_id
        WHERE b.round_id = $1 AND b.status <> 'accepted'
        ORDER BY b.id`,
      [roundId],
    );
    return rows.map((row) => ({
      betId: row.id,
      userId: row.user_id,
      roundId: Number(row.round_id),
      selection: row.selection,
      amount: Number(row.amount),
      odds: Number(row.odds),
      status: row.status,
      payout: Number(row.payout),
      settledAt: row.settled_at.getTime(),
    }));
  }

  async markNotified(roundId: number): Promise<void> {
    await this.pool.query("UPDATE rounds SET notified_at = now() WHERE id = $1 AND notified_at IS NULL", [roundId]);
  }
}
