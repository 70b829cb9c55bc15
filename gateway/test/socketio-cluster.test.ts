/**
 * Unmodified socket.io-client against three real nodes behind real NGINX:
 * both transports, cross-node deliveries, acknowledged commands, sticky
 * long-polling, one publish reaching raw and Socket.IO clients alike, and
 * Socket.IO's own cluster operations through the Redis adapter.
 */

import { Emitter } from "@socket.io/redis-emitter";
import { Redis } from "ioredis";
import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageFrame } from "../../shared/src/protocol.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { newKey } from "./support/bets.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

interface Welcome {
  node: string;
  user: string;
}

let redis: RedisHandle;
let postgres: PostgresHandle;
let nodes: GatewayNode[] = [];
let nginx: NginxHandle;
let prefix: string;
const sockets: Socket[] = [];
const raws: TestClient[] = [];

/** Connects through NGINX and resolves with the socket and its welcome, or rejects with the connect error. */
function ioConnect(sub: string | null, transports: Array<"polling" | "websocket">, rawToken?: string): Promise<{ socket: Socket; welcome: Welcome; messages: MessageFrame[] }> {
  const socket = io(nginx.url, {
    auth: { token: rawToken ?? token({ sub: sub ?? "nobody" }) },
    transports,
    withCredentials: true,
    reconnection: false,
    timeout: 5000,
  });
  sockets.push(socket);
  const messages: MessageFrame[] = [];
  socket.on("message", (frame: MessageFrame) => messages.push(frame));
  return new Promise((resolve, reject) => {
    socket.once("welcome", (welcome: Welcome) => resolve({ socket, welcome, messages }));
    socket.once("connect_error", (err: Error & { data?: unknown }) => reject(err));
  });
}

