/**
 * Test doubles for the SDK's two seams, used by its unit tests only: a manual
 * clock whose timers run when the test advances it, and a WebSocket whose
 * server side the test plays frame by frame.
 */

import type { ServerFrame, WelcomeFrame } from "../../src/protocol.js";
import type { Timers, WebSocketConstructor, WebSocketLike } from "../../src/client/types.js";

interface Scheduled {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

export class ManualTimers implements Timers {
  private current = 1_700_000_000_000;
  private seq = 0;
  private readonly scheduled = new Map<number, Scheduled>();

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.scheduled.set(id, { at: this.current + Math.max(0, ms), seq: id, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.scheduled.delete(handle as number);
  }

  /** Delay until the next timer is due, or null when none is scheduled. */
  nextDelay(): number | null {
    const next = this.ordered()[0];
    return next === undefined ? null : next.at - this.current;
  }

  /** Moves the clock forward, running every timer that falls due, in order, with microtasks flushed between. */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (;;) {
      await flush();
      const next = this.ordered()[0];
      if (next === undefined || next.at > until) break;
      this.scheduled.delete(next.seq);
      this.current = next.at;
      next.callback();
    }
    this.current = until;
    await flush();
  }

  private ordered(): Scheduled[] {
    return [...this.scheduled.values()].sort((a, b) => a.at - b.at || a.seq - b.seq);
  }
}

/** Lets pending promise callbacks (the client's awaits) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export interface FakeServer {
  readonly sockets: FakeSocket[];
  readonly Socket: WebSocketConstructor;
  last(): FakeSocket;
}

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { readonly data: unknown }) => void) | null = null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  /** Frames the client sent, parsed. */
  readonly sent: Array<Record<string, unknown>> = [];
  closedByClient: { code: number | undefined; reason: string | undefined } | null = null;
  /** The subprotocols the client offered: the SDK's token travels there. */
  protocols: string[] = [];

  constructor(
    readonly url: string,
    private readonly timers: ManualTimers,
  ) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    if (this.readyState === 3) return;
    this.readyState = 3;
    // Like browsers: the close event comes later, not inside close().
    queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? "" }));
  }

  /** Server side: accept the upgrade and send the welcome. */
  accept(welcome: Partial<WelcomeFrame> = {}): void {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({ type: "welcome", node: "node-1", user: "alice", serverTime: this.timers.now(), channels: ["user:alice"], expiresAt: null, ...welcome });
  }

  receive(frame: ServerFrame | Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** Server side: close the connection (1006 = dropped without a close frame). */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Refuse the connection before it opens (what a 401 or a dead node looks like to a browser). */
  fail(): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: "" });
  }

  sentOfType(type: string): Array<Record<string, unknown>> {
    return this.sent.filter((frame) => frame["type"] === type);
  }

  /** Answers the latest subscribe to `channel` with an ok reply carrying `fields` (offset, epoch, recovered, snapshot). */
  replySubscribe(channel: string, fields: Record<string, unknown> = {}): void {
    const request = this.sentOfType("subscribe").filter((frame) => frame["channel"] === channel).at(-1);
    if (request === undefined) throw new Error(`no subscribe to ${channel} to answer`);
    this.receive({ type: "reply", id: request["id"], ok: true, channel, ...fields });
  }

  /** Answers the latest request of `type` with an ok reply carrying `fields`. */
  replyOk(type: string, fields: Record<string, unknown> = {}): void {
    const request = this.sentOfType(type).at(-1);
    if (request === undefined) throw new Error(`no ${type} request to answer`);
    this.receive({ type: "reply", id: request["id"], ok: true, ...fields });
  }
}

export function fakeServer(timers: ManualTimers): FakeServer {
  const sockets: FakeSocket[] = [];
  class Socket extends FakeSocket {
    constructor(url: string, protocols: string[]) {
      super(url, timers);
      this.protocols = protocols;
      sockets.push(this);
    }
  }
  return {
    sockets,
    Socket,
    last: () => {
      const socket = sockets.at(-1);
      if (socket === undefined) throw new Error("no socket opened yet");
      return socket;
    },
  };
}

export { seededRandom } from "../../../scripts/lib/seeded-random.js";
