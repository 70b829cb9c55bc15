/**
 * Socket.IO on the node's own uWebSockets.js App (`io.attachApp`), for apps
 * that already speak it. Same tokens, same channels, same events and payloads,
 * same commands as `/ws`: each socket gets a ClientSession; events map onto
 * its calls and acknowledgements carry its answers. The token is verified at
 * the engine.io handshake, the first request of a session, so no session
 * exists without one; the namespace connect follows within CONNECT_TIMEOUT_MS.
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
import { CloseCodes, ErrorCodes, type CloseCodeSpec, type ErrorCode } from "../../../shared/src/codes.js";
import type { ChannelPosition, GapFrame, MessageFrame } from "../../../shared/src/protocol.js";
import type { RequestFields, RequestType } from "../../../shared/src/requests.js";
import { authErrorCode, tokenFrom, type Principal } from "../auth/verifier.js";
import type { Delivery } from "../broker/broker.js";
import type { FanoutSink } from "../fanout/local-fanout.js";
import { afterSent, ClientSession, type Answer, type SessionConnection } from "./client-session.js";
import { RequestParser } from "./request-parser.js";
import { sinceFromObject } from "./resume-position.js";
import { sessionIdFor } from "./session-id.js";
import { cutSession, HARD_CAP_FACTOR, isSlowConsumer, PollingBacklog, withSocketIoBackpressure, type EngineConnection } from "./socketio-backpressure.js";
import { spreadOver } from "./spread-over.js";
import type { TransportDeps } from "./transport-deps.js";
import { startAndWelcome, type Welcome } from "./welcome.js";

export const SOCKETIO_PATH = "/socket.io/";
/** The cookie NGINX routes Socket.IO requests by when they carry no session id (see nginx/nginx.conf). */
export const STICKY_COOKIE = "gw_node";
/**
 * How long an engine.io session may stay open without connecting to the
 * namespace. socket.io-client connects right after the handshake; Socket.IO's
 * own default (45 s) would let a session idle on the node for nothing.
 */
export const CONNECT_TIMEOUT_MS = 5000;

type Ack = (answer: Answer<object>) => void;

/**
 * The requests as Socket.IO events, for typing a socket.io-client socket:
 * event name = request type, payload = its fields (shared/src/requests.ts).
 * The server reads every event through one `onAny` listener and the request
 * parser, so an event not listed here is answered with `unknown_type`.
 */
export type ClientToServerEvents = { [T in RequestType]: (request: RequestFields<T>, ack?: Ack) => void };

export interface ServerToClientEvents {
  welcome: (welcome: Welcome) => void;
  message: (frame: MessageFrame) => void;
  closing: (close: { code: number; reason: string; reconnect: boolean }) => void;
  gap: (gap: GapFrame) => void;
}

/**
 * What each socket carries in `socket.data`: one object of a fixed shape for
 * every socket, its fields in the object itself. Socket.IO's own `{}` grown
 * field by field took a second allocation (a property array) per socket. No
 * closures: listeners are shared by every socket (see SocketIoTransport's
 * constructor), because a closure per socket also keeps alive whatever scope
 * it was made in (the middleware chain, ~500 bytes per socket).
 */
class SocketState {
  /** The personal channel's position to resume from (`auth.since`), until the session starts. */
  since: ChannelPosition | undefined;
  /** Set once the socket is connected to the namespace. */
  session: ClientSession<GatewaySocket> | null = null;
  closeReason: string | null = null;
  /** Whether the socket holds one of its user's connection slots (MAX_CONNECTIONS_PER_USER), given back once at disconnect. */
  holdsSlot = false;
  /** What a long-polling session has queued for its client; absent for a session that started on WebSocket. */
  backlog: PollingBacklog | undefined = undefined;

  constructor(
    readonly principal: Principal,
    since: ChannelPosition | undefined,
  ) {
    this.since = since;
  }
}

type SocketData = SocketState;

