/**
 * A client that stops reading must not hold the node's memory or slow anyone
 * else: its socket is closed once its send buffer passes the limit, the
 * close is counted, and a healthy subscriber on the same channel gets every
 * message.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let node: GatewayNode;
let healthy: TestClient;
let stalled: TestClient;

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({ name: "slow", redisUrl: redis.url, redisPrefix: uniquePrefix("slow"), env: { MAX_BACKPRESSURE_BYTES: "65536" } });
  healthy = await connect(node.wsUrl, { token: token({ sub: "healthy" }) });
  stalled = await connect(node.wsUrl, { token: token({ sub: "stalled" }) });
  await healthy.subscribe("forecasts");
  await stalled.subscribe("forecasts");
});

afterAll(async () => {
  stalled?.socket.terminate();
  await healthy?.close();
  await node?.stop();
  await redis?.stop();
});

describe("slow consumers", () => {
  it("closes a socket that stops reading, counts it, and keeps delivering to others", async () => {
    // Stop reading: the kernel buffers fill first, then the node's send buffer.
    stalled.socket.pause();
    const payload = "x".repeat(16 * 1024);
    let sent = 0;
    const deadline = Date.now() + 20_000;
    // Bounded: at most 2000 messages (~32 MiB) or 20 s.
    while (sent < 2000 && Date.now() < deadline) {
      const batch = Array.from({ length: 20 }, (_, i) => ({ channel: "forecasts", event: "bulk", data: { n: sent + i, payload } }));
      expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { messages: batch })).status).toBe(200);
      sent += batch.length;
      await healthy.waitForMessage((m) => (m.data as { n: number }).n === sent - 1);
      if ((await metricValue(node.httpUrl, "gateway_connections")) === 1) break;
    }
    expect(await metricValue(node.httpUrl, "gateway_connections")).toBe(1);
    const slowCloses = await metricValue(node.httpUrl, "gateway_disconnects_total", { reason: "slow_consumer" });
    const cut = await metricValue(node.httpUrl, "gateway_disconnects_total", { reason: "abnormal" });
    expect(slowCloses + cut).toBe(1);
    if (slowCloses === 1) expect(await metricValue(node.httpUrl, "gateway_send_drops_total", { kind: "slow_consumer_close" })).toBe(1);

    expect(healthy.messages("forecasts").map((m) => (m.data as { n: number }).n)).toEqual(Array.from({ length: sent }, (_, i) => i));
  });
});
