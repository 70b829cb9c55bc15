/**
 * The raw WebSocket endpoint `/ws`: authentication and connection limits
 * before the upgrade, the JSON frame protocol, slow-consumer control and the
 * SIGTERM drain. What a client may do lives in ClientSession; this file only
 * speaks frames. No Redis and no SQL here: deliveries arrive as
 * uWebSockets.js topic publishes, and the per-user connection count is a
 * ConnectionQuota handed in.
 */

import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from "uWebSockets.js";
import { CloseCodes, ErrorCodes, ObservedCloseCodes, type CloseCodeSpec } from "../../../shared/src/codes.js";
import type { ChannelPosition, ErrorBody, GapFrame, OkReplyFrame, ServerFrame } from "../../../shared/src/protocol.js";
import { authErrorCode, bearerToken, type Principal } from "../auth/verifier.js";
import { isPersonalChannel } from "../../../shared/src/channels.js";
import type { Delivery } from "../broker/broker.js";
import type { FanoutSink, TopicPublisher } from "../fanout/local-fanout.js";
import { ChannelSockets } from "./channel-sockets.js";
import { afterSent, ClientSession, type Answer, type SessionConnection } from "./client-session.js";
import { sinceFromQuery } from "./resume-position.js";
import { RequestParser } from "./request-parser.js";
import { spreadOver } from "./spread-over.js";
import type { TransportDeps } from "./transport-deps.js";
import { startAndWelcome } from "./welcome.js";
import { readSubprotocols } from "./ws-subprotocol.js";
import { compressFrame, uwsCompression, type WsCompressionConfig } from "./ws-compression.js";

export interface WsTransportOptions {
  readonly nodeId: string;
  readonly maxFrameBytes: number;
  /** Deepest JSON nesting of a command's data (MAX_JSON_DEPTH). */
  readonly maxJsonDepth: number;
  readonly idleTimeoutSeconds: number;
  readonly maxBackpressureBytes: number;
  readonly compression: WsCompressionConfig;
}

/**
 * What each socket carries. uWS copies these onto its socket object, where
 * more than three properties take a larger property array: keep it short.
 */
interface SocketState {
  readonly principal: Principal;
  /** The personal channel's position to resume from (`?since=`), until the session starts. */
  since: ChannelPosition | undefined;
  /** From open() on; open until close(). */
  session: ClientSession<Socket> | null;
  /** Set just before the server ends the socket, for the disconnect metric. */
  closeReason: string | null;
}

type Socket = WebSocket<SocketState>;

/** The disconnect metric's reason for a close the server did not initiate. */
const CLOSE_REASON_BY_CODE: ReadonlyMap<number, string> = new Map([
  ...Object.values(ObservedCloseCodes).map((spec): [number, string] => [spec.code, spec.label]),
  [CloseCodes.messageTooBig.code, "message_too_big"],
  [CloseCodes.rateLimited.code, "rate_limited"],
]);

/** uWS `send` result: the frame was dropped because the socket is past maxBackpressure. */
const SEND_DROPPED = 2;

function writeError(res: HttpResponse, status: string, body: ErrorBody): void {
  res.writeStatus(status).writeHeader("content-type", "application/json").end(JSON.stringify({ error: body }));
}

function isOpen(ws: Socket): boolean {
  return ws.getUserData().session?.isOpen() === true;
}

/**
 * Every session's connection (see SessionConnection): channels are uWS topics,
 * except personal ones, which the transport routes itself (ChannelSockets).
 */
export class WsTransport implements SessionConnection<Socket> {
  private readonly sockets = new Set<Socket>();
  private readonly personal = new ChannelSockets<Socket>();
  private readonly parser: RequestParser;

  constructor(
    private readonly options: WsTransportOptions,
    private readonly deps: TransportDeps,
  ) {
    this.parser = new RequestParser(options.maxJsonDepth);
  }