type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface SocketIoOptions {
  readonly nodeId: string;
  readonly maxFrameBytes: number;
  /** Deepest JSON nesting of a command's data (MAX_JSON_DEPTH). */
  readonly maxJsonDepth: number;
  /** Origins allowed to connect from other sites; empty = same origin only. */
  readonly corsOrigins: readonly string[];
  /** A session holding more than this for its client is cut as a slow consumer (MAX_BACKPRESSURE_BYTES). */
  readonly maxBackpressureBytes: number;
}

export interface SocketIoDeps extends TransportDeps {
  /** The Redis adapter (or any adapter constructor) for Socket.IO's own cluster operations. */
  readonly adapter: (nsp: unknown) => Adapter;
}

/** The engine.io connection under a socket, as slow-consumer control reads it (see socketio-backpressure.ts). */
function engineConnection(socket: GatewaySocket): EngineConnection {
  return socket.conn as unknown as EngineConnection;
}

/** The user data engine.io's uWS server (engine.io 6.6, userver.js) gives the uWS socket of a WebSocket transport. */
interface EngineTransportHolder {
  readonly transport: { readonly socket?: { getUserData(): { response?: unknown } } };
}

/**
 * Once any engine middleware is registered (checkHandshake is one), engine.io
 * wraps the response of every handshake and upgrade in a ResponseWrapper (an
 * EventEmitter, ~320 bytes with its arrays) and keeps it in the uWS socket's
 * user data as long as the WebSocket is open, only to emit `close` on it when
 * the socket closes, for middlewares that listen to their response.
 * checkHandshake has answered or passed the request by then and never
 * listens, so the wrapper is let go. (The handshake request held it too; see
 * releaseHandshake.) A long-polling transport holds no uWS socket.
 */
function dropMiddlewareResponse(conn: EngineConnection): void {
  const userData = (conn as unknown as EngineTransportHolder).transport.socket?.getUserData();
  if (userData !== undefined) userData.response = undefined;
}

/** For a long-polling session's upgrade to WebSocket; engine.io calls it with the session as `this`. */
function dropUpgradeResponse(this: EngineConnection): void {
  dropMiddlewareResponse(this);
}

/** What a socket's `handshake.headers`, `handshake.query` and `handshake.auth` hold once its connect is checked. */
const NO_HANDSHAKE_FIELDS: Readonly<Record<string, never>> = Object.freeze({});

/**
 * What a socket's `request` is once its connect is checked: the shape
 * Socket.IO reads (should the client connect again on the same engine.io
 * session, which the handshake check then refuses: its token was used up).
 */
const CHECKED_REQUEST = Object.freeze({ headers: NO_HANDSHAKE_FIELDS, _query: NO_HANDSHAKE_FIELDS, connection: Object.freeze({}) });

/**
 * Lets go of what the engine.io handshake left on a socket whose connect was
 * checked: the request (engine.io's copy of its headers and query, and the
 * response it wrapped for checkHandshake, ~700 bytes a socket), and the
 * headers, query and auth of `socket.handshake`, where the token was. Nothing
 * reads them after the connect: Socket.IO builds `handshake` from the request
 * once, at the connect, and the gateway never calls fetchSockets, the one
 * operation that would send it to another server. The handshake keeps its
 * address, times and URL.
 */
function releaseHandshake(socket: GatewaySocket): void {
  socket.handshake.auth = NO_HANDSHAKE_FIELDS;
  socket.handshake.headers = NO_HANDSHAKE_FIELDS;
  socket.handshake.query = NO_HANDSHAKE_FIELDS;
  // engine.io copies the path for each request; this is the same text, held once.
  socket.handshake.url = SOCKETIO_PATH;
  (socket.conn as unknown as { request: object }).request = CHECKED_REQUEST;
}

/** A refusal for the middleware's next(): socket.io-client's `connect_error` has the code as message and in `data`. */
function connectError(code: string, message: string): Error {
  return Object.assign(new Error(code), { data: { code, message } });
}

