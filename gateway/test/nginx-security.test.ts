/**
 * What the real NGINX in front of real nodes gives away, seen from outside:
 * no bearer token in any log line (NGINX's access log, the nodes' own logs),
 * the operations routes only to loopback and configured operations networks
 * however the path is encoded, and a public /readyz that says ready or not and
 * nothing else, while the reason stays in the node's log and metrics.
 *
 * Everything is on loopback: 127.0.0.1 is an operator, 127.0.0.3 a configured
 * operations network, 127.0.0.2 the internet.
 */

import { readFile } from "node:fs/promises";
import path from "node:path";
import { io } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BEARER_SUBPROTOCOL_PREFIX, WS_SUBPROTOCOL } from "../../shared/src/protocol.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { freePort } from "../../scripts/lib/ports.js";
import { repoRoot } from "../../scripts/lib/paths.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { getFrom } from "./support/http-from.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, tryConnect } from "./support/ws-client.js";

const OPERATOR = "127.0.0.1";
const OPS_NETWORK = "127.0.0.3";
const OUTSIDER = "127.0.0.2";

let redis: RedisHandle;
let nodes: GatewayNode[] = [];
/** A node whose Redis never answers: never ready. */
let lonely: GatewayNode;
let nginx: NginxHandle;
let lonelyNginx: NginxHandle;

beforeAll(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix("nginx-sec");
  // trace: any line a node could write about a request is in its output.
  const env = { LOG_LEVEL: "trace" };
  [nodes, lonely] = await Promise.all([
    Promise.all(["node-1", "node-2"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env }))),
    freePort().then((port) => startGatewayNode({ name: "lonely", redisUrl: `redis://127.0.0.1:${port}`, redisPrefix: prefix, env, waitReady: false })),
  ]);
  [nginx, lonelyNginx] = await Promise.all([
    startNginx({ nodes: nodes.map((node) => ({ name: node.name, host: "127.0.0.1", port: node.port })), opsNetworks: [`${OPS_NETWORK}/32`] }),
    startNginx({ nodes: [{ name: lonely.name, host: "127.0.0.1", port: lonely.port }] }),
  ]);
});

afterAll(async () => {
  await Promise.all([nginx?.stop(), lonelyNginx?.stop()]);
  await Promise.all([...nodes, lonely].map((node) => node?.stop()));
  await redis?.stop();
});

