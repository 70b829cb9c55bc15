/**
 * Metric labels taken from channel names stay within a known set, whatever
 * channels publishers and token grants invent: a real node, real clients,
 * publishes to a hundred made-up namespaces, and every `namespace` label on
 * /metrics is a built-in one, a configured one, or `other`.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let node: GatewayNode;
/** 100 channels of 100 namespaces nobody configured. */
const INVENTED = Array.from({ length: 100 }, (_, i) => `inv${i}:x`);
let client: TestClient;

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({
    name: "cardinality",
    redisUrl: redis.url,
    redisPrefix: uniquePrefix("cardinality"),
    env: { METRIC_NAMESPACES: "scores", CHANNEL_HISTORY: "race=20/30,odds=10/60,*=10/60" },
  });
  // Exact grants for the invented channels: a wildcard must end at a namespace (`inv:*`), and these are namespaces each.
  client = await connect(node.wsUrl, { token: token({ sub: "collector", channels: [...INVENTED.slice(0, 20), "scores:*", "odds:*"] }) });
});

afterAll(async () => {
  await client?.close();
  await node?.stop();
  await redis?.stop();
});

/** Every value of the `namespace` label on the node's /metrics. */
async function namespaceLabels(): Promise<Set<string>> {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
  return new Set([...text.matchAll(/[{,]namespace="([^"]*)"/g)].map((match) => match[1] as string));
}

describe("namespace labels", () => {
  it("are the known namespaces plus `other`, however many namespaces channels invent", async () => {
    for (const channel of [...INVENTED.slice(0, 20), "scores:1", "odds:2"]) await client.subscribe(channel);
    // `race` is the round clock's: its label exists from start-up, and the publish API refuses it.
    const messages = [...INVENTED, "scores:1", "odds:2", "forecasts:BTC"].map((channel) => ({ channel, event: "tick", data: 1 }));
    expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { messages })).status).toBe(200);
    await client.waitForMessage((m) => m.channel === "odds:2");

    const labels = await namespaceLabels();
    expect([...labels].sort()).toEqual(["forecasts", "odds", "other", "race", "scores", "user"]);
  });
});
