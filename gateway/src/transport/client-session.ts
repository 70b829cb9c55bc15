/**
 * One connected client, whatever its protocol: its principal, its channel
 * memberships (each holding one hub reference), token expiry and the answers
 * to its requests. The raw WebSocket and Socket.IO transports only translate
 * frames or events into these calls and the results back, so both protocols
 * authorize, subscribe, refresh and run commands identically.
 */

import type { Logger } from "pino";
import { channelNamespace, isValidChannelName, maySubscribe, USER_CHANNEL_PREFIX, userChannel } from "../../../shared/src/channels.js";
import { CloseCodes, ErrorCodes, type CloseCodeSpec, type ErrorCode } from "../../../shared/src/codes.js";
import type { ChannelPosition, ErrorBody, JsonValue, PingResult, PresenceResult, RefreshResult, SubscribeResult, UnsubscribeResult, CommandResult } from "../../../shared/src/protocol.js";
import type { RaceSnapshot } from "../../../shared/src/race-events.js";
import type { ClientRequest } from "../../../shared/src/requests.js";
import { authErrorCode, type AuthFailureReason, type Principal, type VerifyResult } from "../auth/verifier.js";
import type { CommandContext, CommandReply } from "../commands/command-router.js";
import { planResume, type ResumePlan, type ResumeSource } from "../history/resume.js";
import type { RateGate } from "../limits/rate-gate.js";
import type { RateLimitMetrics } from "../limits/rate-limit-metrics.js";
import type { Clock } from "../time/clock.js";
import type { ExpiryWheel, Expiring } from "./expiry-wheel.js";
import type { SessionIndex } from "./session-index.js";

/**
 * What must happen right after an answer (or a welcome) is sent, in the same
 * synchronous step: a resumed channel's replayed messages, then its join.
 * A symbol, so it never reaches the wire (JSON ignores symbol keys).
 */
const AFTER_SENT: unique symbol = Symbol("afterSent");

interface Followed {
  readonly [AFTER_SENT]?: () => void;
}

export type Answer<Result> = (({ readonly ok: true } & Result) | { readonly ok: false; readonly error: ErrorBody }) & Followed;

/**
 * Transports call this right after sending an answer or welcome to the
 * client, without awaiting anything in between; nothing when the connection
 * went away first (the session's close gives its references back).
 */
export function afterSent(sent: object): void {
  (sent as Followed)[AFTER_SENT]?.();
}

/**
 * What a session needs from its connection: the transport's operations, one
 * object for all its sessions, applied to the session's handle (the uWS
 * socket, the Socket.IO socket). Shared rather than a closure or wrapper per
 * connection, which cost 40-250 bytes per socket.
 */
export interface SessionConnection<Handle> {
  /** Start delivering `channel` to this client (uWS topic, Socket.IO room). */
  join(handle: Handle, channel: string): void;
  /** Stop delivering `channel`; also called for every live channel when the session closes, after the connection is gone. */
  leave(handle: Handle, channel: string): void;
  /** Close the connection with a documented code; the transport then calls session.closed(). */
  end(handle: Handle, close: CloseCodeSpec, reason: string): void;
  /** Sends message frames (replayed from history) to this client only, in order. */
  send(handle: Handle, frames: readonly Buffer[]): void;
}

/** Checks a JWT; also used by the transports before a connection exists. */
export interface TokenVerifier {
  /** Never throws: a missing, malformed or refused token is a failure with a reason. */
  verify(token: string | undefined): VerifyResult;
}

/** Reference-counted interest in channels; the node receives a channel while anyone holds it. */
export interface ChannelReferences {
  /**
   * Takes one reference on `channel` at once and resolves when the node
   * receives its deliveries. The reference is the caller's even when this
   * rejects (the bus is down): it must be given back with release().
   */
  acquire(channel: string): Promise<void>;
  /** Gives back one reference; the last one out unsubscribes the node (maybe after a delay). */
  release(channel: string): void;
}

/** Runs client commands. */
export interface CommandRunner {
  /** Resolves with the reply to send; rejects only when the node failed, and then nothing was committed. */
  handle(context: CommandContext, name: string, data: JsonValue): Promise<CommandReply>;
}

