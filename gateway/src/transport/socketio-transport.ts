/**
 * Socket.IO on the node's own uWebSockets.js App (`io.attachApp`), for apps
 * that already speak it. Same tokens, same channels, same events and payloads,
 * same commands as `/ws`: each socket gets a ClientSession; events map onto
 * its calls and acknowledgements carry its answers.
 *
 * Two message paths, never overlapping:
 * - Gateway publishes travel the cluster once, on the gateway's broker; every
 *   node then hands each delivery to its local room with `io.local` (no Redis),
 *   encoded once per node for all Socket.IO sockets (see SocketIoSink).
 * - The Redis adapter carries only Socket.IO's own cluster operations: emits
 *   from @socket.io/redis-emitter, fetchSockets, disconnectSockets, remote joins.
 * Rooms are named after channels, so `emitter.to("user:alice")` reaches alice's
 * Socket.IO devices on every node.
 */

import type { TemplatedApp } from "uWebSockets.js";
import { Server, type Socket } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import { CloseCodes, ErrorCodes, type CloseCodeSpec } from "../../../shared/src/codes.js";
import type { ErrorBody, GapFrame, JsonValue, MessageFrame, WelcomeFrame } from "../../../shared/src/protocol.js";
import { exceedsJsonDepth } from "../../../shared/src/json-limits.js";
import { tokenFrom, type Principal } from "../auth/verifier.js";
import type { Delivery } from "../broker/broker.js";
import type { FanoutSink } from "../fanout/local-fanout.js";
import { ClientSession, type Answer, type TransportDeps } from "./client-session.js";
import { spreadOver } from "./ws-transport.js";

export const SOCKETIO_PATH = "/socket.io/";
/** The cookie NGINX routes Socket.IO requests by (see nginx/nginx.conf). */
export const STICKY_COOKIE = "gw_node";

type Ack = (answer: Answer<object> | { ok: false; error: ErrorBody }) => void;

export interface ClientToServerEvents {
  subscribe: (request: { channel?: unknown }, ack?: Ack) => void;
  unsubscribe: (request: { channel?: unknown }, ack?: Ack) => void;
  refresh: (request: { token?: unknown }, ack?: Ack) => void;
  ping: (request: unknown, ack?: Ack) => void;
  command: (request: { name?: unknown; data?: unknown }, ack?: Ack) => void;
}

export interface ServerToClientEvents {
  welcome: (welcome: Omit<WelcomeFrame, "type">) => void;
  message: (frame: MessageFrame) => void;
  closing: (close: { code: number; reason: string; reconnect: boolean }) => void;
  gap: (gap: GapFrame) => void;
}

interface SocketData {
  principal: Principal;
  session: ClientSession;
  closeReason: string | null;
}

type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface SocketIoOptions {
  readonly nodeId: string;
  readonly maxFrameBytes: number;
  /** Deepest JSON nesting of a command's data (MAX_JSON_DEPTH). */
  readonly maxJsonDepth: number;
  /** Origins allowed to connect from other sites; empty = same origin only. */
  readonly corsOrigins: readonly string[];
}

export interface SocketIoDeps extends TransportDeps {
  /** The Redis adapter (or any adapter constructor) for Socket.IO's own cluster operations. */
  readonly adapter: (nsp: unknown) => Adapter;
}

/** The handshake's `auth.token`, else the same header and query parameter as `/ws`. */
function tokenOf(socket: GatewaySocket): string | undefined {
  const auth = socket.handshake.auth as Record<string, unknown>;
  if (typeof auth["token"] === "string" && auth["token"].length > 0) return auth["token"];
  const header = socket.handshake.headers.authorization;
  const query = socket.handshake.query["token"];
  return tokenFrom(typeof header === "string" ? header : "", typeof query === "string" ? query : "");
}

function stringField(request: unknown, field: string): string | null {
  if (typeof request !== "object" || request === null) return null;
  const value = (request as Record<string, unknown>)[field];
  return typeof value === "string" ? value : null;
}

function badRequest(message: string): { ok: false; error: ErrorBody } {
  return { ok: false, error: { code: ErrorCodes.badRequest.code, message } };
}

export class SocketIoTransport {
  private io: GatewayServer | null = null;

  constructor(
    private readonly options: SocketIoOptions,
    private readonly deps: SocketIoDeps,
  ) {}

  attach(app: TemplatedApp): void {
    const io: GatewayServer = new Server({
      path: SOCKETIO_PATH,
      serveClient: false,
      maxHttpBufferSize: this.options.maxFrameBytes,
      adapter: this.deps.adapter as never,
      ...(this.options.corsOrigins.length > 0 ? { cors: { origin: [...this.options.corsOrigins], credentials: true } } : {}),
    });
    io.attachApp(app);
    // Every handshake response names this node, so NGINX keeps the session's
    // long-polling requests and its upgrade on it.
    io.engine.on("initial_headers", (headers: Record<string, string>) => {
      headers["set-cookie"] = `${STICKY_COOKIE}=${this.options.nodeId}; Path=/; HttpOnly; SameSite=Lax`;
    });
    io.use((socket, next) => {
      const refusal = this.deps.refusal();
      if (refusal !== null) {
        this.deps.metrics.upgradeRefused("socketio", refusal === "draining" ? "draining" : "unavailable");
        next(Object.assign(new Error(ErrorCodes.unavailable.code), { data: { code: ErrorCodes.unavailable.code, message: refusal } }));
        return;
      }
      const verdict = this.deps.verifier.verify(tokenOf(socket));
      if (!verdict.ok) {
        this.deps.metrics.authFailed(verdict.reason);
        next(Object.assign(new Error(ErrorCodes.invalidToken.code), { data: { code: ErrorCodes.invalidToken.code, message: verdict.message } }));
        return;
      }
      socket.data.principal = verdict.principal;
      next();
    });
    // Rooms are joined here, not in the middleware (socket.io#5139).
    io.on("connection", (socket) => this.connected(socket));
    this.io = io;
  }

