/**
 * Settling and voiding in a real Postgres, as two nodes would attempt them at
 * once (the authority and a former authority whose records were still
 * queued): each round is settled or voided exactly once, payouts computed in
 * the same statement, and the outbox hands every bet out once per round.
 * Also: migration 3 on a database that already has settled rounds owes their
 * bettors nothing.
 */

import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { MIGRATIONS, migrate } from "../src/store/migrations.js";
import { PgRoundStore, type RoundRecord } from "../src/store/round-store.js";
import { PgSettlementStore } from "../src/store/settlement-store.js";
import { testPool } from "./support/db.js";

const noTimer = { pgQuery: (): void => undefined };
let postgres: PostgresHandle;
/** One pool per "node": separate connections, so the transactions really race. */
let pools: pg.Pool[] = [];
const schema = `settle_store_${process.pid}`;

function poolIn(name: string): pg.Pool {
  const pool = testPool(`${postgres.url}${postgres.url.includes("?") ? "&" : "?"}options=-c%20search_path%3D${name}`, 4);
  pools.push(pool);
  return pool;
}

function round(id: number, finished: { seed: string; result: number[] } | null): RoundRecord {
  const start = Date.now() - 60_000;
  return {
    id,
    startedAt: start,
    bettingClosesAt: start + 1000,
    runners: 4,
    odds: [3.8, 3.8, 3.8, 3.8],
    raceStartedAt: start + 1000,
    commitment: "c".repeat(64),
    finishedAt: finished === null ? null : start + 2000,
    seed: finished?.seed ?? null,
    result: finished?.result ?? null,
  };
}

async function placeBets(pool: pg.Pool, roundId: number, bets: Array<[user: string, selection: number, amount: number]>): Promise<void> {
  for (const [i, [user, selection, amount]] of bets.entries()) {
    await pool.query("INSERT INTO bets (user_id, round_id, selection, amount, odds, idempotency_key, placed_at, node) VALUES ($1, $2, $3, $4, 3.8, $5, now(), 'test')", [
      user,
      roundId,
      selection,
      amount,
      `key-${roundId}-${i}`,
    ]);
  }
}

beforeAll(async () => {
  postgres = await startPostgres({ fast: true });
});

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  pools = [];
  await postgres?.stop();
});

