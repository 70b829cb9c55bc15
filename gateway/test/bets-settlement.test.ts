/**
 * Bets and the round clock together: betting closes when the race starts, a
 * finished round settles all of its bets once with their payouts, every
 * bettor is told once per bet (one batch publish per settlement), a key
 * reused in a later round is a conflict, and a round whose Redis state is
 * lost is voided: stakes returned, owners told, the next round started.
 */

import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import type { BetSettled } from "../../shared/src/commands.js";
import type { MessageFrame } from "../../shared/src/protocol.js";
import type { RoundFinished, RoundStarted, RoundVoided } from "../../shared/src/race-events.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { newKey, outcomeOf, placeBet } from "./support/bets.js";
import { testPool } from "./support/db.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

const RUNNERS = 4;
let redis: RedisHandle;
let postgres: PostgresHandle;
let db: pg.Pool;
const schema = `settle_${process.pid}`;
let node: GatewayNode;
/** Watches `race`; bets as "settler-a". */
let watcher: TestClient;
let bettors: TestClient[] = [];

function noticesOf(client: TestClient): Array<MessageFrame & { data: BetSettled }> {
  return client.messages().filter((m) => m.event === "bet_settled") as Array<MessageFrame & { data: BetSettled }>;
}

function raceEvent<T>(event: string, roundId: number, timeoutMs = 10_000): Promise<T> {
  return watcher.waitForMessage((m) => m.event === event && (m.data as { roundId?: number }).roundId === roundId, timeoutMs).then((m) => m.data as unknown as T);
}

/** The next round_started after everything seen so far (and after `after`), so its whole waiting phase is ahead. */
async function nextRound(after = 0): Promise<RoundStarted> {
  after = Math.max(after, ...watcher.messages("race").map((m) => (m.data as { roundId?: number }).roundId ?? 0));
  const started = await watcher.waitForMessage((m) => m.event === "round_started" && (m.data as unknown as RoundStarted).roundId > after, 15_000);
  return started.data as unknown as RoundStarted;
}

async function betsOf(roundId: number): Promise<Array<{ id: string; user_id: string; selection: number; amount: string; odds: string; status: string; payout: string | null }>> {
  const { rows } = await db.query<{ id: string; user_id: string; selection: number; amount: string; odds: string; status: string; payout: string | null }>(
    `SELECT id::text, user_id, selection, amount::text, odds::text, status, payout::text FROM ${schema}.bets WHERE round_id = $1 ORDER BY id`,
    [roundId],
  );
  return rows;
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  db = testPool(postgres.url, 2);
  node = await startGatewayNode({
    name: "settle",
    redisUrl: redis.url,
    redisPrefix: uniquePrefix("settle"),
    env: { CLOCK_ENABLED: "true", DATABASE_URL: postgres.url, PG_SCHEMA: schema, ROUND_WAIT_MS: "1500", ROUND_RACE_MS: "600", ROUND_FINISH_MS: "400", RACE_RUNNERS: String(RUNNERS), CLOCK_LEASE_TTL_MS: "1000" },
  });
  bettors = await Promise.all(["settler-a", "settler-b", "settler-c"].map((sub) => connect(node.wsUrl, { token: token({ sub }) })));
  watcher = bettors[0]!;
  await watcher.subscribe("race");
});

