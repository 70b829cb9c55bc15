/**
 * place_bet through real sockets into a real Postgres: every ok is a
 * committed row, exactly one per idempotency key; refusals write nothing.
 * A key reused for another bet is a conflict, odds other than the round's
 * are refused, and the betting window is the database's.
 */

import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { currentRound, newKey, oddsOf, outcomeOf, placeBet, type OpenRound } from "./support/bets.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { testPool } from "./support/db.js";
import { eventually } from "./support/eventually.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let postgres: PostgresHandle;
let db: pg.Pool;
const schema = `bets_${process.pid}`;
let nodes: GatewayNode[] = [];
let small: GatewayNode;
let round: OpenRound;
let roundId = 0;
/** Every runner has the same odds (RACE_RUNNERS × (1 − ODDS_MARGIN_BP)). */
let odds = 0;
const clients: TestClient[] = [];

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { CLOCK_ENABLED: "true", DATABASE_URL: postgres.url, PG_SCHEMA: schema, ROUND_WAIT_MS: "600000", RACE_RUNNERS: "6", ...extra };
}

async function client(node: GatewayNode, sub: string): Promise<TestClient> {
  const c = await connect(node.wsUrl, { token: token({ sub }) });
  clients.push(c);
  return c;
}

async function rowsOf(userPrefix: string): Promise<Array<{ id: string; user_id: string; idempotency_key: string }>> {
  const { rows } = await db.query<{ id: string; user_id: string; idempotency_key: string }>(`SELECT id::text, user_id, idempotency_key FROM ${schema}.bets WHERE user_id LIKE $1`, [`${userPrefix}%`]);
  return rows;
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  db = testPool(postgres.url, 3);
  const prefix = uniquePrefix("bets");
  nodes = await Promise.all(["bet-1", "bet-2"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: env() })));
  small = await startGatewayNode({ name: "bet-small", redisUrl: redis.url, redisPrefix: prefix, env: env({ CLOCK_ENABLED: "false", WRITER_QUEUE_MAX: "5", WRITER_BATCH_MAX: "5", WRITER_FLUSH_MS: "1" }) });
  const probe = await client(nodes[0]!, "probe");
  round = await eventually(() => currentRound(probe), (r) => r.roundId > 0);
  roundId = round.roundId;
  odds = oddsOf(round, 1);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([...nodes, small].filter(Boolean).map((node) => node.stop()));
  await db?.end();
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("place_bet", () => {
  it("turns thousands of concurrent commands from many clients into exactly that many rows, each acked once", async () => {
    const perClient = 50;
    const bettors = await Promise.all(Array.from({ length: 40 }, (_, i) => client(nodes[i % 2]!, `load-${i}`)));
    const replies = await Promise.all(
      bettors.flatMap((c) => Array.from({ length: perClient }, (_, j) => placeBet(c, { roundId, selection: (j % 6) + 1, amount: 100 + j, odds, idempotencyKey: newKey() }))),
    );
    const outcomes = replies.map(outcomeOf);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    const ids = outcomes.map((o) => (o.ok ? o.betId : ""));
    expect(new Set(ids).size).toBe(bettors.length * perClient);
    // One reply per request id on every socket: nothing acked twice.
    for (const c of bettors) {
      const replyIds = c.frames.filter((f) => f.type === "reply").map((f) => (f.type === "reply" ? f.id : -1));
      expect(new Set(replyIds).size).toBe(replyIds.length);
    }
    const rows = await rowsOf("load-");
    expect(rows).toHaveLength(bettors.length * perClient);
    expect(new Set(rows.map((r) => r.id))).toEqual(new Set(ids));
    // Batching happened: far fewer transactions than rows.
    const batches = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_writer_batch_size_count")));
    expect(batches.reduce((a, b) => a + b, 0)).toBeLessThan(rows.length / 5);
  });

  it("answers a repeated idempotency key with the original bet and writes one row", async () => {
    const phone = await client(nodes[0]!, "dup-user");
    const laptop = await client(nodes[1]!, "dup-user");
    const data = { roundId, selection: 3, amount: 500, odds, idempotencyKey: newKey() };
    const first = await Promise.all([placeBet(phone, data), placeBet(phone, data), placeBet(laptop, data)]);
    const again = await placeBet(laptop, data);
    const all = [...first, again].map(outcomeOf);
    expect(all.every((o) => o.ok)).toBe(true);
    expect(new Set(all.map((o) => (o.ok ? o.betId : "")))).toHaveProperty("size", 1);
    expect(all.filter((o) => o.ok && !o.duplicate)).toHaveLength(1);
    expect(await rowsOf("dup-user")).toHaveLength(1);
  });

  it("answers a key reused for a different bet with conflict, never with the original bet", async () => {
    const c = await client(nodes[0]!, "conflict-user");
    const other = await client(nodes[1]!, "conflict-user");
    const data = { roundId, selection: 2, amount: 300, odds, idempotencyKey: newKey() };
    const first = outcomeOf(await placeBet(c, data));
    expect(first).toMatchObject({ ok: true, duplicate: false });
    const changes: Array<[string, Record<string, unknown>]> = [
      ["another selection", { ...data, selection: 4 }],
      ["another stake", { ...data, amount: 301 }],
    ];
    for (const [name, changed] of changes) {
      const reply = await placeBet(other, changed);
      expect(reply, name).toMatchObject({ ok: false, error: { code: "conflict" } });
      if (!reply.ok) expect(reply.error.message, name).toContain(data.idempotencyKey);
    }
    // Two different bets under one new key in the same moment: one is placed, the other is a conflict.
    const key = newKey();
    const racing = (await Promise.all([placeBet(c, { ...data, idempotencyKey: key }), placeBet(other, { ...data, selection: 5, idempotencyKey: key })])).map(outcomeOf);
    expect(racing.filter((o) => o.ok)).toHaveLength(1);
    expect(racing.filter((o) => !o.ok && o.code === "conflict")).toHaveLength(1);
    // The same bet again is still its duplicate, and only the original rows exist.
    expect(outcomeOf(await placeBet(other, data))).toEqual({ ok: true, betId: first.ok ? first.betId : "", duplicate: true });
    const rows = await db.query<{ selection: number; amount: string }>(`SELECT selection, amount::text FROM ${schema}.bets WHERE user_id = 'conflict-user' ORDER BY id`);
    expect(rows.rows).toHaveLength(2);
    expect(rows.rows[0]).toEqual({ selection: 2, amount: "300" });
  });

  it("closes betting by the database's clock, whatever the round in Redis says", async () => {
    const c = await client(nodes[0]!, "db-clock-user");
    const open = outcomeOf(await placeBet(c, { roundId, selection: 1, amount: 100, odds, idempotencyKey: newKey() }));
    expect(open.ok).toBe(true);
    // The nodes still see the round waiting (ROUND_WAIT_MS is long); the database says it closed.
    const { rows } = await db.query<{ closes: Date }>(`SELECT betting_closes_at AS closes FROM ${schema}.rounds WHERE id = $1`, [roundId]);
    await db.query(`UPDATE ${schema}.rounds SET betting_closes_at = clock_timestamp() WHERE id = $1`, [roundId]);
    try {
      expect(await placeBet(c, { roundId, selection: 1, amount: 100, odds, idempotencyKey: newKey() })).toMatchObject({ ok: false, error: { code: "round_closed" } });
    } finally {
      await db.query(`UPDATE ${schema}.rounds SET betting_closes_at = $2 WHERE id = $1`, [roundId, rows[0]?.closes]);
    }
    expect(outcomeOf(await placeBet(c, { roundId, selection: 1, amount: 100, odds, idempotencyKey: newKey() })).ok).toBe(true);
    // placedAt is the database's time too, within the statement's lifetime of the node's.
    const placed = await db.query<{ placed_at: Date }>(`SELECT placed_at FROM ${schema}.bets WHERE user_id = 'db-clock-user' ORDER BY id DESC LIMIT 1`);
    expect(Math.abs((placed.rows[0]?.placed_at.getTime() ?? 0) - Date.now())).toBeLessThan(5000);
    // Every node reports how far its clock is from the database's: same machine, so close to 0.
    for (const node of [...nodes, small]) {
      const skew = await eventually(() => metricValue(node.httpUrl, "gateway_pg_clock_skew_seconds"), (value) => Number.isFinite(value));
      expect(Math.abs(skew)).toBeLessThan(0.5);
    }
  });

  it("refuses invalid commands of every kind and writes nothing", async () => {
    const c = await client(nodes[1]!, "invalid-user");
    const good = { roundId, selection: 1, amount: 100, odds };
    const cases: Array<[string, unknown, string]> = [
      ["data not an object", "bet", "invalid_command"],
      ["data an array", [1, 2], "invalid_command"],
      ["missing roundId", { selection: 1, amount: 100, idempotencyKey: newKey() }, "invalid_command"],
      ["roundId zero", { ...good, roundId: 0, idempotencyKey: newKey() }, "invalid_command"],
      ["roundId as text", { ...good, roundId: String(roundId), idempotencyKey: newKey() }, "invalid_command"],
      ["roundId fractional", { ...good, roundId: roundId + 0.5, idempotencyKey: newKey() }, "invalid_command"],
      ["a future round", { ...good, roundId: roundId + 5, idempotencyKey: newKey() }, "round_closed"],
      ["selection zero", { ...good, selection: 0, idempotencyKey: newKey() }, "invalid_command"],
      ["selection past the runners", { ...good, selection: 7, idempotencyKey: newKey() }, "invalid_command"],
      ["amount zero", { ...good, amount: 0, idempotencyKey: newKey() }, "invalid_command"],
      ["amount negative", { ...good, amount: -5, idempotencyKey: newKey() }, "invalid_command"],
      ["amount fractional", { ...good, amount: 1.5, idempotencyKey: newKey() }, "invalid_command"],
      ["amount over the maximum", { ...good, amount: 1_000_001, idempotencyKey: newKey() }, "invalid_command"],
      ["amount as text", { ...good, amount: "100", idempotencyKey: newKey() }, "invalid_command"],
      ["no odds", { roundId, selection: 1, amount: 100, idempotencyKey: newKey() }, "invalid_command"],
      ["odds as text", { ...good, odds: String(odds), idempotencyKey: newKey() }, "invalid_command"],
      ["odds below 1", { ...good, odds: 0.5, idempotencyKey: newKey() }, "invalid_command"],
      ["odds with three decimals", { ...good, odds: odds + 0.001, idempotencyKey: newKey() }, "invalid_command"],
      ["odds the round does not offer", { ...good, odds: odds + 1, idempotencyKey: newKey() }, "odds_changed"],
      ["no idempotency key", { ...good }, "invalid_command"],
      ["idempotency key too short", { ...good, idempotencyKey: "abc" }, "invalid_command"],
      ["idempotency key with spaces", { ...good, idempotencyKey: "has spaces in it" }, "invalid_command"],
      ["a user field (users come from the token)", { ...good, idempotencyKey: newKey(), userId: "someone-else" }, "invalid_command"],
    ];
    for (const [name, data, code] of cases) {
      const reply = await placeBet(c, data as Record<string, unknown>);
      expect(reply.ok, name).toBe(false);
      if (!reply.ok) {
        expect(reply.error.code, name).toBe(code);
        expect(reply.error.message.length, name).toBeGreaterThan(5);
      }
    }
    expect(await c.request({ type: "command", name: "cancel_everything", data: {} } as never)).toMatchObject({ ok: false, error: { code: "unknown_command" } });
    c.sendRaw(JSON.stringify({ type: "command", id: 9000, data: {} }));
    expect(await c.waitFor((f) => f.type === "reply" && f.id === 9000)).toMatchObject({ ok: false, error: { code: "bad_request" } });
    expect(await rowsOf("invalid-user")).toHaveLength(0);
    expect(await rowsOf("someone-else")).toHaveLength(0);
  });

  it("answers overloaded at once when the write queue is full, and commits what it queued", async () => {
    const c = await client(small, "queue-user");
    const locker = await db.connect();
    try {
      // Hold the table so the writer's transaction blocks and its queue fills.
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${schema}.bets IN ACCESS EXCLUSIVE MODE`);
      const pending = Array.from({ length: 30 }, () => placeBet(c, { roundId, selection: 2, amount: 100, odds, idempotencyKey: newKey() }));
      const overloaded = await Promise.all(pending.slice(5));
      expect(overloaded.map((r) => outcomeOf(r))).toEqual(Array.from({ length: 25 }, () => ({ ok: false, code: "overloaded" })));
      await locker.query("COMMIT");
      const queued = (await Promise.all(pending.slice(0, 5))).map(outcomeOf);
      expect(queued.every((o) => o.ok)).toBe(true);
    } finally {
      locker.release();
    }
    expect(await rowsOf("queue-user")).toHaveLength(5);
    expect(await metricValue(small.httpUrl, "gateway_writer_rejected_total", { reason: "overloaded" })).toBe(25);
  });
});
