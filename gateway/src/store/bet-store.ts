/**
 * Bets in Postgres, written a batch at a time: one transaction, one INSERT
 * for the whole batch (arrays unnested server-side, so the statement has
 * seven parameters whatever the batch size), all or nothing.
 *
 * Idempotency: (user_id, idempotency_key) is unique. A command whose key is
 * already stored inserts nothing and answers with the stored bet, so a client
 * that retries after a lost reply learns the original outcome.
 *
 * Betting window: a bet counts only if it was placed before the round's
 * betting_closes_at and the round is not settled. The round rows are locked
 * FOR SHARE first, so a settlement either waits for this batch (and then
 * settles its bets) or has happened (and the batch refuses them).
 */

import type pg from "pg";
import type { PlacedBetView } from "../../../shared/src/commands.js";
import { withTransaction } from "./transaction.js";

export interface BetCommand {
  readonly userId: string;
  readonly roundId: number;
  readonly selection: number;
  /** Minor currency units. */
  readonly amount: number;
  readonly idempotencyKey: string;
  readonly placedAt: number;
}

/** The committed bet as clients see it (shared with them). */
export type PlacedBet = PlacedBetView;

export type BetOutcome =
  | { readonly ok: true; readonly bet: PlacedBet }
  | { readonly ok: false; readonly code: "round_closed"; readonly message: string };

export interface BetStore {
  /** Outcomes in input order. Throws (writing nothing) when the transaction fails. */
  insertBatch(commands: readonly BetCommand[]): Promise<BetOutcome[]>;
}

export interface QueryTimer {
  pgQuery(operation: string, seconds: number): void;
}

interface OpenRound {
  readonly id: string;
  readonly closes: Date | null;
}

interface StoredBet {
  readonly id: string;
  readonly user_id: string;
  readonly idempotency_key: string;
  readonly round_id: string;
  readonly selection: number;
  readonly amount: string;
  readonly placed_at: Date;
}

const INSERT_SQL = `
  INSERT INTO bets (user_id, round_id, selection, amount, idempotency_key, placed_at, node)
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bigint[], $5::text[], $6::timestamptz[], $7::text[])
  ON CONFLICT (user_id, idempotency_key) DO NOTHING
  RETURNING id::text, user_id, idempotency_key, round_id::text, selection, amount::text, placed_at`;

const EXISTING_SQL = `
  SELECT id::text, user_id, idempotency_key, round_id::text, selection, amount::text, placed_at
    FROM bets
   WHERE (user_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`;

function keyOf(userId: string, idempotencyKey: string): string {
  return `${userId}\u0000${idempotencyKey}`;
}

function toPlaced(row: StoredBet, duplicate: boolean): PlacedBet {
  return {
    betId: row.id,
    roundId: Number(row.round_id),
    selection: row.selection,
    amount: Number(row.amount),
    placedAt: row.placed_at.getTime(),
    duplicate,
  };
}

export class PgBetStore implements BetStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly node: string,
    private readonly timer: QueryTimer,
  ) {}

  async insertBatch(commands: readonly BetCommand[]): Promise<BetOutcome[]> {
    const started = process.hrtime.bigint();
    const placed = await withTransaction(this.pool, (client) => this.write(client, commands));
    this.timer.pgQuery("bet_batch", Number(process.hrtime.bigint() - started) / 1e9);

    // Within one batch, the first command with a key owns the new row; later ones are duplicates.
    const answered = new Set<string>();
    return commands.map((command): BetOutcome => {
      const key = keyOf(command.userId, command.idempotencyKey);
      const bet = placed.get(key);
      if (bet === undefined) return { ok: false, code: "round_closed", message: `betting on round ${command.roundId} is closed` };
      const duplicate = bet.duplicate || answered.has(key);
      answered.add(key);
      return { ok: true, bet: duplicate ? { ...bet, duplicate: true } : bet };
    });
  }

  /** The bets now stored for the batch's keys, by user/key. */
  private async write(client: pg.PoolClient, commands: readonly BetCommand[]): Promise<Map<string, PlacedBet>> {
    const roundIds = [...new Set(commands.map((c) => c.roundId))];
    const open = await client.query<OpenRound>(
      "SELECT id::text, betting_closes_at AS closes FROM rounds WHERE id = ANY($1::bigint[]) AND settled_at IS NULL FOR SHARE",
      [roundIds],
    );
    const closesAt = new Map(open.rows.map((row) => [Number(row.id), row.closes?.getTime() ?? 0]));
    const accepted = commands.filter((command) => {
      const closes = closesAt.get(command.roundId);
      return closes !== undefined && command.placedAt < closes;
    });

    const placed = new Map<string, PlacedBet>();
    if (accepted.length > 0) {
      const inserted = await client.query<StoredBet>(INSERT_SQL, [
        accepted.map((c) => c.userId),
        accepted.map((c) => c.roundId),
        accepted.map((c) => c.selection),
        accepted.map((c) => c.amount),
        accepted.map((c) => c.idempotencyKey),
        accepted.map((c) => new Date(c.placedAt)),
        accepted.map(() => this.node),
      ]);
      for (const row of inserted.rows) placed.set(keyOf(row.user_id, row.idempotency_key), toPlaced(row, false));
    }
    // Commands whose key was already stored (earlier, or twice in this batch).
    const missing = commands.filter((c) => !placed.has(keyOf(c.userId, c.idempotencyKey)));
    if (missing.length > 0) {
      const existing = await client.query<StoredBet>(EXISTING_SQL, [missing.map((c) => c.userId), missing.map((c) => c.idempotencyKey)]);
      for (const row of existing.rows) {
        const key = keyOf(row.user_id, row.idempotency_key);
        if (!placed.has(key)) placed.set(key, toPlaced(row, true));
      }
    }
    return placed;
  }
}
