/**
 * Where finished and running rounds are recorded. Writes are idempotent
 * upserts: the authority writes after each transition, and a new authority
 * re-writes what it inherits, so a crash between a transition and its write
 * never leaves a round unrecorded.
 */

import type pg from "pg";

export interface RoundRecord {
  readonly id: number;
  readonly startedAt: number;
  readonly raceStartedAt: number | null;
  readonly finishedAt: number | null;
  readonly result: readonly number[] | null;
}

export interface RoundStore {
  /** Highest recorded round id, 0 when none. */
  maxRoundId(): Promise<number>;
  /** Inserts or completes a round; never erases a field already recorded. */
  record(round: RoundRecord, recordedBy: string): Promise<void>;
}

export class PgRoundStore implements RoundStore {
  constructor(private readonly pool: pg.Pool) {}

  async maxRoundId(): Promise<number> {
    const { rows } = await this.pool.query<{ max: string | null }>("SELECT max(id)::text AS max FROM rounds");
    return Number(rows[0]?.max ?? 0);
  }

  async record(round: RoundRecord, recordedBy: string): Promise<void> {
    const at = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));
    await this.pool.query(
      `INSERT INTO rounds (id, started_at, race_started_at, finished_at, result, recorded_by)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO UPDATE SET
         race_started_at = COALESCE(rounds.race_started_at, EXCLUDED.race_started_at),
         finished_at     = COALESCE(rounds.finished_at, EXCLUDED.finished_at),
         result          = COALESCE(rounds.result, EXCLUDED.result),
         recorded_by     = EXCLUDED.recorded_by,
         updated_at      = now()`,
      [round.id, at(round.startedAt), at(round.raceStartedAt), at(round.finishedAt), round.result === null ? null : JSON.stringify(round.result), recordedBy],
    );
  }
}
