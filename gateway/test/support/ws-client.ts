/**
 * A raw-protocol test client over the `ws` package: keeps every frame it got,
 * and lets a test wait for the frame it expects instead of sleeping.
 */

import type { Socket } from "node:net";
import WebSocket, { type PerMessageDeflateOptions } from "ws";
import type { ClientFrame, MessageFrame, ReplyFrame, ServerFrame, WelcomeFrame } from "../../../shared/src/protocol.js";
import { flatHeaders, recordResponse } from "./openapi-recorder.js";

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

export type ConnectOutcome =
  | { readonly kind: "open"; readonly client: TestClient }
  | { readonly kind: "refused"; readonly status: number; readonly body: string };

type Waiter = { readonly test: (frame: ServerFrame) => boolean; readonly resolve: (frame: ServerFrame) => void };

// Frames without the request id, for building requests.
type Request = ClientFrame extends infer F ? (F extends { id: number } ? Omit<F, "id"> : never) : never;

export class TestClient {
  readonly frames: ServerFrame[] = [];
  /** Raw text of every message frame, to compare bytes across clients. */
  readonly rawMessages: string[] = [];
  readonly closed: Promise<Closed>;
  welcome: WelcomeFrame | null = null;
  private nextId = 1;
  private waiters: Waiter[] = [];
  private tcp: Socket | null = null;

  constructor(readonly socket: WebSocket) {
    socket.once("upgrade", (response) => (this.tcp = response.socket));
    this.closed = new Promise((resolve) => {
      socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    socket.on("message", (data, isBinary) => {
      const text = (data as Buffer).toString("utf8");
      const frame = JSON.parse(text) as ServerFrame;
      if (isBinary) throw new Error("server sent a binary frame");
      if (frame.type === "message") this.rawMessages.push(text);
      if (frame.type === "welcome") this.welcome = frame;
      this.frames.push(frame);
      const ready = this.waiters.filter((waiter) => waiter.test(frame));
      this.waiters = this.waiters.filter((waiter) => !ready.includes(waiter));
      for (const waiter of ready) waiter.resolve(frame);
    });
  }

  /** The first frame (already received or future) that passes `test`. */
  waitFor<F extends ServerFrame>(test: (frame: ServerFrame) => frame is F, timeoutMs?: number): Promise<F>;
  waitFor(test: (frame: ServerFrame) => boolean, timeoutMs?: number): Promise<ServerFrame>;
  waitFor(test: (frame: ServerFrame) => boolean, timeoutMs = 5000): Promise<ServerFrame> {
    const seen = this.frames.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter.resolve !== done);
        reject(new Error(`no matching frame within ${timeoutMs} ms; got ${this.rawMessages.length} messages, last frames: ${summarize(this.frames.slice(-5))}`));
      }, timeoutMs);
      const done = (frame: ServerFrame): void => {
        clearTimeout(timer);
        resolve(frame);
      };
      this.waiters.push({ test, resolve: done });
    });
  }

  /** Sends a request with a fresh id and resolves with its reply. */
  async request(frame: Request, timeoutMs = 5000): Promise<ReplyFrame> {
    const id = this.nextId++;
    this.sendRaw(JSON.stringify({ ...frame, id }));
    return this.waitFor((reply): reply is ReplyFrame => reply.type === "reply" && reply.id === id, timeoutMs);
  }

  async subscribe(channel: string): Promise<void> {
    const reply = await this.request({ type: "subscribe", channel });
    if (!reply.ok) throw new Error(`subscribe ${channel} refused: ${reply.error.code}`);
  }

  sendRaw(data: string | Buffer): void {
    this.socket.send(data);
  }

  /** Bytes read from the TCP connection so far (HTTP upgrade response and WebSocket frames as sent, compressed or not). */
  wireBytesRead(): number {
    if (this.tcp === null) throw new Error("not upgraded yet");
    return this.tcp.bytesRead;
  }

  messages(channel?: string): MessageFrame[] {
    return this.frames.filter((frame): frame is MessageFrame => frame.type === "message" && (channel === undefined || frame.channel === channel));
  }

  waitForMessage(test: (frame: MessageFrame) => boolean, timeoutMs = 5000): Promise<MessageFrame> {
    return this.waitFor((frame): frame is MessageFrame => frame.type === "message" && test(frame), timeoutMs);
  }

  async close(): Promise<Closed> {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(1000);
    return this.closed;
  }
}

export interface ConnectOptions {
  readonly token?: string;
  /** Put the token in the query string instead of the Authorization header. */
  readonly tokenInQuery?: boolean;
  /** Offer these subprotocols; with a `bearer.<jwt>` entry, pass no `token`. */
  readonly protocols?: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** Resume the personal channel from this position (`?since=<offset>:<epoch>`). */
  readonly since?: { readonly offset: number; readonly epoch: string };
  /** Offer permessage-deflate (ws' default: offered, with its own frames compressed from 1 KB). */
  readonly perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Source address to connect from (any 127.x.y.z is local), to be another client address. */
  readonly localAddress?: string;
}

/** Opens a socket and waits for the welcome, or reports the HTTP refusal; a close before the welcome fails it at once. */
export function tryConnect(wsUrl: string, options: ConnectOptions = {}): Promise<ConnectOutcome> {
  const headers: Record<string, string> = { ...options.headers };
  let url = wsUrl;
  if (options.since !== undefined) url += `${url.includes("?") ? "&" : "?"}since=${options.since.offset}:${options.since.epoch}`;
  if (options.token !== undefined) {
    if (options.tokenInQuery === true) url += `${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(options.token)}`;
    else headers["authorization"] = `Bearer ${options.token}`;
  }
  // A welcome normally takes a few ms (p99 14 ms with the machine loaded); 10 s only
  // bounds a hung connect on a 2-core box running two test files and their services.
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, [...(options.protocols ?? [])], {
      headers,
      ...(options.perMessageDeflate === undefined ? {} : { perMessageDeflate: options.perMessageDeflate }),
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    const client = new TestClient(socket);
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`no welcome within ${timeoutMs} ms from ${wsUrl}`));
    }, timeoutMs);
    socket.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => {
        clearTimeout(timer);
        recordResponse({ method: "GET", url: url.replace(/^ws/, "http"), status: res.statusCode ?? 0, headers: flatHeaders(res.headers), body });
        resolve({ kind: "refused", status: res.statusCode ?? 0, body });
      });
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // Closed by the server before its welcome (a 1013 when Redis failed it): say so now, with the code.
    socket.on("close", (code, reason) => {
      clearTimeout(timer);
      reject(new Error(`closed ${code} ${reason.toString()} before the welcome from ${wsUrl}`));
    });
    client.waitFor((frame) => frame.type === "welcome", timeoutMs).then(
      () => {
        clearTimeout(timer);
        resolve({ kind: "open", client });
      },
      () => undefined,
    );
  });
}

export async function connect(wsUrl: string, options: ConnectOptions = {}): Promise<TestClient> {
  const outcome = await tryConnect(wsUrl, options);
  if (outcome.kind === "refused") throw new Error(`connect refused: ${outcome.status} ${outcome.body}`);
  return outcome.client;
}

export async function publish(httpUrl: string, key: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${httpUrl}/v1/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text.length > 0 ? (JSON.parse(text) as unknown) : null };
}

/** Frames for an error message; bounded, since a hostile test frame may be too deep to stringify. */
function summarize(frames: readonly ServerFrame[]): string {
  return frames
    .map((frame) => {
      try {
        return JSON.stringify(frame).slice(0, 300);
      } catch {
        return `<${frame.type} frame too deep to print>`;
      }
    })
    .join(", ");
}