  attach(app: TemplatedApp): void {
    app.ws<SocketState>("/ws", {
      // uWS cuts a frame past maxPayloadLength with no close frame at all, so
      // it gets a hard cap well above ours and we answer 1009 ourselves.
      maxPayloadLength: Math.max(this.options.maxFrameBytes * 4, 64 * 1024),
      idleTimeout: this.options.idleTimeoutSeconds,
      sendPingsAutomatically: true,
      // Hard cap: past it uWS closes the socket abruptly on the next publish.
      // The sweep below normally closes slow consumers first, at the soft
      // limit, so they are counted as such (uWS does not say why it closed).
      maxBackpressure: this.options.maxBackpressureBytes * 4,
      closeOnBackpressureLimit: 1,
      // Negotiated per socket from the client's Sec-WebSocket-Extensions,
      // which upgrade() passes on.
      compression: uwsCompression(this.options.compression),
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      close: (ws, code) => this.close(ws, code),
    });
  }

  /**
   * Closes sockets whose send buffer passed MAX_BACKPRESSURE_BYTES. Abrupt
   * close: a close frame would queue behind the very backlog that is the
   * problem. The client's resume (offset/epoch) recovers what it missed.
   */
  sweepSlowConsumers(): number {
    let closed = 0;
    for (const ws of this.sockets) {
      if (ws.getBufferedAmount() <= this.options.maxBackpressureBytes) continue;
      if (!isOpen(ws)) continue;
      ws.getUserData().closeReason = "slow_consumer";
      this.deps.metrics.sendDropped("slow_consumer_close");
      ws.close();
      closed++;
    }
    return closed;
  }

  /**
   * Closes every socket with 1012 spread evenly over `windowMs`, so clients
   * reconnect elsewhere without a thundering herd. Resolves when all are closed
   * or the window plus a grace second has passed.
   */
  async drain(windowMs: number): Promise<void> {
    await spreadOver([...this.sockets], windowMs, (ws) => this.end(ws, CloseCodes.serverRestart, "drain"));
    const deadline = Date.now() + 1000;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    // req is only valid inside this callback: read everything from it first.
    const secKey = req.getHeader("sec-websocket-key");
    const offer = readSubprotocols(req.getHeader("sec-websocket-protocol"));
    const extensions = req.getHeader("sec-websocket-extensions");
    const authorization = req.getHeader("authorization");
    const queryToken = req.getQuery("token") ?? "";
    const since = req.getQuery("since") ?? "";
    const forwardedFor = req.getHeader("x-forwarded-for");

    const refusal = this.deps.refusal();
    if (refusal !== null) {
      this.deps.metrics.upgradeRefused("ws", refusal === "draining" ? "draining" : "unavailable");
      writeError(res, "503 Service Unavailable", { code: ErrorCodes.unavailable.code, message: refusal });
      return;
    }
    if (!offer.ok) {
      this.deps.metrics.clientError(ErrorCodes.badRequest.code);
      writeError(res, "400 Bad Request", { code: ErrorCodes.badRequest.code, message: offer.message });
      return;
    }
    // Before the token is verified: a flood from one address costs a map lookup each.
    if (!this.deps.limits.admitAddress(Buffer.from(res.getRemoteAddressAsText()).toString(), forwardedFor)) {
      writeError(res, "429 Too Many Requests", { code: ErrorCodes.connectRateLimited.code, message: "too many new connections from this address; retry with backoff" });
      return;
    }
    // Header first, then the subprotocol, then the query string (which access logs may keep).
    const token = bearerToken(authorization) ?? offer.token ?? (queryToken.length > 0 ? queryToken : undefined);
    const verdict = this.deps.verifier.verify(token);
    if (!verdict.ok) {
      this.deps.metrics.authFailed(verdict.reason);
      this.deps.log.debug({ reason: verdict.reason }, "upgrade refused");
      writeError(res, "401 Unauthorized", { code: authErrorCode(verdict.reason), message: verdict.message });
      return;
    }
    const resume = sinceFromQuery(since);
    if (!resume.ok) {
      this.deps.metrics.clientError(ErrorCodes.badRequest.code);
      writeError(res, "400 Bad Request", { code: ErrorCodes.badRequest.code, message: resume.message });
      return;
    }
    const state: SocketState = { principal: verdict.principal, since: resume.since, session: null, closeReason: null };
    const quota = this.deps.limits.perUser;
    if (quota === null) {
      res.upgrade(state, secKey, offer.accept, extensions, context);
      return;
    }
    // The user's slot is taken before the upgrade, and given back in close().
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const sub = verdict.principal.sub;
    quota.acquire(sub).then(
      (admission) => {
        if (aborted) {
          if (admission === "admitted") quota.release(sub);
          return;
        }
        if (admission === "admitted") {
          // Not inside res.cork(), though uWS asks it of every async write: uWS 20.30's
          // cork() misreads an upgraded socket's memory afterwards and may cut the new
          // socket right after open (up to one in thirty in a loaded test run;
          // uNetworking/uWebSockets#1928, fixed upstream by #1929, after this build).
          // The price: uWS's warning on stderr per such connect (docs/operations.md, Logs),
          // and a 101 response written in pieces, ~2x the CPU of a connect
          // (docs/performance.md, "Connect, re-measured after the uncorked upgrade").
          res.upgrade(state, secKey, offer.accept, extensions, context);
          return;
        }
        res.cork(() => {
          this.deps.metrics.rateLimited("user_connections");
          writeError(res, "429 Too Many Requests", { code: ErrorCodes.tooManyConnections.code, message: "this user holds the most connections allowed at once; close one or retry later" });
        });
      },
      (err: unknown) => {
        this.deps.log.warn({ err }, "connection quota unavailable; upgrade refused");
        if (aborted) return;
        this.deps.metrics.upgradeRefused("ws", "unavailable");
        res.cork(() => writeError(res, "503 Service Unavailable", { code: ErrorCodes.unavailable.code, message: "connection quota unavailable" }));
      },
    );
  }

