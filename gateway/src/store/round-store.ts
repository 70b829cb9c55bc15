/**
 * Where finished and running rounds are recorded. Writes are idempotent
 * upserts: the authority writes after each transition, and a new authority
 * re-writes what it inherits, so a crash between a transition and its write
 * never leaves a round unrecorded.
 */

import type pg from "pg";
import { withTransaction } from "./transaction.js";

export interface RoundRecord {
  readonly id: number;
  readonly startedAt: number;
  /** The planned race start: bets placed at or after it are refused. */
  readonly bettingClosesAt: number;
  readonly runners: number;
  readonly raceStartedAt: number | null;
  readonly finishedAt: number | null;
  readonly result: readonly number[] | null;
}

export interface RoundStore {
  /** Highest recorded round id, 0 when none. */
  maxRoundId(): Promise<number>;
  /**
   * Inserts or completes a round; never erases a field already recorded. A
   * finished round is settled in the same transaction, exactly once.
   */
  record(round: RoundRecord, recordedBy: string): Promise<void>;
}

/** Decimal odds are the number of runners: a fair book, since every runner is equally likely. */
export const SETTLE_ROUND_SQL = `
  UPDATE bets
     SET status = CASE WHEN selection = $2 THEN 'won' ELSE 'lost' END,
         payout = CASE WHEN selection = $2 THEN amount * $3 ELSE 0 END,
         settled_at = now()
   WHERE round_id = $1 AND status = 'accepted'`;

export class PgRoundStore implements RoundStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly timer: { pgQuery(operation: string, seconds: number): void },
  ) {}

  async maxRoundId(): Promise<number> {
    const { rows } = await this.pool.query<{ max: string | null }>("SELECT max(id)::text AS max FROM rounds");
    return Number(rows[0]?.max ?? 0);
  }

  async record(round: RoundRecord, recordedBy: string): Promise<void> {
    const at = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));
    const started = process.hrtime.bigint();
    await withTransaction(this.pool, async (client) => {
      // The upsert takes the round's row lock: bet batches hold FOR SHARE on
      // it, so settlement waits for them and sees every committed bet.
      await client.query(
        `INSERT INTO rounds (id, started_at, betting_closes_at, runners, race_started_at, finished_at, result, recorded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET
           betting_closes_at = COALESCE(rounds.betting_closes_at, EXCLUDED.betting_closes_at),
           runners           = COALESCE(rounds.runners, EXCLUDED.runners),
           race_started_at   = COALESCE(rounds.race_started_at, EXCLUDED.race_started_at),
           finished_at       = COALESCE(rounds.finished_at, EXCLUDED.finished_at),
           result            = COALESCE(rounds.result, EXCLUDED.result),
           recorded_by       = EXCLUDED.recorded_by,
           updated_at        = now()`,
        [round.id, at(round.startedAt), at(round.bettingClosesAt), round.runners, at(round.raceStartedAt), at(round.finishedAt), round.result === null ? null : JSON.stringify(round.result), recordedBy],
      );
      const winner = round.result?.[0];
      if (round.finishedAt !== null && winner !== undefined) {
        const settled = await client.query("UPDATE rounds SET settled_at = now() WHERE id = $1 AND settled_at IS NULL RETURNING id", [round.id]);
        if (settled.rowCount === 1) await client.query(SETTLE_ROUND_SQL, [round.id, winner, round.runners]);
      }
    });
    this.timer.pgQuery("round_record", Number(process.hrtime.bigint() - started) / 1e9);
  }
}
