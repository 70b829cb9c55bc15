/**
 * docs/openapi.yaml is the node's HTTP contract: it validates as OpenAPI 3.1
 * (@readme/openapi-parser), it lists exactly the routes a running node
 * registers, the node serves it at /v1/openapi.yaml, and the checker that
 * holds every answer in the suite against it (support/openapi-recorder.ts)
 * refuses answers the document does not allow. Every documented route is
 * called here once, so each has answers checked even when no other file
 * calls it.
 */

import { readFileSync } from "node:fs";
import { validate } from "@readme/openapi-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCodes } from "../../shared/src/codes.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import type { Route } from "../src/server.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { OPENAPI_FILE, OpenApiContract } from "./support/openapi-recorder.js";
import { apiCall } from "./support/server-api.js";
import { token } from "./support/tokens.js";
import { tryConnect } from "./support/ws-client.js";

let redis: RedisHandle;
let development: GatewayNode;
let production: GatewayNode;
const contract = new OpenApiContract();

function routesOf(node: GatewayNode): Route[] {
  const line = node.proc
    .output()
    .split("\n")
    .find((text) => text.includes('"msg":"routes"'));
  if (line === undefined) throw new Error(`${node.name} logged no route table`);
  return (JSON.parse(line) as { routes: Route[] }).routes;
}

/**
 * The (path, method) pairs a route table serves, as the document writes
 * them: a WebSocket route is a GET (the upgrade); `any` serves every method
 * of its path. The catch-all `/*` is the document's `x-catch-all`.
 */
function served(routes: readonly Route[]): { exact: Set<string>; anyMethod: Set<string> } {
  const exact = new Set<string>();
  const anyMethod = new Set<string>();
  for (const { method, pattern } of routes) {
    if (pattern === "/*") continue;
    if (method === "any") anyMethod.add(pattern);
    else exact.add(`${method === "ws" ? "get" : method === "del" ? "delete" : method} ${pattern}`);
  }
  return { exact, anyMethod };
}

beforeAll(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix("openapi");
  [development, production] = await Promise.all([
    startGatewayNode({ name: "dev-node", redisUrl: redis.url, redisPrefix: prefix, env: { GATEWAY_ENV: "development", PRESENCE_NAMESPACES: "lobby" } }),
    startGatewayNode({ name: "prod-node", redisUrl: redis.url, redisPrefix: prefix }),
  ]);
});

afterAll(async () => {
  await Promise.all([development?.stop(), production?.stop()]);
  await redis?.stop();
});

describe("docs/openapi.yaml", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await validate(OPENAPI_FILE);
    expect(result.valid, JSON.stringify(result)).toBe(true);
    expect(contract.document["openapi"]).toBe("3.1.0");
  });

  it("lists every error code of shared/src/codes.ts, and no other", () => {
    const schemas = (contract.document["components"] as { schemas: Record<string, { properties: { error: { properties: { code: { enum: string[] } } } } }> }).schemas;
    expect([...schemas["Error"]!.properties.error.properties.code.enum].sort()).toEqual(Object.values(ErrorCodes).map((spec) => spec.code).sort());
  });

  it("lists exactly the routes a node registers", () => {
    const documented = new Set(contract.operations().map(({ path, method }) => `${method} ${path}`));
    const documentedPaths = new Set(contract.operations().map(({ path }) => path));
    for (const node of [development, production]) {
      const routes = routesOf(node);
      expect(routes.some((route) => route.method === "any" && route.pattern === "/*"), "the catch-all 404").toBe(true);
      const { exact, anyMethod } = served(routes);
      // Every route the node registers is documented…
      for (const route of exact) expect(documented, `${node.name} serves ${route}`).toContain(route);
      for (const path of anyMethod) expect(documentedPaths, `${node.name} serves any method of ${path}`).toContain(path);
      // …and, on the development node (which has every route), every documented operation is served.
      if (node !== development) continue;
      for (const operation of documented) {
        const path = operation.slice(operation.indexOf(" ") + 1);
        expect(exact.has(operation) || anyMethod.has(path), `documented ${operation} is served`).toBe(true);
      }
    }
  });

  it("is what the node serves at /v1/openapi.yaml", async () => {
    const res = await fetch(`${development.httpUrl}/v1/openapi.yaml`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/yaml/);
    expect(await res.text()).toBe(readFileSync(OPENAPI_FILE, "utf8"));
    const again = await fetch(`${development.httpUrl}/v1/openapi.yaml`, { headers: { "if-none-match": res.headers.get("etag") ?? "" } });
    expect(again.status).toBe(304);
  });
});

