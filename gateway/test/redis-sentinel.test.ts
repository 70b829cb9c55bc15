/**
 * Redis Sentinel failover with real processes: a master, two replicas and
 * three redis-sentinel processes on free ports, Postgres, and three gateway
 * nodes that reach Redis only through REDIS_SENTINELS, with the round clock
 * on and REDIS_WAIT_REPLICAS=1 (a publish is acknowledged once a replica
 * holds it, so the promoted one has it). The master is SIGKILLed while a
 * backend keeps publishing through every node, retrying each message with
 * its idempotency key. Shown: every node reports not ready while there is no
 * master, a publish is then answered 503 (never 200), publishing resumes on
 * the new master within seconds, every acknowledged message reaches every
 * client exactly once (or the client is told `recovered: false`), and the
 * round clock goes on with the next rounds, recorded once each.
 */

import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoundStarted } from "../../shared/src/race-events.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startSentinelGroup, type SentinelGroup } from "../../scripts/lib/redis-sentinel.js";
import { testPool } from "./support/db.js";
import { PUBLIC_CHANNEL, type DrillClient } from "./support/drill.js";
import { eventually } from "./support/eventually.js";
import { failoverClients, failoverPublisher, historyOffsets, PublishProbe, ReadinessWatch, settled } from "./support/failover.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

const PROBE_CHANNEL = "forecasts:probe";
const schema = `sentinel_${process.pid}`;

let group: SentinelGroup;
let postgres: PostgresHandle;
let db: pg.Pool;
let nodes: GatewayNode[] = [];
let clients: DrillClient[] = [];
const screens: TestClient[] = [];

beforeAll(async () => {
  [group, postgres] = await Promise.all([startSentinelGroup({ replicas: 2, downAfterMs: 1000 }), startPostgres({ fast: true })]);
  db = testPool(postgres.url, 2);
  const prefix = uniquePrefix("sentinel");
  nodes = await Promise.all(
    ["node-1", "node-2", "node-3"].map((name) =>
      startGatewayNode({
        name,
        redisPrefix: prefix,
        env: {
          REDIS_SENTINELS: group.sentinelList,
          REDIS_SENTINEL_MASTER: group.masterName,
          REDIS_WAIT_REPLICAS: "1",
          LOG_LEVEL: "warn",
          CLOCK_ENABLED: "true",
          DATABASE_URL: postgres.url,
          PG_SCHEMA: schema,
          ROUND_WAIT_MS: "1200",
          ROUND_RACE_MS: "800",
          ROUND_FINISH_MS: "400",
          TIMER_UPDATE_INTERVAL_MS: "100",
          RACE_SYNC_INTERVAL_MS: "200",
          CLOCK_LEASE_TTL_MS: "1000",
          RACE_RUNNERS: "6",
        },
      }),
    ),
  );
  clients = await failoverClients(nodes, "sentinel", 12);
}, 60_000);

afterAll(async () => {
  await Promise.all([...clients.map((c) => c.client.close()), ...screens.map((s) => s.close())]);
  await Promise.all(nodes.map((node) => node.stop()));
  await db?.end();
  await Promise.all([group?.stop(), postgres?.stop()]);
});

async function raceScreen(node: GatewayNode): Promise<TestClient> {
  const screen = await connect(node.wsUrl, { token: token({ sub: `screen-${node.name}` }) });
  screens.push(screen);
  await screen.subscribe("race");
  return screen;
}

function roundsStarted(screen: TestClient): number[] {
  return screen
    .messages("race")
    .filter((m) => m.event === "round_started")
    .map((m) => (m.data as unknown as RoundStarted).roundId);
}

describe("Redis Sentinel", () => {
  it("fails over a SIGKILLed master: not ready and 503 meanwhile, nothing acknowledged lost, the round clock goes on", { timeout: 60_000 }, async () => {
    const screensByNode = await Promise.all(nodes.map(raceScreen));
    // The clock runs: a round starts on every node before the fault.
    await Promise.all(screensByNode.map((s) => s.waitForMessage((m) => m.event === "round_started", 10_000)));
    const users = clients.map((c) => c.sub);
    const backend = failoverPublisher(nodes, (seq) => (seq % 2 === 0 ? PUBLIC_CHANNEL : `user:${users[Math.floor(seq / 2) % users.length] as string}`));
    const readiness = new ReadinessWatch(nodes);
    const probe = new PublishProbe(nodes[0] as GatewayNode, PROBE_CHANNEL);
    readiness.start();
    const { publisher } = backend;
    publisher.start();
    await publisher.waitFor(100);

    const oldMaster = group.servers[0]!;
    const killedAt = Date.now();
    probe.start();
    await oldMaster.proc.kill9();
    // The Sentinels promote a replica; every node follows it and is ready again.
    const readyAgainAt = (await eventually(async () => nodes.every((node) => readiness.wasNotReady(node.name, killedAt)) && readiness.readyAgainAt(), (at) => typeof at === "number" && at > killedAt, 20_000)) as number;
    await publisher.waitFor(100);
    const newMasterPort = await group.masterPort();
    expect(newMasterPort).not.toBe(oldMaster.port);
    await publisher.stop();
    await probe.stop();
    await readiness.stop();

    // Every node said not ready while there was no master, and was ready again within seconds.
    for (const node of nodes) expect(readiness.wasNotReady(node.name, killedAt), node.name).toBe(true);
    expect(readyAgainAt - killedAt, JSON.stringify(nodes.map((node) => readiness.transitions(node.name, killedAt)))).toBeLessThan(15_000);
    // A publish without retries was refused with 503 meanwhile, never anything but 200 or 503…
    expect(probe.results.some((r) => r.status === 503)).toBe(true);
    expect(probe.results.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
    // …and each 200 it got is in the new master's history: an acknowledged publish survived the failover.
    const acknowledged = probe.results.filter((r) => r.status === 200);
    expect(acknowledged.length).toBeGreaterThan(0);
    const history = await historyOffsets(nodes[1] as GatewayNode, PROBE_CHANNEL);
    for (const ack of acknowledged) {
      expect(ack.epoch).toBe(history.epoch);
      expect(history.offsets).toContain(ack.offset);
    }
    expect(publisher.retries).toBeGreaterThan(0);

    // Every acknowledged message reached every client exactly once (or it was told recovered:false).
    expect(await settled(clients, backend, 20_000)).toEqual([]);

    // The round clock goes on: on every node, two more rounds start after the failover…
    const lastBefore = Math.max(...screensByNode.flatMap((s) => roundsStarted(s).filter((id) => id > 0)));
    await Promise.all(screensByNode.map((s) => s.waitForMessage((m) => m.event === "round_started" && (m.data as unknown as RoundStarted).roundId >= lastBefore + 2, 15_000)));
    // …and Postgres holds each round once, numbered without a hole.
    const { rows } = await db.query<{ id: string }>(`SELECT id FROM ${schema}.rounds ORDER BY id`);
    const ids = rows.map((row) => Number(row.id));
    expect(ids).toEqual(ids.map((_, i) => (ids[0] as number) + i));
    // Exactly one authority after all this.
    const leaders = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_clock_leader")));
    expect(leaders.reduce((a, b) => a + b, 0)).toBe(1);
  });
});
