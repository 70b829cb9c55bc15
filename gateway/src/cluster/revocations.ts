/**
 * Token revocation (POST /v1/revoke): "every token of this user issued before
 * T is refused". Kept in Redis so it survives node restarts, and copied into
 * every node's memory so the check at the upgrade and at refresh costs a map
 * lookup, never a Redis round trip.
 *
 * An entry lapses by itself once no token it covers can still be valid: a
 * token issued before T expires by T + JWT_MAX_LIFETIME_S (production refuses
 * longer-lived ones), plus the clock tolerance on either side.
 *
 * `iat` has one-second precision: a token issued in the same second as T
 * counts as issued before it. A token without `iat` cannot show when it was
 * issued, so it is refused while its user has a revocation in force.
 */

import type { RedisClient } from "../redis/connections.js";
import { revocationKeys } from "../broker/redis-keys.js";
import type { Clock } from "../time/clock.js";
import type { ControlMessage } from "./control-channel.js";

/** One user's revocation: tokens issued before `before` are refused until `until` (both ms since the epoch). */
export interface Revocation {
  readonly user: string;
  readonly before: number;
  readonly until: number;
}

/** What the upgrade, the Socket.IO handshake, refresh and session start ask. */
export interface RevocationCheck {
  /** Whether a token of `sub` issued at `issuedAt` (ms, null when it has no `iat`) is revoked now. */
  isRevoked(sub: string, issuedAt: number | null): boolean;
}

/** This node's copy of the revocations in force. */
export class RevocationList implements RevocationCheck {
  private readonly entries = new Map<string, Revocation>();

  constructor(private readonly clock: Clock = Date) {}

  isRevoked(sub: string, issuedAt: number | null): boolean {
    const entry = this.entries.get(sub);
    if (entry === undefined) return false;
    if (entry.until <= this.clock.now()) {
      this.entries.delete(sub);
      return false;
    }
    return issuedAt === null || issuedAt < entry.before;
  }

  /** Adds or widens one entry; an entry only ever moves later. */
  add(revocation: Revocation): void {
    const held = this.entries.get(revocation.user);
    if (held === undefined) {
      this.entries.set(revocation.user, revocation);
      return;
    }
    this.entries.set(revocation.user, { user: revocation.user, before: Math.max(held.before, revocation.before), until: Math.max(held.until, revocation.until) });
  }

  /** Everything Redis holds, after a (re)connect: what arrived meanwhile was missed on the control channel. */
  replace(revocations: readonly Revocation[]): void {
    this.entries.clear();
    for (const revocation of revocations) this.add(revocation);
  }

  /** Drops lapsed entries; returns how many are in force. */
  sweep(): number {
    const now = this.clock.now();
    for (const [user, entry] of this.entries) if (entry.until <= now) this.entries.delete(user);
    return this.entries.size;
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * KEYS: before hash, until zset. ARGV: user, before ms, ttl ms, control channel, max pruned.
 * Keeps the later `before` and `until` of the stored and the new entry, prunes
 * lapsed entries (bounded), and announces the stored entry on the control
 * channel in the same step, so no node can miss a stored revocation without
 * also missing Redis (and then it reloads everything).
 */
const REVOKE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, user in ipairs(lapsed) do
  redis.call('ZREM', KEYS[2], user)
  redis.call('HDEL', KEYS[1], user)
end
local before = tonumber(ARGV[2])
local until_ms = math.max(before, now) + tonumber(ARGV[3])
local held_before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local held_until = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0')
if held_until > now then
  before = math.max(before, held_before)
  until_ms = math.max(until_ms, held_until)
end
redis.call('HSET', KEYS[1], ARGV[1], before)
redis.call('ZADD', KEYS[2], until_ms, ARGV[1])
local longest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local ttl = tonumber(longest[2]) - now + 60000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PUBLISH', ARGV[4], cjson.encode({ type = 'revoke', user = ARGV[1], before = before, ['until'] = until_ms }))
return { before, until_ms }`;

/** KEYS: before hash, until zset. Every entry in force: user, before, until triples. */
const LOAD_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  out[#out + 1] = live[i]
  out[#out + 1] = redis.call('HGET', KEYS[1], live[i]) or '0'
  out[#out + 1] = live[i + 1]
end
return out`;

/** Lapsed entries removed per revoke, so one call stays short whatever piled up. */
const MAX_PRUNED = 1000;

type RevocationRedis = RedisClient & {
  gatewayRevoke(before: string, until: string, user: string, beforeMs: number, ttlMs: number, channel: string, maxPruned: number): Promise<[number, number]>;
  gatewayRevocations(before: string, until: string): Promise<string[]>;
};

/** Where revocations are stored and announced. */
export interface RevocationStore {
  /** Stores and announces one revocation; resolves with the entry as stored (the later of it and one already in force). */
  revoke(user: string, before: number): Promise<Revocation>;
  /** Every revocation in force. */
  load(): Promise<Revocation[]>;
}

export class RedisRevocationStore implements RevocationStore {
  private readonly keys: { readonly before: string; readonly until: string };
  private readonly redis: RevocationRedis;

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly channel: string,
    /** How long an entry stays after its `before` (or now, if later): the longest a covered token can live. */
    private readonly ttlMs: number,
  ) {
    this.keys = revocationKeys(prefix);
    this.redis = redis as RevocationRedis;
    this.redis.defineCommand("gatewayRevoke", { numberOfKeys: 2, lua: REVOKE_LUA });
    this.redis.defineCommand("gatewayRevocations", { numberOfKeys: 2, lua: LOAD_LUA });
  }

  async revoke(user: string, before: number): Promise<Revocation> {
    const [storedBefore, until] = await this.redis.gatewayRevoke(this.keys.before, this.keys.until, user, before, this.ttlMs, this.channel, MAX_PRUNED);
    return { user, before: Number(storedBefore), until: Number(until) };
  }

  async load(): Promise<Revocation[]> {
    const flat = await this.redis.gatewayRevocations(this.keys.before, this.keys.until);
    const revocations: Revocation[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      revocations.push({ user: String(flat[i]), before: Number(flat[i + 1]), until: Number(flat[i + 2]) });
    }
    return revocations;
  }
}

/** A revoke announcement as a control message. */
export function revocationOf(message: Extract<ControlMessage, { type: "revoke" }>): Revocation {
  return { user: message.user, before: message.before, until: message.until };
}
