/**
 * The gateway client: one WebSocket at a time, re-opened by itself after any
 * close the codes table marks as reconnectable, with every subscription
 * restored and the token refreshed in place before it expires.
 *
 * Continuity (docs/client-sdk.md, "Resume"): every channel remembers the last
 * position it processed, or the one it joined at, and joins again with it as
 * `since` after a reconnect (the personal channel in the connect URL) or a
 * `gap`. A delivery that repeats a processed offset is dropped; one that
 * breaks the sequence makes the channel join again. The server's answer says
 * whether anything was lost (`resumed`).
 *
 * Invariants:
 * - Requests go out only after the socket's `welcome` (docs/protocol.md).
 * - Request ids are never reused across sockets, so a late reply from an old
 *   socket cannot resolve a new request.
 * - Events of a socket the client gave up on are ignored (`this.#socket` check).
 */

import { CloseCodes, type CloseCodeSpec } from "../codes.js";
import type { RaceSnapshot } from "../race-events.js";
import { BEARER_SUBPROTOCOL_PREFIX, WS_SUBPROTOCOL, type ErrorBody, type GapFrame, type JsonValue, type MessageFrame, type PresenceResult, type ServerFrame, type SubscribeResult, type WelcomeFrame } from "../protocol.js";
// Types only: the schema library stays out of the browser bundle.
import type { RequestOf } from "../requests.js";
import { backoffDelay, drainDelay, refreshDelay } from "./backoff.js";
import { continuity } from "./resume.js";
import {
  GatewayError,
  type ChannelHandlers,
  type ChannelPosition,
  type ClientEvents,
  type ClientOptions,
  type CommandMap,
  type ConnectionState,
  type DeliveryMeta,
  type ResumeCause,
  type ResumedInfo,
  type Timers,
  type TokenSource,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./types.js";

const OPEN = 1;
const ABNORMAL_CLOSURE = 1006;
const NORMAL_CLOSURE = 1000;
const CLIENT_CLOSED = "client closed";

/** Frames held per channel between a subscribe and its reply; past it the rest are dropped and the sequence check resyncs. */
const MAX_HELD = 1000;

const CLOSE_SPECS: ReadonlyMap<number, CloseCodeSpec> = new Map(Object.values(CloseCodes).map((spec) => [spec.code, spec]));

type ChannelFrame = MessageFrame | GapFrame;
type Request = { readonly type: string } & { readonly [field: string]: JsonValue | undefined };
type OkReply = { readonly [field: string]: unknown };

interface Pending {
  readonly frame: Request;
  readonly resolve: (reply: OkReply) => void;
  readonly reject: (error: GatewayError) => void;
  readonly timer: unknown;
  /** Whether the current socket carries it; unsent requests wait for the next welcome. */
  sent: boolean;
  /** False: fail at once when not connected instead of waiting for a connection. */
  readonly queue: boolean;
}

interface ChannelEntry {
  readonly channel: string;
  readonly handlerSets: Set<ChannelHandlers>;
  /** `leaving`: unsubscribing to resync after a gap; its deliveries are dropped, the rejoin replays them. */
  status: "pending" | "live" | "leaving" | "refused";
  refusal: GatewayError | null;
  /** The last message processed, or the position joined at: `since` for the next join. */
  position: ChannelPosition | undefined;
  /** Frames that arrived before the subscribe's reply (which says where the sequence starts), in order. */
  readonly held: ChannelFrame[];
  /** Live before: the next join is a resume and says so. */
  joined: boolean;
  /** Why the next join happens. */
  cause: ResumeCause;
  /** Latest serverTime delivered, so an older snapshot does not overwrite a newer tick. */
  lastServerTime: number;
  /** Consecutive `unavailable` refusals on this socket, for the retry backoff. */
  retries: number;
  readonly waiters: Array<{ resolve: () => void; reject: (error: GatewayError) => void }>;
}

export interface Subscription {
  readonly channel: string;
  /** Resolves once the server confirmed the channel; rejects if it refused it. */
  ready(): Promise<void>;
  /** Removes these handlers; the channel is left when no handlers remain. */
  unsubscribe(): void;
}

const platformTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0]),
};

type TimerName = "connect" | "reconnect" | "refresh";

type Settings = Required<Omit<ClientOptions, "WebSocket" | "timers" | "random">>;