/** Revocations in force (POST /v1/revoke), as this node knows them. */
export interface SessionRevocations {
  /** Whether a token of `sub` issued at `issuedAt` (ms; null without `iat`) is revoked. */
  isRevoked(sub: string, issuedAt: number | null): boolean;
}

/** Told when a channel goes live on a connection and when it leaves it: the node's channel counts and presence. */
export interface ChannelActivity {
  joined(channel: string, user: string): void;
  left(channel: string, user: string): void;
}

/** Presence across the cluster, for the `presence` request. */
export interface PresenceReader {
  /** Whether `channel`'s namespace keeps presence (PRESENCE_NAMESPACES). */
  enabledFor(channel: string): boolean;
  /** Rejects when Redis cannot answer. */
  read(channel: string, stats: boolean): Promise<PresenceResult>;
}

/** What sessions record. */
export interface SessionMetrics extends RateLimitMetrics {
  /** A channel went live on a connection. */
  subscribed(channel: string): void;
  subscribeRefused(code: ErrorCode): void;
  /** A live channel left a connection, by request, refresh or close. */
  unsubscribed(channel: string): void;
  authFailed(reason: AuthFailureReason): void;
}

/** The per-connection rates (CLIENT_FRAMES_PER_S and its burst, SUBSCRIBES_PER_S and its burst). */
export interface SessionRates {
  readonly frames: RateGate;
  readonly subscribes: RateGate;
}

/** What admitFrame() decided: act on the frame, answer it `rate_limited`, or nothing (the connection is being closed with 4029). */
export type FrameVerdict = "pass" | "refuse" | "close";

export interface SessionDeps {
  readonly verifier: TokenVerifier;
  readonly rates: SessionRates;
  /** Time for the rate gates; Date by default. */
  readonly clock?: Clock;
  readonly hub: ChannelReferences;
  readonly metrics: SessionMetrics;
  readonly log: Logger;
  readonly maxSubscriptions: number;
  readonly clockToleranceSeconds: number;
  /** One timer for every connection's token expiry. */
  readonly expiries: ExpiryWheel;
  /** Absent when the node has no database: commands are then refused with `unavailable`. */
  readonly commands?: CommandRunner;
  readonly snapshotFor?: (channel: string) => Promise<RaceSnapshot | null> | null;
  /** History and this node's positions: `since` resumes with it; absent, `since` is answered `recovered: false`. */
  readonly continuity?: ResumeSource;
  /** This node's sessions by user, for commands about a user (disconnect, revoke). */
  readonly index?: SessionIndex<ClientSession>;
  /** Checked when the session starts, which may be after the token was verified. */
  readonly revocations?: SessionRevocations;
  readonly activity?: ChannelActivity;
  /** Absent: `presence` is answered presence_disabled. */
  readonly presence?: PresenceReader;
}

/** What start() resolves with: the personal channel, where the client stands on it, whether `since` was honoured. */
export interface Started extends Followed {
  readonly channels: string[];
  readonly positions: Readonly<Record<string, ChannelPosition>>;
  /** Present only when the connection asked to resume its personal channel. */
  readonly recovered?: boolean;
}

/**
 * One channel of one session, as a small integer: a number unique within
 * the session (its identity: a subscribe that awaited the broker checks it is
 * still the membership it started) times two, plus one once the connection
 * receives the channel. A number rather than an object: 0 bytes per
 * membership instead of ~32, and no Map per session.
 */
type Membership = number;

/** No membership. */
const NONE: Membership = 0;

function isLive(membership: Membership): boolean {
  return membership % 2 === 1;
}

function liveOf(membership: Membership): Membership {
  return membership - (membership % 2) + 1;
}

function refusal(code: ErrorBody["code"], message: string): { ok: false; error: ErrorBody } {
  return { ok: false, error: { code, message } };
}

