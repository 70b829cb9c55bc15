/**
 * Unmodified socket.io-client against three real nodes behind real NGINX:
 * both transports, cross-node deliveries, acknowledged commands, sticky
 * long-polling, one publish reaching raw and Socket.IO clients alike,
 * Socket.IO's own cluster operations through the Redis adapter, and a token
 * required from the first request of every session.
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
import { CONNECT_TIMEOUT_MS } from "../src/transport/socketio-transport.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connectErrorCode, handshakeStatus, type SocketIoConnectError } from "./support/transport-clients.js";
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

interface Credentials {
  /** The engine.io handshake's token, as `Authorization: Bearer` (default: a good one for the sub); null sends none. */
  readonly handshake?: string | null;
  /** The handshake's token as `?token=` instead, as a browser on the WebSocket transport sends it. */
  readonly query?: string;
  /** The namespace connect's `auth.token`. */
  readonly auth?: string;
}

/** Connects through NGINX and resolves with the socket and its welcome, or rejects with the connect error. */
function ioConnect(sub: string | null, transports: Array<"polling" | "websocket">, credentials: Credentials = {}): Promise<{ socket: Socket; welcome: Welcome; messages: MessageFrame[] }> {
  const handshake = credentials.handshake === undefined ? token({ sub: sub ?? "nobody" }) : credentials.handshake;
  const socket = io(nginx.url, {
    ...(handshake === null ? {} : { extraHeaders: { authorization: `Bearer ${handshake}` } }),
    ...(credentials.query === undefined ? {} : { query: { token: credentials.query } }),
    ...(credentials.auth === undefined ? {} : { auth: { token: credentials.auth } }),
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
    socket.once("connect_error", (err: SocketIoConnectError) => reject(err));
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

  it("refuses a handshake without a good token with 401, on both transports", async () => {
    for (const transports of [["polling"], ["websocket"]] as Array<Array<"polling" | "websocket">>) {
      for (const bad of [null, "garbage", token({ sub: "late" }, { expiresIn: -10 })]) {
        const err = await ioConnect(null, transports, { handshake: bad, auth: token({ sub: "late" }) }).then(
          () => null,
          (e: SocketIoConnectError) => e,
        );
        expect(err, `${transports.join()} ${bad ?? "no token"}`).not.toBeNull();
        expect(handshakeStatus(err!)).toBe(401);
        expect(connectErrorCode(err!)).toBe("invalid_token");
      }
    }
  });

  it("refuses a bad auth.token, or one for another user, at the namespace connect", async () => {
    for (const auth of ["garbage", token({ sub: "someone-else" })]) {
      const err = await ioConnect("honest", ["websocket"], { auth }).then(
        () => null,
        (e: SocketIoConnectError) => e,
      );
      expect(err?.message).toBe("invalid_token");
      expect(err?.data?.code).toBe("invalid_token");
    }
    // A fresher token of the same user is taken over the handshake's.
    const fresh = token({ sub: "honest" }, { expiresIn: 7200 });
    const { welcome, socket } = await ioConnect("honest", ["websocket"], { auth: fresh });
    expect(welcome).toMatchObject({ user: "honest", expiresAt: (JSON.parse(Buffer.from(fresh.split(".")[1]!, "base64url").toString()) as { exp: number }).exp * 1000 });
    socket.close();
  });

  it("takes the handshake token from ?token= for browsers on the WebSocket transport", async () => {
    const { welcome, socket } = await ioConnect("browser-ws", ["websocket"], { handshake: null, query: token({ sub: "browser-ws" }) });
    expect(welcome.user).toBe("browser-ws");
    socket.close();
  });

  it("answers an anonymous polling handshake with 401 and opens no session", async () => {
    const res = await fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: "invalid_token", message: "token required" } });
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  it("closes a session that never connects to the namespace within the connect timeout", async () => {
    const handshake = await fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling`, { headers: { authorization: `Bearer ${token({ sub: "idle-session" })}` } });
    expect(handshake.status).toBe(200);
    const open = JSON.parse((await handshake.text()).slice(1)) as { sid: string };
    // The sticky cookie keeps the polls on the node holding the session.
    const cookie = (handshake.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    const poll = (): Promise<Response> => fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling&sid=${open.sid}`, { headers: { cookie }, signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS + 5000) });
    // The long-poll is answered when the server closes the session, well before the poll's own
    // timeout; with Socket.IO's default connect timeout (45 s) it would be aborted instead.
    const closing = await poll();
    expect(closing.status).toBe(200);
    await eventually(async () => (await poll()).status, (status) => status === 400, 5000);
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