/** docs/client-sdk.md lists them. */
const DEFAULTS: Settings = {
  initialDelayMs: 1000,
  maxDelayMs: 30_000,
  drainJitterMs: 1000,
  stableAfterMs: 5000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  refreshLeadMs: 30_000,
  refreshRetryMs: 5000,
};

/** Event handlers with a payload, for listeners kept per event name. */
type Listener<K extends keyof ClientEvents> = (event: ClientEvents[K]) => void;

export class GatewayClient {
  readonly #Socket: WebSocketConstructor;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #options: Settings;
  readonly #channels = new Map<string, ChannelEntry>();
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Map<keyof ClientEvents, Set<Listener<keyof ClientEvents>>>();

  #socket: WebSocketLike | null = null;
  #currentState: ConnectionState = "connecting";
  #welcome: WelcomeFrame | null = null;
  /** The personal channel's position sent in the current socket's URL. */
  #sentSince: { readonly channel: string; readonly since: ChannelPosition } | null = null;
  #duplicates = 0;
  #nextId = 1;
  #attempt = 0;
  #connectedAt = 0;
  /** serverTime − local time at the welcome: lets refresh timing use the server's clock. */
  #clockOffset = 0;
  /** Timer handles, at most one of each kind. */
  readonly #handles: Record<TimerName, unknown> = { connect: null, reconnect: null, refresh: null };
  #closedByUser = false;
  readonly #url: string;
  readonly #auth: TokenSource;