/**
 * Whether `next` was issued before `held`, so a refresh with it would move
 * backwards: an old token, perhaps with broader grants, replayed. A token
 * without `iat` cannot be ordered, so it cannot replace one that has it.
 * Equal `iat`s pass: issuers mint several tokens within a second.
 */
function issuedBefore(next: Principal, held: Principal): boolean {
  if (held.issuedAt === null) return false;
  return next.issuedAt === null || next.issuedAt < held.issuedAt;
}

export class ClientSession<Handle = unknown> implements Expiring {
  /** The personal channel's membership; its name is `user:<sub>`, kept by the hub, not here. */
  private own: Membership = NONE;
  /** Every other channel: [channel, membership, channel, membership, …], created on the first; null while there is none. */
  private others: Array<string | Membership> | null = null;
  /** The last membership number handed out (see Membership). */
  private memberships = 0;
  expiryBucket: number | null = null;
  private open = true;
  /** The rate gates' states (see RateGate): one number each, no timers. */
  private frameTat = 0;
  private subscribeTat = 0;

  constructor(
    private readonly deps: SessionDeps,
    private principalNow: Principal,
    private readonly connection: SessionConnection<Handle>,
    /** The transport's socket of this connection, handed back on every connection call. */
    private readonly socket: Handle,
  ) {
    deps.index?.add(this);
  }

  get principal(): Principal {
    return this.principalNow;
  }

  isOpen(): boolean {
    return this.open;
  }

  /**
   * Counts one frame or event from the client, on arrival, before it is
   * parsed. Refused frames count too, so a client must pause to recover; one
   * that keeps sending while refused, for another CLIENT_FRAME_BURST frames,
   * is closed with 4029 here.
   */
  admitFrame(): FrameVerdict {
    const gate = this.deps.rates.frames;
    const now = (this.deps.clock ?? Date).now();
    const next = gate.advance(this.frameTat, now);
    this.frameTat = next;
    if (gate.admits(next, now)) return "pass";
    this.deps.metrics.rateLimited("frames");
    if (!gate.overwhelmed(next, now)) return "refuse";
    if (this.open) this.connection.end(this.socket, CloseCodes.rateLimited, "rate_limited");
    return "close";
  }

  /**
   * Answers one parsed request. Answers that need no I/O come back at once,
   * not as a promise, so replies leave in the order their requests arrived.
   */
  handle(request: ClientRequest): Answer<object> | Promise<Answer<object>> {
    switch (request.type) {
      case "subscribe":
        return this.subscribe(request.channel, request.since);
      case "unsubscribe":
        return this.unsubscribe(request.channel);
      case "refresh":
        return this.refresh(request.token);
      case "ping":
        return this.ping();
      case "presence":
        return this.presence(request.channel, request.stats === true);
      case "command":
        // The effect is committed even if the connection went away meanwhile;
        // a reconnecting client learns it by retrying with the same key.
        return this.command(request.name, request.data);
    }
  }

  /**
   * Joins the personal channel and arms the expiry timer. Resolves once the
   * personal channel is live, so a welcome sent after it cannot miss a
   * personal message; closes the connection (1013) if Redis fails. With
   * `since`, the personal messages after it are replayed right after the
   * welcome (afterSent), or the welcome says `recovered: false`.
   */
  async start(since?: ChannelPosition): Promise<Started | null> {
    try {
      return await this.begin(since);
    } catch (err) {
      // Never a socket left open without its welcome: the client is told to come back.
      this.deps.log.error({ err }, "session start failed");
      if (this.open) this.connection.end(this.socket, CloseCodes.unavailable, "unavailable");
      return null;
    }
  }