/**
 * An engine.io request as the handshake check reads it: engine.io's uWS
 * server has copied the headers and parsed the query (`_query`) before any
 * middleware runs.
 */
interface EngineRequest {
  readonly method?: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly _query: Readonly<Record<string, string | undefined>>;
}

/** engine.io's response wrapper in uWS mode: enough to answer a refused handshake. */
interface EngineResponse {
  writeHead(status: number, headers: Readonly<Record<string, string>>): void;
  end(body: string): void;
}

/** engine.io's own answer to a request it cannot take, so engine.io clients read it as usual. */
const ENGINE_BAD_REQUEST = JSON.stringify({ code: 3, message: "Bad request" });

/** uWS hands a GET to the WebSocket behaviour, and so to engine.io's upgrade path, when it has a 24-character Sec-WebSocket-Key. */
function isWebSocketUpgrade(req: EngineRequest): boolean {
  const key = req.headers["sec-websocket-key"];
  return req.method === "GET" && typeof key === "string" && key.length === 24;
}

/** The engine.io handshake's token: `Authorization: Bearer …`, else `?token=` (browsers on the WebSocket transport). */
function handshakeToken(req: EngineRequest): string | undefined {
  const header = req.headers["authorization"];
  return tokenFrom(typeof header === "string" ? header : "", req._query["token"] ?? "");
}

/** The namespace connect's `auth.token`, when the client sends one. */
function connectToken(socket: GatewaySocket): string | undefined {
  const token = (socket.handshake.auth as Record<string, unknown>)["token"];
  return typeof token === "string" && token.length > 0 ? token : undefined;
}

export class SocketIoTransport implements SessionConnection<GatewaySocket> {
  private io: GatewayServer | null = null;
  private readonly parser: RequestParser;
  /** Who each engine.io handshake authenticated as, with its token, until its namespace connect; keyed by the request object Socket.IO keeps as `socket.request`. */
  private readonly handshakes = new WeakMap<object, { readonly principal: Principal; readonly token: string }>();
  /** Listeners shared by every socket: Socket.IO calls them with the socket as `this`. */
  private readonly onDisconnect: (this: GatewaySocket, reason: string) => void;
  /** socket.io-parser lets an event be named by a number (`42[7,{}]`), whatever the typings say. */
  private readonly onEvent: (this: GatewaySocket, event: unknown, ...args: unknown[]) => void;
  /** The `onAny` listeners of every socket: onEvent alone (see connected()). */
  private readonly anyListeners: readonly unknown[];

  constructor(
    private readonly options: SocketIoOptions,
    private readonly deps: SocketIoDeps,
  ) {
    this.parser = new RequestParser(options.maxJsonDepth);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the listeners' own `this` is the socket
    const transport = this;
    this.onDisconnect = function (reason) {
      transport.disconnected(this, reason);
    };
    this.onEvent = function (event, ...args) {
      transport.request(this, event, args);
    };
    this.anyListeners = Object.freeze([this.onEvent]);
  }