describe("settling and voiding from two nodes at once", () => {
  it("settles a finished round once, with floor(amount × odds) for the winner", async () => {
    const [a, b] = [poolIn(schema), poolIn(schema)];
    await migrate(a, schema);
    const [nodeA, nodeB] = [new PgRoundStore(a, noTimer), new PgRoundStore(b, noTimer)];
    await nodeA.record(round(1, null), "node-a");
    await placeBets(a, 1, [["ann", 2, 101], ["bob", 1, 50], ["ann", 3, 7], ["cid", 2, 333]]);

    const finished = round(1, { seed: "d".repeat(64), result: [2, 4, 1, 3] });
    const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? nodeA : nodeB).record(finished, i % 2 === 0 ? "node-a" : "node-b")));
    expect(outcomes.filter((o) => o.settled)).toHaveLength(1);

    const { rows } = await a.query<{ user_id: string; selection: number; status: string; payout: string }>("SELECT user_id, selection, status, payout::text FROM bets WHERE round_id = 1 ORDER BY id");
    expect(rows).toEqual([
      { user_id: "ann", selection: 2, status: "won", payout: String(Math.floor(101 * 3.8)) },
      { user_id: "bob", selection: 1, status: "lost", payout: "0" },
      { user_id: "ann", selection: 3, status: "lost", payout: "0" },
      { user_id: "cid", selection: 2, status: "won", payout: String(Math.floor(333 * 3.8)) },
    ]);
  });

  it("voids an unfinished earlier round once, stakes returned, however many records race", async () => {
    const [a, b] = [poolIn(schema), poolIn(schema)];
    const [nodeA, nodeB] = [new PgRoundStore(a, noTimer), new PgRoundStore(b, noTimer)];
    // Round 2 lost its state while racing; round 3 is what the new authority records next.
    await nodeA.record(round(2, null), "node-a");
    await placeBets(a, 2, [["ann", 1, 250], ["bob", 4, 40]]);
    const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? nodeA : nodeB).record(round(3, null), "node")));
    expect(outcomes.flatMap((o) => o.voided)).toEqual([2]);

    const bets = await a.query<{ status: string; payout: string; amount: string }>("SELECT status, payout::text, amount::text FROM bets WHERE round_id = 2");
    expect(bets.rows.map((row) => [row.status, row.payout])).toEqual(bets.rows.map((row) => ["void", row.amount]));
    const rounds = await a.query<{ id: string; voided: boolean; settled: boolean }>("SELECT id::text, voided_at IS NOT NULL AS voided, settled_at IS NOT NULL AS settled FROM rounds ORDER BY id");
    // Round 1 (finished) and round 3 (the current one) are never voided.
    expect(rounds.rows).toEqual([
      { id: "1", voided: false, settled: true },
      { id: "2", voided: true, settled: true },
      { id: "3", voided: false, settled: false },
    ]);
    // A late finish record of the voided round changes nothing about its bets.
    const late = await nodeB.record(round(2, { seed: "e".repeat(64), result: [1, 2, 3, 4] }), "node-b");
    expect(late.settled).toBe(false);
    expect((await a.query<{ status: string }>("SELECT DISTINCT status FROM bets WHERE round_id = 2")).rows).toEqual([{ status: "void" }]);
    expect((await a.query("SELECT finished_at, seed, result FROM rounds WHERE id = 2")).rows).toEqual([{ finished_at: null, seed: null, result: null }]);
  });

  it("lists each settled round's bets until it is marked notified", async () => {
    const pool = poolIn(schema);
    const outbox = new PgSettlementStore(pool);
    expect(await outbox.unnotifiedRounds(10)).toEqual([1, 2]);
    const bets = await outbox.settledBets(2);
    expect(bets.map((bet) => ({ user: bet.userId, status: bet.status, payout: bet.payout, odds: bet.odds }))).toEqual([
      { user: "ann", status: "void", payout: 250, odds: 3.8 },
      { user: "bob", status: "void", payout: 40, odds: 3.8 },
    ]);
    await Promise.all([outbox.markNotified(1), outbox.markNotified(1), outbox.markNotified(2)]);
    expect(await outbox.unnotifiedRounds(10)).toEqual([]);
  });

  it("owes no notices for rounds settled before the migration that added them", async () => {
    const old = `${schema}_v2`;
    const pool = poolIn(old);
    await migrate(pool, old, MIGRATIONS.filter((m) => m.version <= 2));
    await pool.query("INSERT INTO rounds (id, started_at, betting_closes_at, runners, finished_at, result, recorded_by, settled_at) VALUES (1, now(), now(), 4, now(), '[1,2,3,4]', 'old', now())");
    await pool.query("INSERT INTO rounds (id, started_at, betting_closes_at, runners, recorded_by) VALUES (2, now(), now() + interval '1 minute', 4, 'old')");
    await pool.query("INSERT INTO bets (user_id, round_id, selection, amount, idempotency_key, placed_at, node) VALUES ('ann', 2, 1, 100, 'old-bet-1', now(), 'old')");
    expect(await migrate(pool, old)).toEqual([3]);
    expect(await new PgSettlementStore(pool).unnotifiedRounds(10)).toEqual([]);
    // A bet placed before odds existed pays at the fair `runners`.
    await new PgRoundStore(pool, noTimer).record({ ...round(2, { seed: "f".repeat(64), result: [1, 2, 3, 4] }), odds: [3.8, 3.8, 3.8, 3.8] }, "new");
    expect((await pool.query<{ status: string; payout: string }>("SELECT status, payout::text FROM bets WHERE round_id = 2")).rows).toEqual([{ status: "won", payout: "400" }]);
    expect((await new PgSettlementStore(pool).settledBets(2)).map((bet) => bet.odds)).toEqual([4]);
  });
});