  private async begin(since?: ChannelPosition): Promise<Started | null> {
    // A revocation may have arrived between the token's check and now.
    if (this.deps.revocations?.isRevoked(this.principalNow.sub, this.principalNow.issuedAt) === true) {
      this.connection.end(this.socket, CloseCodes.tokenRevoked, "token_revoked");
      return null;
    }
    this.armExpiry();
    // One string for the hub's books and the transport's: the only copy of the name.
    const own = userChannel(this.principalNow.sub);
    const membership = this.newMembership();
    this.own = membership;
    try {
      await this.deps.hub.acquire(own);
    } catch (err) {
      this.deps.log.error({ err, channel: "user:*" }, "personal channel subscribe failed");
      if (this.open) {
        if (this.holds(own, membership)) this.leave(own);
        this.connection.end(this.socket, CloseCodes.unavailable, "unavailable");
      }
      return null;
    }
    const plan = since === undefined ? null : await this.plan(own, since);
    if (!this.open || !this.holds(own, membership)) return null;
    const joined = this.join(own, membership, plan);
    return { channels: [own], positions: joined.position === null ? {} : { [own]: joined.position }, ...(since === undefined ? {} : { recovered: plan?.recovered ?? false }), ...joined.then };
  }

  async subscribe(channel: string, since?: ChannelPosition): Promise<Answer<SubscribeResult>> {
    const refuse = (code: ErrorBody["code"], message: string): Answer<SubscribeResult> => {
      this.deps.metrics.subscribeRefused(code);
      return refusal(code, message);
    };
    if (!this.admitSubscribe()) return refuse(ErrorCodes.subscribeRateLimited.code, this.subscribeRateMessage());
    if (!isValidChannelName(channel)) return refuse(ErrorCodes.invalidChannel.code, "channel name must be 1-128 characters of A-Z a-z 0-9 _ - . : @ | = + /");
    if (!maySubscribe(this.principalNow, channel)) return refuse(ErrorCodes.forbidden.code, `not allowed to subscribe to ${channel}`);
    if (this.membershipOf(channel) !== NONE) return refuse(ErrorCodes.alreadySubscribed.code, `already subscribed to ${channel}`);
    if (this.channelCount() >= this.deps.maxSubscriptions) return refuse(ErrorCodes.limitExceeded.code, `at most ${this.deps.maxSubscriptions} subscriptions per connection`);

    // The session owns the hub reference from here; closed() gives it back
    // even if the connection goes away before the broker answers.
    const membership = this.newMembership();
    this.setMembership(channel, membership);
    try {
      await this.deps.hub.acquire(channel);
    } catch (err) {
      this.deps.log.error({ err, namespace: channelNamespace(channel) }, "broker subscribe failed");
      if (this.holds(channel, membership)) this.leave(channel);
      return refuse(ErrorCodes.unavailable.code, "subscription backend unavailable, retry");
    }
    const plan = since === undefined ? null : await this.plan(channel, since);
    if (!this.holds(channel, membership)) return refuse(ErrorCodes.notSubscribed.code, `unsubscribed from ${channel} before the subscription completed`);
    const joined = this.join(channel, membership, plan);
    const position = joined.position === null ? {} : { offset: joined.position.offset, epoch: joined.position.epoch };
    if (plan?.recovered === true) return { ok: true, channel, ...position, recovered: true, ...joined.then };
    // Not resumed: the client reloads, so `race` brings its snapshot.
    return { ok: true, channel, ...position, ...(since === undefined ? {} : { recovered: false }), ...(await this.snapshot(channel)) };
  }

  unsubscribe(channel: string): Answer<UnsubscribeResult> {
    if (!this.admitSubscribe()) return refusal(ErrorCodes.subscribeRateLimited.code, this.subscribeRateMessage());
    if (this.membershipOf(channel) === NONE) return refusal(ErrorCodes.notSubscribed.code, `not subscribed to ${channel}`);
    this.leave(channel);
    return { ok: true, channel };
  }

  refresh(token: string): Answer<RefreshResult> {
    const verdict = this.deps.verifier.verify(token);
    if (!verdict.ok) {
      this.deps.metrics.authFailed(verdict.reason);
      return refusal(authErrorCode(verdict.reason), verdict.message);
    }
    if (verdict.principal.sub !== this.principalNow.sub) return refusal(ErrorCodes.forbidden.code, "refresh token is for another user");
    if (issuedBefore(verdict.principal, this.principalNow)) return refusal(ErrorCodes.forbidden.code, "refresh token was issued before the current one");
    this.principalNow = verdict.principal;
    this.armExpiry();
    // Grants may have shrunk: drop what the new token no longer allows.
    const unsubscribed = this.channels().filter((channel) => !maySubscribe(this.principalNow, channel));
    for (const channel of unsubscribed) this.leave(channel);
    return { ok: true, expiresAt: this.principalNow.expiresAt, unsubscribed };
  }

