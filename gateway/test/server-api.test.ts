/**
 * The server API against three real nodes behind real NGINX: one call
 * disconnects a user from every node (raw and Socket.IO sockets alike) and
 * the SDK sees the reason and stays down; one call revokes a user's old
 * tokens everywhere, at connect and at refresh, surviving a node restart;
 * the cluster answers what it holds (channels, nodes).
 */

import { Redis } from "ioredis";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloseCodes } from "../../shared/src/codes.js";
import { connect as sdkConnect, type DisconnectInfo } from "../../shared/src/client/index.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { revocationKeys } from "../src/broker/redis-keys.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { apiCall } from "./support/server-api.js";
import { token } from "./support/tokens.js";
import { connectErrorCode, handshakeStatus, type SocketIoConnectError } from "./support/transport-clients.js";
import { connect, tryConnect, type Closed, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let nodes: GatewayNode[] = [];
let nginx: NginxHandle;
let prefix: string;
const clients: TestClient[] = [];
const sockets: Socket[] = [];

const wsUrl = (): string => `${nginx.url.replace("http", "ws")}/ws`;
const nodeEnv = { PRESENCE_NAMESPACES: "lobby" };

/**
 * Raw sockets through NGINX until one is on every node; bounded. Extra
 * sockets stay open until then, so a balancer that favours the node with
 * the fewest connections moves on to the others.
 */
async function onEveryNode(jwt: string): Promise<TestClient[]> {
  const byNode = new Map<string, TestClient>();
  const extra: TestClient[] = [];
  for (let attempt = 0; attempt < 30 && byNode.size < nodes.length; attempt++) {
    const client = await connect(wsUrl(), { token: jwt });
    clients.push(client);
    const node = client.welcome!.node;
    if (byNode.has(node)) extra.push(client);
    else byNode.set(node, client);
  }
  await Promise.all(extra.map((client) => client.close()));
  expect([...byNode.keys()].sort()).toEqual(nodes.map((node) => node.name).sort());
  return [...byNode.values()];
}

function ioConnect(jwt: string): Promise<{ socket: Socket; closing: Promise<Closed> }> {
  const socket = io(nginx.url, { extraHeaders: { authorization: `Bearer ${jwt}` }, transports: ["websocket"], reconnection: false, timeout: 5000 });
  sockets.push(socket);
  const closing = new Promise<Closed>((resolve) => socket.once("closing", (close: Closed) => resolve(close)));
  return new Promise((resolve, reject) => {
    socket.once("welcome", () => resolve({ socket, closing }));
    socket.once("connect_error", (err: SocketIoConnectError) => reject(new Error(connectErrorCode(err))));
  });
}

/** The HTTP status that refused a Socket.IO handshake with `jwt`. */
function ioRefused(jwt: string, node: GatewayNode): Promise<number | null> {
  const socket = io(node.httpUrl, { extraHeaders: { authorization: `Bearer ${jwt}` }, auth: { token: jwt }, transports: ["polling"], reconnection: false, timeout: 5000 });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    socket.once("welcome", () => reject(new Error("connected with a revoked token")));
    socket.once("connect_error", (err: SocketIoConnectError) => resolve(handshakeStatus(err)));
  });
}

