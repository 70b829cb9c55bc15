/**
 * The round clock across a real cluster: one authority, the same timer on
 * every node, takeover after SIGKILL without a missing or doubled round, and
 * numbering that survives a restart with an empty Redis.
 */

import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageFrame } from "../../shared/src/protocol.js";
import type { RaceSync, RoundFinished, RoundStarted, TimerUpdate } from "../../shared/src/race-events.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { testPool } from "./support/db.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

const WAIT_MS = 1200;
const RACE_MS = 800;
const FINISH_MS = 400;
const TIMER_MS = 100;
const SYNC_MS = 200;
const LEASE_MS = 1000;

let redis: RedisHandle;
let postgres: PostgresHandle;
let db: pg.Pool;
const schema = `clock_${process.pid}`;
let prefix = uniquePrefix("clock");
let nodes: GatewayNode[] = [];
const clients: TestClient[] = [];

function clockEnv(): Record<string, string> {
  return {
    CLOCK_ENABLED: "true",
    DATABASE_URL: postgres.url,
    PG_SCHEMA: schema,
    ROUND_WAIT_MS: String(WAIT_MS),
    ROUND_RACE_MS: String(RACE_MS),
    ROUND_FINISH_MS: String(FINISH_MS),
    TIMER_UPDATE_INTERVAL_MS: String(TIMER_MS),
    RACE_SYNC_INTERVAL_MS: String(SYNC_MS),
    CLOCK_LEASE_TTL_MS: String(LEASE_MS),
    RACE_RUNNERS: "6",
  };
}

async function startCluster(names: string[]): Promise<GatewayNode[]> {
  return Promise.all(names.map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: clockEnv() })));
}

async function screen(node: GatewayNode, sub: string): Promise<TestClient> {
  const client = await connect(node.wsUrl, { token: token({ sub }) });
  clients.push(client);
  return client;
}

async function leaderIndex(): Promise<number> {
  const flags = await Promise.all(nodes.map((node) => (node.proc.isRunning() ? metricValue(node.httpUrl, "gateway_clock_leader") : Promise.resolve(0))));
  return flags.indexOf(1);
}

function events<T>(client: TestClient, event: string): Array<MessageFrame & { data: T }> {
  return client.messages("race").filter((m) => m.event === event) as Array<MessageFrame & { data: T }>;
}