  ping(): Answer<PingResult> {
    return { ok: true, serverTime: Date.now() };
  }

  /** Who is on a channel this connection receives, across the cluster. */
  async presence(channel: string, stats: boolean): Promise<Answer<PresenceResult>> {
    if (!isLive(this.membershipOf(channel))) return refusal(ErrorCodes.notSubscribed.code, `subscribe to ${channel} before asking who is on it`);
    const reader = this.deps.presence;
    if (reader === undefined || !reader.enabledFor(channel)) return refusal(ErrorCodes.presenceDisabled.code, `presence is not enabled for ${channel}`);
    try {
      return { ok: true, ...(await reader.read(channel, stats)) };
    } catch (err) {
      this.deps.log.warn({ err, namespace: channelNamespace(channel) }, "presence unavailable");
      return refusal(ErrorCodes.unavailable.code, "presence unavailable, retry");
    }
  }

  /** Closes the connection on the server's behalf (a backend's disconnect or revoke); nothing if it is closing already. */
  kick(close: CloseCodeSpec, reason: string): void {
    if (this.open) this.connection.end(this.socket, close, reason);
  }

  async command(name: string, data: JsonValue): Promise<Answer<CommandResult>> {
    const router = this.deps.commands;
    if (router === undefined) return refusal(ErrorCodes.unavailable.code, "this node takes no commands (no database configured)");
    try {
      const reply = await router.handle({ userId: this.principalNow.sub }, name, data);
      return reply.ok ? { ok: true, result: reply.result } : reply;
    } catch (err) {
      this.deps.log.error({ err, command: name }, "command failed");
      return refusal(ErrorCodes.internal.code, "command failed; retry with the same idempotency key");
    }
  }

  /**
   * The connection is gone: leave every live channel (the transport forgets
   * what it routes itself; topics and rooms went with the connection) and
   * give back every hub reference. Idempotent.
   */
  closed(): void {
    if (!this.open) return;
    this.open = false;
    this.deps.expiries.cancel(this);
    this.deps.index?.remove(this);
    for (const channel of this.channels()) this.leave(channel);
  }

  /** Counts one subscribe or unsubscribe request; refused ones do not count. */
  private admitSubscribe(): boolean {
    const gate = this.deps.rates.subscribes;
    const now = (this.deps.clock ?? Date).now();
    const next = gate.advance(this.subscribeTat, now);
    if (!gate.admits(next, now)) {
      this.deps.metrics.rateLimited("subscribes");
      return false;
    }
    this.subscribeTat = next;
    return true;
  }

  private subscribeRateMessage(): string {
    const gate = this.deps.rates.subscribes;
    return `at most ${gate.perSecond} subscribe and unsubscribe requests a second (bursts of ${gate.burst}); retry later`;
  }

  private async snapshot(channel: string): Promise<{ snapshot?: RaceSnapshot }> {
    const pending = this.deps.snapshotFor?.(channel) ?? null;
    if (pending === null) return {};
    try {
      const snapshot = await pending;
      return snapshot === null ? {} : { snapshot };
    } catch (err) {
      this.deps.log.warn({ err, channel }, "snapshot unavailable");
      return {};
    }
  }

  /** The replay plan for `since`; null (not recovered) when history cannot be read now. */
  private async plan(channel: string, since: ChannelPosition): Promise<ResumePlan | null> {
    const continuity = this.deps.continuity;
    if (continuity === undefined) return null;
    try {
      return await planResume(continuity, channel, since);
    } catch (err) {
      this.deps.log.warn({ err, channel }, "history unavailable; resume answered recovered: false");
      return null;
    }
  }

