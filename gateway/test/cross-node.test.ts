/**
 * Fan-out across real nodes through a real Redis: a publish anywhere reaches
 * subscribers everywhere, once, in offset order, serialized once.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { encodeFrameHead, encodeFrameTail } from "../src/fanout/message-frame.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let nodes: GatewayNode[] = [];
const clients: TestClient[] = [];

async function client(node: GatewayNode, sub: string, channels?: string[]): Promise<TestClient> {
  const c = await connect(node.wsUrl, { token: token({ sub, ...(channels ? { channels } : {}) }) });
  clients.push(c);
  return c;
}

function nodeAt(index: number): GatewayNode {
  const node = nodes[index];
  if (node === undefined) throw new Error(`no node ${index}`);
  return node;
}

beforeAll(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix("cross");
  nodes = await Promise.all(["a", "b", "c"].map((name) => startGatewayNode({ name: `node-${name}`, redisUrl: redis.url, redisPrefix: prefix })));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((node) => node.stop()));
  await redis?.stop();
});

describe("cross-node fan-out", () => {
  it("delivers a message published on node A to a client on node B", async () => {
    const onB = await client(nodeAt(1), "watcher-b");
    await onB.subscribe("forecasts:BTC");
    const res = await publish(nodeAt(0).httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:BTC", event: "forecast_update", data: { timeLeft: 12 } });
    expect(res.status).toBe(200);
    const outcome = res.json as { offset: number; epoch: string };
    const message = await onB.waitForMessage((m) => m.event === "forecast_update");
    expect(message).toMatchObject({ type: "message", channel: "forecasts:BTC", data: { timeLeft: 12 }, offset: outcome.offset, epoch: outcome.epoch });
    expect(message.ts).toBeGreaterThan(Date.now() - 10_000);
    // The Redis script appends exactly the tail encodeFrameTail() describes.
    const raw = onB.rawMessages.find((text) => text.includes('"forecast_update"'));
    expect(raw).toBe(encodeFrameHead("forecasts:BTC", "forecast_update", JSON.stringify({ timeLeft: 12 })) + encodeFrameTail(outcome.offset, outcome.epoch, message.ts));
  });

  it("gives every device of a user each personal message exactly once, and nobody else any", async () => {
    const devices = await Promise.all(nodes.map((node) => client(node, "carol")));
    const others = await Promise.all(nodes.map((node) => client(node, "dave")));
    for (const device of devices) expect(device.welcome?.channels).toEqual(["user:carol"]);

    const count = 20;
    for (let i = 0; i < count; i++) {
      const res = await publish(nodeAt(i % 3).httpUrl, TEST_PUBLISH_KEY, { channel: "user:carol", event: "portfolio_update", data: { seq: i } });
      expect(res.status).toBe(200);
    }
    // A marker to dave, published last, proves dave's sockets were live throughout.
    await publish(nodeAt(0).httpUrl, TEST_PUBLISH_KEY, { channel: "user:dave", event: "marker", data: null });
    for (const device of devices) await device.waitForMessage((m) => m.data !== null && (m.data as { seq: number }).seq === count - 1);
    for (const other of others) await other.waitForMessage((m) => m.event === "marker");

    for (const device of devices) {
      const seqs = device.messages("user:carol").map((m) => (m.data as { seq: number }).seq);
      expect(seqs).toEqual(Array.from({ length: count }, (_, i) => i));
      const offsets = device.messages("user:carol").map((m) => m.offset);
      expect(offsets).toEqual(offsets.map((_, i) => (offsets[0] as number) + i));
    }
    for (const other of others) expect(other.messages("user:carol")).toHaveLength(0);
  });

  it("serializes a broadcast once for the whole cluster and hands identical bytes to every socket", async () => {
    const channel = "forecasts";
    const perNode = 10;
    const subscribers = (await Promise.all(nodes.map((node) => Promise.all(Array.from({ length: perNode }, (_, i) => client(node, `fan-${node.name}-${i}`)))))).flat();
    await Promise.all(subscribers.map((s) => s.subscribe(channel)));

    const encodesBefore = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_broadcast_encodes_total")));
    const outBefore = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_messages_out_total", { namespace: channel })));
    const broadcasts = 5;
    for (let i = 0; i < broadcasts; i++) {
      expect((await publish(nodeAt(0).httpUrl, TEST_PUBLISH_KEY, { channel, event: "forecast_update", data: { i, note: "ünïcode ✓" } })).status).toBe(200);
    }
    await Promise.all(subscribers.map((s) => s.waitForMessage((m) => (m.data as { i: number }).i === broadcasts - 1)));

    const encodesAfter = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_broadcast_encodes_total")));
    const outAfter = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_messages_out_total", { namespace: channel })));
    // The publishing node encodes each message once; the others forward bytes.
    expect(encodesAfter.map((after, i) => after - (encodesBefore[i] as number))).toEqual([broadcasts, 0, 0]);
    expect(outAfter.map((after, i) => after - (outBefore[i] as number))).toEqual([broadcasts * perNode, broadcasts * perNode, broadcasts * perNode]);

    const reference = subscribers[0]?.rawMessages.filter((raw) => raw.includes('"channel":"forecasts"'));
    expect(reference).toHaveLength(broadcasts);
    for (const s of subscribers) expect(s.rawMessages.filter((raw) => raw.includes('"channel":"forecasts"'))).toEqual(reference);
  });

  it("delivers a forecast_update for one asset over HTTP to that asset's subscribers on other nodes only", async () => {
    const btc = await client(nodeAt(1), "btc-watcher");
    const eth = await client(nodeAt(2), "eth-watcher");
    await btc.subscribe("forecasts:BTC");
    await eth.subscribe("forecasts:ETH");
    const res = await publish(nodeAt(0).httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:BTC", event: "forecast_update", data: { asset: "BTC", p50: 101.5 } });
    expect(res.status).toBe(200);
    await publish(nodeAt(0).httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:ETH", event: "forecast_update", data: { asset: "ETH", p50: 3.2 } });
    expect((await btc.waitForMessage((m) => m.event === "forecast_update")).data).toEqual({ asset: "BTC", p50: 101.5 });
    await eth.waitForMessage((m) => m.event === "forecast_update");
    expect(eth.messages("forecasts:BTC")).toHaveLength(0);
    expect(btc.messages("forecasts:ETH")).toHaveLength(0);
  });

  it("keeps offsets gapless per channel across publishers on different nodes", async () => {
    const watcher = await client(nodeAt(2), "offset-watcher", ["scores:*"]);
    await watcher.subscribe("scores:1");
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => publish(nodeAt(i % 3).httpUrl, TEST_PUBLISH_KEY, { channel: "scores:1", event: "score", data: i })),
    );
    const offsets = results.map((r) => (r.json as { offset: number }).offset).sort((x, y) => x - y);
    expect(offsets).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await watcher.waitForMessage((m) => m.offset === 30);
    expect(watcher.messages("scores:1").map((m) => m.offset)).toEqual(offsets);
  });
});