  private open(ws: Socket): void {
    const state = ws.getUserData();
    this.sockets.add(ws);
    this.deps.metrics.connectionOpened("ws");
    const session = new ClientSession<Socket>(this.deps.session, state.principal, this, ws);
    state.session = session;
    const since = state.since;
    state.since = undefined;
    void startAndWelcome(session, this.options.nodeId, since).then((welcome) => {
      if (welcome === null || !session.isOpen()) return;
      this.sendFrame(ws, { type: "welcome", ...welcome });
      afterSent(welcome);
    });
  }

  private message(ws: Socket, message: ArrayBuffer, isBinary: boolean): void {
    const session = ws.getUserData().session;
    if (session === null) return;
    const admitted = session.admitFrame();
    if (admitted === "close") return;
    if (message.byteLength > this.options.maxFrameBytes) {
      this.deps.metrics.frameReceived("ws", "oversized");
      this.end(ws, CloseCodes.messageTooBig, "message_too_big");
      return;
    }
    if (admitted === "refuse") {
      this.deps.metrics.frameReceived("ws", "rate_limited");
      // Parsed only for its id, so the client can match the refusal to its request.
      const id = isBinary ? null : this.parser.parseFrame(Buffer.from(message).toString("utf8")).id;
      this.sendError(ws, id, { code: ErrorCodes.rateLimited.code, message: "too many frames; slow down, or the socket is closed with 4029" });
      return;
    }
    if (isBinary) {
      this.deps.metrics.frameReceived("ws", "binary");
      this.sendError(ws, null, { code: ErrorCodes.badRequest.code, message: "binary frames are not accepted; send JSON text" });
      return;
    }
    // The ArrayBuffer is neutered when this callback returns: decode now.
    const parsed = this.parser.parseFrame(Buffer.from(message).toString("utf8"));
    this.deps.metrics.frameReceived("ws", parsed.ok ? parsed.request.type : "invalid");
    if (!parsed.ok) {
      this.deps.log.debug({ code: parsed.error.code }, "client frame refused");
      this.sendError(ws, parsed.id, parsed.error);
      return;
    }
    const answer = session.handle(parsed.request);
    if (answer instanceof Promise) void answer.then((settled) => this.reply(ws, parsed.id, settled));
    else this.reply(ws, parsed.id, answer);
  }

