/**
 * One connected client, whatever its protocol: its principal, its channel
 * memberships (each holding one hub reference), token expiry and the answers
 * to its requests. The raw WebSocket and Socket.IO transports only translate
 * frames or events into these calls and the results back, so both protocols
 * authorize, subscribe, refresh and run commands identically.
 */

import type { Logger } from "pino";
import { channelNamespace, isValidChannelName, maySubscribe, userChannel } from "../../../shared/src/channels.js";
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

/** What a session needs from its connection. */
export interface SessionConnection {
  /** Start delivering `channel` to this client (uWS topic, Socket.IO room). */
  join(channel: string): void;
  leave(channel: string): void;
  /** Close the connection with a documented code; the transport then calls session.closed(). */
  end(close: CloseCodeSpec, reason: string): void;
  /** Sends message frames (replayed from history) to this client only, in order. */
  send(frames: readonly Buffer[]): void;
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

/** One channel of one session; `live` once the connection receives it. Identity matters. */
interface Membership {
  live: boolean;
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

export class ClientSession implements Expiring {
  private readonly memberships = new Map<string, Membership>();
  expiryBucket: number | null = null;
  private open = true;
  /** The rate gates' states (see RateGate): one number each, no timers. */
  private frameTat = 0;
  private subscribeTat = 0;

  constructor(
    private readonly deps: SessionDeps,
    private principalNow: Principal,
    private readonly connection: SessionConnection,
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
    if (this.open) this.connection.end(CloseCodes.rateLimited, "rate_limited");
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
      if (this.open) this.connection.end(CloseCodes.unavailable, "unavailable");
      return null;
    }
  }

  private async begin(since?: ChannelPosition): Promise<Started | null> {
    // A revocation may have arrived between the token's check and now.
    if (this.deps.revocations?.isRevoked(this.principalNow.sub, this.principalNow.issuedAt) === true) {
      this.connection.end(CloseCodes.tokenRevoked, "token_revoked");
      return null;
    }
    this.armExpiry();
    const own = userChannel(this.principalNow.sub);
    const membership: Membership = { live: false };
    this.memberships.set(own, membership);
    try {
      await this.deps.hub.acquire(own);
    } catch (err) {
      this.deps.log.error({ err, channel: "user:*" }, "personal channel subscribe failed");
      if (this.open) {
        if (this.memberships.get(own) === membership) this.leave(own);
        this.connection.end(CloseCodes.unavailable, "unavailable");
      }
      return null;
    }
    const plan = since === undefined ? null : await this.plan(own, since);
    if (!this.open || this.memberships.get(own) !== membership) return null;
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
    if (this.memberships.has(channel)) return refuse(ErrorCodes.alreadySubscribed.code, `already subscribed to ${channel}`);
    if (this.memberships.size >= this.deps.maxSubscriptions) return refuse(ErrorCodes.limitExceeded.code, `at most ${this.deps.maxSubscriptions} subscriptions per connection`);

    // The session owns the hub reference from here; closed() gives it back
    // even if the connection goes away before the broker answers.
    const membership: Membership = { live: false };
    this.memberships.set(channel, membership);
    try {
      await this.deps.hub.acquire(channel);
    } catch (err) {
      this.deps.log.error({ err, namespace: channelNamespace(channel) }, "broker subscribe failed");
      if (this.memberships.get(channel) === membership) this.leave(channel);
      return refuse(ErrorCodes.unavailable.code, "subscription backend unavailable, retry");
    }
    const plan = since === undefined ? null : await this.plan(channel, since);
    if (this.memberships.get(channel) !== membership) return refuse(ErrorCodes.notSubscribed.code, `unsubscribed from ${channel} before the subscription completed`);
    const joined = this.join(channel, membership, plan);
    const position = joined.position === null ? {} : { offset: joined.position.offset, epoch: joined.position.epoch };
    if (plan?.recovered === true) return { ok: true, channel, ...position, recovered: true, ...joined.then };
    // Not resumed: the client reloads, so `race` brings its snapshot.
    return { ok: true, channel, ...position, ...(since === undefined ? {} : { recovered: false }), ...(await this.snapshot(channel)) };
  }

  unsubscribe(channel: string): Answer<UnsubscribeResult> {
    if (!this.admitSubscribe()) return refusal(ErrorCodes.subscribeRateLimited.code, this.subscribeRateMessage());
    if (!this.memberships.has(channel)) return refusal(ErrorCodes.notSubscribed.code, `not subscribed to ${channel}`);
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
    const unsubscribed = [...this.memberships.keys()].filter((channel) => !maySubscribe(this.principalNow, channel));
    for (const channel of unsubscribed) this.leave(channel);
    return { ok: true, expiresAt: this.principalNow.expiresAt, unsubscribed };
  }

  ping(): Answer<PingResult> {
    return { ok: true, serverTime: Date.now() };
  }

  /** Who is on a channel this connection receives, across the cluster. */
  async presence(channel: string, stats: boolean): Promise<Answer<PresenceResult>> {
    if (this.memberships.get(channel)?.live !== true) return refusal(ErrorCodes.notSubscribed.code, `subscribe to ${channel} before asking who is on it`);
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
    if (this.open) this.connection.end(close, reason);
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

  /** The connection is gone: give back every hub reference. Idempotent. */
  closed(): void {
    if (!this.open) return;
    this.open = false;
    this.deps.expiries.cancel(this);
    this.deps.index?.remove(this);
    // The transport has already dropped the connection's topics/rooms; only our books are left.
    for (const [channel, membership] of this.memberships) {
      if (membership.live) this.wentAway(channel);
      this.deps.hub.release(channel);
    }
    this.memberships.clear();
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
        if (!this.open || this.memberships.get(channel) !== membership) return;
        this.connection.send(plan.frames);
        this.goLive(channel, membership);
      };
      return { position: plan.position, then: { [AFTER_SENT]: then } };
    }
    if (this.open) this.goLive(channel, membership);
    return { position: this.deps.continuity?.forwarded.position(channel) ?? null, then: {} };
  }

  private goLive(channel: string, membership: Membership): void {
    this.connection.join(channel);
    membership.live = true;
    this.deps.metrics.subscribed(channel);
    this.deps.activity?.joined(channel, this.principalNow.sub);
  }

  /** A live channel left this connection, by request, refresh or close. */
  private wentAway(channel: string): void {
    this.deps.metrics.unsubscribed(channel);
    this.deps.activity?.left(channel, this.principalNow.sub);
  }

  /** Gives back the session's hub reference; the only way a membership ends while open. */
  private leave(channel: string): void {
    const membership = this.memberships.get(channel);
    if (membership === undefined) return;
    this.memberships.delete(channel);
    if (membership.live) {
      this.connection.leave(channel);
      this.wentAway(channel);
    }
    this.deps.hub.release(channel);
  }

  /** Called by the expiry wheel once the token (plus tolerance) has run out. */
  expire(): void {
    if (this.open) this.connection.end(CloseCodes.tokenExpired, "token_expired");
  }

  private armExpiry(): void {
    const expiresAt = this.principalNow.expiresAt;
    if (expiresAt === null) this.deps.expiries.cancel(this);
    else this.deps.expiries.schedule(this, expiresAt + this.deps.clockToleranceSeconds * 1000);
  }
}
