/**
 * A silently dead subscription is the classic failure of gateways on Redis.
 * Kill the node's Redis connections, then Redis itself, and check the node
 * says so (readiness, 503s) and resubscribes by itself when Redis is back.
 */

import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { eventually } from "./support/eventually.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, tryConnect, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let node: GatewayNode;
let client: TestClient;

const readyStatus = async (): Promise<number> => (await fetch(`${node.httpUrl}/readyz`)).status;

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({ name: "recover", redisUrl: redis.url, redisPrefix: uniquePrefix("recover") });
  client = await connect(node.wsUrl, { token: token({ sub: "rita" }) });
  await client.subscribe("forecasts");
});

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await redis?.stop();
});

describe("Redis recovery", () => {
  it("resubscribes after its pub/sub connection is killed", async () => {
    const before = await metricValue(node.httpUrl, "gateway_redis_resubscribed_channels_total");
    execFileSync("redis-cli", ["-p", String(redis.port), "CLIENT", "KILL", "TYPE", "pubsub"]);
    await eventually(() => metricValue(node.httpUrl, "gateway_redis_resubscribed_channels_total"), (n) => n >= before + 2);
    expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "after_kill", data: null })).status).toBe(200);
    await client.waitForMessage((m) => m.event === "after_kill");
    await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "user:rita", event: "personal_after_kill", data: null });
    await client.waitForMessage((m) => m.event === "personal_after_kill");
  });

  it("reports not ready and refuses work while Redis is down, then recovers by itself", async () => {
    const port = redis.port;
    await redis.stop();
    await eventually(readyStatus, (status) => status === 503);
    const readiness = await (await fetch(`${node.httpUrl}/readyz`)).json();
    expect(readiness).toMatchObject({ status: "not_ready", reason: "redis unavailable" });
    expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "lost", data: null })).status).toBe(503);
    expect(await tryConnect(node.wsUrl, { token: token({ sub: "late" }) })).toMatchObject({ kind: "refused", status: 503 });
    expect(await metricValue(node.httpUrl, "gateway_redis_up", { role: "subscriber" })).toBe(0);

    redis = await startRedis({ port });
    await eventually(readyStatus, (status) => status === 200, 15_000);
    expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "back", data: null })).status).toBe(200);
    const back = await client.waitForMessage((m) => m.event === "back");
    // A fresh Redis lost the channel state: the epoch changes, telling clients so.
    const earlier = client.messages("forecasts")[0];
    expect(back.epoch).not.toBe(earlier?.epoch);
    expect(back.offset).toBe(1);
  });
});
