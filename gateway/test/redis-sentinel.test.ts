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
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startSentinelGroup, type SentinelGroup } from "../../scripts/lib/redis-sentinel.js";
import { testPool } from "./support/db.js";
import { PUBLIC_CHANNEL, type DrillClient } from "./support/drill.js";
import { eventually } from "./support/eventually.js";
import { expectFailoverHeld, expectRoundClockWentOn, failoverClients, failoverPublisher, PublishProbe, raceScreen, ReadinessWatch, startFailoverNodes } from "./support/failover.js";
import { uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import type { TestClient } from "./support/ws-client.js";

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
  nodes = await startFailoverNodes(prefix, { REDIS_SENTINELS: group.sentinelList, REDIS_SENTINEL_MASTER: group.masterName }, postgres.url, schema);
  clients = await failoverClients(nodes, "sentinel", 12);
}, 60_000);

afterAll(async () => {
  await Promise.all([...clients.map((c) => c.client.close()), ...screens.map((s) => s.close())]);
  await Promise.all(nodes.map((node) => node.stop()));
  await db?.end();
  await Promise.all([group?.stop(), postgres?.stop()]);
});

describe("Redis Sentinel", () => {
  it("fails over a SIGKILLed master: not ready and 503 meanwhile, nothing acknowledged lost, the round clock goes on", { timeout: 60_000 }, async () => {
    const screensByNode = await Promise.all(nodes.map((node) => raceScreen(node, screens)));
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

    await expectFailoverHeld({ nodes, readiness, killedAt, readyAgainAt, probe, probeChannel: PROBE_CHANNEL, backend, clients });
    await expectRoundClockWentOn(screensByNode, db, schema, nodes);
  });
});
