/**
 * Fault drills with real processes: Redis, three gateway nodes behind NGINX,
 * SDK clients, and publishing through every node throughout, to a public
 * channel and to each client's personal channel. After each fault every
 * client holds every acknowledged offset of its channels exactly once, in
 * order; where the fault destroys history (Redis restarted empty) every
 * client is told so instead.
 */

import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { ackedOffsets, DrillCluster, PUBLIC_CHANNEL, type DrillClient } from "./support/drill.js";
import { eventually } from "./support/eventually.js";
import { metricValue } from "./support/metrics.js";

let cluster: DrillCluster | null = null;

afterEach(async () => {
  await cluster?.publisher.stop().catch(() => undefined);
  await cluster?.stop();
  cluster = null;
});

/** Every client holds every acknowledged offset of its channels (in `epoch` when given) exactly once, in order. */
function expectExactlyOnce(drill: DrillCluster): void {
  for (const client of drill.clients) expectClientExactlyOnce(drill, client);
}

function expectClientExactlyOnce(drill: DrillCluster, client: DrillClient): void {
  for (const channel of client.channels()) {
    const acked = drill.publisher.acked.get(channel) ?? [];
    const epoch = acked.at(-1)?.epoch;
    if (epoch === undefined) continue;
    expect(client.offsets(channel, epoch), `${client.sub} on ${channel}`).toEqual(ackedOffsets(acked, epoch));
  }
}

/** Publishing throughout, Redis stopped and started on the same port and directory, then everything delivered. */
async function redisRestartDrill(persistence: "aof" | "none"): Promise<DrillCluster> {
  cluster = await DrillCluster.start({ label: persistence === "aof" ? "aof" : "empty", clients: 15, persistence });
  const drill = cluster;
  drill.publisher.start();
  await drill.publisher.waitFor(100);
  await drill.restartRedis();
  await drill.publisher.waitFor(100);
  await drill.publisher.stop();
  await drill.settle();
  return drill;
}

describe("fault drills", { timeout: 120_000 }, () => {
  it("SIGKILL of the node holding a third of the clients: every client ends with every offset exactly once, in order", async () => {
    cluster = await DrillCluster.start({ label: "kill", clients: 30 });
    const drill = cluster;
    expect([...drill.clientsPerNode().values()].every((n) => n >= 5)).toBe(true);
    const onKilled = drill.clients.filter((c) => c.client.node === "node-1");
    drill.publisher.start();
    await drill.publisher.waitFor(100);
    await drill.restartNode(0, "SIGKILL");
    await drill.publisher.waitFor(200);
    await drill.publisher.stop();
    await drill.settle();
    expectExactlyOnce(drill);
    // The killed node's clients came back elsewhere and resumed both channels without loss.
    for (const c of onKilled) {
      for (const channel of c.channels()) expect(c.resumed.filter((r) => r.channel === channel).map((r) => r.recovered), `${c.sub} ${channel}`).toEqual([true]);
    }
    expect(drill.clients.flatMap((c) => c.resumed).every((r) => r.recovered)).toBe(true);
  });

  it("a rolling SIGTERM restart of all three nodes: every client ends with every offset exactly once, in order", async () => {
    cluster = await DrillCluster.start({ label: "roll", clients: 30 });
    const drill = cluster;
    drill.publisher.start();
    for (const index of [0, 1, 2]) {
      await drill.publisher.waitFor(60);
      await drill.restartNode(index, "SIGTERM");
    }
    await drill.publisher.waitFor(60);
    await drill.publisher.stop();
    await drill.settle();
    expectExactlyOnce(drill);
    expect(drill.clients.flatMap((c) => c.resumed).every((r) => r.recovered)).toBe(true);
  });

  it("a node's Redis connections killed during publishing: no loss, no duplicate", async () => {
    cluster = await DrillCluster.start({ label: "cut", clients: 30 });
    const drill = cluster;
    const admin = new Redis(drill.redis.url);
    try {
      drill.publisher.start();
      for (let round = 0; round < 3; round++) {
        await drill.publisher.waitFor(60);
        const list = (await admin.client("LIST")) as string;
        const ids = list
          .split("\n")
          .filter((line) => / name=node-2\//.test(line))
          .map((line) => /\bid=(\d+)/.exec(line)?.[1])
          .filter((id): id is string => id !== undefined);
        expect(ids.length).toBeGreaterThanOrEqual(3);
        for (const id of ids) await admin.client("KILL", "ID", id);
      }
      await drill.publisher.waitFor(60);
      await drill.publisher.stop();
      await drill.settle();
      expectExactlyOnce(drill);
      // node-2 lost pub/sub messages while reconnecting and replayed them from history.
      const node2 = drill.nodes[1]!;
      expect(await metricValue(node2.httpUrl, "gateway_history_gaps_repaired_total")).toBeGreaterThan(0);
      expect(await metricValue(node2.httpUrl, "gateway_history_gaps_unrecoverable_total")).toBe(0);
    } finally {
      admin.disconnect();
    }
  });

  it("Redis restarted with persistence: history survives, clients recover, every offset exactly once", async () => {
    const drill = await redisRestartDrill("aof");
    // One epoch throughout: nothing was reset.
    for (const channel of [PUBLIC_CHANNEL]) expect(new Set((drill.publisher.acked.get(channel) ?? []).map((a) => a.epoch)).size).toBe(1);
    expectExactlyOnce(drill);
    expect(drill.clients.flatMap((c) => c.resumed).every((r) => r.recovered)).toBe(true);
  });

  it("Redis restarted without persistence: the epoch changes and every client is told it cannot recover", async () => {
    const drill = await redisRestartDrill("none");
    const epochs = new Set((drill.publisher.acked.get(PUBLIC_CHANNEL) ?? []).map((a) => a.epoch));
    expect(epochs.size).toBe(2);
    // Every client was told, for each of its channels, that it could not recover…
    await eventually(async () => drill.clients.every((c) => c.channels().every((channel) => c.resumed.some((r) => r.channel === channel && !r.recovered))), (ok) => ok);
    // …and from the position it was told, holds every new-epoch offset exactly once, in order.
    for (const client of drill.clients) {
      for (const channel of client.channels()) {
        const acked = drill.publisher.acked.get(channel) ?? [];
        const epoch = acked.at(-1)?.epoch as string;
        const received = client.offsets(channel, epoch);
        const expected = ackedOffsets(acked, epoch);
        expect(received.length, `${client.sub} on ${channel}`).toBeGreaterThan(0);
        expect(received, `${client.sub} on ${channel}`).toEqual(expected.slice(expected.indexOf(received[0] as number)));
      }
    }
  });
});