async function recordedRounds(): Promise<Array<{ id: number; finished: boolean; winner: number | null }>> {
  const { rows } = await db.query<{ id: string; finished_at: Date | null; result: number[] | null }>(`SELECT id, finished_at, result FROM ${schema}.rounds ORDER BY id`);
  return rows.map((row) => ({ id: Number(row.id), finished: row.finished_at !== null, winner: row.result?.[0] ?? null }));
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  db = testPool(postgres.url, 2);
  nodes = await startCluster(["clock-1", "clock-2", "clock-3"]);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((node) => node.stop()));
  await db?.end();
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("round clock", () => {
  it("has exactly one authority", async () => {
    await expect.poll(() => leaderIndex(), { timeout: 5000 }).toBeGreaterThanOrEqual(0);
    const flags = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_clock_leader")));
    expect(flags.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it("shows the same round and timer on every node, with a snapshot at subscribe", async () => {
    const screens = await Promise.all(nodes.map((node, i) => screen(node, `screen-${i}`)));
    const replies = await Promise.all(screens.map((s) => s.request({ type: "subscribe", channel: "race" })));
    for (const reply of replies) {
      expect(reply.ok).toBe(true);
      if (reply.ok && "snapshot" in reply) expect(["timer_update", "race_sync"]).toContain(reply.snapshot?.event);
      else throw new Error("race subscribe reply without a snapshot");
    }
    // Snapshots taken on three nodes at about the same moment agree.
    const roundIds = replies.map((r) => (r.ok && "snapshot" in r ? r.snapshot?.data.roundId : -1));
    expect(new Set(roundIds).size).toBe(1);

    const arrivals = new Map<number, number[]>();
    for (const s of screens) {
      s.socket.on("message", (raw) => {
        const frame = JSON.parse((raw as Buffer).toString("utf8")) as MessageFrame;
        if (frame.type === "message" && frame.event === "timer_update") arrivals.set(frame.offset, [...(arrivals.get(frame.offset) ?? []), Date.now()]);
      });
    }
    const seen = await screens[0]!.waitForMessage((m) => m.event === "timer_update" && m.offset > 0);
    await Promise.all(screens.map((s) => s.waitForMessage((m) => m.event === "timer_update" && m.offset >= seen.offset + 5, 10_000)));

    // Every screen got every tick: identical offsets, round ids and timeLeft.
    const ticks = screens.map((s) => events<TimerUpdate>(s, "timer_update").filter((m) => m.offset >= seen.offset + 1 && m.offset <= seen.offset + 5));
    for (const list of ticks) expect(list.map((m) => [m.offset, m.data.roundId, m.data.timer.timeLeft])).toEqual(ticks[0]!.map((m) => [m.offset, m.data.roundId, m.data.timer.timeLeft]));
    // …at the same moment: the spread of arrival times per tick stays small.
    for (const [offset, times] of arrivals) {
      if (times.length === 3) expect(Math.max(...times) - Math.min(...times), `tick ${offset}`).toBeLessThan(50);
    }
    // …twice per TIMER_MS window at most, counting down.
    const lefts = ticks[0]!.map((m) => m.data.timer.timeLeft);
    for (let i = 1; i < lefts.length; i++) {
      const step = (lefts[i - 1] as number) - (lefts[i] as number);
      if ((lefts[i] as number) > 0) expect(step).toBeGreaterThanOrEqual(TIMER_MS - 30);
    }
  });

  it("cycles waiting → race → results → next round with every lifecycle event once", async () => {
    const watcher = await screen(nodes[1]!, "cycle-watcher");
    await watcher.subscribe("race");
    const first = await watcher.waitForMessage((m) => m.event === "round_started", 10_000);
    const roundId = (first.data as unknown as RoundStarted).roundId;
    await watcher.waitForMessage((m) => m.event === "round_started" && (m.data as unknown as RoundStarted).roundId === roundId + 1, 10_000);

    const ofRound = watcher.messages("race").filter((m) => (m.data as unknown as { roundId: number }).roundId === roundId);
    const sequence = ofRound.map((m) => (m.event === "race_sync" ? `race_sync:${(m.data as unknown as RaceSync).currentScreen}` : m.event));
    const collapsed = sequence.filter((event, i) => event !== sequence[i - 1]);
    expect(collapsed).toEqual(["round_started", "timer_update", "race_started", "race_sync:movie_screen", "round_finished", "race_sync:finish_screen"]);
    expect(ofRound.filter((m) => m.event === "race_sync" && (m.data as unknown as RaceSync).currentScreen === "movie_screen").length).toBeGreaterThanOrEqual(Math.floor(RACE_MS / SYNC_MS) - 1);
    const finished = ofRound.find((m) => m.event === "round_finished")?.data as unknown as RoundFinished;
    expect([...finished.result.ranking].sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(finished.result.winner).toBe(finished.result.ranking[0]);
    // Offsets of the race channel are gapless for this watcher.
    const offsets = watcher.messages("race").map((m) => m.offset);
    expect(offsets).toEqual(offsets.map((_, i) => (offsets[0] as number) + i));
  });

  it("survives SIGKILL of the authority without a missing or doubled round", async () => {
    const leader = await leaderIndex();
    expect(leader).toBeGreaterThanOrEqual(0);
    const survivor = nodes[(leader + 1) % 3]!;
    const watcher = await screen(survivor, "failover-watcher");
    await watcher.subscribe("race");
    const before = await watcher.waitForMessage((m) => m.event === "timer_update" || m.event === "race_sync");
    const killedAt = Date.now();
    await nodes[leader]!.proc.kill9();

    // A new authority within the lease TTL plus an election period or two.
    await expect.poll(() => leaderIndex(), { timeout: LEASE_MS * 4, interval: 50 }).toBeGreaterThanOrEqual(0);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThan(LEASE_MS * 4);
    const currentRound = (before.data as unknown as { roundId: number }).roundId;
    await watcher.waitForMessage((m) => m.event === "round_started" && (m.data as unknown as RoundStarted).roundId >= currentRound + 2, 15_000);

    const started = events<RoundStarted>(watcher, "round_started").map((m) => m.data.roundId);
    expect(started).toEqual(started.map((_, i) => (started[0] as number) + i));
    const finishedIds = events<RoundFinished>(watcher, "round_finished").map((m) => m.data.roundId);
    expect(new Set(finishedIds).size).toBe(finishedIds.length);
    const offsets = watcher.messages("race").map((m) => m.offset);
    expect(offsets).toEqual(offsets.map((_, i) => (offsets[0] as number) + i));

    // Postgres holds every round once, in order, finished ones with their winner.
    await expect.poll(async () => (await recordedRounds()).filter((r) => r.finished).length, { timeout: 5000 }).toBeGreaterThanOrEqual(currentRound + 1);
    const rounds = await recordedRounds();
    expect(rounds.map((r) => r.id)).toEqual(rounds.map((_, i) => i + 1));
    const announced = new Map(events<RoundFinished>(watcher, "round_finished").map((m) => [m.data.roundId, m.data.result.winner]));
    for (const round of rounds) if (announced.has(round.id)) expect(round.winner).toBe(announced.get(round.id));
  });

  it("resumes numbering from Postgres when the cluster restarts with an empty Redis", async () => {
    await Promise.all(nodes.map((node) => (node.proc.isRunning() ? node.stop() : Promise.resolve(null))));
    const highest = Math.max(...(await recordedRounds()).map((r) => r.id));
    prefix = uniquePrefix("clock-fresh");
    nodes = await startCluster(["clock-4", "clock-5"]);
    const watcher = await screen(nodes[0]!, "restart-watcher");
    await watcher.subscribe("race");
    const started = await watcher.waitForMessage((m) => m.event === "round_started", 10_000);
    const latest = (started.data as unknown as RoundStarted).roundId;
    expect(latest).toBeGreaterThan(highest);
    // Contiguous ids across the restart: the new cluster went on at highest + 1.
    await expect.poll(async () => (await recordedRounds()).length, { timeout: 5000 }).toBeGreaterThanOrEqual(latest);
    const ids = (await recordedRounds()).map((r) => r.id);
    expect(ids.slice(0, latest)).toEqual(Array.from({ length: latest }, (_, i) => i + 1));
  });
});
