/**
 * The Redis ingest path: entries XADDed to `<prefix>:ingest` by a backend
 * reach subscribers on every node exactly once and in stream order, although
 * three nodes compete for them through one consumer group; invalid entries
 * are set aside with a reason; entries left pending by a dead consumer, or
 * written while no node ran, are still published.
 */

import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import type { MessageFrame } from "../../shared/src/protocol.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

const GROUP = "gateway";

let redis: RedisHandle;
let backend: Redis;
let prefix: string;
let streamKey: string;
/** Serves clients but consumes nothing, so deliveries can be watched while every consumer is down. */
let viewer: GatewayNode;
let consumers: GatewayNode[] = [];
const clients: TestClient[] = [];

async function client(node: GatewayNode, sub: string): Promise<TestClient> {
  const c = await connect(node.wsUrl, { token: token({ sub }) });
  clients.push(c);
  return c;
}

function startConsumer(name: string): Promise<GatewayNode> {
  // The takeover test waits for INGEST_CLAIM_IDLE_MS; 1000 is the least config allows.
  return startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: { INGEST_CLAIM_IDLE_MS: "1000" } });
}

type Fields = Readonly<Record<string, string | Buffer>>;

function entry(channel: string, event: string, data: unknown): Fields {
  return { channel, event, data: JSON.stringify(data) };
}

function xadd(fields: Fields): Promise<string | null> {
  return backend.xadd(streamKey, "*", ...Object.entries(fields).flat());
}

/** One pipeline: Redis hands blocked consumers the entries one command at a time, so they spread over the nodes. */
async function xaddAll(entries: readonly Fields[]): Promise<void> {
  const pipeline = backend.pipeline();
  for (const fields of entries) pipeline.xadd(streamKey, "*", ...Object.entries(fields).flat());
  const results = await pipeline.exec();
  for (const [err] of results ?? []) if (err) throw err;
}

function seqs(frames: readonly MessageFrame[]): number[] {
  return frames.map((m) => (m.data as { seq: number }).seq);
}

function expectGapless(frames: readonly MessageFrame[]): void {
  const offsets = frames.map((m) => m.offset);
  expect(offsets).toEqual(offsets.map((_, i) => (offsets[0] as number) + i));
}

async function pendingCount(): Promise<number> {
  const summary = (await backend.xpending(streamKey, GROUP)) as [number, ...unknown[]];
  return summary[0];
}

/** Polls `probe` every 50 ms until it holds, for at most `timeoutMs`. */
async function eventually(probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  redis = await startRedis();
  backend = new Redis(redis.url);
  prefix = uniquePrefix("ingest");
  streamKey = `${prefix}:ingest`;
  viewer = await startGatewayNode({ name: "viewer", redisUrl: redis.url, redisPrefix: prefix, env: { INGEST_ENABLED: "false" } });
  consumers = await Promise.all(["a", "b", "c"].map((name) => startConsumer(`ingest-${name}`)));
  // Every consumer has created (or found) the group once it reads.
  await eventually(async () => (await backend.exists(streamKey)) === 1);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([viewer, ...consumers].map((node) => node?.stop()));
  backend?.disconnect();
  await redis?.stop();
});