  /** The sink that hands gateway deliveries to this node's Socket.IO rooms. */
  sink(): FanoutSink {
    return {
      name: "socketio",
      deliver: (delivery: Delivery): number => {
        const io = this.io;
        const members = io?.of("/").adapter.rooms.get(delivery.channel)?.size ?? 0;
        if (io === null || members === 0) return 0;
        // One parse here and one encode inside the adapter's broadcast, per
        // node and delivery, whatever the number of Socket.IO sockets.
        this.deps.metrics.frameEncoded("socketio");
        io.local.to(delivery.channel).emit("message", JSON.parse(delivery.frame.toString("utf8")) as MessageFrame);
        return members;
      },
      signalGap: (gap: GapFrame): void => {
        this.io?.local.to(gap.channel).emit("gap", gap);
      },
    };
  }

  /**
   * Tells every socket to reconnect elsewhere, spread over `windowMs`. The
   * engine connection is closed rather than the socket disconnected, because
   * socket.io-client reconnects by itself only after a transport close.
   */
  async drain(windowMs: number): Promise<void> {
    const io = this.io;
    if (io === null) return;
    await spreadOver([...io.of("/").sockets.values()], windowMs, (socket) => this.end(socket, CloseCodes.serverRestart, "drain"));
  }

  async close(): Promise<void> {
    const io = this.io;
    this.io = null;
    if (io === null) return;
    // io.close() also returns a promise; the callback is the one that waits for the engine.
    await new Promise<void>((resolve) => {
      void io.close(() => resolve());
    });
  }

  private connected(socket: GatewaySocket): void {
    this.deps.metrics.connectionOpened("socketio");
    socket.data.closeReason = null;
    const session = new ClientSession({ ...this.deps.session, transport: "socketio" }, socket.data.principal, {
      join: (channel) => {
        void socket.join(channel);
      },
      leave: (channel) => {
        void socket.leave(channel);
      },
      end: (close, reason) => this.end(socket, close, reason),
    });
    socket.data.session = session;

    socket.on("disconnect", (reason) => {
      session.closed();
      this.deps.metrics.connectionClosed("socketio", socket.data.closeReason ?? reason.replace(/ /g, "_"));
    });
    socket.on("subscribe", (request, ack) => {
      const channel = stringField(request, "channel");
      if (channel === null) return this.answer(socket, ack, badRequest("subscribe needs { channel }"));
      void session.subscribe(channel).then((answer) => this.answer(socket, ack, answer));
    });
    socket.on("unsubscribe", (request, ack) => {
      const channel = stringField(request, "channel");
      this.answer(socket, ack, channel === null ? badRequest("unsubscribe needs { channel }") : session.unsubscribe(channel));
    });
    socket.on("refresh", (request, ack) => {
      const token = stringField(request, "token");
      this.answer(socket, ack, token === null || token.length === 0 ? badRequest("refresh needs { token }") : session.refresh(token));
    });
    socket.on("ping", (_request, ack) => this.answer(socket, ack, session.ping()));
    socket.on("command", (request, ack) => {
      const name = stringField(request, "name");
      const data = typeof request === "object" && request !== null && "data" in request ? (request.data as JsonValue) : undefined;
      if (name === null || name.length === 0 || data === undefined) return this.answer(socket, ack, badRequest("command needs { name, data }"));
      if (exceedsJsonDepth(data, this.options.maxJsonDepth)) return this.answer(socket, ack, badRequest(`command data nests deeper than ${this.options.maxJsonDepth} levels`));
      void session.command(name, data).then((answer) => this.answer(socket, ack, answer));
    });

    void session.start().then((started) => {
      if (started === null || !socket.connected) return;
      socket.emit("welcome", {
        node: this.options.nodeId,
        user: session.principal.sub,
        serverTime: Date.now(),
        channels: started.channels,
        expiresAt: session.principal.expiresAt,
      });
    });
  }

  private answer(socket: GatewaySocket, ack: Ack | undefined, answer: Answer<object> | { ok: false; error: ErrorBody }): void {
    this.deps.metrics.frameReceived("socketio", "event");
    if (!answer.ok) this.deps.metrics.clientError(answer.error.code);
    // An event without an acknowledgement callback cannot be answered.
    if (typeof ack === "function" && socket.connected) ack(answer);
  }

  private end(socket: GatewaySocket, close: CloseCodeSpec, reason: string): void {
    if (!socket.connected) return;
    socket.data.closeReason = reason;
    socket.emit("closing", { code: close.code, reason: close.reason, reconnect: close.reconnect });
    socket.conn.close();
  }
}