describe("no bearer token in any log line", () => {
  it("every NGINX log_format logs the path without the query, and no credential header", async () => {
    const conf = await readFile(path.join(repoRoot(), "nginx", "nginx.conf"), "utf8");
    const formats = [...conf.matchAll(/log_format\s+\S+\s+((?:'[^']*'\s*)+);/g)].map((match) => match[1] ?? "");
    expect(formats.length).toBeGreaterThan(0);
    for (const format of formats) {
      expect(format).not.toMatch(/\$(request|request_uri|request_body|args|query_string|arg_\w+|http_authorization|http_sec_websocket_protocol|http_cookie)\b/);
    }
  });

  it("keeps tokens out of NGINX's access log and the nodes' logs, whichever way they travel", async () => {
    const wsUrl = `${nginx.url.replace("http", "ws")}/ws`;
    const sent = {
      query: token({ sub: "via-query" }),
      header: token({ sub: "via-header" }),
      subprotocol: token({ sub: "via-subprotocol" }),
      refresh: token({ sub: "via-query", iat: Math.floor(Date.now() / 1000) + 1 }),
      socketIoQuery: token({ sub: "via-socketio" }),
      expired: token({ sub: "expired" }, { expiresIn: -60 }),
      forged: `${token({ sub: "forged" }).slice(0, -4)}AAAA`,
    };

    const byQuery = await connect(wsUrl, { token: sent.query, tokenInQuery: true });
    expect(await byQuery.request({ type: "refresh", token: sent.refresh })).toMatchObject({ ok: true });
    const byHeader = await connect(wsUrl, { token: sent.header });
    const bySubprotocol = await connect(wsUrl, { protocols: [WS_SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${sent.subprotocol}`] });
    for (const bad of [sent.expired, sent.forged]) expect(await tryConnect(wsUrl, { token: bad, tokenInQuery: true })).toMatchObject({ kind: "refused", status: 401 });
    // withCredentials keeps the sticky cookie, so every poll reaches the node holding the session.
    const socket = io(nginx.url, { query: { token: sent.socketIoQuery }, transports: ["polling"], withCredentials: true, reconnection: false, timeout: 5000 });
    await new Promise<void>((resolve, reject) => {
      socket.once("welcome", () => resolve());
      socket.once("connect_error", reject);
    });
    socket.close();
    await Promise.all([byQuery, byHeader, bySubprotocol].map((client) => client.close()));

    // A WebSocket is logged when it closes.
    const accessLog = await eventually(
      () => readFile(path.join(nginx.dir, "access.log"), "utf8"),
      (text) => text.split("\n").filter((line) => line.includes('"GET /ws HTTP/1.1"')).length >= 5,
    );
    expect(accessLog).toContain('"GET /socket.io/ HTTP/1.1" 200');
    const nodeLogs = [...nodes, lonely].map((node) => node.proc.output()).join("\n");
    for (const [how, secret] of Object.entries(sent)) {
      const signature = secret.split(".")[2] ?? secret;
      expect(accessLog.includes(signature), `NGINX access log holds the ${how} token`).toBe(false);
      expect(nodeLogs.includes(signature), `a node's log holds the ${how} token`).toBe(false);
    }
    expect(accessLog).not.toContain("token=");
  });
});

describe("operations routes", () => {
  const routes = ["/node/node-1/readyz", "/node/node-1/metrics", "/node/node-2/healthz"];
  // Spellings NGINX decodes or normalises to an operations route: the ops check sees them all.
  const disguised = [
    "/node/node-1/metrics%3F",
    "/node/node-1/metrics%3Fx=1",
    "/node/node-1/%2Fmetrics",
    "/node/node-1//metrics",
    "/node/node-1/x/..%2Fmetrics",
    "/node/node-1/./metrics",
    "/node%2Fnode-1/metrics",
    "/%6Eode/node-1/metrics",
    "/v1/../node/node-1/metrics",
    "/v1/..%2Fnode/node-1/metrics",
  ];
  // Spellings that are not operations routes to NGINX, but might be to a node.
  const elsewhere = ["/NODE/node-1/metrics", "/socket.io/..%2F..%2Fnode/node-1/metrics", "/v1/%2E%2E/metrics"];

  it("refuses outsiders with 403 on every route and spelling, without telling which nodes exist", async () => {
    for (const route of [...routes, ...disguised, "/node/node-9/readyz", "/node/", "/node/node-1"]) {
      const answer = await getFrom(nginx.url, route, OUTSIDER);
      expect({ route, status: answer.status }).toEqual({ route, status: 403 });
      expect(answer.body, route).not.toMatch(/gateway_|process_cpu|"node":/);
    }
    for (const route of elsewhere) {
      const answer = await getFrom(nginx.url, route, OUTSIDER);
      expect(answer.status, route).toBeGreaterThanOrEqual(400);
      expect(answer.body, route).not.toMatch(/gateway_|process_cpu|"node":/);
    }
  });

  it("serves loopback and the configured operations network", async () => {
    for (const from of [OPERATOR, OPS_NETWORK]) {
      expect(JSON.parse((await getFrom(nginx.url, "/node/node-1/readyz", from)).body)).toEqual({ status: "ready", node: "node-1" });
      const metrics = await getFrom(nginx.url, "/node/node-2/metrics", from);
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain('gateway_connections{transport="ws",node="node-2"}');
      expect((await getFrom(nginx.url, "/node/node-9/readyz", from)).status).toBe(404);
    }
  });

  it("never serves /metrics through the balancer, however spelled", async () => {
    for (const route of ["/metrics", "/metrics/", "/metrics%3F", "//metrics", "/%6Detrics", "/./metrics", "/x/../metrics", "/v1/..%2Fmetrics", "/metrics?x=1"]) {
      for (const from of [OUTSIDER, OPERATOR]) {
        const answer = await getFrom(nginx.url, route, from);
        expect(answer.status, `${route} from ${from}`).toBe(404);
        expect(answer.body, route).not.toContain("gateway_");
      }
    }
  });
});

describe("public readiness", () => {
  const spellings = ["/readyz", "//readyz", "/./readyz", "/%72eadyz", "/readyz?verbose=1"];

  it("says ready, and nothing else, while a node is ready", async () => {
    for (const route of spellings) {
      const answer = await getFrom(nginx.url, route, OUTSIDER);
      expect({ route, status: answer.status, body: answer.body }).toEqual({ route, status: 200, body: '{"status":"ready"}\n' });
    }
  });

  it("says not ready, without the reason, while none is; the reason is in the node's log, metrics and ops route", async () => {
    for (const route of spellings) {
      const answer = await getFrom(lonelyNginx.url, route, OUTSIDER);
      expect({ route, status: answer.status, body: answer.body }).toEqual({ route, status: 503, body: '{"status":"not_ready"}\n' });
    }
    for (const route of ["/readyz/", "/readyz%3F", "/readyz;x"]) {
      const answer = await getFrom(lonelyNginx.url, route, OUTSIDER);
      expect(answer.body, route).not.toMatch(/redis|reason/);
    }

    await lonely.proc.waitForLine(/"reason":"redis unavailable".*"msg":"not ready"/, 5000, { includeSeen: true });
    expect(await metricValue(lonely.httpUrl, "gateway_not_ready", { reason: "redis_unavailable" })).toBe(1);
    expect(await metricValue(lonely.httpUrl, "gateway_not_ready", { reason: "draining" })).toBe(0);
    const forOperators = await getFrom(lonelyNginx.url, "/node/lonely/readyz", OPERATOR);
    expect(forOperators.status).toBe(503);
    expect(JSON.parse(forOperators.body)).toEqual({ status: "not_ready", node: "lonely", reason: "redis unavailable" });
  });
});
