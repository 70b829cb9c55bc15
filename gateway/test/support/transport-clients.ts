/**
 * One client interface over both transports, so one contract suite runs
 * unchanged against `/ws` (the `ws` package) and Socket.IO (socket.io-client).
 * A request is its type and fields either way; the answer is the raw reply
 * without `type` and `id`, which is exactly a Socket.IO acknowledgement.
 */

import { io, type Socket } from "socket.io-client";
import type { ChannelPosition, ErrorBody, MessageFrame, ServerFrame, WelcomeFrame } from "../../../shared/src/protocol.js";
import type { GatewayNode } from "./gateway-node.js";
import { tryConnect, type Closed, type TestClient } from "./ws-client.js";

export type Welcome = Omit<WelcomeFrame, "type">;

export type WireAnswer = { readonly ok: true; readonly [field: string]: unknown } | { readonly ok: false; readonly error: ErrorBody };

export interface ContractClient {
  readonly welcome: Welcome;
  /** Sends a request (fields as given, hostile ones included) and resolves with its answer. */
  request(type: string, fields: object, timeoutMs?: number): Promise<WireAnswer>;
  waitForMessage(test: (frame: MessageFrame) => boolean, timeoutMs?: number): Promise<MessageFrame>;
  messages(channel?: string): MessageFrame[];
  /** The close the server announced: the close frame on `/ws`, the `closing` event on Socket.IO. */
  readonly closed: Promise<Closed>;
  close(): Promise<void>;
}

export type Connected = { readonly ok: true; readonly client: ContractClient } | { readonly ok: false; readonly code: string };

export interface TransportAdapter {
  readonly name: "ws" | "socketio";
  /**
   * Connects with `token` and waits for the welcome, or resolves with the
   * refusal's error code. `since` resumes the personal channel from there.
   */
  tryConnect(node: GatewayNode, token: string, since?: ChannelPosition): Promise<Connected>;
}

class WsContractClient implements ContractClient {
  private nextId = 1;
  readonly closed: Promise<Closed>;

  constructor(private readonly client: TestClient) {
    this.closed = client.closed;
  }

  get welcome(): Welcome {
    const { type: _type, ...welcome } = this.client.welcome!;
    return welcome;
  }

  async request(type: string, fields: object, timeoutMs = 5000): Promise<WireAnswer> {
    const id = this.nextId++;
    this.client.sendRaw(JSON.stringify({ type, id, ...fields }));
    const reply = await this.client.waitFor((frame: ServerFrame) => frame.type === "reply" && frame.id === id, timeoutMs);
    if (reply.type !== "reply") throw new Error(`expected a reply, got ${reply.type}`);
    const { type: _type, id: _id, ...answer } = reply;
    return answer;
  }

  waitForMessage(test: (frame: MessageFrame) => boolean, timeoutMs = 5000): Promise<MessageFrame> {
    return this.client.waitForMessage(test, timeoutMs);
  }

  messages(channel?: string): MessageFrame[] {
    return this.client.messages(channel);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

class SocketIoContractClient implements ContractClient {
  private readonly received: MessageFrame[] = [];
  private waiters: Array<{ readonly test: (frame: MessageFrame) => boolean; readonly resolve: (frame: MessageFrame) => void }> = [];
  readonly closed: Promise<Closed>;

  constructor(
    private readonly socket: Socket,
    readonly welcome: Welcome,
  ) {
    socket.on("message", (frame: MessageFrame) => {
      this.received.push(frame);
      const ready = this.waiters.filter((waiter) => waiter.test(frame));
      this.waiters = this.waiters.filter((waiter) => !ready.includes(waiter));
      for (const waiter of ready) waiter.resolve(frame);
    });
    this.closed = new Promise((resolve) => {
      socket.once("closing", (close: { code: number; reason: string }) => resolve({ code: close.code, reason: close.reason }));
    });
  }

  async request(type: string, fields: object, timeoutMs = 5000): Promise<WireAnswer> {
    return (await this.socket.timeout(timeoutMs).emitWithAck(type, fields)) as WireAnswer;
  }

  waitForMessage(test: (frame: MessageFrame) => boolean, timeoutMs = 5000): Promise<MessageFrame> {
    const seen = this.received.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter.resolve !== done);
        reject(new Error(`no matching message within ${timeoutMs} ms; got ${this.received.length}`));
      }, timeoutMs);
      const done = (frame: MessageFrame): void => {
        clearTimeout(timer);
        resolve(frame);
      };
      this.waiters.push({ test, resolve: done });
    });
  }

  messages(channel?: string): MessageFrame[] {
    return this.received.filter((frame) => channel === undefined || frame.channel === channel);
  }

  async close(): Promise<void> {
    if (!this.socket.connected) return;
    const gone = new Promise<void>((resolve) => this.socket.once("disconnect", () => resolve()));
    this.socket.close();
    await gone;
  }
}

export const wsAdapter: TransportAdapter = {
  name: "ws",
  async tryConnect(node, token, since) {
    const outcome = await tryConnect(node.wsUrl, { token, ...(since === undefined ? {} : { since }) });
    if (outcome.kind === "open") return { ok: true, client: new WsContractClient(outcome.client) };
    return { ok: false, code: (JSON.parse(outcome.body) as { error: ErrorBody }).error.code };
  },
};

/** A Socket.IO connect error: from the namespace (`data`), or from the engine.io transport (`description`). */
export type SocketIoConnectError = Error & { readonly data?: ErrorBody; readonly description?: unknown };

/**
 * The HTTP status of a refused engine.io handshake, as socket.io-client
 * reports it: the status itself for long-polling, the `ws` package's
 * "Unexpected server response: 401" for the WebSocket transport.
 */
export function handshakeStatus(err: SocketIoConnectError): number | null {
  const description = err.description;
  if (typeof description === "number") return description;
  const message = (description as { message?: unknown } | undefined)?.message;
  const match = /Unexpected server response: (\d+)/.exec(typeof message === "string" ? message : "");
  return match ? Number(match[1]) : null;
}

/**
 * The refusal code behind a connect error. A handshake refused with 401 is
 * `invalid_token`: the body is /ws's `{"error":{"code":"invalid_token",…}}`,
 * which socket.io-client does not expose.
 */
export function connectErrorCode(err: SocketIoConnectError): string {
  if (err.data?.code !== undefined) return err.data.code;
  return handshakeStatus(err) === 401 ? "invalid_token" : err.message;
}

export const socketIoAdapter: TransportAdapter = {
  name: "socketio",
  tryConnect(node, token, since) {
    // The token goes in the engine.io handshake (Node's client can set headers); `auth` carries the resume position.
    const socket = io(node.httpUrl, {
      extraHeaders: { authorization: `Bearer ${token}` },
      auth: since === undefined ? {} : { since },
      transports: ["websocket"],
      reconnection: false,
      timeout: 5000,
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`no welcome within 5000 ms from ${node.name}`));
      }, 5000);
      socket.once("welcome", (welcome: Welcome) => {
        clearTimeout(timer);
        resolve({ ok: true, client: new SocketIoContractClient(socket, welcome) });
      });
      socket.once("connect_error", (err: SocketIoConnectError) => {
        clearTimeout(timer);
        socket.close();
        resolve({ ok: false, code: connectErrorCode(err) });
      });
    });
  },
};

export const TRANSPORT_ADAPTERS: readonly TransportAdapter[] = [wsAdapter, socketIoAdapter];