  /**
   * Joins `channel` at once, or, for a recovered plan, returns the join as
   * afterSent work: the replayed messages and the join must follow the
   * reply (or welcome) in one synchronous step. The position is where the
   * client stands once joined: live messages come after it.
   */
  private join(channel: string, membership: Membership, plan: ResumePlan | null): { position: ChannelPosition | null; then: Followed } {
    if (plan?.recovered === true) {
      const then = (): void => {
        if (!this.open || !this.holds(channel, membership)) return;
        this.connection.send(this.socket, plan.frames);
        this.goLive(channel, membership);
      };
      return { position: plan.position, then: { [AFTER_SENT]: then } };
    }
    if (this.open) this.goLive(channel, membership);
    return { position: this.deps.continuity?.forwarded.position(channel) ?? null, then: {} };
  }

  private goLive(channel: string, membership: Membership): void {
    this.connection.join(this.socket, channel);
    this.setMembership(channel, liveOf(membership));
    this.deps.metrics.subscribed(channel);
    this.deps.activity?.joined(channel, this.principalNow.sub);
  }

  /** A live channel left this connection, by request, refresh or close. */
  private wentAway(channel: string): void {
    this.deps.metrics.unsubscribed(channel);
    this.deps.activity?.left(channel, this.principalNow.sub);
  }

  /** Gives back the session's hub reference; the only way a membership ends. */
  private leave(channel: string): void {
    const membership = this.membershipOf(channel);
    if (membership === NONE) return;
    this.setMembership(channel, NONE);
    if (isLive(membership)) {
      this.connection.leave(this.socket, channel);
      this.wentAway(channel);
    }
    this.deps.hub.release(channel);
  }

  /** Called by the expiry wheel once the token (plus tolerance) has run out. */
  expire(): void {
    if (this.open) this.connection.end(this.socket, CloseCodes.tokenExpired, "token_expired");
  }

  // ---- memberships: the personal channel in a field, the others in a flat list

  private newMembership(): Membership {
    this.memberships++;
    return this.memberships * 2;
  }

  /** Whether `channel` is this user's own `user:<sub>`, without building the name. */
  private isOwn(channel: string): boolean {
    const sub = this.principalNow.sub;
    return channel.length === USER_CHANNEL_PREFIX.length + sub.length && channel.startsWith(USER_CHANNEL_PREFIX) && channel.endsWith(sub);
  }

  private membershipOf(channel: string): Membership {
    if (this.isOwn(channel)) return this.own;
    const others = this.others;
    if (others === null) return NONE;
    for (let i = 0; i < others.length; i += 2) if (others[i] === channel) return others[i + 1] as Membership;
    return NONE;
  }

  /** Whether `membership` (pending or live) is still the one `channel` holds. */
  private holds(channel: string, membership: Membership): boolean {
    const current = this.membershipOf(channel);
    return current !== NONE && Math.floor(current / 2) === Math.floor(membership / 2);
  }

  /** Sets, or with NONE removes, the membership of `channel`. */
  private setMembership(channel: string, membership: Membership): void {
    if (this.isOwn(channel)) {
      this.own = membership;
      return;
    }
    const others = this.others;
    const at = others === null ? -1 : others.indexOf(channel);
    if (membership === NONE) {
      if (others !== null && at !== -1) others.splice(at, 2);
      if (others?.length === 0) this.others = null;
    } else if (others === null) this.others = [channel, membership];
    else if (at === -1) others.push(channel, membership);
    else others[at + 1] = membership;
  }

  private channelCount(): number {
    return (this.own === NONE ? 0 : 1) + (this.others === null ? 0 : this.others.length / 2);
  }

  /** Every channel the session holds (pending or live), the personal one first. */
  private channels(): string[] {
    const list = this.own === NONE ? [] : [userChannel(this.principalNow.sub)];
    const others = this.others;
    if (others !== null) for (let i = 0; i < others.length; i += 2) list.push(others[i] as string);
    return list;
  }

  private armExpiry(): void {
    const expiresAt = this.principalNow.expiresAt;
    if (expiresAt === null) this.deps.expiries.cancel(this);
    else this.deps.expiries.schedule(this, expiresAt + this.deps.clockToleranceSeconds * 1000);
  }
}