describe("the answer checker", () => {
  const at = (path: string): string => `http://127.0.0.1:1${path}`;
  const node = { uwebsockets: "20", "content-type": "application/json" };

  it("accepts what the document allows", () => {
    expect(contract.problem({ method: "GET", url: at("/healthz"), status: 200, headers: node, body: '{"status":"ok","node":"n"}' })).toBeNull();
    expect(contract.problem({ method: "GET", url: at("/nowhere"), status: 404, headers: node, body: '{"error":{"code":"not_found","message":"no such route"}}' })).toBeNull();
  });

  it("refuses wrong bodies, statuses, content types and undocumented routes", () => {
    expect(contract.problem({ method: "GET", url: at("/healthz"), status: 200, headers: node, body: '{"status":"fine"}' })).toMatch(/does not match the schema/);
    expect(contract.problem({ method: "GET", url: at("/healthz"), status: 418, headers: node, body: "{}" })).toMatch(/status not documented/);
    expect(contract.problem({ method: "GET", url: at("/healthz"), status: 200, headers: { ...node, "content-type": "text/plain" }, body: "ok" })).toMatch(/content type/);
    expect(contract.problem({ method: "GET", url: at("/v1/unlisted"), status: 200, headers: node, body: "{}" })).toMatch(/catch-all/);
    expect(contract.problem({ method: "POST", url: at("/v1/publish"), status: 400, headers: node, body: '{"error":{"code":"made_up","message":"x"}}' })).toMatch(/does not match/);
  });
});

describe("every documented route answers as documented", () => {
  // Each answer below is checked by the recorder (support/openapi-setup.ts); the expectations here only say which answer was asked for.
  it("operations", async () => {
    const base = development.httpUrl;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    expect((await fetch(`${base}/v1/dev/token?sub=alice`)).status).toBe(200);
    expect((await fetch(`${base}/v1/dev/token?sub=user:alice`)).status).toBe(400);
    expect((await fetch(`${base}/v1/dev/token`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${production.httpUrl}/v1/dev/token?sub=alice`)).status).toBe(404);
    expect((await fetch(`${base}/v2/nothing`)).status).toBe(404);
    expect((await fetch(`${base}/v1/publish`)).status).toBe(404);
  });

  it("the live page", async () => {
    for (const file of ["/", "/index.html", "/app.js", "/app.js.map", "/sdk.js", "/sdk.js.map", "/verify-round.js", "/verify-round.js.map", "/style.css"]) {
      const res = await fetch(`${development.httpUrl}${file}`);
      expect(res.status, file).toBe(200);
      const again = await fetch(`${development.httpUrl}${file}`, { headers: { "if-none-match": res.headers.get("etag") ?? "" } });
      expect(again.status, file).toBe(304);
    }
  });

  it("the server API", async () => {
    const base = development.httpUrl;
    expect((await apiCall(base, "POST", "/v1/publish", { channel: "lobby:a", event: "note", data: 1 })).status).toBe(200);
    expect((await apiCall(base, "POST", "/v1/publish", { messages: [{ channel: "lobby:a", event: "note", data: 2 }] })).status).toBe(200);
    expect((await apiCall(base, "POST", "/v1/publish", { channel: "race", event: "x", data: 1 })).status).toBe(403);
    expect((await apiCall(base, "POST", "/v1/publish", { channel: "lobby:a" }, "not-the-key-0123456789")).status).toBe(401);
    expect((await apiCall(base, "GET", "/v1/history?channel=lobby:a&since=0")).status).toBe(200);
    expect((await apiCall(base, "GET", "/v1/history?channel=lobby:a&since=-1")).status).toBe(400);
    expect((await apiCall(base, "POST", "/v1/disconnect", { user: "nobody-here" })).status).toBe(200);
    expect((await apiCall(base, "POST", "/v1/revoke", { user: "nobody-here", before: Date.now() - 1000 })).status).toBe(200);
    expect((await apiCall(base, "GET", "/v1/presence?channel=lobby:a")).status).toBe(200);
    expect((await apiCall(base, "GET", "/v1/presence?channel=lobby:a&stats=1")).status).toBe(200);
    expect((await apiCall(base, "GET", "/v1/presence?channel=forecasts")).status).toBe(400);
    expect((await apiCall(base, "GET", "/v1/channels")).status).toBe(200);
    expect((await apiCall(base, "GET", "/v1/info")).status).toBe(200);
    const big = await fetch(`${base}/v1/revoke`, { method: "POST", headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}` }, body: "x".repeat(5000) });
    expect(big.status).toBe(413);
  });

  it("the client endpoints' refusals and the engine.io handshake", async () => {
    expect(await tryConnect(development.wsUrl)).toMatchObject({ kind: "refused", status: 401 });
    expect((await fetch(`${development.httpUrl}/socket.io/?EIO=4&transport=polling`)).status).toBe(401);
    const handshake = await fetch(`${development.httpUrl}/socket.io/?EIO=4&transport=polling`, { headers: { authorization: `Bearer ${token({ sub: "poller" })}` } });
    expect(handshake.status).toBe(200);
    expect((await fetch(`${development.httpUrl}/socket.io/?EIO=4&transport=bogus`, { headers: { authorization: `Bearer ${token({ sub: "poller" })}` } })).status).toBe(400);
  });
});
