/**
 * Bets in Postgres, written a batch at a time: one transaction, one INSERT
 * for the whole batch (arrays unnested server-side, so the statement has
 * eight parameters whatever the batch size), all or nothing.
 *
 * Idempotency: (user_id, idempotency_key) is unique. A command whose key is
 * already stored inserts nothing. It is answered with the stored bet when it
 * asks for the same bet (round, selection, amount, odds), so a client that
 * retries after a lost reply learns the original outcome; with `conflict`
 * when it asks for another one under a used key.
 *
 * Betting window, by the database's clock: a bet counts only if the round is
 * not settled and the database's time, read once the round rows are locked,
 * is before betting_closes_at. The round rows are locked FOR SHARE first, so
 * a settlement or void either waits for this batch (and then settles its
 * bets) or has happened (and the batch refuses them). The odds must be the
 * round's recorded odds for the selection.
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
  /** The decimal odds the player saw. */
  readonly odds: number;
  readonly idempotencyKey: string;
}

/** The committed bet as clients see it (shared with them). */
export type PlacedBet = PlacedBetView;

/** `round_unknown`: no such round in Postgres (yet: the authority records a new round just after announcing it). */
export type BetRefusal = "round_closed" | "round_unknown" | "odds_changed" | "conflict" | "invalid_command";

export type BetOutcome = { readonly ok: true; readonly bet: PlacedBet } | { readonly ok: false; readonly code: BetRefusal; readonly message: string };

export interface BetStore {
  /** Outcomes in input order. Throws (writing nothing) when the transaction fails. */
  insertBatch(commands: readonly BetCommand[]): Promise<BetOutcome[]>;
}

export interface QueryTimer {
  pgQuery(operation: string, seconds: number): void;
}

interface LockedRound {
  readonly id: string;
  readonly closes: Date | null;
  readonly settled: boolean;
  readonly odds: number[] | null;
}

interface StoredBet {
  readonly id: string;
  readonly user_id: string;
  readonly idempotency_key: string;
  readonly round_id: string;
  readonly selection: number;
  readonly amount: string;
  readonly odds: string | null;
  readonly placed_at: Date;
}

const LOCK_ROUNDS_SQL = `
  SELECT id::text, betting_closes_at AS closes, settled_at IS NOT NULL AS settled, odds
    FROM rounds WHERE id = ANY($1::bigint[]) ORDER BY id FOR SHARE`;

const INSERT_SQL = `
  INSERT INTO bets (user_id, round_id, selection, amount, odds, idempotency_key, placed_at, node)
  SELECT u, r, s, a, o, k, $7::timestamptz, $8::text
    FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bigint[], $5::numeric[], $6::text[]) AS c(u, r, s, a, o, k)
  ON CONFLICT (user_id, idempotency_key) DO NOTHING
  RETURNING id::text, user_id, idempotency_key, round_id::text, selection, amount::text, odds::text, placed_at`;

const EXISTING_SQL = `
  SELECT id::text, user_id, idempotency_key, round_id::text, selection, amount::text, odds::text, placed_at
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
    odds: row.odds === null ? 0 : Number(row.odds),
    placedAt: row.placed_at.getTime(),
    duplicate,
  };
}

function sameBet(bet: PlacedBet, command: BetCommand): boolean {
  return bet.roundId === command.roundId && bet.selection === command.selection && bet.amount === command.amount && bet.odds === command.odds;
}

/** Why a new bet cannot be taken, or null when it can. */
function refusal(command: BetCommand, round: LockedRound | undefined, now: Date): { code: BetRefusal; message: string } | null {
  if (round === undefined) return { code: "round_unknown", message: `round ${command.roundId} is not recorded` };
  if (round.settled || round.closes === null || now.getTime() >= round.closes.getTime()) {
    return { code: "round_closed", message: `betting on round ${command.roundId} is closed` };
  }
  const odds = round.odds?.[command.selection - 1];
  if (odds === undefined) return { code: "invalid_command", message: `selection must be between 1 and ${round.odds?.length ?? 0}` };
  if (odds !== command.odds) return { code: "odds_changed", message: `the odds of runner ${command.selection} in round ${command.roundId} are ${odds}, not ${command.odds}` };
  return null;
}

export class PgBetStore implements BetStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly node: string,
    private readonly timer: QueryTimer,
  ) {}

  async insertBatch(commands: readonly BetCommand[]): Promise<BetOutcome[]> {
    const started = process.hrtime.bigint();
    const outcomes = await withTransaction(this.pool, (client) => this.write(client, commands));
    this.timer.pgQuery("bet_batch", Number(process.hrtime.bigint() - started) / 1e9);
    return outcomes;
  }

  private async write(client: pg.PoolClient, commands: readonly BetCommand[]): Promise<BetOutcome[]> {
    const roundIds = [...new Set(commands.map((c) => c.roundId))];
    const locked = await client.query<LockedRound>(LOCK_ROUNDS_SQL, [roundIds]);
    const rounds = new Map(locked.rows.map((row) => [Number(row.id), row]));
    // Read after the locks: a batch that waited for a settlement judges the window by the time it got them.
    const now = (await client.query<{ now: Date }>("SELECT clock_timestamp() AS now")).rows[0]?.now ?? new Date(0);

    const refusals = commands.map((command) => refusal(command, rounds.get(command.roundId), now));
    const accepted = commands.filter((_, i) => refusals[i] === null);
    // Within one batch, the first command with a key owns the new row; later ones are its repeats.
    const placed = new Map<string, PlacedBet>();
    if (accepted.length > 0) {
      const inserted = await client.query<StoredBet>(INSERT_SQL, [
        accepted.map((c) => c.userId),
        accepted.map((c) => c.roundId),
        accepted.map((c) => c.selection),
        accepted.map((c) => c.amount),
        accepted.map((c) => c.odds),
        accepted.map((c) => c.idempotencyKey),
        now,
        this.node,
      ]);
      for (const row of inserted.rows) placed.set(keyOf(row.user_id, row.idempotency_key), toPlaced(row, false));
    }
    // Keys stored before this batch (by an earlier command, or one on another node).
    const missing = commands.filter((c) => !placed.has(keyOf(c.userId, c.idempotencyKey)));
    const existing = new Map<string, PlacedBet>();
    if (missing.length > 0) {
      const rows = await client.query<StoredBet>(EXISTING_SQL, [missing.map((c) => c.userId), missing.map((c) => c.idempotencyKey)]);
      for (const row of rows.rows) existing.set(keyOf(row.user_id, row.idempotency_key), toPlaced(row, true));
    }

    const answered = new Set<string>();
    return commands.map((command, i): BetOutcome => {
      const key = keyOf(command.userId, command.idempotencyKey);
      const fresh = placed.get(key);
      const stored = fresh ?? existing.get(key);
      if (stored === undefined) {
        const refused = refusals[i] ?? { code: "round_closed" as const, message: `betting on round ${command.roundId} is closed` };
        return { ok: false, ...refused };
      }
      if (!sameBet(stored, command)) {
        return { ok: false, code: "conflict", message: `idempotency key ${command.idempotencyKey} was used for another bet (round ${stored.roundId}, runner ${stored.selection}, amount ${stored.amount}, odds ${stored.odds})` };
      }
      const repeat = fresh === undefined || answered.has(key);
      answered.add(key);
      return { ok: true, bet: repeat ? { ...stored, duplicate: true } : stored };
    });
  }
}
