/**
 * Slow-consumer accounting for Socket.IO sessions, against an event emitter
 * that emits what engine.io's Socket emits (`packetCreate`, `flush`,
 * `upgrade`), and the App wrapper against a recording App. The whole path,
 * stalled clients included, runs in slow-consumer-socketio.test.ts.
 */

import { EventEmitter } from "node:events";
import type { TemplatedApp } from "uWebSockets.js";
import { describe, expect, it } from "vitest";
import { cutSession, isSlowConsumer, PollingBacklog, withSocketIoBackpressure, type EngineConnection } from "../../src/transport/socketio-backpressure.js";

class FakeConnection extends EventEmitter {
  transport: { name: string; socket?: { getBufferedAmount(): number; close(): void } } = { name: "polling" };
  closes: Array<boolean | undefined> = [];

  close(discard?: boolean): void {
    this.closes.push(discard);
  }

  queue(bytes: number): void {
    this.emit("packetCreate", { data: "x".repeat(bytes) });
  }
}

function asEngine(conn: FakeConnection): EngineConnection {
  return conn as unknown as EngineConnection;
}

async function nextTick(): Promise<void> {
  await new Promise((resolve) => process.nextTick(resolve));
}

describe("PollingBacklog", () => {
  it("counts queued bytes until a poll takes them, and calls a session stalled only when it did not poll between two checks", () => {
    const conn = new FakeConnection();
    const backlog = new PollingBacklog(asEngine(conn), 4000, () => undefined);
    conn.queue(1500);
    // Polled since the session began: not stalled yet, however much is queued.
    expect(backlog.stalled(1000)).toBe(false);
    expect(backlog.stalled(1000)).toBe(true);
    conn.emit("flush");
    expect(backlog.stalled(1000)).toBe(false);
    conn.queue(900);
    expect(backlog.stalled(1000)).toBe(false);
    conn.queue(200);
    expect(backlog.stalled(1000)).toBe(true);
  });

  it("reports an overflow past the hard cap once, on the next tick", async () => {
    const conn = new FakeConnection();
    let overflows = 0;
    new PollingBacklog(asEngine(conn), 4000, () => overflows++);
    conn.queue(4000);
    await nextTick();
    expect(overflows).toBe(0);
    conn.queue(1);
    conn.queue(5000);
    expect(overflows).toBe(0);
    await nextTick();
    expect(overflows).toBe(1);
    conn.queue(5000);
    await nextTick();
    expect(overflows).toBe(1);
  });

  it("counts bytes of binary packets, and stops counting once the session upgrades to WebSocket", async () => {
    const conn = new FakeConnection();
    let overflows = 0;
    const backlog = new PollingBacklog(asEngine(conn), 100, () => overflows++);
    conn.emit("packetCreate", { data: new Uint8Array(60) });
    conn.emit("packetCreate", { data: new ArrayBuffer(30) });
    conn.emit("packetCreate", {});
    backlog.stalled(80);
    expect(backlog.stalled(80)).toBe(true);
    conn.emit("upgrade");
    expect(conn.listenerCount("packetCreate")).toBe(0);
    conn.queue(1000);
    await nextTick();
    expect(overflows).toBe(0);
    expect(backlog.stalled(80)).toBe(false);
  });
});

describe("isSlowConsumer and cutSession", () => {
  it("read a WebSocket session's uWS buffer and cut it abruptly; close a polling session discarding its queue", () => {
    const conn = new FakeConnection();
    let buffered = 0;
    let abrupt = 0;
    conn.transport = { name: "websocket", socket: { getBufferedAmount: () => buffered, close: () => abrupt++ } };
    expect(isSlowConsumer(asEngine(conn), undefined, 1000)).toBe(false);
    buffered = 1001;
    expect(isSlowConsumer(asEngine(conn), undefined, 1000)).toBe(true);
    cutSession(asEngine(conn));
    expect(abrupt).toBe(1);
    expect(conn.closes).toEqual([]);

    const polling = new FakeConnection();
    expect(isSlowConsumer(asEngine(polling), undefined, 1000)).toBe(false);
    cutSession(asEngine(polling));
    expect(polling.closes).toEqual([true]);
  });
});

describe("withSocketIoBackpressure", () => {
  it("gives engine.io's WebSocket behaviour the hard cap with closeOnBackpressureLimit, and passes everything else through", () => {
    const declared: Array<{ pattern: string; behavior: Record<string, unknown> }> = [];
    const routes: string[] = [];
    const app = {
      ws(pattern: string, behavior: Record<string, unknown>) {
        declared.push({ pattern, behavior });
        return this;
      },
      any(pattern: string) {
        routes.push(pattern);
        return this;
      },
      publish(topic: string) {
        return topic === "t";
      },
    };
    const wrapped = withSocketIoBackpressure(app as unknown as TemplatedApp, 1000);
    const chained = wrapped.any("/socket.io/", () => undefined).ws("/socket.io/", { maxBackpressure: 5, idleTimeout: 7 });
    expect(chained).toBe(wrapped);
    expect(routes).toEqual(["/socket.io/"]);
    expect(declared).toEqual([{ pattern: "/socket.io/", behavior: { maxBackpressure: 4000, idleTimeout: 7, closeOnBackpressureLimit: 1 } }]);
    expect(wrapped.publish("t", "m")).toBe(true);
  });
});
