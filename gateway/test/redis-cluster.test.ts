/**
 * The gateway on a real Redis Cluster: three masters with a replica each
 * (`redis-cli --cluster create` on free ports), Postgres, and three gateway
 * nodes given only REDIS_CLUSTER_NODES, with the round clock on and
 * REDIS_WAIT_REPLICAS=1. Shown: every channel's bus is a shard channel
 * (SSUBSCRIBE on the master of its slot, no classic subscription), channels
 * and a batch publish spread over all three shards, ingest and Socket.IO's
 * sharded adapter work there, and when the master holding `race` is
 * SIGKILLed during publishing to many channels, its replica takes over:
 * nodes are not ready and publishes answered 503 meanwhile, then every
 * acknowledged message reaches every client exactly once (or the client is
 * told `recovered: false`) and the round clock goes on.
 */

import { Cluster } from "ioredis";
import type pg from "pg";
import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedisCluster, type RedisClusterHandle } from "../../scripts/lib/redis-cluster.js";
import { RedisKeyspace } from "../src/broker/redis-keys.js";
import { ingestRejectedKey, ingestStreamKey } from "../src/ingest/redis-stream-ingest.js";
import { keySlot } from "../src/redis/key-slot.js";
import { testPool } from "./support/db.js";
import { PUBLIC_CHANNEL, type DrillClient } from "./support/drill.js";
import { eventually } from "./support/eventually.js";
import { expectFailoverHeld, expectRoundClockWentOn, failoverClients, failoverPublisher, historyOffsets, PublishProbe, raceScreen, ReadinessWatch, startFailoverNodes } from "./support/failover.js";
import { TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import type { TestClient } from "./support/ws-client.js";

/** Channels every client set spreads over; their slots land on all three masters. */
const CHANNELS = Array.from({ length: 24 }, (_, i) => `forecasts:c${i}`);
const schema = `cluster_${process.pid}`;

let cluster: RedisClusterHandle;
let postgres: PostgresHandle;
let db: pg.Pool;
let admin: Cluster;
let prefix: string;
let keyspace: RedisKeyspace;
let nodes: GatewayNode[] = [];
let clients: DrillClient[] = [];
const screens: TestClient[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  [cluster, postgres] = await Promise.all([startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 }), startPostgres({ fast: true })]);
  db = testPool(postgres.url, 2);
  admin = new Cluster(cluster.seeds.split(",").map((seed) => ({ host: "127.0.0.1", port: Number(seed.split(":")[1]) })));
  prefix = uniquePrefix("cluster");
  keyspace = new RedisKeyspace(prefix, 64, "cluster");
  nodes = await startFailoverNodes(prefix, { REDIS_CLUSTER_NODES: cluster.seeds, INGEST_CLAIM_IDLE_MS: "1000" }, postgres.url, schema);
  // Each client on a third of the channels, so every node subscribes to every channel.
  clients = await failoverClients(nodes, "cluster", 12, (i) => CHANNELS.filter((_, c) => c % 3 === Math.floor(i / 3) % 3));
}, 60_000);

afterAll(async () => {
  for (const socket of sockets) socket.close();
  await Promise.all([...clients.map((c) => c.client.close()), ...screens.map((s) => s.close())]);
  await Promise.all(nodes.map((node) => node.stop()));
  admin?.disconnect();
  await db?.end();
  await Promise.all([cluster?.stop(), postgres?.stop()]);
});

/** The port of the master serving `name`'s slot, as the Cluster says now. */
async function masterOf(name: string): Promise<number> {
  await new Promise<void>((resolve, reject) => admin.refreshSlotsCache((err) => (err ? reject(err) : resolve())));
  const key = admin.slots[keySlot(name)]?.[0];
  if (key === undefined) throw new Error(`no master for ${name}`);
  return Number(key.split(":").at(-1));
}

/** Sums a PUBSUB count over the running masters. */
async function pubsubCount(subcommand: "NUMSUB" | "SHARDNUMSUB", channel: string): Promise<number> {
  const counts = await Promise.all(admin.nodes("master").map(async (node) => Number(((await node.call("PUBSUB", subcommand, channel)) as [string, number])[1])));
  return counts.reduce((a, b) => a + b, 0);
}

