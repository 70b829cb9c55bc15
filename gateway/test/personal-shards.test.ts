/**
 * Personal channels ride a fixed number of shared Redis channels: a node's
 * Redis subscriptions stay bounded by PERSONAL_CHANNEL_SHARDS however many
 * users it serves, while every personal message still reaches every device of
 * its user, on every node, and no other user, with offsets and history per
 * user channel.
 */

import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

const SHARDS = 4;
const USERS = 40;

let redis: RedisHandle;
let admin: Redis;
let nodes: GatewayNode[] = [];
const clients: TestClient[] = [];

/** Redis subscriptions held by a node's subscriber connection (CLIENT LIST `sub=`). */
async function subscriptionsOf(node: GatewayNode): Promise<number> {
  const line = ((await admin.client("LIST")) as string).split("\n").find((entry) => entry.includes(` name=${node.name}/subscriber `));
  const sub = line === undefined ? undefined : /\bsub=(\d+)/.exec(line)?.[1];
  if (sub === undefined) throw new Error(`no subscriber connection named ${node.name}/subscriber`);
  return Number(sub);
}

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  const prefix = uniquePrefix("shards");
  nodes = await Promise.all(["shard-a", "shard-b"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: { PERSONAL_CHANNEL_SHARDS: String(SHARDS) } })));
  // Every user has a device on each node.
  for (let u = 0; u < USERS; u++) {
    for (const node of nodes) clients.push(await connect(node.wsUrl, { token: token({ sub: `member-${u}` }) }));
  }
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((node) => node.stop()));
  admin?.disconnect();
  await redis?.stop();
});

describe("personal channels on shared shards", () => {
  it("holds at most PERSONAL_CHANNEL_SHARDS Redis subscriptions for any number of users", async () => {
    for (const node of nodes) expect(await subscriptionsOf(node)).toBeLessThanOrEqual(SHARDS);
  });

  it("delivers each personal message to every device of its user and to no other user, with per-user offsets", async () => {
    for (let u = 0; u < USERS; u++) {
      for (let seq = 0; seq < 2; seq++) {
        const res = await publish(nodes[(u + seq) % nodes.length]!.httpUrl, TEST_PUBLISH_KEY, { channel: `user:member-${u}`, event: "portfolio_update", data: { u, seq } });
        expect(res.status).toBe(200);
        expect((res.json as { offset: number }).offset).toBe(seq + 1);
      }
    }
    for (const [i, client] of clients.entries()) {
      const u = Math.floor(i / nodes.length);
      await client.waitForMessage((m) => (m.data as { seq: number }).seq === 1 && m.channel === `user:member-${u}`);
    }
    // A last message to one user proves everyone else's sockets stayed live and received nothing more.
    for (const [i, client] of clients.entries()) {
      const u = Math.floor(i / nodes.length);
      const messages = client.messages();
      expect(messages.map((m) => m.channel), `device ${i}`).toEqual([`user:member-${u}`, `user:member-${u}`]);
      expect(messages.map((m) => m.offset)).toEqual([1, 2]);
    }
  });

  it("subscribes a shard with its first local user and releases it with the last", async () => {
    const idle = await startGatewayNode({ name: "shard-idle", redisUrl: redis.url, redisPrefix: uniquePrefix("shards-idle"), env: { PERSONAL_CHANNEL_SHARDS: String(SHARDS) } });
    nodes.push(idle);
    expect(await subscriptionsOf(idle)).toBe(0);
    const first = await connect(idle.wsUrl, { token: token({ sub: "lonely-1" }) });
    const second = await connect(idle.wsUrl, { token: token({ sub: "lonely-1" }) });
    expect(await subscriptionsOf(idle)).toBe(1);
    await first.close();
    expect(await subscriptionsOf(idle)).toBe(1);
    await second.close();
    await expect.poll(() => subscriptionsOf(idle)).toBe(0);
  });
});