  constructor(
    url: string,
    auth: TokenSource,
    options: ClientOptions = {},
  ) {
    this.#url = url;
    this.#auth = auth;
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (Socket === undefined) throw new TypeError("no global WebSocket: pass options.WebSocket (e.g. `ws`)");
    this.#Socket = Socket;
    this.#timers = options.timers ?? platformTimers;
    this.#random = options.random ?? Math.random;
    const settings = { ...DEFAULTS };
    // Key by key: an option passed as undefined keeps its default.
    for (const key of Object.keys(DEFAULTS) as Array<keyof Settings>) settings[key] = options[key] ?? DEFAULTS[key];
    this.#options = settings;
    // A microtask, so listeners attached right after connect() see the first `connecting`.
    void Promise.resolve().then(() => this.#open());
  }

  get state(): ConnectionState {
    return this.#currentState;
  }

  /** The node serving the current socket, or null while not connected. */
  get node(): string | null {
    return this.#currentState === "connected" ? (this.#welcome?.node ?? null) : null;
  }

  /** The token's subject, known after the first welcome. */
  get user(): string | null {
    return this.#welcome?.user ?? null;
  }

  /** Estimated server wall clock, from the latest welcome. */
  serverNow(): number {
    return this.#timers.now() + this.#clockOffset;
  }

  /** The last (offset, epoch) processed on `channel`, or where it was joined: `since` for its next join. */
  position(channel: string): ChannelPosition | undefined {
    return this.#channels.get(channel)?.position;
  }

  /** Deliveries dropped because their offset was processed already (repeats across reconnects). */
  get duplicates(): number {
    return this.#duplicates;
  }

  on<K extends keyof ClientEvents>(event: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    const stored = listener as Listener<keyof ClientEvents>;
    set.add(stored);
    return () => set.delete(stored);
  }

  /** The next occurrence of `event`. */
  once<K extends keyof ClientEvents>(event: K): Promise<ClientEvents[K]> {
    return new Promise((resolve) => {
      const off = this.on(event, (value) => {
        off();
        resolve(value);
      });
    });
  }

  /**
   * Attaches typed handlers to `channel` and subscribes when it is the first.
   * On every (re)connect the channel is subscribed again with `since` set to
   * its last position; a `race` snapshot in the reply reaches the handlers as
   * a first event with `meta.fromSnapshot`. Personal channels the server joins
   * by itself (`user:<sub>`) are not subscribed explicitly.
   */
  subscribe(channel: string, handlers: ChannelHandlers): Subscription {
    let entry = this.#channels.get(channel);
    if (entry === undefined) {
      entry = this.#entry(channel);
      if (this.#currentState === "connected") this.#sendSubscribe(entry);
    }
    const owner = entry;
    owner.handlerSets.add(handlers);
    return {
      channel,
      ready: () =>
        new Promise<void>((resolve, reject) => {
          if (owner.status === "live") resolve();
          else if (owner.status === "refused" && owner.refusal !== null) reject(owner.refusal);
          else owner.waiters.push({ resolve, reject });
        }),
      unsubscribe: () => this.#detach(owner, handlers),
    };
  }

  /** Runs a server command; resolves with the `ok` reply's fields, rejects with its error. */
  command<N extends keyof CommandMap>(name: N, data: CommandMap[N]["data"], timeoutMs?: number): Promise<CommandMap[N]["reply"]>;
  command(name: string, data: JsonValue, timeoutMs?: number): Promise<OkReply>;
  command(name: string, data: unknown, timeoutMs?: number): Promise<OkReply> {
    return this.request({ type: "command", name, data: data as JsonValue } satisfies RequestOf<"command">, timeoutMs);
  }

  /**
   * Who is on `channel` across the cluster (users with their connections, or
   * with `stats` only the numbers). The channel must be subscribed and its
   * namespace keep presence; rejects with `not_subscribed` or
   * `presence_disabled` otherwise.
   */
  presence(channel: string, stats = false): Promise<PresenceResult> {
    return this.request({ type: "presence", channel, stats } satisfies RequestOf<"presence">) as unknown as Promise<PresenceResult>;
  }

  /**
   * Sends any request frame (`type` plus fields; the id is added) and resolves
   * with the `ok` reply. Waits for a connection first, up to the timeout. If the
   * socket drops after sending, it rejects with `disconnected`: the request may
   * or may not have taken effect, so retry idempotently.
   */
  request(frame: Request, timeoutMs = this.#options.requestTimeoutMs, queue = true): Promise<OkReply> {
    if (this.#closedByUser) return Promise.reject(new GatewayError("closed", CLIENT_CLOSED));
    if (!queue && this.#currentState !== "connected") return Promise.reject(new GatewayError("disconnected", "not connected"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = this.#timers.setTimeout(() => {
        this.#pending.delete(id);
        reject(new GatewayError("timeout", `no reply to ${frame.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const pending: Pending = { frame, resolve, reject, timer, sent: false, queue };
      this.#pending.set(id, pending);
      if (this.#currentState === "connected") this.#sendPending(id, pending);
    });
  }

  /** Closes for good: no reconnect, pending requests fail with `closed`. Resolves once the socket is closed. */
  close(): Promise<void> {
    if (this.#closedByUser) return Promise.resolve();
    this.#closedByUser = true;
    this.#clearTimer("connect");
    this.#clearTimer("reconnect");
    this.#clearTimer("refresh");
    this.#failPending("closed", CLIENT_CLOSED, () => true);
    const socket = this.#socket;
    this.#socket = null;
    const closed =
      socket === null || socket.readyState > OPEN
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            socket.onclose = () => resolve();
          });
    if (socket !== null) {
      socket.onmessage = null;
      socket.close(NORMAL_CLOSURE, CLIENT_CLOSED);
    }
    const wasDisconnected = this.#currentState === "disconnected";
    this.#setState("disconnected");
    if (!wasDisconnected) this.#emit("disconnected", { code: NORMAL_CLOSURE, reason: CLIENT_CLOSED, willReconnect: false });
    return closed;
  }

  // ---- connection ---------------------------------------------------------

  async #open(): Promise<void> {
    if (this.#closedByUser) return;
    this.#setState("connecting");
    this.#emit("connecting", { attempt: this.#attempt });
    let token: string;
    try {
      token = "token" in this.#auth ? this.#auth.token : await this.#auth.getToken();
    } catch (err) {
      this.#emit("error", new GatewayError("token_unavailable", `getToken failed: ${describe(err)}`));
      this.#retry(ABNORMAL_CLOSURE);
      return;
    }
    if (this.#closedByUser) return;

    // Resume the personal channel the server joins at connect (the first welcome names it).
    const own = this.#welcome?.channels[0];
    const since = own === undefined ? undefined : this.#channels.get(own)?.position;
    this.#sentSince = own === undefined || since === undefined ? null : { channel: own, since };
    const separator = this.#url.includes("?") ? "&" : "?";
    const resume = since === undefined ? "" : `${separator}since=${since.offset}:${encodeURIComponent(since.epoch)}`;
    // The token travels as a subprotocol, not in the URL: URLs end up in logs and histories.
    const socket = new this.#Socket(`${this.#url}${resume}`, [WS_SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + token]);
    this.#socket = socket;
    let failed = false;
    socket.onerror = () => {
      // Error events carry no detail in browsers; the close event that always follows decides.
      failed = true;
    };
    socket.onclose = (event) => this.#onClosed(socket, event.code, event.reason || (failed ? "connection failed" : ""));
    socket.onmessage = (event) => this.#onData(socket, event.data);
    this.#handles.connect = this.#timers.setTimeout(() => {
      this.#handles.connect = null;
      // Give up on this socket: its late events must not count as a second close.
      socket.onmessage = null;
      socket.onclose = null;
      socket.close();
      this.#onClosed(socket, ABNORMAL_CLOSURE, "connect timeout");
    }, this.#options.connectTimeoutMs);
  }

  #onClosed(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#socket = null;
    this.#clearTimer("connect");
    this.#clearTimer("refresh");
    // Sent requests may or may not have been applied; the caller decides on a retry.
    this.#failPending("disconnected", `connection lost (${code})`, (pending) => pending.sent || !pending.queue);
    for (const pending of this.#pending.values()) pending.sent = false;
    for (const entry of this.#channels.values()) {
      if (entry.status !== "refused") entry.status = "pending";
      entry.held.length = 0;
      entry.cause = "reconnect";
    }
    if (this.#closedByUser) return;

    const wasConnected = this.#currentState === "connected";
    if (wasConnected && this.#timers.now() - this.#connectedAt >= this.#options.stableAfterMs) this.#attempt = 0;
    // Codes outside the table (1006 network loss, 1001…) are retried with backoff.
    const willReconnect = CLOSE_SPECS.get(code)?.reconnect ?? true;
    if (wasConnected || !willReconnect) {
      this.#setState("disconnected");
      this.#emit("disconnected", { code, reason, willReconnect });
    }
    if (willReconnect) this.#retry(code);
  }

  #retry(code: number): void {
    const drain = code === CloseCodes.serverRestart.code;
    // 1012 is a planned move to a healthy node, not a failure: it restarts the count.
    this.#attempt = drain ? 1 : this.#attempt + 1;
    const delayMs = drain
      ? drainDelay(this.#options.drainJitterMs, this.#random)
      : backoffDelay(this.#attempt, this.#options, this.#random);
    this.#setState("reconnecting");
    this.#emit("reconnecting", { attempt: this.#attempt, delayMs, code, strategy: drain ? "drain" : "backoff" });
    this.#handles.reconnect = this.#timers.setTimeout(() => {
      this.#handles.reconnect = null;
      void this.#open();
    }, delayMs);
  }

  #onWelcome(frame: WelcomeFrame): void {
    this.#clearTimer("connect");
    this.#welcome = frame;
    this.#connectedAt = this.#timers.now();
    this.#clockOffset = frame.serverTime - this.#connectedAt;
    this.#setState("connected");
    // Personal channels exist from the first welcome, handlers or not, so their position is kept.
    for (const channel of frame.channels) if (!this.#channels.has(channel)) this.#entry(channel);
    // Entries that listeners add from here on are subscribed by subscribe() itself.
    const entries = [...this.#channels.values()];
    this.#emit("connected", { node: frame.node, user: frame.user, serverTime: frame.serverTime, expiresAt: frame.expiresAt, channels: frame.channels });
    for (const entry of entries) {
      if (this.#channels.get(entry.channel) !== entry || this.#socket === null) continue;
      entry.retries = 0;
      const personal = frame.channels.includes(entry.channel);
      // Another user's personal channel (the token changed hands) kept only for its position.
      if (!personal && entry.handlerSets.size === 0) this.#channels.delete(entry.channel);
      else if (!personal) this.#sendSubscribe(entry);
      else {
        const since = this.#sentSince?.channel === entry.channel ? this.#sentSince.since : undefined;
        // `positions` is absent from servers that keep no history.
        this.#joined(entry, since, frame.recovered, (frame.positions as WelcomeFrame["positions"] | undefined)?.[entry.channel] ?? {});
      }
    }
    for (const [id, pending] of this.#pending) if (!pending.sent) this.#sendPending(id, pending);
    this.#scheduleRefresh(frame.expiresAt);
  }

  // ---- frames -------------------------------------------------------------

  #onData(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.#socket) return;
    let frame: ServerFrame;
    try {
      // Browsers hand text frames over as strings; `ws` may hand over a Buffer.
      frame = JSON.parse(typeof data === "string" ? data : String(data)) as ServerFrame;
    } catch (err) {
      this.#emit("error", new GatewayError("protocol", `unparseable frame: ${describe(err)}`));
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.#onWelcome(frame);
        return;
      case "reply": {
        const pending = this.#pending.get(frame.id);
        if (pending === undefined) return;
        this.#pending.delete(frame.id);
        this.#timers.clearTimeout(pending.timer);
        if (frame.ok) pending.resolve(frame as unknown as OkReply);
        else pending.reject(fromBody(frame.error));
        return;
      }
      case "error":
        this.#emit("error", fromBody(frame.error));
        return;
      case "message":
      case "gap": {
        const entry = this.#channels.get(frame.channel);
        if (entry !== undefined) this.#onChannelFrame(entry, frame);
        return;
      }
    }
  }

  /** A delivery or gap notice, in socket order. */
  #onChannelFrame(entry: ChannelEntry, frame: ChannelFrame): void {
    if (entry.status === "pending") {
      if (entry.held.length < MAX_HELD) entry.held.push(frame);
      return;
    }
    // Leaving to resync, or refused: the rejoin replays what was after the position.
    if (entry.status !== "live") return;
    if (frame.type === "gap") return this.#resync(entry, frame.reason);
    const seen = continuity(entry.position, frame.offset, frame.epoch);
    if (seen === "duplicate") {
      this.#duplicates++;
      return;
    }
    if (seen !== "next") return this.#resync(entry, seen);
    entry.position = { offset: frame.offset, epoch: frame.epoch };
    const { channel, event, data, offset, epoch, ts } = frame;
    const serverTime = typeof data === "object" && data !== null && !Array.isArray(data) ? data["serverTime"] : undefined;
    if (typeof serverTime === "number") entry.lastServerTime = Math.max(entry.lastServerTime, serverTime);
    this.#deliver(entry, event, data, { channel, event, offset, epoch, ts, fromSnapshot: false });
  }

  #deliver(entry: ChannelEntry, event: string, data: JsonValue, meta: DeliveryMeta): void {
    for (const handlers of [...entry.handlerSets]) {
      const typed = (handlers as Record<string, ((data: JsonValue, meta: DeliveryMeta) => void) | undefined>)[event];
      if (typed !== undefined && event !== "message" && event !== "error" && event !== "resumed") this.#safely(entry.channel, () => typed(data, meta));
      if (handlers.message !== undefined) this.#safely(entry.channel, () => handlers.message?.(event, data, meta));
    }
  }

  // ---- subscriptions ------------------------------------------------------

  #entry(channel: string): ChannelEntry {
    const entry: ChannelEntry = {
      channel,
      handlerSets: new Set(),
      status: "pending",
      refusal: null,
      position: undefined,
      held: [],
      joined: false,
      cause: "reconnect",
      lastServerTime: -Infinity,
      retries: 0,
      waiters: [],
    };
    this.#channels.set(channel, entry);
    return entry;
  }

  #sendSubscribe(entry: ChannelEntry): void {
    const since = entry.position;
    entry.status = "pending";
    entry.held.length = 0;
    // The snapshot answers this subscribe: only a tick after it may overrule it.
    entry.lastServerTime = -Infinity;
    const frame: RequestOf<"subscribe"> = since === undefined ? { type: "subscribe", channel: entry.channel } : { type: "subscribe", channel: entry.channel, since };
    const socket = this.#socket;
    this.#ask(frame as unknown as Request).then(
      (reply) => {
        const result = reply as unknown as SubscribeResult;
        if (this.#channels.get(entry.channel) === entry && socket === this.#socket) this.#joined(entry, since, result.recovered, result, result.snapshot);
      },
      (error: GatewayError) => {
        if (this.#channels.get(entry.channel) !== entry || socket !== this.#socket) return;
        if (error.code === "unavailable" || error.code === "timeout" || error.code === "rate_limited" || error.code === "subscribe_rate_limited") {
          // A Redis hiccup on the node, or this socket is over a rate: try again on it with backoff.
          const delay = backoffDelay(++entry.retries, this.#options, this.#random);
          this.#timers.setTimeout(() => {
            if (this.#channels.get(entry.channel) === entry && socket === this.#socket && entry.status === "pending") this.#sendSubscribe(entry);
          }, delay);
          return;
        }
        if (error.code === "disconnected" || error.code === "closed") return;
        this.#refuse(entry, new GatewayError(error.code, error.message, entry.channel));
      },
    );
  }

  /**
   * The server answered a join (subscribe reply, or the welcome for the
   * personal channel). Recovered: the position stays at `since`, and the
   * missed messages come next. Otherwise the channel starts again at the
   * server's position, the application hears it must reload, and `race`
   * gets the snapshot.
   */
  #joined(entry: ChannelEntry, since: ChannelPosition | undefined, answer: boolean | undefined, at: Partial<ChannelPosition>, snapshot?: RaceSnapshot): void {
    const position = at.offset === undefined || at.epoch === undefined ? undefined : { offset: at.offset, epoch: at.epoch };
    const recovered = since !== undefined && answer === true;
    if (!recovered) entry.position = position;
    entry.status = "live";
    entry.refusal = null;
    for (const waiter of entry.waiters.splice(0)) waiter.resolve();
    if (entry.joined) {
      const info: ResumedInfo = { channel: entry.channel, recovered, cause: entry.cause, since: since ?? null, position: position ?? null };
      this.#emit("resumed", info);
      for (const handlers of [...entry.handlerSets]) if (handlers.resumed !== undefined) this.#safely(entry.channel, () => handlers.resumed?.(info));
    }
    entry.joined = true;
    entry.cause = "reconnect";
    for (const frame of entry.held.splice(0)) this.#onChannelFrame(entry, frame);
    // A tick may beat the reply; keep whichever is newer (docs/game-screens.md). The server
    // reads the snapshot after joining the socket, so on a tie the snapshot is not older.
    if (snapshot !== undefined && snapshot.data.serverTime >= entry.lastServerTime) {
      entry.lastServerTime = snapshot.data.serverTime;
      const meta: DeliveryMeta = { channel: entry.channel, event: snapshot.event, offset: null, epoch: null, ts: null, fromSnapshot: true };
      this.#deliver(entry, snapshot.event, snapshot.data as unknown as JsonValue, meta);
    }
  }

  /**
   * Continuity broke on the open socket: leave and join again from the last
   * position processed (docs/protocol.md, `gap`). Deliveries until the
   * unsubscribe's reply are past the break and dropped; the join replays them
   * if history still holds them.
   */
  #resync(entry: ChannelEntry, cause: ResumeCause): void {
    entry.status = "leaving";
    entry.cause = cause;
    const socket = this.#socket;
    const rejoin = (): void => {
      if (this.#channels.get(entry.channel) === entry && socket === this.#socket && entry.status === "leaving") this.#sendSubscribe(entry);
    };
    this.#ask({ type: "unsubscribe", channel: entry.channel } satisfies RequestOf<"unsubscribe">).then(rejoin, (error: GatewayError) => {
      // A reconnect rejoins by itself; any answer (not_subscribed included) means the socket has left.
      if (error.code !== "disconnected" && error.code !== "closed") rejoin();
    });
  }

  #refuse(entry: ChannelEntry, error: GatewayError): void {
    entry.status = "refused";
    entry.refusal = error;
    for (const waiter of entry.waiters.splice(0)) waiter.reject(error);
    for (const handlers of [...entry.handlerSets]) if (handlers.error !== undefined) this.#safely(entry.channel, () => handlers.error?.(error));
    this.#emit("error", error);
  }

  #detach(entry: ChannelEntry, handlers: ChannelHandlers): void {
    entry.handlerSets.delete(handlers);
    // The server joins the personal channel on every connect: it stays, and keeps its position for the next one.
    if (entry.handlerSets.size > 0 || this.#channels.get(entry.channel) !== entry || this.#welcome?.channels.includes(entry.channel) === true) return;
    this.#channels.delete(entry.channel);
    // A subscribe still in flight is left too: the server then refuses it with not_subscribed.
    if (this.#currentState !== "connected") return;
    this.#ask({ type: "unsubscribe", channel: entry.channel } satisfies RequestOf<"unsubscribe">).then(
      () => undefined,
      (error: GatewayError) => {
        if (error.code !== "disconnected" && error.code !== "closed" && error.code !== "not_subscribed") this.#emit("error", error);
      },
    );
  }

  // ---- token refresh ------------------------------------------------------

  #scheduleRefresh(expiresAt: number | null, delayMs?: number): void {
    this.#clearTimer("refresh");
    if (expiresAt === null || !("getToken" in this.#auth)) return;
    const socket = this.#socket;
    const delay = delayMs ?? refreshDelay(expiresAt, this.serverNow(), this.#options.refreshLeadMs);
    this.#handles.refresh = this.#timers.setTimeout(() => {
      this.#handles.refresh = null;
      if (socket === this.#socket) void this.#refresh(socket, expiresAt);
    }, delay);
  }

  async #refresh(socket: WebSocketLike | null, expiresAt: number): Promise<void> {
    if (!("getToken" in this.#auth)) return;
    try {
      const token = await this.#auth.getToken().catch((err: unknown) => {
        throw new GatewayError("token_unavailable", `getToken failed: ${describe(err)}`);
      });
      const reply = await this.#ask({ type: "refresh", token } satisfies RequestOf<"refresh">);
      if (socket !== this.#socket) return;
      const next = (reply["expiresAt"] as number | null | undefined) ?? null;
      this.#emit("refreshed", { expiresAt: next });
      for (const channel of (reply["unsubscribed"] as string[] | undefined) ?? []) {
        const entry = this.#channels.get(channel);
        if (entry !== undefined) this.#refuse(entry, new GatewayError("forbidden", `the refreshed token no longer grants ${channel}`, channel));
      }
      this.#scheduleRefresh(next);
    } catch (err) {
      if (socket !== this.#socket) return;
      this.#emit("error", err instanceof GatewayError ? err : new GatewayError("token_unavailable", describe(err)));
      // Keep trying while the old token is valid; past expiry the server closes with 4001 and the reconnect fetches a token.
      const remaining = expiresAt - this.serverNow();
      if (remaining > 0) this.#scheduleRefresh(expiresAt, Math.min(this.#options.refreshRetryMs, remaining / 2));
    }
  }

  // ---- plumbing -----------------------------------------------------------

  /** A request of the SDK's own: it belongs to the current socket, so it fails at once when there is none. */
  #ask(frame: Request): Promise<OkReply> {
    return this.request(frame, this.#options.requestTimeoutMs, false);
  }

  #sendPending(id: number, pending: Pending): void {
    const socket = this.#socket;
    if (socket === null || socket.readyState !== OPEN) return;
    pending.sent = true;
    socket.send(JSON.stringify({ ...pending.frame, id }));
  }

  #failPending(code: "closed" | "disconnected", message: string, which: (pending: Pending) => boolean): void {
    for (const [id, pending] of this.#pending) {
      if (!which(pending)) continue;
      this.#pending.delete(id);
      this.#timers.clearTimeout(pending.timer);
      pending.reject(new GatewayError(code, message));
    }
  }

  #setState(state: ConnectionState): void {
    const previous = this.#currentState;
    if (previous === state) return;
    this.#currentState = state;
    this.#emit("state", { state, previous });
  }

  #emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        listener(value);
      } catch (err) {
        // A failing error listener has nowhere left to report to: surface it like an uncaught exception.
        if (event === "error") this.#timers.setTimeout(() => { throw err; }, 0);
        else this.#emit("error", new GatewayError("handler_failed", `${event} listener threw: ${describe(err)}`));
      }
    }
  }

  /** A throwing handler must not break delivery to the others or the socket loop. */
  #safely(channel: string, run: () => void): void {
    try {
      run();
    } catch (err) {
      this.#emit("error", new GatewayError("handler_failed", `handler on ${channel} threw: ${describe(err)}`, channel));
    }
  }

  #clearTimer(name: TimerName): void {
    if (this.#handles[name] !== null) this.#timers.clearTimeout(this.#handles[name]);
    this.#handles[name] = null;
  }
}

function fromBody(body: ErrorBody): GatewayError {
  return new GatewayError(body.code, body.message);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Opens a client on `url` (`ws://host/ws` or `wss://…`). It connects at once,
 * and keeps reconnecting until close(). Pass `getToken` rather than a fixed
 * token to get refresh before expiry and a fresh token on every reconnect.
 */
export function connect(url: string, auth: TokenSource, options?: ClientOptions): GatewayClient {
  return new GatewayClient(url, auth, options);
}
