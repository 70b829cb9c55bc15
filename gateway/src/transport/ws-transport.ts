/**
 * The raw WebSocket endpoint `/ws`: authentication before the upgrade, the
 * JSON frame protocol, channel membership, token expiry and the SIGTERM drain.
 * No Redis and no SQL here: membership goes through the hub, deliveries come
 * from LocalFanout as uWebSockets.js topic publishes.
 */

import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from "uWebSockets.js";
import type { Logger } from "pino";
import { channelNamespace, isValidChannelName, maySubscribe, userChannel } from "../../../shared/src/channels.js";
import { CloseCodes, ErrorCodes, type CloseCodeSpec } from "../../../shared/src/codes.js";
import type { ClientFrame, ErrorBody, JsonValue, ServerFrame, WelcomeFrame } from "../../../shared/src/protocol.js";
import type { CommandRouter } from "../commands/command-router.js";
import type { RaceSnapshot } from "../../../shared/src/race-events.js";
import { tokenFrom, type JwtVerifier, type Principal } from "../auth/verifier.js";
import type { ChannelHub } from "../hub/channel-hub.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";
import { parseClientFrame } from "./client-frames.js";

export interface WsTransportOptions {
  readonly nodeId: string;
  readonly maxFrameBytes: number;
  readonly maxSubscriptions: number;
  readonly idleTimeoutSeconds: number;
  readonly maxBackpressureBytes: number;
  readonly clockToleranceSeconds: number;
}

export interface WsTransportDeps {
  readonly verifier: JwtVerifier;
  readonly hub: ChannelHub;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** Why the node takes no new sockets right now, or null when it does. */
  readonly refusal: () => string | null;
  /** Client commands (place_bet…); absent on nodes without a database. */
  readonly commands?: CommandRouter;
  /** State to hand a new subscriber of `channel` with its reply, when the channel has one. */
  readonly snapshotFor?: (channel: string) => Promise<RaceSnapshot | null> | null;
}

/** One channel of one socket; `live` once uWS delivers its topic to the socket. */
interface Membership {
  live: boolean;
}

interface SocketState {
  principal: Principal;
  /** Identity matters: a subscribe completing late checks it still owns its entry. */
  readonly channels: Map<string, Membership>;
  open: boolean;
  expiryTimer: NodeJS.Timeout | null;
  /** Set just before the server ends the socket, for the disconnect metric. */
  closeReason: string | null;
}

type Socket = WebSocket<SocketState>;

// setTimeout's ceiling; a later expiry re-arms the timer when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

const CLOSE_REASON_BY_CODE: ReadonlyMap<number, string> = new Map([
  [1000, "normal"],
  [1001, "going_away"],
  [1005, "no_status"],
  [1006, "abnormal"],
  [1009, "message_too_big"],
]);

function writeError(res: HttpResponse, status: string, body: ErrorBody): void {
  res.writeStatus(status).writeHeader("content-type", "application/json").end(JSON.stringify({ error: body }));
}