  private reply<Result extends object>(ws: Socket, id: number, answer: Answer<Result>): void {
    if (!isOpen(ws)) return;
    if (answer.ok) this.sendFrame(ws, { type: "reply", id, ...answer });
    else this.sendError(ws, id, answer.error);
    afterSent(answer);
  }

  private close(ws: Socket, code: number): void {
    const state = ws.getUserData();
    this.sockets.delete(ws);
    // Leaves every channel: the personal routes here, the topics went with the socket.
    state.session?.closed();
    // Every socket that reached open() holds a slot: the upgrade waited for it.
    this.deps.limits.perUser?.release(state.principal.sub);
    const reason = state.closeReason ?? CLOSE_REASON_BY_CODE.get(code) ?? "other";
    this.deps.metrics.connectionClosed("ws", reason);
    this.deps.log.debug({ code, reason }, "socket closed");
  }

  join(ws: Socket, channel: string): void {
    if (isPersonalChannel(channel)) this.personal.add(channel, ws);
    else ws.subscribe(channel);
  }

  leave(ws: Socket, channel: string): void {
    if (isPersonalChannel(channel)) this.personal.remove(channel, ws);
    // A closed socket has left its topics already, and may not be touched.
    else if (isOpen(ws)) ws.unsubscribe(channel);
  }

  end(ws: Socket, close: CloseCodeSpec, reason: string): void {
    if (!isOpen(ws)) return;
    ws.getUserData().closeReason = reason;
    ws.end(close.code, close.reason);
  }

  /**
   * The raw sockets' fan-out sink: one uWS topic publish per delivery, or for
   * a personal channel a send to each of its few local sockets, with the
   * same frame bytes.
   */
  sink(topics: TopicPublisher): FanoutSink {
    return {
      name: "ws",
      deliver: (delivery: Delivery): number => this.deliver(topics, delivery.channel, delivery.frame),
      signalGap: (gap: GapFrame): void => {
        this.deliver(topics, gap.channel, Buffer.from(JSON.stringify(gap)));
      },
    };
  }

  /** Personal channels' sockets on this node (the topics are uWS's). */
  personalChannels(): number {
    return this.personal.size();
  }

  private deliver(topics: TopicPublisher, channel: string, frame: Buffer): number {
    const compress = this.compress(frame.length);
    if (!isPersonalChannel(channel)) {
      const recipients = topics.numSubscribers(channel);
      if (recipients > 0) topics.publish(channel, frame, false, compress);
      return recipients;
    }
    return this.personal.forEach(channel, (ws) => {
      ws.cork(() => this.sendCounted(ws, frame, compress));
    });
  }

  /** Message frames for this socket alone (a resume's replay), as bytes: they were encoded once, at publish. */
  send(ws: Socket, frames: readonly Buffer[]): void {
    ws.cork(() => {
      for (const frame of frames) this.sendCounted(ws, frame, this.compress(frame.length));
    });
  }

  private sendFrame(ws: Socket, frame: ServerFrame | OkReplyFrame): void {
    const text = JSON.stringify(frame);
    // String length for bytes: close enough for a size threshold.
    this.sendCounted(ws, text, this.compress(text.length));
  }

  /** One frame to one socket; a frame uWS drops (past maxBackpressure) is counted. */
  private sendCounted(ws: Socket, frame: Buffer | string, compress: boolean): void {
    if (ws.send(frame, false, compress) === SEND_DROPPED) this.deps.metrics.sendDropped("backpressure");
  }

  private compress(bytes: number): boolean {
    return compressFrame(this.options.compression, bytes);
  }

  private sendError(ws: Socket, id: number | null, error: ErrorBody): void {
    this.deps.metrics.clientError(error.code);
    if (id === null) this.sendFrame(ws, { type: "error", error });
    else this.sendFrame(ws, { type: "reply", id, ok: false, error });
  }
}

