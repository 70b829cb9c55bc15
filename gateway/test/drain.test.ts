/**
 * SIGTERM: the node stops taking sockets, closes the open ones with 1012
 * spread over the drain window, and exits 0.
 */

import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloseCodes } from "../../shared/src/codes.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, tryConnect, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let node: GatewayNode;
const clients: TestClient[] = [];
let ioClient: Socket;
const windowMs = 1000;

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({ name: "drainer", redisUrl: redis.url, redisPrefix: uniquePrefix("drain"), env: { DRAIN_WINDOW_MS: String(windowMs) } });
  for (let i = 0; i < 40; i++) clients.push(await connect(node.wsUrl, { token: token({ sub: `d${i}` }) }));
  ioClient = io(node.httpUrl, { extraHeaders: { authorization: `Bearer ${token({ sub: "io-drained" })}` }, transports: ["websocket"], reconnection: false });
  await new Promise((resolve) => ioClient.once("welcome", resolve));
});

afterAll(async () => {
  ioClient?.close();
  await node?.stop("SIGKILL");
  await redis?.stop();
});

describe("SIGTERM drain", () => {
  it("closes every socket with 1012 over the window, refuses new ones, exits 0", async () => {
    const closedAt: number[] = [];
    const closes = clients.map((c) => c.closed.then((closed) => (closedAt.push(Date.now()), closed)));
    const ioClosing = new Promise((resolve) => ioClient.once("closing", resolve));
    const ioDisconnect = new Promise((resolve) => ioClient.once("disconnect", resolve));
    const started = Date.now();
    node.proc.child.kill("SIGTERM");

    const first = await Promise.race(closes);
    expect(first.code).toBe(CloseCodes.serverRestart.code);
    await expect(tryConnect(node.wsUrl, { token: token({ sub: "newcomer" }), timeoutMs: 2000 })).rejects.toThrow();

    const all = await Promise.all(closes);
    for (const closed of all) expect(closed).toEqual({ code: CloseCodes.serverRestart.code, reason: CloseCodes.serverRestart.reason });
    const spread = Math.max(...closedAt) - Math.min(...closedAt);
    expect(spread).toBeGreaterThan(windowMs / 2);
    expect(Math.max(...closedAt) - started).toBeLessThan(windowMs + 2000);

    // Socket.IO sessions hear the same code, then lose their transport, which
    // is what makes socket.io-client reconnect by itself.
    expect(await ioClosing).toEqual({ code: CloseCodes.serverRestart.code, reason: CloseCodes.serverRestart.reason, reconnect: true });
    expect(await ioDisconnect).toBe("transport close");

    const exit = await node.proc.exited;
    expect(exit).toMatchObject({ code: 0 });
  });
});