afterAll(async () => {
  await Promise.all(bettors.map((b) => b.close()));
  await node?.stop();
  await db?.end();
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("betting window, settlement and notices", () => {
  let settledRound = 0;
  const placed = new Map<string, { client: TestClient; key: string; selection: number; amount: number }>();

  it("accepts bets while a round waits, refuses them once its race started, and settles them with their payouts", async () => {
    const round = await nextRound();
    settledRound = round.roundId;
    expect(round.odds).toHaveLength(RUNNERS);
    const [a, b, c] = bettors as [TestClient, TestClient, TestClient];
    const stakes = [
      ...Array.from({ length: RUNNERS }, (_, i) => ({ client: a, selection: i + 1, amount: 100 * (i + 1) })),
      { client: b, selection: 1, amount: 333 },
      { client: b, selection: 2, amount: 77 },
      { client: c, selection: 3, amount: 1001 },
    ];
    const replies = await Promise.all(
      stakes.map(async (stake) => {
        const key = newKey();
        const reply = await placeBet(stake.client, { roundId: round.roundId, selection: stake.selection, amount: stake.amount, odds: round.odds[stake.selection - 1], idempotencyKey: key });
        return { stake, key, outcome: outcomeOf(reply) };
      }),
    );
    for (const { stake, key, outcome } of replies) {
      expect(outcome.ok).toBe(true);
      if (outcome.ok) placed.set(outcome.betId, { ...stake, key });
    }

    await raceEvent("race_started", round.roundId, 5000);
    const late = await placeBet(a, { roundId: round.roundId, selection: 1, amount: 100, odds: round.odds[0], idempotencyKey: newKey() });
    expect(late).toMatchObject({ ok: false, error: { code: "round_closed" } });
    // A retry of an accepted bet still gets its original answer after the close.
    const [firstId, first] = [...placed][0]!;
    const retry = outcomeOf(await placeBet(first.client, { roundId: round.roundId, selection: first.selection, amount: first.amount, odds: round.odds[first.selection - 1], idempotencyKey: first.key }));
    expect(retry).toEqual({ ok: true, duplicate: true, betId: firstId });

    const finished = await raceEvent<RoundFinished>("round_finished", round.roundId, 5000);
    const winner = finished.result.winner;
    const settled = await eventually(() => betsOf(round.roundId), (rows) => rows.length === placed.size && rows.every((row) => row.status !== "accepted"));
    for (const row of settled) {
      const odds = round.odds[row.selection - 1] as number;
      expect(Number(row.odds)).toBe(odds);
      if (row.selection === winner) expect(row).toMatchObject({ status: "won", payout: String(Math.floor(Number(row.amount) * odds)) });
      else expect(row).toMatchObject({ status: "lost", payout: "0" });
    }
    const { rows } = await db.query<{ settled: boolean; voided: boolean }>(`SELECT settled_at IS NOT NULL AS settled, voided_at IS NOT NULL AS voided FROM ${schema}.rounds WHERE id = $1`, [round.roundId]);
    expect(rows[0]).toEqual({ settled: true, voided: false });
  });

  it("tells every bettor once per bet, all of a settlement in one batch publish", async () => {
    const rows = await betsOf(settledRound);
    const byUser = new Map(bettors.map((b) => [b.welcome!.user, b]));
    // Each bettor gets a notice for each of its bets, on its own user:<sub>.
    const notices = await Promise.all(
      bettors.map(async (client) => {
        const mine = rows.filter((row) => row.user_id === client.welcome!.user);
        await eventually(async () => noticesOf(client).filter((n) => n.data.roundId === settledRound).length, (n) => n >= mine.length);
        return noticesOf(client).filter((n) => n.data.roundId === settledRound);
      }),
    );
    const all = notices.flat();
    expect(all.map((n) => n.data.betId).sort()).toEqual(rows.map((row) => row.id).sort());
    for (const notice of all) {
      const row = rows.find((r) => r.id === notice.data.betId)!;
      expect(notice.channel).toBe(`user:${row.user_id}`);
      expect(byUser.get(row.user_id)?.messages(notice.channel)).toContain(notice);
      expect(notice.data).toEqual({
        betId: row.id,
        roundId: settledRound,
        selection: row.selection,
        amount: Number(row.amount),
        odds: Number(row.odds),
        status: row.status,
        payout: Number(row.payout),
        settledAt: expect.any(Number),
      });
    }
    // One publish call stamps every message of its batch with the same ts.
    expect(new Set(all.map((n) => n.ts)).size).toBe(1);

    // A notice pass repeated for the same round (as after a crash before it was marked) publishes nothing again.
    await db.query(`UPDATE ${schema}.rounds SET notified_at = NULL WHERE id = $1`, [settledRound]);
    const later = await nextRound(settledRound);
    await raceEvent("round_finished", later.roundId);
    await eventually(
      async () => (await db.query<{ notified: boolean }>(`SELECT notified_at IS NOT NULL AS notified FROM ${schema}.rounds WHERE id = $1`, [settledRound])).rows[0]?.notified,
      (notified) => notified === true,
    );
    for (const client of bettors) {
      const ids = noticesOf(client).map((n) => n.data.betId);
      expect(new Set(ids).size, `${client.welcome!.user}: one notice per bet`).toBe(ids.length);
    }
    expect(noticesOf(bettors[0]!).filter((n) => n.data.roundId === settledRound)).toHaveLength(rows.filter((row) => row.user_id === "settler-a").length);
    expect(await metricValue(node.httpUrl, "gateway_settlement_notices_total")).toBe(rows.length);
  });

  it("answers a key reused in a later round with conflict", async () => {
    const [betId, first] = [...placed][0]!;
    const round = await nextRound(settledRound + 1);
    const reply = await placeBet(first.client, { roundId: round.roundId, selection: first.selection, amount: first.amount, odds: round.odds[first.selection - 1], idempotencyKey: first.key });
    expect(reply).toMatchObject({ ok: false, error: { code: "conflict" } });
    if (!reply.ok) expect(reply.error.message).toContain(`round ${settledRound}`);
    expect((await betsOf(round.roundId)).map((row) => row.id)).not.toContain(betId);
  });

  it("voids a round whose Redis state is lost: stakes returned, owners told, the next round started", async () => {
    onTestFailed(() => {
      const lifecycle = watcher.messages("race").filter((m) => m.event !== "timer_update" && m.event !== "race_sync");
      process.stderr.write(`--- node\n${node.proc.output().slice(-8000)}\n--- race\n${lifecycle.map((m) => `${m.epoch}/${m.offset} ${m.event} ${JSON.stringify(m.data).slice(0, 80)}`).join("\n")}\n`);
    });
    const round = await nextRound(settledRound + 2);
    const [a, b] = bettors as [TestClient, TestClient];
    const stakes = [
      { client: a, selection: 1, amount: 250 },
      { client: b, selection: 4, amount: 40 },
    ];
    const ids = await Promise.all(
      stakes.map(async (stake) => {
        const outcome = outcomeOf(await placeBet(stake.client, { roundId: round.roundId, selection: stake.selection, amount: stake.amount, odds: round.odds[stake.selection - 1], idempotencyKey: newKey() }));
        if (!outcome.ok) throw new Error(`bet refused: ${outcome.code}`);
        return outcome.betId;
      }),
    );

    // Redis restarts without persistence while the round is still open: its state, the lease and every channel's history are gone.
    const port = redis.port;
    await redis.stop();
    redis = await startRedis({ port });

    const voided = await raceEvent<RoundVoided>("round_voided", round.roundId, 20_000);
    expect(voided).toMatchObject({ roundId: round.roundId, reason: "state_lost" });
    // The next round follows at once, numbered on from Postgres.
    const next = (await watcher.waitForMessage((m) => m.event === "round_started" && (m.data as unknown as RoundStarted).roundId > round.roundId, 10_000)).data as unknown as RoundStarted;
    expect(next.roundId).toBe(round.roundId + 1);
    const rows = await eventually(() => betsOf(round.roundId), (list) => list.length === 2 && list.every((row) => row.status === "void"));
    for (const row of rows) expect(row.payout).toBe(row.amount);
    const { rows: roundRows } = await db.query<{ voided: boolean; finished: boolean }>(
      `SELECT voided_at IS NOT NULL AS voided, finished_at IS NOT NULL AS finished FROM ${schema}.rounds WHERE id = $1`,
      [round.roundId],
    );
    expect(roundRows[0]).toEqual({ voided: true, finished: false });

    // Each owner is told, once, with the stake back.
    for (const [i, stake] of stakes.entries()) {
      const notice = await stake.client.waitForMessage((m) => m.event === "bet_settled" && (m.data as unknown as BetSettled).betId === ids[i], 10_000);
      expect(notice.data).toMatchObject({ betId: ids[i], roundId: round.roundId, selection: stake.selection, amount: stake.amount, status: "void", payout: stake.amount });
    }
    await raceEvent("round_finished", next.roundId);
    for (const [i, stake] of stakes.entries()) expect(noticesOf(stake.client).filter((n) => n.data.betId === ids[i])).toHaveLength(1);
  });
});