beforeAll(async () => {
  redis = await startRedis();
  prefix = uniquePrefix("api");
  nodes = await Promise.all(["node-1", "node-2", "node-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: nodeEnv })));
  nginx = await startNginx({ nodes: nodes.map((node) => ({ name: node.name, host: "127.0.0.1", port: node.port })) });
});

afterAll(async () => {
  for (const socket of sockets) socket.close();
  await Promise.all(clients.map((client) => client.close()));
  await nginx?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  await redis?.stop();
});

describe("POST /v1/disconnect", () => {
  it("closes every socket of the user on every node, raw and Socket.IO, with 4000 and the reason; others stay", async () => {
    const raw = await onEveryNode(token({ sub: "cheater" }));
    const sio = await ioConnect(token({ sub: "cheater" }));
    const bystanders = await onEveryNode(token({ sub: "bystander" }));

    const started = Date.now();
    const answer = await apiCall(nginx.url, "POST", "/v1/disconnect", { user: "cheater", reason: "banned: cheating" });
    expect(answer).toMatchObject({ status: 200, json: { user: "cheater", reason: "banned: cheating" } });

    const closes = await Promise.all([...raw.map((client) => client.closed), sio.closing]);
    const elapsed = Date.now() - started;
    for (const close of closes) expect(close).toMatchObject({ code: CloseCodes.disconnected.code, reason: "banned: cheating" });
    expect(elapsed, `closed ${elapsed} ms after the call`).toBeLessThan(5000);
    for (const client of bystanders) expect(await client.request({ type: "ping" })).toMatchObject({ ok: true });
  });

  it("tells the SDK the reason and keeps it from reconnecting by itself", async () => {
    const client = sdkConnect(wsUrl(), { token: token({ sub: "sdk-user" }) }, { WebSocket });
    await client.once("connected");
    const disconnected = client.once("disconnected");
    const reconnecting: unknown[] = [];
    client.on("reconnecting", (info) => reconnecting.push(info));
    expect((await apiCall(nginx.url, "POST", "/v1/disconnect", { user: "sdk-user" })).status).toBe(200);
    const info: DisconnectInfo = await disconnected;
    expect(info).toEqual({ code: CloseCodes.disconnected.code, reason: CloseCodes.disconnected.reason, willReconnect: false });
    expect(client.state).toBe("disconnected");
    // The one event that would follow a reconnectable close comes synchronously with it.
    expect(reconnecting).toEqual([]);
    await client.close();
  });

  it("refuses bad requests with a reason, and callers without the key", async () => {
    expect(await apiCall(nginx.url, "POST", "/v1/disconnect", { user: "alice" }, "wrong-key-0123456789")).toMatchObject({ status: 401, json: { error: { code: "unauthorized" } } });
    expect(await apiCall(nginx.url, "POST", "/v1/disconnect", { user: "user:alice" })).toMatchObject({ status: 400, json: { error: { code: "bad_request" } } });
    expect(await apiCall(nginx.url, "POST", "/v1/disconnect", { user: "alice", reason: "x".repeat(101) })).toMatchObject({ status: 400, json: { error: { code: "bad_request" } } });
    expect(await apiCall(nginx.url, "POST", "/v1/disconnect", { user: "alice", reason: "line\nbreak" })).toMatchObject({ status: 400 });
    expect(await apiCall(nginx.url, "POST", "/v1/disconnect", "not an object")).toMatchObject({ status: 400, json: { error: { code: "bad_request" } } });
    expect(await apiCall(nginx.url, "POST", "/v1/revoke", { user: "alice", before: Date.now() + 400 * 86_400_000 })).toMatchObject({ status: 400 });
    expect(await apiCall(nginx.url, "POST", "/v1/revoke", { user: "alice", before: "yesterday" })).toMatchObject({ status: 400 });
  });
});

describe("POST /v1/revoke", () => {
  it("closes sockets holding an old token on every node, refuses it at connect and refresh everywhere, and keeps doing so after a restart", async () => {
    const issued = Math.floor(Date.now() / 1000) - 30;
    const old = token({ sub: "leaked", iat: issued });
    const raw = await onEveryNode(old);
    const sio = await ioConnect(old);

    const answer = await apiCall(nginx.url, "POST", "/v1/revoke", { user: "leaked" });
    expect(answer.status).toBe(200);
    const { before, until } = answer.json as { before: number; until: number };
    // Tokens live at most JWT_MAX_LIFETIME_S (default 86 400 s) plus the clock tolerance (5 s) either side.
    expect(until - Math.max(before, Date.now() - 60_000)).toBeGreaterThanOrEqual(86_410_000 - 60_000);
    const closes = await Promise.all([...raw.map((client) => client.closed), sio.closing]);
    for (const close of closes) expect(close.code).toBe(CloseCodes.tokenRevoked.code);

    for (const node of nodes) {
      const refused = await tryConnect(node.wsUrl, { token: old });
      expect(refused).toMatchObject({ kind: "refused", status: 401 });
      expect(JSON.parse((refused as { body: string }).body)).toMatchObject({ error: { code: "token_revoked" } });
      expect(await ioRefused(old, node)).toBe(401);
    }

    // A token issued after `before` (iat has whole seconds: the next one) works, and cannot be swapped for the old one.
    const fresh = token({ sub: "leaked", iat: Math.ceil((before + 1) / 1000) });
    const client = await connect(wsUrl(), { token: fresh });
    clients.push(client);
    const refresh = await client.request({ type: "refresh", token: old });
    expect(refresh).toMatchObject({ ok: false, error: { code: "token_revoked" } });

    // Stored in Redis with an expiry, so it outlives a node restart and goes by itself.
    const inspect = new Redis(redis.url);
    try {
      const keys = revocationKeys(prefix);
      expect(Number(await inspect.hget(keys.before, "leaked"))).toBe(before);
      expect(await inspect.pttl(keys.until)).toBeGreaterThan(0);
    } finally {
      inspect.disconnect();
    }
    const restarted = nodes[0]!;
    await restarted.stop();
    nodes[0] = await startGatewayNode({ name: restarted.name, redisUrl: redis.url, redisPrefix: prefix, env: nodeEnv, port: restarted.port });
    expect(await tryConnect(nodes[0].wsUrl, { token: old })).toMatchObject({ kind: "refused", status: 401 });
    const again = await connect(nodes[0].wsUrl, { token: fresh });
    clients.push(again);
  });
});

describe("cluster state", () => {
  it("lists channels with subscribers across nodes, by prefix, a page at a time", async () => {
    const subscribers = await onEveryNode(token({ sub: "watcher", channels: ["room:*"] }));
    for (const client of subscribers) {
      await client.subscribe("room:a");
      await client.subscribe("room:b");
    }
    await subscribers[0]!.subscribe("room:c");
    const first = await eventually(
      () => apiCall(nginx.url, "GET", "/v1/channels?prefix=room:&limit=2"),
      (answer) => JSON.stringify(answer.json).includes('"room:b","subscribers":3'),
    );
    expect(first.json).toEqual({ channels: [{ channel: "room:a", subscribers: 3 }, { channel: "room:b", subscribers: 3 }], cursor: "room:b" });
    const second = await apiCall(nginx.url, "GET", "/v1/channels?prefix=room:&limit=2&cursor=room:b");
    expect(second.json).toEqual({ channels: [{ channel: "room:c", subscribers: 1 }], cursor: null });
    expect(await apiCall(nginx.url, "GET", "/v1/channels?limit=0")).toMatchObject({ status: 400 });
    expect(await apiCall(nginx.url, "GET", "/v1/channels?prefix=bad%20prefix")).toMatchObject({ status: 400 });
  });

  it("reports every node: id, connections, subscriptions, readiness, uptime, version", async () => {
    const answer = await eventually(
      () => apiCall(nginx.url, "GET", "/v1/info"),
      (reply) => (reply.json as { nodes?: unknown[] }).nodes?.length === nodes.length,
    );
    const reported = (answer.json as { nodes: Array<Record<string, unknown>> }).nodes;
    expect(reported.map((node) => node["id"])).toEqual(nodes.map((node) => node.name).sort());
    for (const node of reported) {
      expect(node).toMatchObject({ ready: true, version: "0.1.0" });
      expect(node["connections"]).toBeGreaterThanOrEqual(1);
      expect(node["subscriptions"]).toBeGreaterThanOrEqual(node["connections"] as number);
      expect(typeof node["uptimeSeconds"]).toBe("number");
    }
    expect(await apiCall(nginx.url, "GET", "/v1/info", undefined, "wrong-key-0123456789")).toMatchObject({ status: 401 });
  });
});
