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
import type { ErrorBody, JsonValue, PingResult, RefreshResult, SubscribeResult, UnsubscribeResult, CommandResult } from "../../../shared/src/protocol.js";
import type { RaceSnapshot } from "../../../shared/src/race-events.js";
import type { ClientRequest } from "../../../shared/src/requests.js";
import type { AuthFailureReason, Principal, VerifyResult } from "../auth/verifier.js";
import type { CommandContext, CommandReply } from "../commands/command-router.js";
import type { ExpiryWheel, Expiring } from "./expiry-wheel.js";

export type Answer<Result> = ({ readonly ok: true } & Result) | { readonly ok: false; readonly error: ErrorBody };

/** What a session needs from its connection. */
export interface SessionConnection {
  /** Start delivering `channel` to this client (uWS topic, Socket.IO room). */
  join(channel: string): void;
  leave(channel: string): void;
  /** Close the connection with a documented code; the transport then calls session.closed(). */
  end(close: CloseCodeSpec, reason: string): void;
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

/** What sessions record. */
export interface SessionMetrics {
  /** A channel went live on a connection. */
  subscribed(namespace: string): void;
  subscribeRefused(code: ErrorCode): void;
  /** A live channel left a connection, by request, refresh or close. */
  unsubscribed(namespace: string): void;
  authFailed(reason: AuthFailureReason): void;
}

export interface SessionDeps {
  readonly verifier: TokenVerifier;
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
}

/** One channel of one session; `live` once the connection receives it. Identity matters. */
interface Membership {
  live: boolean;
}

function refusal(code: ErrorBody["code"], message: string): { ok: false; error: ErrorBody } {
  return { ok: false, error: { code, message } };
}

export class ClientSession implements Expiring {
  private readonly memberships = new Map<string, Membership>();
  expiryBucket: number | null = null;
  private open = true;

  constructor(
    private readonly deps: SessionDeps,
    private principalNow: Principal,
    private readonly connection: SessionConnection,
  ) {}

  get principal(): Principal {
    return this.principalNow;
  }

  isOpen(): boolean {
    return this.open;
  }

  /**
   * Answers one parsed request. Answers that need no I/O come back at once,
   * not as a promise, so replies leave in the order their requests arrived.
   */
  handle(request: ClientRequest): Answer<object> | Promise<Answer<object>> {
    switch (request.type) {
      case "subscribe":
        return this.subscribe(request.channel);
      case "unsubscribe":
        return this.unsubscribe(request.channel);
      case "refresh":
        return this.refresh(request.token);
      case "ping":
        return this.ping();
      case "command":
        // The effect is committed even if the connection went away meanwhile;
        // a reconnecting client learns it by retrying with the same key.
        return this.command(request.name, request.data);
    }
  }

  /**
   * Joins the personal channel and arms the expiry timer. Resolves once the
   * personal channel is live, so a welcome sent after it cannot miss a
   * personal message; closes the connection (1013) if Redis fails.
   */
  async start(): Promise<{ channels: string[] } | null> {
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
    if (!this.open) return null;
    if (this.memberships.get(own) === membership) this.goLive(own, membership);
    return { channels: [own] };
  }

  async subscribe(channel: string): Promise<Answer<SubscribeResult>> {
    const refuse = (code: ErrorBody["code"], message: string): Answer<SubscribeResult> => {
      this.deps.metrics.subscribeRefused(code);
      return refusal(code, message);
    };
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
    if (this.memberships.get(channel) !== membership) return refuse(ErrorCodes.notSubscribed.code, `unsubscribed from ${channel} before the subscription completed`);
    if (this.open) this.goLive(channel, membership);
    return { ok: true, channel, ...(await this.snapshot(channel)) };
  }

  unsubscribe(channel: string): Answer<UnsubscribeResult> {
    if (!this.memberships.has(channel)) return refusal(ErrorCodes.notSubscribed.code, `not subscribed to ${channel}`);
    this.leave(channel);
    return { ok: true, channel };
  }

  refresh(token: string): Answer<RefreshResult> {
    const verdict = this.deps.verifier.verify(token);
    if (!verdict.ok) {
      this.deps.metrics.authFailed(verdict.reason);
      return refusal(ErrorCodes.invalidToken.code, verdict.message);
    }
    if (verdict.principal.sub !== this.principalNow.sub) return refusal(ErrorCodes.forbidden.code, "refresh token is for another user");
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
    // The transport has already dropped the connection's topics/rooms; only our books are left.
    for (const [channel, membership] of this.memberships) {
      if (membership.live) this.deps.metrics.unsubscribed(channelNamespace(channel));
      this.deps.hub.release(channel);
    }
    this.memberships.clear();
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

  private goLive(channel: string, membership: Membership): void {
    this.connection.join(channel);
    membership.live = true;
    this.deps.metrics.subscribed(channelNamespace(channel));
  }

  /** Gives back the session's hub reference; the only way a membership ends while open. */
  private leave(channel: string): void {
    const membership = this.memberships.get(channel);
    if (membership === undefined) return;
    this.memberships.delete(channel);
    if (membership.live) {
      this.connection.leave(channel);
      this.deps.metrics.unsubscribed(channelNamespace(channel));
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
