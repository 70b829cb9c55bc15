/**
 * A node's port is its own. uSockets sets SO_REUSEPORT unless told otherwise,
 * and then a second node started on a port already in use also "listens": the
 * kernel splits new connections between the two, so clients of the first
 * reach the second (killed in a drill, or another cluster's). A second node on
 * a taken port must fail its start and leave the first serving every client.
 */

import { afterAll, beforeAll, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect } from "./support/ws-client.js";

let redis: RedisHandle;
let first: GatewayNode;

beforeAll(async () => {
  redis = await startRedis();
  first = await startGatewayNode({ name: "owner", redisUrl: redis.url, redisPrefix: uniquePrefix("owner") });
});

afterAll(async () => {
  await first?.stop();
  await redis?.stop();
});

it("refuses to start a second node on a port in use, and the first keeps every connection", async () => {
  const second = startGatewayNode({ name: "intruder", port: first.port, redisUrl: redis.url, redisPrefix: uniquePrefix("intruder") });
  await expect(second).rejects.toThrow(/exited with code 1[\s\S]*cannot listen on/);
  // Had the second listened too, about half of these would reach it.
  for (let i = 0; i < 40; i++) {
    const client = await connect(first.wsUrl, { token: token({ sub: `client-${i}` }) });
    expect(client.welcome?.node).toBe("owner");
    await client.close();
  }
});