  attach(app: TemplatedApp): void {
    const io: GatewayServer = new Server({
      path: SOCKETIO_PATH,
      serveClient: false,
      maxHttpBufferSize: this.options.maxFrameBytes,
      connectTimeout: CONNECT_TIMEOUT_MS,
      adapter: this.deps.adapter as never,
      ...(this.options.corsOrigins.length > 0 ? { cors: { origin: [...this.options.corsOrigins], credentials: true } } : {}),
    });
    io.attachApp(withSocketIoBackpressure(app, this.options.maxBackpressureBytes));
    io.engine.use((req: EngineRequest, res: EngineResponse, next: () => void) => this.checkHandshake(req, res, next));
    // Session ids name this node, so NGINX keeps every request of a
    // long-polling session and its upgrade on it by the `sid` alone; clients
    // that keep no cookie (Node's socket.io-client by default, cross-origin
    // pages without credentials) depend on that.
    const randomId = io.engine.generateId.bind(io.engine);
    io.engine.generateId = async (req) => sessionIdFor(this.options.nodeId, await randomId(req));
    // The cookie names this node too: the fallback for a request without a
    // session id, and what a proxy that cannot read the id can route by.
    io.engine.on("initial_headers", (headers: Record<string, string>) => {
      headers["set-cookie"] = `${STICKY_COOKIE}=${this.options.nodeId}; Path=/; HttpOnly; SameSite=Lax`;
    });
    io.use((socket, next) => {
      const refusal = this.deps.refusal();
      if (refusal !== null) {
        this.deps.metrics.upgradeRefused("socketio", refusal === "draining" ? "draining" : "unavailable");
        next(connectError(ErrorCodes.unavailable.code, refusal));
        return;
      }
      const forwarded = socket.handshake.headers["x-forwarded-for"];
      if (!this.deps.limits.admitAddress(socket.handshake.address, typeof forwarded === "string" ? forwarded : "")) {
        next(connectError(ErrorCodes.connectRateLimited.code, "too many new connections from this address; retry with backoff"));
        return;
      }
      const principal = this.connectPrincipal(socket);
      if (!principal.ok) {
        next(connectError(principal.code, principal.message));
        return;
      }
      const resume = sinceFromObject((socket.handshake.auth as Record<string, unknown>)["since"]);
      if (!resume.ok) {
        this.deps.metrics.clientError(ErrorCodes.badRequest.code);
        next(connectError(ErrorCodes.badRequest.code, resume.message));
        return;
      }
      socket.data = new SocketState(principal.principal, resume.since);
      // The token was checked; the connection need not keep it, nor a bearer token in memory.
      releaseHandshake(socket);
      this.takeSlot(socket, next);
    });
    // Rooms are joined here, not in the middleware (socket.io#5139).
    io.on("connection", (socket) => this.connected(socket));
    this.io = io;
  }

