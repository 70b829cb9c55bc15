/**
 * The cluster as clients see it: real NGINX in front of three real nodes.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, publish, tryConnect, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let nodes: GatewayNode[] = [];
let nginx: NginxHandle;
const clients: TestClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix("nginx");
  nodes = await Promise.all(["node-1", "node-2", "node-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix })));
  nginx = await startNginx({ nodes: nodes.map((node) => ({ name: node.name, host: "127.0.0.1", port: node.port })) });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await nginx?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  await redis?.stop();
});

describe("through NGINX", () => {
  const wsUrl = (): string => `${nginx.url.replace("http", "ws")}/ws`;

  it("spreads sockets over the nodes, and a publish on any node reaches all of them", async () => {
    for (let i = 0; i < 9; i++) clients.push(await connect(wsUrl(), { token: token({ sub: `viewer-${i}` }), tokenInQuery: true }));
    const servedBy = new Set(clients.map((c) => c.welcome?.node));
    expect(servedBy.size).toBe(3);
    await Promise.all(clients.map((c) => c.subscribe("forecasts")));

    for (const node of nodes) {
      const res = await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "from_node", data: { origin: node.name } });
      expect(res.status).toBe(200);
    }
    // And once through NGINX's own /v1/ route.
    expect((await publish(nginx.url, TEST_PUBLISH_KEY, { channel: "forecasts", event: "via_nginx", data: null })).status).toBe(200);
    for (const c of clients) {
      await c.waitForMessage((m) => m.event === "via_nginx");
      expect(c.messages("forecasts").map((m) => (m.data as { origin?: string } | null)?.origin ?? null)).toEqual(["node-1", "node-2", "node-3", null]);
    }
  });

  it("never gives a socket to an invalid token", async () => {
    for (const bad of ["garbage", token({ sub: "x" }, { expiresIn: -5 }), undefined]) {
      const outcome = await tryConnect(wsUrl(), bad === undefined ? {} : { token: bad });
      expect(outcome).toMatchObject({ kind: "refused", status: 401 });
    }
  });

  it("reaches one named node for operations and hides /metrics", async () => {
    const readiness = (await (await fetch(`${nginx.url}/node/node-2/readyz`)).json()) as { node: string };
    expect(readiness.node).toBe("node-2");
    expect((await fetch(`${nginx.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${nginx.url}/node/node-9/readyz`)).status).toBe(404);
  });
});
