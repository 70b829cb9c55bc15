/**
 * Provably fair rounds on a real cluster: the result is fixed only when
 * betting closes (race_started commits to a seed), round_finished reveals a
 * seed that hashes to that commitment and reproduces the ranking, on every
 * round, across takeovers. Nothing in Redis or Postgres tells the seed or the
 * ranking earlier: checked on a full dump of Redis (every key, and the RDB
 * file SAVE writes) and on the round's row. A takeover that cannot open the
 * sealed seed (another ROUND_SEED_KEY) voids the round instead.
 */

import { readFile } from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commitmentOf, verifyRound } from "../../shared/src/client/verify-round.js";
import type { RaceStarted, RoundFinished, RoundStarted, RoundVoided } from "../../shared/src/race-events.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { testPool } from "./support/db.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

const LEASE_MS = 1000;
let redis: RedisHandle;
let postgres: PostgresHandle;
let db: pg.Pool;
const schema = `fair_${process.pid}`;
const prefix = uniquePrefix("fair");
const nodes: GatewayNode[] = [];
const watchers: TestClient[] = [];

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    CLOCK_ENABLED: "true",
    DATABASE_URL: postgres.url,
    PG_SCHEMA: schema,
    ROUND_WAIT_MS: "900",
    ROUND_RACE_MS: "600",
    ROUND_FINISH_MS: "300",
    TIMER_UPDATE_INTERVAL_MS: "100",
    RACE_SYNC_INTERVAL_MS: "200",
    CLOCK_LEASE_TTL_MS: String(LEASE_MS),
    RACE_RUNNERS: "8",
    ...extra,
  };
}

async function startNode(name: string, extra: Record<string, string> = {}): Promise<GatewayNode> {
  const node = await startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: env(extra) });
  nodes.push(node);
  return node;
}

async function watch(node: GatewayNode): Promise<TestClient> {
  const client = await connect(node.wsUrl, { token: token({ sub: `watcher-${node.name}` }) });
  await client.subscribe("race");
  watchers.push(client);
  return client;
}

function event<T>(client: TestClient, name: string, roundId: number, timeoutMs = 10_000): Promise<T> {
  return client.waitForMessage((m) => m.event === name && (m.data as { roundId?: number }).roundId === roundId, timeoutMs).then((m) => m.data as unknown as T);
}

/** The next round_started after everything `client` has seen so far, so its whole cycle is ahead. */
function nextRound(client: TestClient, timeoutMs = 10_000): Promise<RoundStarted> {
  const after = Math.max(0, ...client.messages("race").map((m) => (m.data as { roundId?: number }).roundId ?? 0));
  return client.waitForMessage((m) => m.event === "round_started" && (m.data as unknown as RoundStarted).roundId > after, timeoutMs).then((m) => m.data as unknown as RoundStarted);
}

async function leader(): Promise<GatewayNode | undefined> {
  for (const node of nodes) if (node.proc.isRunning() && (await metricValue(node.httpUrl, "gateway_clock_leader")) === 1) return node;
  return undefined;
}

/** Everything Redis holds: each key with its value, and the RDB file a SAVE writes, uncompressed. */
async function dumpRedis(): Promise<string> {
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  try {
    const parts: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await admin.scan(cursor, "COUNT", 1000);
      cursor = next;
      for (const key of keys) {
        const type = await admin.type(key);
        let value: unknown;
        if (type === "string") value = await admin.get(key);
        else if (type === "hash") value = await admin.hgetall(key);
        else if (type === "stream") value = await admin.xrange(key, "-", "+");
        else if (type === "list") value = await admin.lrange(key, 0, -1);
        else if (type === "set") value = await admin.smembers(key);
        else if (type === "zset") value = await admin.zrange(key, 0, -1, "WITHSCORES");
        else throw new Error(`unexpected key type ${type} of ${key}`);
        parts.push(`${key} ${JSON.stringify(value)}`);
      }
    } while (cursor !== "0");
    await admin.config("SET", "rdbcompression", "no");
    await admin.save();
    const [, dir] = (await admin.config("GET", "dir")) as [string, string];
    parts.push((await readFile(path.join(dir, "dump.rdb"))).toString("latin1"));
    return parts.join("\n");
  } finally {
    admin.disconnect();
  }
}

/** Every way the seed or the ranking could be written down. */
function revealingForms(seed: string, ranking: readonly number[]): string[] {
  const bytes = Buffer.from(seed, "hex");
  return [seed, seed.toUpperCase(), bytes.toString("base64"), bytes.toString("base64url"), bytes.toString("latin1"), JSON.stringify(ranking), ranking.join(",")];
}

async function roundRow(id: number): Promise<{ commitment: string | null; seed: string | null; result: number[] | null; voided: boolean } | undefined> {
  const { rows } = await db.query<{ commitment: string | null; seed: string | null; result: number[] | null; voided: boolean }>(
    `SELECT commitment, seed, result, voided_at IS NOT NULL AS voided FROM ${schema}.rounds WHERE id = $1`,
    [id],
  );
  return rows[0];
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  db = testPool(postgres.url, 2);
  await Promise.all([startNode("fair-1"), startNode("fair-2")]);
});