function nextMessage(messages: MessageFrame[], test: (frame: MessageFrame) => boolean): Promise<MessageFrame> {
  return eventually(async () => messages.find(test), (frame) => frame !== undefined, 10_000) as Promise<MessageFrame>;
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  prefix = uniquePrefix("sio");
  const env = { CLOCK_ENABLED: "true", DATABASE_URL: postgres.url, PG_SCHEMA: `sio_${process.pid}`, ROUND_WAIT_MS: "600000" };
  nodes = await Promise.all(["node-1", "node-2", "node-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env })));
  nginx = await startNginx({ nodes: nodes.map((node) => ({ name: node.name, host: "127.0.0.1", port: node.port })) });
});

afterAll(async () => {
  for (const socket of sockets) socket.close();
  await Promise.all(raws.map((c) => c.close()));
  await nginx?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("Socket.IO through NGINX", () => {
  for (const transports of [["polling", "websocket"], ["websocket"]] as Array<Array<"polling" | "websocket">>) {
    it(`connects over ${transports.join(" → ")}, joins, gets cross-node messages and acknowledged commands`, async () => {
      const { socket, welcome, messages } = await ioConnect(`sio-${transports.length}`, transports);
      expect(welcome.user).toBe(`sio-${transports.length}`);
      const subscribed = await socket.emitWithAck("subscribe", { channel: "race" });
      expect(subscribed).toMatchObject({ ok: true, channel: "race", snapshot: { event: "timer_update" } });
      expect(await socket.emitWithAck("subscribe", { channel: "user:someone-else" })).toMatchObject({ ok: false, error: { code: "forbidden" } });

      const elsewhere = nodes.find((node) => node.name !== welcome.node)!;
      await publish(elsewhere.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:BTC", event: "ignored_before_join", data: null });
      expect(await socket.emitWithAck("subscribe", { channel: "forecasts:BTC" })).toMatchObject({ ok: true });
      await publish(elsewhere.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:BTC", event: "forecast_update", data: { p50: 1 } });
      await publish(elsewhere.httpUrl, TEST_PUBLISH_KEY, { channel: `user:sio-${transports.length}`, event: "portfolio_update", data: { cash: 7 } });
      expect(await nextMessage(messages, (m) => m.event === "forecast_update")).toMatchObject({ type: "message", channel: "forecasts:BTC", data: { p50: 1 } });
      expect(await nextMessage(messages, (m) => m.event === "portfolio_update")).toMatchObject({ channel: `user:sio-${transports.length}`, data: { cash: 7 } });
      expect(messages.some((m) => m.event === "ignored_before_join")).toBe(false);

      const { roundId, odds } = (subscribed as { snapshot: { data: { roundId: number; odds: number[] } } }).snapshot.data;
      const bet = await socket.emitWithAck("command", { name: "place_bet", data: { roundId, selection: 2, amount: 300, odds: odds[1], idempotencyKey: newKey() } });
      expect(bet).toMatchObject({ ok: true, result: { bet: { roundId, selection: 2, amount: 300, odds: odds[1], duplicate: false } } });
      expect(await socket.emitWithAck("command", { name: "place_bet", data: { roundId } })).toMatchObject({ ok: false, error: { code: "invalid_command" } });
    });
  }

  it("keeps a long-polling session on one node across many requests", async () => {
    const { socket, welcome } = await ioConnect("poller", ["polling"]);
    for (let i = 0; i < 40; i++) {
      const pong = (await socket.emitWithAck("ping", {})) as { ok: boolean };
      expect(pong.ok).toBe(true);
    }
    expect(socket.connected).toBe(true);
    expect(socket.io.engine.transport.name).toBe("polling");
    // Every request of the session was answered by the node that welcomed it.
    const sessions = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_connections", { transport: "socketio" })));
    expect(sessions[nodes.findIndex((node) => node.name === welcome.node)]).toBeGreaterThanOrEqual(1);
  });

  it("delivers one publish to raw and Socket.IO clients alike, encoded once per node per protocol", async () => {
    // Earlier sessions sit on `race`, where the clock ticks twice a second;
    // their encodes would be counted below.
    for (const socket of sockets.splice(0)) socket.close();
    await eventually(
      async () => (await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_connections", { transport: "socketio" })))).reduce((a, b) => a + b, 0),
      (open) => open === 0,
    );
    const raw = await connect(`${nginx.url.replace("http", "ws")}/ws`, { token: token({ sub: "raw-side" }) });
    raws.push(raw);
    await raw.subscribe("forecasts");
    const ioClients = await Promise.all(Array.from({ length: 6 }, (_, i) => ioConnect(`io-side-${i}`, ["websocket"])));
    await Promise.all(ioClients.map(({ socket }) => socket.emitWithAck("subscribe", { channel: "forecasts" })));
    const before = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_broadcast_encodes_total", { protocol: "socketio" })));

    await publish(nodes[0]!.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "forecast_update", data: { everyone: true } });
    const rawFrame = await raw.waitForMessage((m) => m.event === "forecast_update");
    for (const { messages } of ioClients) expect(await nextMessage(messages, (m) => m.event === "forecast_update")).toEqual(rawFrame);

    const after = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_broadcast_encodes_total", { protocol: "socketio" })));
    const withSocketIo = new Set(ioClients.map(({ welcome }) => welcome.node));
    nodes.forEach((node, i) => expect(after[i]! - before[i]!, node.name).toBe(withSocketIo.has(node.name) ? 1 : 0));
  });

  it("refuses bad tokens with a connect error", async () => {
    for (const bad of ["garbage", token({ sub: "late" }, { expiresIn: -10 })]) {
      const err = await ioConnect(null, ["websocket"], bad).then(
        () => null,
        (e: Error & { data?: { code: string } }) => e,
      );
      expect(err?.message).toBe("invalid_token");
      expect(err?.data?.code).toBe("invalid_token");
    }
  });

  it("carries Socket.IO's own cluster operations over the Redis adapter", async () => {
    const { messages: _unused, socket } = await ioConnect("emitted-to", ["websocket"]);
    const received = new Promise<unknown>((resolve) => socket.once("announcement", resolve));
    const redisClient = new Redis(redis.url);
    try {
      new Emitter(redisClient, { key: `${prefix}:sio` }).to("user:emitted-to").emit("announcement", { from: "backend" });
      expect(await received).toEqual({ from: "backend" });
    } finally {
      redisClient.disconnect();
    }
  });
});