describe("Redis Cluster", () => {
  it("carries every channel on its own shard with sharded pub/sub, and a batch over all three shards", { timeout: 20_000 }, async () => {
    const shards = new Set(await Promise.all(CHANNELS.map((channel) => masterOf(keyspace.busChannel(channel)))));
    expect(shards.size).toBe(3);
    for (const channel of [...CHANNELS, PUBLIC_CHANNEL]) {
      const bus = keyspace.busChannel(channel);
      // Every node serves subscribers of it: three shard subscriptions, on the master of its slot, and no classic one.
      expect(await pubsubCount("SHARDNUMSUB", bus), channel).toBe(3);
      expect(await pubsubCount("NUMSUB", bus), channel).toBe(0);
    }

    // A batch spanning the three shards: one script per slot, each message numbered and kept in its channel's history.
    const batch = CHANNELS.map((channel, i) => ({ channel: channel.replace("forecasts:c", "forecasts:batch"), event: "batched", data: { i }, idempotencyKey: `batch-${i}` }));
    expect(new Set(await Promise.all(batch.map((m) => masterOf(keyspace.stateKey(m.channel))))).size).toBe(3);
    const res = await fetch(`${nodes[0]!.httpUrl}/v1/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ messages: batch }),
    });
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: Array<{ offset: number; epoch: string }> };
    expect(results.map((r) => r.offset)).toEqual(batch.map(() => 1));
    for (const [i, message] of batch.entries()) expect((await historyOffsets(nodes[2]!, message.channel)).offsets, message.channel).toEqual([results[i]!.offset]);
  });

  it("ingests from the stream and sets rejected entries aside in the stream's slot", { timeout: 20_000 }, async () => {
    const stream = ingestStreamKey(prefix);
    const rejected = ingestRejectedKey(prefix, true);
    expect(keySlot(rejected)).toBe(keySlot(stream));
    await admin.xadd(stream, "*", "channel", "forecasts:ingested", "event", "ingested", "data", JSON.stringify({ n: 1 }));
    await admin.xadd(stream, "*", "channel", "race", "event", "forged", "data", "{}");
    await eventually(async () => (await historyOffsets(nodes[0]!, "forecasts:ingested")).offsets, (offsets) => offsets.length === 1, 10_000);
    await eventually(async () => (await admin.xrange(rejected, "-", "+")).map(([, fields]) => fields[fields.indexOf("code") + 1]), (codes) => codes.includes("forbidden"), 10_000);
  });

  it("runs Socket.IO's adapter sharded: a message on the namespace's shard channel reaches a room on any node", { timeout: 20_000 }, async () => {
    const channel = `${prefix}:sio#/#`;
    await eventually(() => pubsubCount("SHARDNUMSUB", channel), (count) => count === 3, 10_000);
    const socket = io(nodes[1]!.httpUrl, { extraHeaders: { authorization: `Bearer ${token({ sub: "sio-cluster" })}` }, transports: ["websocket"], reconnection: false, timeout: 5000 });
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once("welcome", () => resolve());
      socket.once("connect_error", reject);
    });
    const received = new Promise<unknown>((resolve) => socket.once("announcement", resolve));
    // A broadcast as another adapter sends it (socket.io-adapter's cluster message), by SPUBLISH.
    const message = { uid: "test-backend", nsp: "/", type: 3, data: { opts: { rooms: ["user:sio-cluster"], except: [], flags: {} }, packet: { type: 2, data: ["announcement", { from: "backend" }], nsp: "/" } } };
    await admin.spublish(channel, JSON.stringify(message));
    expect(await received).toEqual({ from: "backend" });
  });

  it("fails over a SIGKILLed master: not ready and 503 meanwhile, nothing acknowledged lost, the round clock goes on", { timeout: 60_000 }, async () => {
    const screensByNode = await Promise.all(nodes.map((node) => raceScreen(node, screens)));
    await Promise.all(screensByNode.map((s) => s.waitForMessage((m) => m.event === "round_started", 10_000)));
    const users = clients.map((c) => c.sub);
    // The public channel, every user's personal one and all the others, in turn.
    const backend = failoverPublisher(nodes, (seq) => {
      const turn = seq % 3;
      if (turn === 0) return PUBLIC_CHANNEL;
      if (turn === 1) return `user:${users[Math.floor(seq / 3) % users.length] as string}`;
      return CHANNELS[Math.floor(seq / 3) % CHANNELS.length] as string;
    });
    const readiness = new ReadinessWatch(nodes);
    // The round clock's shard goes down, and the probe publishes on it.
    const racePort = await masterOf(keyspace.stateKey("race"));
    const killedIndex = cluster.nodes.findIndex((node) => node.port === racePort);
    const candidates = Array.from({ length: 30 }, (_, i) => `forecasts:probe${i}`);
    const owners = await Promise.all(candidates.map((channel) => masterOf(keyspace.stateKey(channel))));
    const probeChannel = candidates[owners.indexOf(racePort)] as string;
    const probe = new PublishProbe(nodes[0]!, probeChannel);
    readiness.start();
    const { publisher } = backend;
    publisher.start();
    await publisher.waitFor(100);

    const killedAt = Date.now();
    probe.start();
    await cluster.nodes[killedIndex]!.proc.kill9();
    // The replica takes over; every node is ready again.
    const readyAgainAt = (await eventually(async () => nodes.every((node) => readiness.wasNotReady(node.name, killedAt)) && readiness.readyAgainAt(), (at) => typeof at === "number" && at > killedAt, 20_000)) as number;
    expect(await masterOf(keyspace.stateKey("race"))).not.toBe(racePort);
    // The old master comes back as the new one's replica, so REDIS_WAIT_REPLICAS=1 is met on that shard again.
    await cluster.restart(killedIndex);
    await cluster.waitHealthy(20_000);
    await publisher.waitFor(100);
    await publisher.stop();
    await probe.stop();
    await readiness.stop();

    await expectFailoverHeld({ nodes, readiness, killedAt, readyAgainAt, probe, probeChannel, backend, clients });
    await expectRoundClockWentOn(screensByNode, db, schema, nodes);
  });
});