export class WsTransport {
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly options: WsTransportOptions,
    private readonly deps: WsTransportDeps,
  ) {}

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
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      close: (ws, code) => this.close(ws, code),
    });
  }

  connectionCount(): number {
    return this.sockets.size;
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
      const state = ws.getUserData();
      if (!state.open) continue;
      state.closeReason = "slow_consumer";
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
    const sockets = [...this.sockets];
    const steps = Math.max(1, Math.min(sockets.length, Math.floor(windowMs / 20)));
    const perStep = Math.ceil(sockets.length / steps);
    const interval = steps > 1 ? windowMs / steps : 0;
    for (let step = 0; step < steps; step++) {
      for (const ws of sockets.slice(step * perStep, (step + 1) * perStep)) {
        this.end(ws, CloseCodes.serverRestart, "drain");
      }
      if (interval > 0 && step < steps - 1) await new Promise((resolve) => setTimeout(resolve, interval));
    }
    const deadline = Date.now() + 1000;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    // req is only valid inside this callback: read everything from it first.
    const secKey = req.getHeader("sec-websocket-key");
    const protocol = req.getHeader("sec-websocket-protocol");
    const extensions = req.getHeader("sec-websocket-extensions");
    const token = tokenFrom(req.getHeader("authorization"), req.getQuery("token") ?? "");

    const refusal = this.deps.refusal();
    if (refusal !== null) {
      writeError(res, "503 Service Unavailable", { code: ErrorCodes.unavailable.code, message: refusal });
      return;
    }
    const verdict = this.deps.verifier.verify(token);
    if (!verdict.ok) {
      this.deps.metrics.authFailed(verdict.reason);
      this.deps.log.debug({ reason: verdict.reason }, "upgrade refused");
      writeError(res, "401 Unauthorized", { code: ErrorCodes.invalidToken.code, message: verdict.message });
      return;
    }
    const state: SocketState = { principal: verdict.principal, channels: new Map(), open: true, expiryTimer: null, closeReason: null };
    res.upgrade(state, secKey, protocol, extensions, context);
  }

  private open(ws: Socket): void {
    const state = ws.getUserData();
    this.sockets.add(ws);
    this.deps.metrics.connectionOpened("ws");
    this.armExpiry(ws);

    // The welcome goes out only once the personal channel is live, so a client
    // that sees it cannot miss a personal message published after.
    const own = userChannel(state.principal.sub);
    const membership: Membership = { live: false };
    state.channels.set(own, membership);
    this.deps.hub.acquire(own).then(
      () => {
        if (!state.open) return;
        if (state.channels.get(own) === membership) this.goLive(ws, own, membership);
        const welcome: WelcomeFrame = {
          type: "welcome",
          node: this.options.nodeId,
          user: state.principal.sub,
          serverTime: Date.now(),
          channels: [own],
          expiresAt: state.principal.expiresAt,
        };
        this.send(ws, welcome);
      },
      (err: unknown) => {
        this.deps.log.error({ err: (err as Error).message, channel: "user:*" }, "personal channel subscribe failed");
        if (!state.open) return;
        if (state.channels.get(own) === membership) this.leave(ws, own);
        this.end(ws, CloseCodes.unavailable, "unavailable");
      },
    );
  }

  private message(ws: Socket, message: ArrayBuffer, isBinary: boolean): void {
    if (message.byteLength > this.options.maxFrameBytes) {
      this.deps.metrics.frameReceived("ws", "oversized");
      this.end(ws, CloseCodes.messageTooBig, "message_too_big");
      return;
    }
    if (isBinary) {
      this.deps.metrics.frameReceived("ws", "binary");
      this.sendError(ws, null, { code: ErrorCodes.badRequest.code, message: "binary frames are not accepted; send JSON text" });
      return;
    }
    // The ArrayBuffer is neutered when this callback returns: decode now.
    const parsed = parseClientFrame(Buffer.from(message).toString("utf8"));
    if (!parsed.ok) {
      this.deps.metrics.frameReceived("ws", "invalid");
      this.deps.log.debug({ code: parsed.error.code }, "client frame refused");
      this.sendError(ws, parsed.id, parsed.error);
      return;
    }
    this.deps.metrics.frameReceived("ws", parsed.frame.type);
    this.dispatch(ws, parsed.frame);
  }

  private dispatch(ws: Socket, frame: ClientFrame): void {
    switch (frame.type) {
      case "subscribe":
        this.subscribe(ws, frame.id, frame.channel);
        return;
      case "unsubscribe":
        this.unsubscribe(ws, frame.id, frame.channel);
        return;
      case "refresh":
        this.refresh(ws, frame.id, frame.token);
        return;
      case "ping":
        this.send(ws, { type: "reply", id: frame.id, ok: true, serverTime: Date.now() });
        return;
      case "command":
        this.command(ws, frame.id, frame.name, frame.data);
        return;
    }
  }

  private command(ws: Socket, id: number, name: string, data: JsonValue): void {
    const router = this.deps.commands;
    if (router === undefined) {
      this.sendError(ws, id, { code: ErrorCodes.unavailable.code, message: "this node takes no commands (no database configured)" });
      return;
    }
    const state = ws.getUserData();
    router.handle({ userId: state.principal.sub }, name, data).then(
      (reply) => {
        // The effect is committed even if the socket went away meanwhile; a
        // reconnecting client learns it by retrying with the same key.
        if (!state.open) return;
        if (reply.ok) this.send(ws, { type: "reply", id, ok: true, result: reply.result });
        else this.sendError(ws, id, reply.error);
      },
      (err: unknown) => {
        this.deps.log.error({ err: (err as Error).message, command: name }, "command failed");
        if (state.open) this.sendError(ws, id, { code: ErrorCodes.internal.code, message: "command failed; retry with the same idempotency key" });
      },
    );
  }

  private subscribe(ws: Socket, id: number, channel: string): void {
    const state = ws.getUserData();
    const refuse = (error: ErrorBody): void => {
      this.deps.metrics.subscribeRefused(error.code);
      this.sendError(ws, id, error);
    };
    if (!isValidChannelName(channel)) {
      refuse({ code: ErrorCodes.invalidChannel.code, message: "channel name must be 1-128 characters of A-Z a-z 0-9 _ - . : @ | = + /" });
      return;
    }
    if (!maySubscribe(state.principal, channel)) {
      refuse({ code: ErrorCodes.forbidden.code, message: `not allowed to subscribe to ${channel}` });
      return;
    }
    if (state.channels.has(channel)) {
      refuse({ code: ErrorCodes.alreadySubscribed.code, message: `already subscribed to ${channel}` });
      return;
    }
    if (state.channels.size >= this.options.maxSubscriptions) {
      refuse({ code: ErrorCodes.limitExceeded.code, message: `at most ${this.options.maxSubscriptions} subscriptions per connection` });
      return;
    }

    // The socket owns the hub reference from here; close() gives it back even
    // if the socket goes away before the broker answers.
    const membership: Membership = { live: false };
    state.channels.set(channel, membership);
    this.deps.hub.acquire(channel).then(
      () => {
        if (!state.open) return;
        if (state.channels.get(channel) !== membership) {
          refuse({ code: ErrorCodes.notSubscribed.code, message: `unsubscribed from ${channel} before the subscription completed` });
          return;
        }
        this.goLive(ws, channel, membership);
        this.replySubscribed(ws, id, channel);
      },
      (err: unknown) => {
        this.deps.log.error({ err: (err as Error).message, namespace: channelNamespace(channel) }, "broker subscribe failed");
        if (!state.open) return;
        if (state.channels.get(channel) === membership) this.leave(ws, channel);
        refuse({ code: ErrorCodes.unavailable.code, message: "subscription backend unavailable, retry" });
      },
    );
  }

  /**
   * The snapshot is read after the socket joined the topic, so it is never
   * older than what the socket can miss; a tick may still arrive before the
   * reply, and screens keep whichever carries the later serverTime.
   */
  private replySubscribed(ws: Socket, id: number, channel: string): void {
    const pending = this.deps.snapshotFor?.(channel) ?? null;
    if (pending === null) {
      this.send(ws, { type: "reply", id, ok: true, channel });
      return;
    }
    const state = ws.getUserData();
    pending.then(
      (snapshot) => {
        if (state.open) this.send(ws, snapshot === null ? { type: "reply", id, ok: true, channel } : { type: "reply", id, ok: true, channel, snapshot });
      },
      (err: unknown) => {
        this.deps.log.warn({ err: (err as Error).message, channel }, "snapshot unavailable");
        if (state.open) this.send(ws, { type: "reply", id, ok: true, channel });
      },
    );
  }

  private unsubscribe(ws: Socket, id: number, channel: string): void {
    const state = ws.getUserData();
    if (!state.channels.has(channel)) {
      this.sendError(ws, id, { code: ErrorCodes.notSubscribed.code, message: `not subscribed to ${channel}` });
      return;
    }
    this.leave(ws, channel);
    this.send(ws, { type: "reply", id, ok: true, channel });
  }

  private refresh(ws: Socket, id: number, token: string): void {
    const state = ws.getUserData();
    const verdict = this.deps.verifier.verify(token);
    if (!verdict.ok) {
      this.deps.metrics.authFailed(verdict.reason);
      this.sendError(ws, id, { code: ErrorCodes.invalidToken.code, message: verdict.message });
      return;
    }
    if (verdict.principal.sub !== state.principal.sub) {
      this.sendError(ws, id, { code: ErrorCodes.forbidden.code, message: "refresh token is for another user" });
      return;
    }
    state.principal = verdict.principal;
    this.armExpiry(ws);
    // Grants may have shrunk: drop what the new token no longer allows.
    const unsubscribed = [...state.channels.keys()].filter((channel) => !maySubscribe(state.principal, channel));
    for (const channel of unsubscribed) this.leave(ws, channel);
    this.send(ws, { type: "reply", id, ok: true, expiresAt: state.principal.expiresAt, unsubscribed });
  }

  private goLive(ws: Socket, channel: string, membership: Membership): void {
    ws.subscribe(channel);
    membership.live = true;
    this.deps.metrics.subscribed(channelNamespace(channel));
  }

  /** Gives back the socket's hub reference; the only way a membership ends. */
  private leave(ws: Socket, channel: string): void {
    const state = ws.getUserData();
    const membership = state.channels.get(channel);
    if (membership === undefined) return;
    state.channels.delete(channel);
    if (membership.live) {
      ws.unsubscribe(channel);
      this.deps.metrics.unsubscribed(channelNamespace(channel));
    }
    this.deps.hub.release(channel);
  }

  private close(ws: Socket, code: number): void {
    const state = ws.getUserData();
    state.open = false;
    this.sockets.delete(ws);
    if (state.expiryTimer !== null) clearTimeout(state.expiryTimer);
    // uWS has already dropped the socket's topics; only our books are left.
    for (const [channel, membership] of state.channels) {
      if (membership.live) this.deps.metrics.unsubscribed(channelNamespace(channel));
      this.deps.hub.release(channel);
    }
    state.channels.clear();
    const reason = state.closeReason ?? CLOSE_REASON_BY_CODE.get(code) ?? "other";
    this.deps.metrics.connectionClosed("ws", reason);
    this.deps.log.debug({ code, reason }, "socket closed");
  }

  private armExpiry(ws: Socket): void {
    const state = ws.getUserData();
    if (state.expiryTimer !== null) clearTimeout(state.expiryTimer);
    state.expiryTimer = null;
    const expiresAt = state.principal.expiresAt;
    if (expiresAt === null) return;
    const due = expiresAt + this.options.clockToleranceSeconds * 1000 - Date.now();
    state.expiryTimer = setTimeout(() => {
      state.expiryTimer = null;
      if (!state.open) return;
      if (due > MAX_TIMER_MS) this.armExpiry(ws);
      else this.end(ws, CloseCodes.tokenExpired, "token_expired");
    }, Math.max(0, Math.min(due, MAX_TIMER_MS)));
  }

  private end(ws: Socket, close: CloseCodeSpec, reason: string): void {
    const state = ws.getUserData();
    if (!state.open) return;
    state.closeReason = reason;
    ws.end(close.code, close.reason);
  }

  private send(ws: Socket, frame: ServerFrame): void {
    if (ws.send(JSON.stringify(frame), false) === 2) this.deps.metrics.sendDropped("backpressure");
  }

  private sendError(ws: Socket, id: number | null, error: ErrorBody): void {
    this.deps.metrics.clientError(error.code);
    if (id === null) this.send(ws, { type: "error", error });
    else this.send(ws, { type: "reply", id, ok: false, error });
  }
}
