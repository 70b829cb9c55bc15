import { describe, expect, it } from "vitest";
import { GatewayClient } from "../../src/client/client.js";
import { fakeServer, flush, ManualTimers, seededRandom } from "./fakes.js";
import { closedAfterEach } from "./harness.js";

const started = closedAfterEach();

describe("connection states", () => {
  it("goes connecting → connected → disconnected → reconnecting → connecting → connected", async () => {
    const h = await started({ initialDelayMs: 1000 });
    expect(h.server.last().url).toBe("ws://gw.test/ws");
    // The token is offered as a subprotocol, never put in the URL (URLs reach logs).
    expect(h.server.last().protocols).toEqual(["gateway.v1", "bearer.t0"]);
    h.server.last().accept({ node: "node-2" });
    expect(h.client.state).toBe("connected");
    expect(h.client.node).toBe("node-2");

    h.server.last().drop(1006);
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    h.server.last().accept({ node: "node-3" });

    // The client starts in `connecting`; `state` reports changes from there.
    expect(h.of("state").map((s) => s.state)).toEqual(["connected", "disconnected", "reconnecting", "connecting", "connected"]);
    expect(h.of("connecting").map((c) => c.attempt)).toEqual([0, 1]);
    expect(h.of("disconnected")).toEqual([{ code: 1006, reason: "", willReconnect: true }]);
    expect(h.of("reconnecting")).toEqual([{ attempt: 1, delayMs: 500, code: 1006, strategy: "backoff" }]);
    expect(h.of("connected").map((c) => c.node)).toEqual(["node-2", "node-3"]);
    expect(h.server.sockets).toHaveLength(2);
  });

  it("retries failed attempts with a growing, capped ceiling and no disconnected event", async () => {
    const h = await started({ initialDelayMs: 1000, maxDelayMs: 5000, random: () => 0.999_999 });
    for (let i = 0; i < 6; i++) {
      h.server.last().fail();
      await h.timers.advance(h.timers.nextDelay() ?? 0);
    }
    expect(h.of("reconnecting").map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 999],
      [2, 1999],
      [3, 3999],
      [4, 4999],
      [5, 4999],
      [6, 4999],
    ]);
    expect(h.of("disconnected")).toEqual([]);
    expect(h.server.sockets).toHaveLength(7);
    h.server.last().accept();
    expect(h.client.state).toBe("connected");
  });

  it("resets the attempt count only after a connection stayed up", async () => {
    const h = await started({ initialDelayMs: 1000, stableAfterMs: 5000 });
    h.server.last().fail();
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    h.server.last().accept();
    // Flapping: welcomed, then dropped at once. The count goes on.
    h.server.last().drop();
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    h.server.last().accept();
    await h.timers.advance(5000);
    // Stable for 5 s: the next loss starts over at attempt 1.
    h.server.last().drop();
    expect(h.of("reconnecting").map((r) => r.attempt)).toEqual([1, 2, 1]);
  });

  it("reconnects at once with drain jitter after 1012, not with backoff", async () => {
    const h = await started({ initialDelayMs: 60_000, drainJitterMs: 1000, random: () => 0.25 });
    h.server.last().accept();
    h.server.last().drop(1012, "node draining, reconnect");
    expect(h.of("disconnected")).toEqual([{ code: 1012, reason: "node draining, reconnect", willReconnect: true }]);
    expect(h.of("reconnecting")).toEqual([{ attempt: 1, delayMs: 250, code: 1012, strategy: "drain" }]);
    await h.timers.advance(249);
    expect(h.server.sockets).toHaveLength(1);
    await h.timers.advance(1);
    expect(h.server.sockets).toHaveLength(2);
  });

  it("spreads a drained node's clients over the jitter window", async () => {
    const timers = new ManualTimers();
    const server = fakeServer(timers);
    const random = seededRandom(99);
    const delays: number[] = [];
    const clients = Array.from({ length: 50 }, () => new GatewayClient("ws://gw.test/ws", { token: "t" }, { WebSocket: server.Socket, timers, random, drainJitterMs: 1000 }));
    for (const client of clients) client.on("reconnecting", (r) => delays.push(r.delayMs));
    await flush();
    for (const socket of server.sockets) socket.accept();
    for (const socket of [...server.sockets]) socket.drop(1012);
    expect(delays).toHaveLength(50);
    expect(Math.max(...delays)).toBeLessThan(1000);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(800);
    expect(new Set(delays).size).toBeGreaterThan(45);
    await Promise.all(clients.map((c) => c.close()));
  });

  it("reconnects after 4001 with a fresh token from getToken", async () => {
    let issued = 0;
    const h = await started({}, { getToken: () => Promise.resolve(`token-${++issued}`) });
    h.server.last().accept();
    h.server.last().drop(4001, "token expired");
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    expect(h.server.sockets.map((s) => s.protocols[1])).toEqual(["bearer.token-1", "bearer.token-2"]);
  });

  it("retries with backoff when getToken fails", async () => {
    let calls = 0;
    const h = await started({}, { getToken: () => (++calls === 1 ? Promise.reject(new Error("auth server down")) : Promise.resolve("ok")) });
    expect(h.server.sockets).toHaveLength(0);
    expect(h.of("error").map((e) => e.code)).toEqual(["token_unavailable"]);
    expect(h.of("reconnecting")).toHaveLength(1);
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    expect(h.server.sockets).toHaveLength(1);
  });

  it("gives up on an attempt that gets no welcome in time", async () => {
    const h = await started({ connectTimeoutMs: 3000 });
    await h.timers.advance(3000);
    expect(h.server.sockets[0]?.closedByClient).not.toBeNull();
    expect(h.of("reconnecting")).toEqual([{ attempt: 1, delayMs: 500, code: 1006, strategy: "backoff" }]);
  });

  it("stays down after close(): no reconnect, one disconnected event", async () => {
    const h = await started();
    h.server.last().accept();
    await h.client.close();
    await h.timers.advance(120_000);
    expect(h.client.state).toBe("disconnected");
    expect(h.server.sockets).toHaveLength(1);
    expect(h.server.last().closedByClient).toEqual({ code: 1000, reason: "client closed" });
    expect(h.of("disconnected")).toEqual([{ code: 1000, reason: "client closed", willReconnect: false }]);
    expect(h.of("reconnecting")).toEqual([]);
  });

  it("explains a missing WebSocket implementation", () => {
    const globals = globalThis as { WebSocket?: unknown };
    const saved = globals.WebSocket;
    delete globals.WebSocket;
    try {
      expect(() => new GatewayClient("ws://x/ws", { token: "t" })).toThrow(/options\.WebSocket/);
    } finally {
      if (saved !== undefined) globals.WebSocket = saved;
    }
  });
});