describe("Redis stream ingest", () => {
  it("publishes every entry once, in stream order, to subscribers on every node", async () => {
    const nodes = [viewer, ...consumers];
    const forecastWatchers = await Promise.all(nodes.map((node) => client(node, `fw-${node.name}`)));
    for (const watcher of forecastWatchers) await watcher.subscribe("forecasts");
    const aliceDevices = await Promise.all(nodes.map((node) => client(node, "alice")));
    const publishedBefore = await Promise.all(consumers.map((node) => metricValue(node.httpUrl, "gateway_ingest_published_total")));

    const count = 40;
    const entries = Array.from({ length: count }, (_, seq) =>
      seq % 2 === 0 ? entry("forecasts", "forecast_update", { seq, asset: "BTC", p: 0.5 }) : entry("user:alice", "portfolio_update", { seq, cash: seq }),
    );
    // Half in one pipeline, half one by one, so the three consumers compete for them.
    await xaddAll(entries.slice(0, count / 2));
    for (const fields of entries.slice(count / 2)) await xadd(fields);

    const forecastSeqs = Array.from({ length: count / 2 }, (_, i) => i * 2);
    const portfolioSeqs = forecastSeqs.map((seq) => seq + 1);
    for (const watcher of forecastWatchers) await watcher.waitForMessage((m) => m.event === "forecast_update" && (m.data as { seq: number }).seq === count - 2);
    for (const device of aliceDevices) await device.waitForMessage((m) => m.event === "portfolio_update" && (m.data as { seq: number }).seq === count - 1);
    await eventually(async () => (await pendingCount()) === 0);

    for (const watcher of forecastWatchers) {
      const frames = watcher.messages("forecasts");
      expect(seqs(frames)).toEqual(forecastSeqs);
      expectGapless(frames);
    }
    for (const device of aliceDevices) {
      const frames = device.messages("user:alice");
      expect(seqs(frames)).toEqual(portfolioSeqs);
      expectGapless(frames);
    }
    const publishedAfter = await Promise.all(consumers.map((node) => metricValue(node.httpUrl, "gateway_ingest_published_total")));
    const published = publishedAfter.reduce((sum, value, i) => sum + value - (publishedBefore[i] ?? 0), 0);
    expect(published).toBe(count);
  });

  it("delivers a user's portfolio update to every device of that user and to nobody else", async () => {
    const nodes = [viewer, ...consumers];
    const carol = await Promise.all(nodes.map((node) => client(node, "carol")));
    const bob = await Promise.all(nodes.map((node) => client(node, "bob")));

    await xadd(entry("user:carol", "portfolio_update", { cash: 100 }));
    // Published after carol's, and in stream order, so bob's marker proves bob's sockets saw whatever came before it.
    await xadd(entry("user:bob", "marker", null));
    for (const device of carol) expect((await device.waitForMessage((m) => m.event === "portfolio_update")).data).toEqual({ cash: 100 });
    for (const device of bob) await device.waitForMessage((m) => m.event === "marker");

    for (const device of carol) expect(device.messages("user:carol")).toHaveLength(1);
    for (const device of bob) {
      expect(device.messages("user:carol")).toHaveLength(0);
      expect(device.messages().map((m) => m.channel)).toEqual(["user:bob"]);
    }
  });

  it("sets invalid entries aside with a reason and publishes the valid ones around them in order", async () => {
    const channel = "forecasts:ETH";
    const watcher = await client(viewer, "eth-watcher");
    await watcher.subscribe(channel);
    await watcher.subscribe("race");
    const rejectedBefore = await Promise.all(consumers.map((node) => metricValue(node.httpUrl, "gateway_ingest_rejected_total")));

    await xaddAll([
      entry(channel, "forecast_update", { seq: 0 }),
      { channel, event: "forecast_update", data: "{not json" },
      entry(channel, "forecast_update", { seq: 1 }),
      entry("has space", "forecast_update", { seq: 99 }),
      { channel, data: JSON.stringify({ seq: 98 }) },
      // Deep enough to overflow a recursive encoder on every node, were it published.
      { channel, event: "forecast_update", data: '{"a":'.repeat(5000) + "1" + "}".repeat(5000) },
      // Only the round clock speaks on `race`: a forged result is set aside.
      entry("race", "round_finished", { roundId: 1, result: [1, 2, 3] }),
      // Bytes that are not UTF-8, and a number no double holds: published, they would arrive altered.
      { channel, event: "forecast_update", data: Buffer.concat([Buffer.from('{"seq":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]) },
      { channel, event: "forecast_update", data: '{"seq":1e400}' },
      entry(channel, "forecast_update", { seq: 2 }),
    ]);

    await watcher.waitForMessage((m) => (m.data as { seq: number }).seq === 2);
    const frames = watcher.messages(channel);
    expect(seqs(frames)).toEqual([0, 1, 2]);
    expectGapless(frames);
    expect(watcher.messages("race")).toEqual([]);

    const rejectedKey = `${prefix}:ingest:rejected`;
    await eventually(async () => (await backend.xlen(rejectedKey)) === 7);
    const rejected = (await backend.xrange(rejectedKey, "-", "+")).map(([, fields]) => {
      const record: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string;
      return record;
    });
    expect(rejected).toEqual([
      expect.objectContaining({ data: "{not json", reason: expect.stringMatching(/JSON/) }),
      expect.objectContaining({ channel: "has space", reason: expect.stringMatching(/channel/) }),
      expect.objectContaining({ data: JSON.stringify({ seq: 98 }), reason: expect.stringMatching(/event/) }),
      expect.objectContaining({ code: "invalid", reason: "data nests deeper than 32 levels" }),
      expect.objectContaining({ channel: "race", code: "forbidden", reason: "channel race is published only by the round clock" }),
      expect.objectContaining({ code: "bad_json", reason: "data is not valid UTF-8" }),
      expect.objectContaining({ code: "invalid", reason: expect.stringMatching(/^data holds a number outside the range of a double/) }),
    ]);
    await eventually(async () => (await pendingCount()) === 0);
    const rejectedAfter = await Promise.all(consumers.map((node) => metricValue(node.httpUrl, "gateway_ingest_rejected_total")));
    expect(rejectedAfter.reduce((sum, value, i) => sum + value - (rejectedBefore[i] ?? 0), 0)).toBe(7);
  });

  it("takes over entries a dead consumer left pending, and publishes them before the entries after them", async () => {
    const channel = "forecasts:SOL";
    const watcher = await client(viewer, "sol-watcher");
    await watcher.subscribe(channel);

    // A consumer that reads and dies before acknowledging. In one transaction,
    // so no node is handed the entries first.
    const tx = backend.multi();
    tx.xadd(streamKey, "*", ...Object.entries(entry(channel, "forecast_update", { seq: 0 })).flat());
    tx.xadd(streamKey, "*", ...Object.entries(entry(channel, "forecast_update", { seq: 1 })).flat());
    tx.call("XREADGROUP", "GROUP", GROUP, "ghost", "COUNT", 10, "STREAMS", streamKey, ">");
    await tx.exec();
    await xadd(entry(channel, "forecast_update", { seq: 2 }));

    await watcher.waitForMessage((m) => (m.data as { seq: number }).seq === 2, 15_000);
    const frames = watcher.messages(channel);
    expect(seqs(frames)).toEqual([0, 1, 2]);
    expectGapless(frames);
    await eventually(async () => (await pendingCount()) === 0);
  });

  it("publishes entries written while no node consumed, once a node starts", async () => {
    const channel = "forecasts:ADA";
    const watcher = await client(viewer, "ada-watcher");
    await watcher.subscribe(channel);

    await Promise.all(consumers.map((node) => node.stop()));
    consumers = [];
    expect(await pendingCount()).toBe(0);
    const count = 5;
    await xaddAll(Array.from({ length: count }, (_, seq) => entry(channel, "forecast_update", { seq })));

    consumers = [await startConsumer("ingest-d")];
    await watcher.waitForMessage((m) => (m.data as { seq: number }).seq === count - 1);
    const frames = watcher.messages(channel);
    expect(seqs(frames)).toEqual(Array.from({ length: count }, (_, i) => i));
    expectGapless(frames);
    await eventually(async () => (await pendingCount()) === 0);
  });
});
