/**
 * NGINX's per-address limits on the socket routes, through a real NGINX in
 * front of a real node: past limit_conn or limit_req, an address gets 429
 * with the gateway's error body, while another address is served. Client
 * addresses are loopback source addresses (any 127.x.y.z is local).
 */

import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_NGINX_LIMITS, renderLimitsConf, startNginx, type NginxHandle, type NginxLimits } from "../../scripts/lib/nginx.js";
import { repoRoot } from "../../scripts/lib/paths.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { tryConnect, type ConnectOutcome, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let node: GatewayNode;
const proxies: NginxHandle[] = [];
const clients: TestClient[] = [];
let users = 0;

async function proxy(limits: NginxLimits): Promise<NginxHandle> {
  const nginx = await startNginx({ nodes: [{ name: node.name, host: "127.0.0.1", port: node.port }], limits });
  proxies.push(nginx);
  return nginx;
}

/** A /ws connection through `nginx` from `localAddress`, as a new user each time. */
async function open(nginx: NginxHandle, localAddress: string): Promise<ConnectOutcome> {
  const outcome = await tryConnect(`ws://127.0.0.1:${nginx.port}/ws`, { token: token({ sub: `nl-${users++}` }), localAddress });
  if (outcome.kind === "open") clients.push(outcome.client);
  return outcome;
}

function refusal(outcome: ConnectOutcome): { status: number; code: string } | "open" {
  if (outcome.kind === "open") return "open";
  return { status: outcome.status, code: (JSON.parse(outcome.body) as { error: { code: string } }).error.code };
}

/** An HTTP request through `nginx` from `localAddress`: status and body. */
function request(nginx: NginxHandle, method: "GET" | "POST", pathAndQuery: string, localAddress: string, body = ""): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: nginx.port, method, path: pathAndQuery, localAddress, agent: false }, (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const get = (nginx: NginxHandle, pathAndQuery: string, localAddress: string): Promise<{ status: number; body: string }> => request(nginx, "GET", pathAndQuery, localAddress);

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({ name: "nginx-limits", redisUrl: redis.url, redisPrefix: uniquePrefix("nginx-limits") });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(proxies.map((p) => p.stop()));
  await node?.stop();
  await redis?.stop();
});

describe("NGINX per-address socket limits", () => {
  it("limit_conn: an address past its sockets gets 429 too_many_address_connections, another address is served", async () => {
    const nginx = await proxy({ socketsPerAddress: 3, newSocketsPerSecond: 1000, newSocketBurst: 1000 });
    for (let i = 0; i < 3; i++) expect(refusal(await open(nginx, "127.0.0.11"))).toBe("open");
    expect(refusal(await open(nginx, "127.0.0.11"))).toEqual({ status: 429, code: "too_many_address_connections" });
    expect(refusal(await open(nginx, "127.0.0.12"))).toBe("open");
    // A socket that closes frees its place.
    const first = clients.find((c) => c.socket.url.includes(`:${nginx.port}/`));
    await first?.close();
    await eventually(async () => refusal(await open(nginx, "127.0.0.11")), (outcome) => outcome === "open");
  });

  it("limit_req: an address opening sockets too fast gets 429 connect_rate_limited, another address is served", async () => {
    const nginx = await proxy({ socketsPerAddress: 1000, newSocketsPerSecond: 1, newSocketBurst: 2 });
    // One at the rate plus a burst of two, at once; the fourth is over.
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(refusal(await open(nginx, "127.0.0.21")));
    expect(outcomes).toEqual(["open", "open", "open", { status: 429, code: "connect_rate_limited" }]);
    expect(refusal(await open(nginx, "127.0.0.22"))).toBe("open");
  });

  it("limit_req counts Socket.IO handshakes, not the requests of a session", async () => {
    const nginx = await proxy({ socketsPerAddress: 1000, newSocketsPerSecond: 1, newSocketBurst: 1 });
    // A handshake carries its token (the gateway refuses anonymous engine.io sessions).
    const HANDSHAKE = `/socket.io/?EIO=4&transport=polling&token=${token({ sub: "nginx-limits" })}`;
    const handshake = await get(nginx, HANDSHAKE, "127.0.0.31");
    expect(handshake.status).toBe(200);
    const sid = (JSON.parse(handshake.body.slice(handshake.body.indexOf("{"))) as { sid: string }).sid;
    expect((await get(nginx, HANDSHAKE, "127.0.0.31")).status).toBe(200);
    const over = await get(nginx, HANDSHAKE, "127.0.0.31");
    expect(over.status).toBe(429);
    expect(JSON.parse(over.body)).toMatchObject({ error: { code: "connect_rate_limited" } });
    // The session's own requests carry its sid and are not new sockets.
    const send = await request(nginx, "POST", `/socket.io/?EIO=4&transport=polling&sid=${sid}`, "127.0.0.31", "40");
    expect(send.status).toBe(200);
    expect((await get(nginx, HANDSHAKE, "127.0.0.32")).status).toBe(200);
  });

  it("leaves the publish API and the nodes' other routes alone", async () => {
    const nginx = await proxy({ socketsPerAddress: 1, newSocketsPerSecond: 1, newSocketBurst: 1 });
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await request(nginx, "POST", "/v1/publish", "127.0.0.41", "{}")).status, (await get(nginx, "/readyz", "127.0.0.41")).status);
    }
    expect(statuses).toEqual(Array.from({ length: 5 }, () => [401, 200]).flat());
  });
});

describe("nginx/limits.compose.conf", () => {
  it("is what scripts/lib/nginx.ts renders for the defaults", () => {
    const compose = readFileSync(path.join(repoRoot(), "nginx", "limits.compose.conf"), "utf8");
    const body = (text: string): string => text.split("\n").slice(1).join("\n");
    expect(body(compose)).toBe(body(renderLimitsConf(DEFAULT_NGINX_LIMITS)));
  });
});