afterAll(async () => {
  await Promise.all(watchers.map((w) => w.close()));
  await Promise.all(nodes.map((node) => (node.proc.isRunning() ? node.stop() : Promise.resolve(null))));
  await db?.end();
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("provably fair rounds", () => {
  it("keeps the seed and the ranking out of Redis and Postgres until round_finished", async () => {
    const watcher = await watch(nodes[1]!);
    const round = await nextRound(watcher);
    // Bets are open: nothing is drawn yet.
    const whileOpen = await dumpRedis();
    const rowWhileOpen = await roundRow(round.roundId);
    // The dump sees the round: its odds are in the round's hash.
    expect(whileOpen).toContain(JSON.stringify(round.odds));

    const started = await event<RaceStarted>(watcher, "race_started", round.roundId);
    expect(started.commitment).toMatch(/^[0-9a-f]{64}$/);
    // Betting closed: the seed is drawn and sealed, only its commitment is readable.
    const whileRacing = await dumpRedis();
    const rowWhileRacing = await roundRow(round.roundId);
    expect(whileRacing).toContain(started.commitment);

    const finished = await event<RoundFinished>(watcher, "round_finished", round.roundId);
    for (const form of revealingForms(finished.seed, finished.result.ranking)) {
      expect(whileOpen.includes(form), `Redis while bets were open contains ${form}`).toBe(false);
      expect(whileRacing.includes(form), `Redis during the race contains ${form}`).toBe(false);
    }
    expect(rowWhileOpen).toMatchObject({ commitment: null, seed: null, result: null });
    expect(rowWhileRacing?.seed ?? null).toBeNull();
    expect(rowWhileRacing?.result ?? null).toBeNull();
    // The row of a finished round holds what was announced.
    await expect.poll(() => roundRow(round.roundId), { timeout: 5000 }).toMatchObject({ commitment: started.commitment, seed: finished.seed, result: finished.result.ranking, voided: false });
  });

  it("finishes a race taken over after SIGKILL with the seed committed before it", async () => {
    const watcher = watchers[0]!;
    const current = await leader();
    expect(current).toBeDefined();
    const survivor = nodes.find((n) => n !== current && n.proc.isRunning())!;
    const survivorWatcher = survivor === nodes[1] ? watcher : await watch(survivor);
    const round = await nextRound(survivorWatcher);
    const started = await event<RaceStarted>(survivorWatcher, "race_started", round.roundId);
    await current!.proc.kill9();

    const finished = await event<RoundFinished>(survivorWatcher, "round_finished", round.roundId, LEASE_MS * 6);
    expect(await leader()).toBe(survivor);
    expect(finished.commitment).toBe(started.commitment);
    expect(await commitmentOf(finished.seed)).toBe(started.commitment);
    expect(await verifyRound({ commitment: started.commitment, seed: finished.seed, ranking: finished.result.ranking })).toEqual({ verified: true });
  });

  it("voids a race whose sealed seed the new authority cannot open, and goes on with the next round", async () => {
    const survivor = (await leader())!;
    const rotated = await startNode("fair-3", { ROUND_SEED_KEY: "another-round-seed-key-0123456789abcdef" });
    const watcher = await watch(rotated);
    const round = await nextRound(watcher);
    await event<RaceStarted>(watcher, "race_started", round.roundId);
    await survivor.proc.kill9();

    const voided = await event<RoundVoided>(watcher, "round_voided", round.roundId, LEASE_MS * 6);
    expect(voided).toMatchObject({ roundId: round.roundId, reason: "seed_unavailable" });
    const next = await event<RoundStarted>(watcher, "round_started", round.roundId + 1);
    expect(watcher.messages("race").some((m) => m.event === "round_finished" && (m.data as unknown as RoundFinished).roundId === round.roundId)).toBe(false);
    await expect.poll(() => roundRow(round.roundId), { timeout: 5000 }).toMatchObject({ seed: null, result: null, voided: true });
    // The new authority draws and seals with its own key from then on.
    const finished = await event<RoundFinished>(watcher, "round_finished", next.roundId);
    expect(await verifyRound({ commitment: finished.commitment, seed: finished.seed, ranking: finished.result.ranking })).toEqual({ verified: true });
  });

  it("reveals a seed that matches its commitment and reproduces the ranking on every round of the run", async () => {
    const watcher = watchers[watchers.length - 1]!;
    const seen = watcher.messages("race").filter((m) => m.event === "round_finished").length;
    // A few more rounds on top of those already seen.
    await watcher.waitForMessage((m) => m.event === "round_finished" && watcher.messages("race").filter((f) => f.event === "round_finished").length >= seen + 3, 15_000);

    const finishedRounds = new Map<number, RoundFinished>();
    const commitments = new Map<number, string>();
    for (const message of watchers.flatMap((w) => w.messages("race"))) {
      if (message.event === "race_started") {
        const started = message.data as unknown as RaceStarted;
        commitments.set(started.roundId, started.commitment);
      }
      if (message.event === "round_finished") {
        const finished = message.data as unknown as RoundFinished;
        finishedRounds.set(finished.roundId, finished);
      }
    }
    expect(finishedRounds.size).toBeGreaterThanOrEqual(6);
    for (const [roundId, finished] of finishedRounds) {
      const committed = commitments.get(roundId);
      expect(committed, `race_started of round ${roundId}`).toBeDefined();
      expect(finished.commitment).toBe(committed);
      expect(await verifyRound({ commitment: committed!, seed: finished.seed, ranking: finished.result.ranking }), `round ${roundId}`).toEqual({ verified: true });
      expect(finished.result.winner).toBe(finished.result.ranking[0]);
    }
    // Every seed is fresh.
    expect(new Set([...finishedRounds.values()].map((f) => f.seed)).size).toBe(finishedRounds.size);
  });
});
