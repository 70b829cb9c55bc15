/**
 * Bets and the round clock together: betting closes when the race starts,
 * and a finished round settles all of its bets once, by its result.
 */

import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoundFinished, RoundStarted } from "../../shared/src/race-events.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { newKey, outcomeOf, placeBet } from "./support/bets.js";
import { testPool } from "./support/db.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

const RUNNERS = 4;
let redis: RedisHandle;
let postgres: PostgresHandle;
let db: pg.Pool;
const schema = `settle_${process.pid}`;
let node: GatewayNode;
let bettor: TestClient;

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  db = testPool(postgres.url, 2);
  node = await startGatewayNode({
    name: "settle",
    redisUrl: redis.url,
    redisPrefix: uniquePrefix("settle"),
    env: { CLOCK_ENABLED: "true", DATABASE_URL: postgres.url, PG_SCHEMA: schema, ROUND_WAIT_MS: "1500", ROUND_RACE_MS: "600", ROUND_FINISH_MS: "400", RACE_RUNNERS: String(RUNNERS) },
  });
  bettor = await connect(node.wsUrl, { token: token({ sub: "settler" }) });
  await bettor.subscribe("race");
});

afterAll(async () => {
  await bettor?.close();
  await node?.stop();
  await db?.end();
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("betting window and settlement", () => {
  it("accepts bets while a round waits, refuses them once its race started, and settles them by the result", async () => {
    // A round we see from its start, so the whole waiting phase is ahead.
    const started = await bettor.waitForMessage((m) => m.event === "round_started", 10_000);
    const roundId = (started.data as unknown as RoundStarted).roundId;
    const stakes = Array.from({ length: RUNNERS }, (_, i) => ({ roundId, selection: i + 1, amount: 100 * (i + 1), idempotencyKey: newKey() }));
    const accepted = (await Promise.all(stakes.map((stake) => placeBet(bettor, stake)))).map(outcomeOf);
    expect(accepted.every((o) => o.ok)).toBe(true);

    await bettor.waitForMessage((m) => m.event === "race_started" && (m.data as unknown as { roundId: number }).roundId === roundId, 5000);
    const late = await placeBet(bettor, { roundId, selection: 1, amount: 100, idempotencyKey: newKey() });
    expect(late).toMatchObject({ ok: false, error: { code: "round_closed" } });
    // A retry of an accepted bet still gets its original answer after the close.
    const retry = outcomeOf(await placeBet(bettor, stakes[0]!));
    expect(retry).toMatchObject({ ok: true, duplicate: true, betId: accepted[0]!.ok ? accepted[0]!.betId : "" });

    const finished = await bettor.waitForMessage((m) => m.event === "round_finished" && (m.data as unknown as RoundFinished).roundId === roundId, 5000);
    const winner = (finished.data as unknown as RoundFinished).result.winner;
    const settled = await eventually(
      async () => (await db.query<{ selection: number; amount: string; status: string; payout: string }>(`SELECT selection, amount::text, status, payout::text FROM ${schema}.bets WHERE round_id = $1 ORDER BY selection`, [roundId])).rows,
      (rows) => rows.length === RUNNERS && rows.every((row) => row.status !== "accepted"),
    );
    for (const row of settled) {
      if (row.selection === winner) expect(row).toMatchObject({ status: "won", payout: String(Number(row.amount) * RUNNERS) });
      else expect(row).toMatchObject({ status: "lost", payout: "0" });
    }
    const { rows } = await db.query<{ settled: boolean }>(`SELECT settled_at IS NOT NULL AS settled FROM ${schema}.rounds WHERE id = $1`, [roundId]);
    expect(rows[0]?.settled).toBe(true);
  });
});