  /**
   * Every engine.io session starts with a verified token: a handshake (a
   * request without `sid`) without one is answered 401 with the same body as
   * `/ws`, before engine.io creates a session. Later requests of the session
   * (`sid`) belong to it already; anything but a GET handshake (a CORS
   * preflight, which carries no credentials) is left to engine.io, which
   * refuses non-GET handshakes itself.
   */
  private checkHandshake(req: EngineRequest, res: EngineResponse, next: () => void): void {
    if (isWebSocketUpgrade(req) && req._query["transport"] !== "websocket") {
      // engine.io's uWS server upgrades whatever `transport` names, and an
      // upgraded polling transport later crashes the process (engine.io 6.6).
      this.deps.metrics.clientError(ErrorCodes.badRequest.code);
      res.writeHead(400, { "content-type": "application/json" });
      res.end(ENGINE_BAD_REQUEST);
      return;
    }
    // engine.io takes an empty `sid` for none, and so starts a session: so must this check.
    if ((req._query["sid"] ?? "") !== "" || req.method !== "GET") {
      next();
      return;
    }
    const token = handshakeToken(req);
    const verdict = this.deps.verifier.verify(token);
    if (!verdict.ok) {
      this.deps.metrics.authFailed(verdict.reason);
      this.deps.log.debug({ reason: verdict.reason }, "socket.io handshake refused");
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: authErrorCode(verdict.reason), message: verdict.message } }));
      return;
    }
    // A verified token is a string.
    this.handshakes.set(req, { principal: verdict.principal, token: token ?? "" });
    next();
  }

  /**
   * The principal of a namespace connect: the handshake's, or the connect
   * packet's `auth.token` when given (a fresher token), which must then be
   * valid and for the same user.
   */
  private connectPrincipal(socket: GatewaySocket): { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly code: ErrorCode; readonly message: string } {
    const checked = this.handshakes.get(socket.request);
    if (checked === undefined) return { ok: false, code: ErrorCodes.invalidToken.code, message: "token required at the handshake" };
    this.handshakes.delete(socket.request);
    const handshake = checked.principal;
    const token = connectToken(socket);
    if (token === undefined) return { ok: true, principal: handshake };
    // The same token again (socket.io-client sends it both ways): checked already, unless it ran out since.
    if (token === checked.token && (handshake.expiresAt === null || handshake.expiresAt > Date.now())) return { ok: true, principal: handshake };
    const verdict = this.deps.verifier.verify(token);
    if (!verdict.ok) {
      this.deps.metrics.authFailed(verdict.reason);
      return { ok: false, code: authErrorCode(verdict.reason), message: verdict.message };
    }
    if (verdict.principal.sub !== handshake.sub) return { ok: false, code: ErrorCodes.invalidToken.code, message: "auth.token is for another user than the handshake's token" };
    return { ok: true, principal: verdict.principal };
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
   * Cuts sessions holding more than MAX_BACKPRESSURE_BYTES for their client,
   * like the `/ws` sweep: the same bound, the same abrupt cut, the same
   * counters. socket.io-client reconnects by itself after a transport close,
   * and `since` recovers what the session missed.
   */
  sweepSlowConsumers(): number {
    const io = this.io;
    if (io === null) return 0;
    let cut = 0;
    // Deleting from a Map while iterating it is well defined: a cut socket leaves `sockets` at once.
    for (const socket of io.of("/").sockets.values()) {
      if (!isSlowConsumer(engineConnection(socket), socket.data.backlog, this.options.maxBackpressureBytes)) continue;
      if (this.cutSlowConsumer(socket)) cut++;
    }
    return cut;
  }

  private cutSlowConsumer(socket: GatewaySocket): boolean {
    // A socket the server is closing already is counted under that reason.
    if (!socket.connected || socket.data.closeReason !== null) return false;
    socket.data.closeReason = "slow_consumer";
    this.deps.metrics.sendDropped("slow_consumer_close");
    cutSession(engineConnection(socket));
    return true;
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

  /**
   * Takes the user's connection slot, if there is a per-user limit, then
   * lets the connection through; disconnected() gives it back. When the
   * engine connection closed while Redis answered, Socket.IO will drop the
   * socket without a `disconnect`, so the slot goes back at once. Once next()
   * is called with the connection open, Socket.IO connects the socket in the
   * next tick with no I/O in between, so the `disconnect` follows for sure.
   */
  private takeSlot(socket: GatewaySocket, next: (err?: Error) => void): void {
    const quota = this.deps.limits.perUser;
    if (quota === null) {
      next();
      return;
    }
    const sub = socket.data.principal.sub;
    quota.acquire(sub).then(
      (admission) => {
        if (admission === "full") {
          this.deps.metrics.rateLimited("user_connections");
          next(connectError(ErrorCodes.tooManyConnections.code, "this user holds the most connections allowed at once; close one or retry later"));
          return;
        }
        if (socket.conn.readyState !== "open") {
          quota.release(sub);
          return;
        }
        socket.data.holdsSlot = true;
        next();
      },
      (err: unknown) => {
        this.deps.log.warn({ err }, "connection quota unavailable; Socket.IO connection refused");
        this.deps.metrics.upgradeRefused("socketio", "unavailable");
        next(connectError(ErrorCodes.unavailable.code, "connection quota unavailable"));
      },
    );
  }

  private connected(socket: GatewaySocket): void {
    this.deps.metrics.connectionOpened("socketio");
    const session = new ClientSession<GatewaySocket>(this.deps.session, socket.data.principal, this, socket);
    socket.data.session = session;
    const conn = engineConnection(socket);
    dropMiddlewareResponse(conn);
    // A closure for long-polling sessions only: they are few, and their backlog needs one.
    if (conn.transport.name === "polling") {
      socket.data.backlog = new PollingBacklog(conn, this.options.maxBackpressureBytes * HARD_CAP_FACTOR, () => this.cutSlowConsumer(socket));
      conn.once("upgrade", dropUpgradeResponse);
    }
    socket.on("disconnect", this.onDisconnect);
    // socket.onAny(listener), without its list per socket: socket.io's own
    // starts as `[]` and V8 grows it to 17 slots on the first push (184 bytes
    // a socket) for one listener. Every socket has the same single listener,
    // so all share one frozen list. socket.io only reads it (onevent() loops
    // over a copy); offAny(), which would replace it, is never called here.
    (socket as unknown as { _anyListeners?: readonly unknown[] })._anyListeners = this.anyListeners;
    const since = socket.data.since;
    socket.data.since = undefined;
    void startAndWelcome(session, this.options.nodeId, since).then((welcome) => {
      if (welcome === null || !socket.connected) return;
      socket.emit("welcome", welcome);
      afterSent(welcome);
    });
  }

  private disconnected(socket: GatewaySocket, reason: string): void {
    socket.data.session?.closed();
    if (socket.data.holdsSlot) {
      socket.data.holdsSlot = false;
      this.deps.limits.perUser?.release(socket.data.principal.sub);
    }
    this.deps.metrics.connectionClosed("socketio", socket.data.closeReason ?? reason.replace(/ /g, "_"));
  }

  /**
   * One client event: its name is the request type, its first argument the
   * fields (none at all reads as `{}`), and a trailing function the
   * acknowledgement. An event sent without one is still acted on.
   */
  private request(socket: GatewaySocket, event: unknown, args: readonly unknown[]): void {
    // The server is closing this socket: what it still sends is not acted on.
    if (socket.data.closeReason !== null) return;
    const session = socket.data.session;
    // Listeners are added once the session exists (see connected()).
    if (session === null) return;
    const admitted = session.admitFrame();
    if (admitted === "close") return;
    const last = args.at(-1);
    const ack = typeof last === "function" ? (last as Ack) : undefined;
    if (admitted === "refuse") {
      this.deps.metrics.frameReceived("socketio", "rate_limited");
      this.answer(socket, ack, { ok: false, error: { code: ErrorCodes.rateLimited.code, message: "too many events; slow down, or the connection is closed with 4029" } });
      return;
    }
    const fields = args.length > (ack === undefined ? 0 : 1) ? args[0] : {};
    const parsed = this.parser.parse(String(event), fields);
    this.deps.metrics.frameReceived("socketio", parsed.ok ? parsed.request.type : "invalid");
    if (!parsed.ok) {
      this.deps.log.debug({ code: parsed.error.code }, "client event refused");
      this.answer(socket, ack, parsed);
      return;
    }
    const answer = session.handle(parsed.request);
    if (answer instanceof Promise) void answer.then((settled) => this.answer(socket, ack, settled));
    else this.answer(socket, ack, answer);
  }

  private answer(socket: GatewaySocket, ack: Ack | undefined, answer: Answer<object>): void {
    if (!answer.ok) this.deps.metrics.clientError(answer.error.code);
    // An event without an acknowledgement callback cannot be answered.
    if (ack !== undefined && socket.connected) ack(answer);
    afterSent(answer);
  }

  join(socket: GatewaySocket, channel: string): void {
    void socket.join(channel);
  }

  leave(socket: GatewaySocket, channel: string): void {
    // A disconnected socket has left its rooms already.
    if (socket.connected) void socket.leave(channel);
  }

  send(socket: GatewaySocket, frames: readonly Buffer[]): void {
    for (const frame of frames) socket.emit("message", JSON.parse(frame.toString("utf8")) as MessageFrame);
  }

  /** Once per socket: events already received may still arrive before the disconnect does. */
  end(socket: GatewaySocket, close: CloseCodeSpec, reason: string): void {
    if (!socket.connected || socket.data.closeReason !== null) return;
    socket.data.closeReason = reason;
    socket.emit("closing", { code: close.code, reason: close.reason, reconnect: close.reconnect });
    socket.conn.close();
  }
}
