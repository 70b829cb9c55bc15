/**
 * Slow consumers on Socket.IO, held to the same bound as `/ws`: what a
 * session holds for a client that has not taken it yet may not pass
 * MAX_BACKPRESSURE_BYTES (checked by the sweep) nor 4x that (checked as it
 * grows), and past either the session is cut and counted.
 *
 * A Socket.IO session buffers in one of two places, by transport:
 * - WebSocket: in uWebSockets.js, like a raw socket. socket.io publishes every
 *   room broadcast with uWS `app.publish`, so its WebSocket behaviour decides
 *   what happens past the limit. engine.io declares that behaviour itself and
 *   passes no `closeOnBackpressureLimit`, and left alone uWS then skips a
 *   socket past 64 KiB without a word: messages lost with no gap and no close.
 * - Long-polling: in engine.io's per-session `writeBuffer`, a JavaScript array
 *   that grows until the client's next poll and has no bound of its own; a
 *   client that stops polling keeps it growing until engine.io's ping timeout
 *   (45 s).
 */

import type { TemplatedApp, WebSocketBehavior } from "uWebSockets.js";

/** The part of engine.io's uWS WebSocket transport the sweep reads: the uWS socket it keeps as `socket`. */
interface UwsTransportSocket {
  getBufferedAmount(): number;
  /** Abrupt: a close frame would queue behind the very backlog that is the problem. */
  close(): void;
}

/** A packet as engine.io queues it: `data` is a string, or bytes for binary packets. */
interface EnginePacket {
  readonly data?: unknown;
}

/**
 * An engine.io connection (`socket.conn`) as this module uses it. Its
 * typings do not expose the transport's uWS socket, the `packetCreate` and
 * `flush` events, or `close(discard)`, all stable parts of engine.io 6.
 */
export interface EngineConnection {
  readonly transport: { readonly name: string; readonly socket?: UwsTransportSocket };
  on(event: "packetCreate", listener: (packet: EnginePacket) => void): unknown;
  on(event: "flush", listener: () => void): unknown;
  once(event: "upgrade", listener: () => void): unknown;
  once(event: "close", listener: () => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  /** With `discard`, closes at once even with packets queued (which a plain close waits to flush). */
  close(discard?: boolean): void;
}

/** How far past the soft limit a backlog may grow before it is cut at once, as uWS' hard cap does for `/ws`. */
export const HARD_CAP_FACTOR = 4;

/**
 * The App as engine.io should see it: identical, except that the WebSocket
 * behaviour engine.io declares for `/socket.io/` gets the raw path's hard cap
 * (4x MAX_BACKPRESSURE_BYTES) with `closeOnBackpressureLimit`, so a burst past
 * it between sweeps closes the socket instead of losing messages silently.
 * engine.io's uWS options take `maxBackpressure` but not the close flag.
 */
export function withSocketIoBackpressure(app: TemplatedApp, maxBackpressureBytes: number): TemplatedApp {
  const bounded: TemplatedApp = new Proxy(app, {
    get(target, property) {
      if (property === "ws") {
        return <UserData>(pattern: string, behavior: WebSocketBehavior<UserData>): TemplatedApp => {
          target.ws(pattern, { ...behavior, maxBackpressure: maxBackpressureBytes * HARD_CAP_FACTOR, closeOnBackpressureLimit: 1 });
          return bounded;
        };
      }
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      // Native methods need the real App as `this`; chained calls (`app.any(…).ws(…)`) must stay on the proxy.
      return (...args: unknown[]): unknown => {
        const result: unknown = Reflect.apply(value, target, args);
        return result === target ? bounded : result;
      };
    },
  });
  return bounded;
}

function packetBytes(packet: EnginePacket): number {
  const data = packet.data;
  // String length for bytes, as `/ws` counts: close enough for a threshold.
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/**
 * The bytes queued in one long-polling session's `writeBuffer`, counted as
 * packets are queued (engine.io's `packetCreate`) and cleared when a poll
 * takes them (`flush`), so reading it costs nothing.
 *
 * A healthy polling client always has some backlog: whatever arrives while
 * its next poll is on the way. A WebSocket client's kernel buffers absorb
 * such a burst; here the queue is all there is. So the soft limit cuts a
 * session only when it also took nothing for a whole sweep interval
 * (`stalled`), and only the hard cap cuts at once: past it `overflow` is
 * called once, on the next tick, outside socket.io's broadcast loop. Stops
 * counting when the session upgrades to WebSocket, where uWS holds the
 * backlog instead.
 */
export class PollingBacklog {
  private bytes = 0;
  private polledSinceCheck = true;
  private overflowed = false;

  constructor(
    private readonly conn: EngineConnection,
    private readonly hardCapBytes: number,
    private readonly overflow: () => void,
  ) {
    conn.on("packetCreate", this.queued);
    conn.on("flush", this.taken);
    conn.once("upgrade", this.stop);
    conn.once("close", this.stop);
  }

  /** More than `limit` bytes queued and no poll since the previous call: what the sweep cuts. */
  stalled(limit: number): boolean {
    const stalled = this.bytes > limit && !this.polledSinceCheck;
    this.polledSinceCheck = false;
    return stalled;
  }

  private readonly queued = (packet: EnginePacket): void => {
    this.bytes += packetBytes(packet);
    if (this.bytes <= this.hardCapBytes || this.overflowed) return;
    this.overflowed = true;
    process.nextTick(this.overflow);
  };

  private readonly taken = (): void => {
    this.bytes = 0;
    this.polledSinceCheck = true;
  };

  private readonly stop = (): void => {
    this.bytes = 0;
    this.conn.removeListener("packetCreate", this.queued);
    this.conn.removeListener("flush", this.taken);
  };
}

/**
 * Whether a session is a slow consumer: a WebSocket whose uWS send buffer
 * holds more than `limit`, as on `/ws`; a long-polling session that holds
 * more than `limit` and has not polled since the last sweep.
 */
export function isSlowConsumer(conn: EngineConnection, polling: PollingBacklog | undefined, limit: number): boolean {
  const socket = conn.transport.name === "websocket" ? conn.transport.socket : undefined;
  if (socket !== undefined) return socket.getBufferedAmount() > limit;
  return polling?.stalled(limit) ?? false;
}

/** Ends the session now, whatever it has queued. */
export function cutSession(conn: EngineConnection): void {
  const socket = conn.transport.name === "websocket" ? conn.transport.socket : undefined;
  if (socket !== undefined) socket.close();
  else conn.close(true);
}
