/**
 * Where finished and running rounds are recorded, and where their bets are
 * settled or voided. Writes are idempotent upserts: the authority writes
 * after each transition, and a new authority re-writes what it inherits, so
 * a crash between a transition and its write never leaves a round
 * unrecorded.
 *
 * Settling and voiding happen in the transaction that records the round, one
 * set-based UPDATE each, guarded by `rounds.settled_at IS NULL` under the
 * round's row lock: whichever node gets there first settles, any later or
 * concurrent attempt changes nothing.
 */

import type pg from "pg";
import { withTransaction } from "./transaction.js";

export interface RoundRecord {
  readonly id: number;
  readonly startedAt: number;
  /** The planned race start: bets the database receives at or after it are refused. */
  readonly bettingClosesAt: number;
  readonly runners: number;
  /** Decimal odds of runners 1..n, fixed when the round started. */
  readonly odds: readonly number[];
  readonly raceStartedAt: number | null;
  /** From the race start: hex SHA-256 of the seed. */
  readonly commitment: string | null;
  readonly finishedAt: number | null;
  /** Only once finished: the revealed seed and the ranking it gives. */
  readonly seed: string | null;
  readonly result: readonly number[] | null;
}

export interface LatestRound {
  readonly id: number;
  /** Neither finished nor settled: a round that still has to end one way or another. */
  readonly open: boolean;
}

export interface RecordOutcome {
  /** This write settled the round by its result. */
  readonly settled: boolean;
  /** Earlier rounds this write voided (they can no longer finish). */
  readonly voided: readonly number[];
}

export interface RoundStore {
  /** The highest recorded round, null when none. */
  latestRound(): Promise<LatestRound | null>;
  /**
   * Inserts or completes a round; never erases a field already recorded. A
   * finished round is settled in the same transaction, exactly once. Every
   * unfinished, unsettled round below this one is voided in it too: only the
   * authority records, and it records a round only once every earlier one
   * has ended or can no longer end (its state was lost).
   */
  record(round: RoundRecord, recordedBy: string): Promise<RecordOutcome>;
}

/**
 * Winners get floor(amount × odds) in minor units; bets placed before odds
 * were recorded (odds NULL) were priced at the fair `runners`.
 */
export const SETTLE_ROUND_SQL = `
  UPDATE bets
     SET status = CASE WHEN selection = $2 THEN 'won' ELSE 'lost' END,
         payout = CASE WHEN selection = $2 THEN floor(amount * COALESCE(odds, $3))::bigint ELSE 0 END,
         settled_at = now()
   WHERE round_id = $1 AND status = 'accepted'`;

/** Rounds that can no longer finish: settled as void. */
const VOID_ROUNDS_SQL = `
  UPDATE rounds SET settled_at = now(), voided_at = now(), updated_at = now()
   WHERE id < $1 AND settled_at IS NULL AND finished_at IS NULL
  RETURNING id::text`;

/** A void bet pays its stake back. */
const VOID_BETS_SQL = `
  UPDATE bets SET status = 'void', payout = amount, settled_at = now()
   WHERE round_id = ANY($1::bigint[]) AND status = 'accepted'`;

/** A voided round keeps no result: a late finish record (from a former authority) cannot give it one. */
const UPSERT_SQL = `
  INSERT INTO rounds (id, started_at, betting_closes_at, runners, odds, race_started_at, commitment, finished_at, seed, result, recorded_by)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  ON CONFLICT (id) DO UPDATE SET
    betting_closes_at = COALESCE(rounds.betting_closes_at, EXCLUDED.betting_closes_at),
    runners           = COALESCE(rounds.runners, EXCLUDED.runners),
    odds              = COALESCE(rounds.odds, EXCLUDED.odds),
    race_started_at   = COALESCE(rounds.race_started_at, EXCLUDED.race_started_at),
    commitment        = COALESCE(rounds.commitment, EXCLUDED.commitment),
    finished_at       = CASE WHEN rounds.voided_at IS NULL THEN COALESCE(rounds.finished_at, EXCLUDED.finished_at) ELSE rounds.finished_at END,
    seed              = CASE WHEN rounds.voided_at IS NULL THEN COALESCE(rounds.seed, EXCLUDED.seed) ELSE rounds.seed END,
    result            = CASE WHEN rounds.voided_at IS NULL THEN COALESCE(rounds.result, EXCLUDED.result) ELSE rounds.result END,
    recorded_by       = EXCLUDED.recorded_by,
    updated_at        = now()`;

export class PgRoundStore implements RoundStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly timer: { pgQuery(operation: string, seconds: number): void },
  ) {}

  async latestRound(): Promise<LatestRound | null> {
    const { rows } = await this.pool.query<{ id: string; open: boolean }>(
      "SELECT id::text, (finished_at IS NULL AND settled_at IS NULL) AS open FROM rounds ORDER BY id DESC LIMIT 1",
    );
    const row = rows[0];
    return row === undefined ? null : { id: Number(row.id), open: row.open };
  }

  async record(round: RoundRecord, recordedBy: string): Promise<RecordOutcome> {
    const at = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));
    const started = process.hrtime.bigint();
    const outcome = await withTransaction(this.pool, async (client): Promise<RecordOutcome> => {
      // Earlier rounds first: bet batches lock their rounds in ascending id
      // order too, so the two never wait on each other in a cycle.
      const voided = (await client.query<{ id: string }>(VOID_ROUNDS_SQL, [round.id])).rows.map((row) => Number(row.id));
      if (voided.length > 0) await client.query(VOID_BETS_SQL, [voided]);
      // The upsert takes the round's row lock: bet batches hold FOR SHARE on
      // it, so settlement waits for them and sees every committed bet.
      await client.query(UPSERT_SQL, [
        round.id,
        at(round.startedAt),
        at(round.bettingClosesAt),
        round.runners,
        JSON.stringify(round.odds),
        at(round.raceStartedAt),
        round.commitment,
        at(round.finishedAt),
        round.seed,
        round.result === null ? null : JSON.stringify(round.result),
        recordedBy,
      ]);
      let settled = false;
      const winner = round.result?.[0];
      if (round.finishedAt !== null && winner !== undefined) {
        const marked = await client.query("UPDATE rounds SET settled_at = now() WHERE id = $1 AND settled_at IS NULL RETURNING id", [round.id]);
        if (marked.rowCount === 1) {
          await client.query(SETTLE_ROUND_SQL, [round.id, winner, round.runners]);
          settled = true;
        }
      }
      return { settled, voided };
    });
    this.timer.pgQuery("round_record", Number(process.hrtime.bigint() - started) / 1e9);
    return outcome;
  }
}
