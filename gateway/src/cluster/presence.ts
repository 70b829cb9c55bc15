/**
 * Presence: who is subscribed to a channel, across the cluster, for channels
 * of PRESENCE_NAMESPACES.
 *
 * Layout, per channel, under the channel's hash tag (RedisKeyspace):
 * - `pres:{C}`: a hash, user → `<incarnation>=<connections>,…`: each node
 *   incarnation's share of that user's connections on C.
 * - `pres:{C}:nodes`: a sorted set, incarnation → when its lease ends (Redis
 *   time). A node renews its lease on every channel it holds presence on each
 *   REFRESH_MS; shares of an incarnation whose lease ended are not counted,
 *   and the first node to see one ended prunes them. A node that dies
 *   without a goodbye thus drops out of every count within LEASE_MS plus a
 *   refresh, and out of Redis right after.
 *
 * Each node keeps its own share in memory and writes the users that changed,
 * as absolute counts (never increments), a few milliseconds after the change:
 * a write that failed is simply written again, and a node whose lease lapsed
 * (stalled, cut off) starts a new incarnation and writes everything again.
 * The key expires KEY_TTL_MS after its last node stopped renewing it.
 *
 * Bounded: a node holds one share per (channel, user) it serves; reading is
 * linear in the channel's users, and answers list at most `maxMembers`.
 * Join and leave notices (PRESENCE_JOIN_LEAVE) come from the script that
 * writes a share, so each is decided once for the cluster: a user joins when
 * their connections on the channel go from 0 to more, and leaves on the way
 * back. A node that dies sends no leave notices: its users just drop out.
 */

import { performance } from "node:perf_hooks";
import type { RedisClient } from "../redis/connections.js";
import type { Logger } from "pino";
import { channelNamespace } from "../../../shared/src/channels.js";
import type { PresenceMember, PresenceResult } from "../../../shared/src/protocol.js";
import type { RedisKeyspace } from "../broker/redis-keys.js";
import { newIncarnation } from "./incarnation.js";

/** An incarnation whose lease on a channel ended this long ago is not counted there. */
export const PRESENCE_LEASE_MS = 5000;
const REFRESH_MS = 1000;
/** Changes are gathered this long before they are written: a reconnect storm writes once per channel, not once per socket. */
const FLUSH_DELAY_MS = 20;
/** Keys outlive their last node by this much. */
const KEY_TTL_MS = 3 * PRESENCE_LEASE_MS;
/** Users written per script call. */
const WRITE_CHUNK = 500;

/** Live incarnations of a channel's node set, as of Redis's clock; shared by the scripts. */
const NOW_AND_LIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live_set()
  local live = {}
  for _, inc in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')) do live[inc] = true end
  return live
end
`;

/**
 * KEYS: presence hash, node set. ARGV: incarnation, lease ms, key ttl ms,
 * join/leave '1'|'0', then user, count pairs. Returns {joined users, left users}.
 */
const WRITE_LUA = `${NOW_AND_LIVE}
local me = ARGV[1]
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), me)
local live = live_set()
local notify = ARGV[4] == '1'
local joined, left = {}, {}
for i = 5, #ARGV, 2 do
  local user, count = ARGV[i], tonumber(ARGV[i + 1])
  local others, mine, kept = 0, 0, {}
  local entry = redis.call('HGET', KEYS[1], user)
  if entry then
    for inc, n in string.gmatch(entry, '([^=,]+)=(%d+)') do
      if inc == me then
        mine = tonumber(n)
      elseif live[inc] then
        others = others + tonumber(n)
        kept[#kept + 1] = inc .. '=' .. n
      end
    end
  end
  if count > 0 then kept[#kept + 1] = me .. '=' .. count end
  if #kept > 0 then redis.call('HSET', KEYS[1], user, table.concat(kept, ',')) else redis.call('HDEL', KEYS[1], user) end
  if notify then
    if others + mine == 0 and count > 0 then joined[#joined + 1] = user end
    if others + mine > 0 and others + count == 0 then left[#left + 1] = user end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return { joined, left }`;

/**
 * KEYS: presence hash, node set. ARGV: incarnation, lease ms, key ttl ms.
 * Renews the lease; prunes the shares of incarnations whose lease ended.
 * Returns 1 when this incarnation's shares are still there (0: the hash
 * expired, or was pruned: write everything again).
 */
const REFRESH_LUA = `${NOW_AND_LIVE}
local me = ARGV[1]
local held = redis.call('ZSCORE', KEYS[2], me)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), me)
local ended = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
if #ended > 0 then
  local dead = {}
  for _, inc in ipairs(ended) do dead[inc] = true; redis.call('ZREM', KEYS[2], inc) end
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    local kept, changed = {}, false
    for inc, n in string.gmatch(fields[i + 1], '([^=,]+)=(%d+)') do
      if dead[inc] then changed = true else kept[#kept + 1] = inc .. '=' .. n end
    end
    if changed then
      if #kept > 0 then redis.call('HSET', KEYS[1], fields[i], table.concat(kept, ',')) else redis.call('HDEL', KEYS[1], fields[i]) end
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if held and redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
return 0`;

/**
 * KEYS: presence hash, node set. ARGV: max members ('0' for none). Returns
 * users, connections, then up to max member user, count pairs.
 */
const READ_LUA = `${NOW_AND_LIVE}
local live = live_set()
local max = tonumber(ARGV[1])
local users, connections, out = 0, 0, {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local total = 0
  for inc, n in string.gmatch(fields[i + 1], '([^=,]+)=(%d+)') do
    if live[inc] then total = total + tonumber(n) end
  end
  if total > 0 then
    users = users + 1
    connections = connections + total
    if users <= max then
      out[#out + 1] = fields[i]
      out[#out + 1] = total
    end
  end
end
table.insert(out, 1, connections)
table.insert(out, 1, users)
return out`;

/** KEYS: presence hash, node set. ARGV: incarnation. Deletes this incarnation's shares (a node's goodbye). */
const RETIRE_LUA = `
local me = ARGV[1]
redis.call('ZREM', KEYS[2], me)
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local kept, changed = {}, false
  for inc, n in string.gmatch(fields[i + 1], '([^=,]+)=(%d+)') do
    if inc == me then changed = true else kept[#kept + 1] = inc .. '=' .. n end
  end
  if changed then
    if #kept > 0 then redis.call('HSET', KEYS[1], fields[i], table.concat(kept, ',')) else redis.call('HDEL', KEYS[1], fields[i]) end
  end
end
return 1`;

type PresenceRedis = RedisClient & {
  presenceWrite(hash: string, nodes: string, ...args: Array<string | number>): Promise<[string[], string[]]>;
  presenceRefresh(hash: string, nodes: string, incarnation: string, leaseMs: number, ttlMs: number): Promise<number>;
  presenceRead(hash: string, nodes: string, maxMembers: number): Promise<Array<string | number>>;
  presenceRetire(hash: string, nodes: string, incarnation: string): Promise<number>;
};

/** Where join and leave notices go: published on the channel like any message. */
export interface PresenceNotices {
  joined(channel: string, users: readonly string[]): void;
  left(channel: string, users: readonly string[]): void;
}

export interface PresenceMetrics {
  /** A presence write or refresh failed; it is retried. */
  presenceWriteFailed(): void;
}

export interface RedisPresenceOptions {
  readonly redis: RedisClient;
  readonly keyspace: RedisKeyspace;
  readonly nodeId: string;
  /** Channel namespaces that keep presence. */
  readonly namespaces: ReadonlySet<string>;
  /** Namespaces whose subscribers get `presence_join` / `presence_leave`. */
  readonly joinLeaveNamespaces: ReadonlySet<string>;
  /** Most members one answer lists. */
  readonly maxMembers: number;
  readonly notices: PresenceNotices;
  readonly metrics: PresenceMetrics;
  readonly log: Logger;
}

export class RedisPresence {
  private readonly redis: PresenceRedis;
  private incarnation: string;
  /** This node's share: channel → user → connections. */
  private readonly local = new Map<string, Map<string, number>>();
  /** Users whose count changed since it was last written, per channel. */
  private readonly dirty = new Map<string, Set<string>>();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private readonly refreshTimer: NodeJS.Timeout;
  /** When the last refresh round that fully succeeded started (monotonic ms); null before one. */
  private refreshedAt: number | null = null;
  private closed = false;

  constructor(private readonly options: RedisPresenceOptions) {
    this.incarnation = newIncarnation(options.nodeId);
    this.redis = options.redis as PresenceRedis;
    this.redis.defineCommand("presenceWrite", { numberOfKeys: 2, lua: WRITE_LUA });
    this.redis.defineCommand("presenceRefresh", { numberOfKeys: 2, lua: REFRESH_LUA });
    this.redis.defineCommand("presenceRead", { numberOfKeys: 2, lua: READ_LUA });
    this.redis.defineCommand("presenceRetire", { numberOfKeys: 2, lua: RETIRE_LUA });
    this.refreshTimer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.refreshTimer.unref();
  }

  enabledFor(channel: string): boolean {
    return this.options.namespaces.has(channelNamespace(channel));
  }

  joined(channel: string, user: string): void {
    if (!this.enabledFor(channel)) return;
    let users = this.local.get(channel);
    if (users === undefined) this.local.set(channel, (users = new Map<string, number>()));
    users.set(user, (users.get(user) ?? 0) + 1);
    this.markDirty(channel, user);
  }

  left(channel: string, user: string): void {
    const users = this.local.get(channel);
    const count = users?.get(user);
    if (users === undefined || count === undefined) return;
    if (count > 1) users.set(user, count - 1);
    else users.delete(user);
    this.markDirty(channel, user);
  }

  async read(channel: string, stats: boolean): Promise<PresenceResult> {
    const { keyspace, maxMembers } = this.options;
    const reply = await this.redis.presenceRead(keyspace.presenceKey(channel), keyspace.presenceNodesKey(channel), stats ? 0 : maxMembers);
    const users = Number(reply[0]);
    const connections = Number(reply[1]);
    if (stats) return { channel, users, connections };
    const members: PresenceMember[] = [];
    for (let i = 2; i + 1 < reply.length; i += 2) members.push({ user: String(reply[i]), connections: Number(reply[i + 1]) });
    members.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
    return { channel, users, connections, members, truncated: users > members.length };
  }

  /** Writes what is pending, then deletes this node's shares everywhere (shutdown, after the sockets closed). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.refreshTimer);
    await this.flush();
    const { keyspace } = this.options;
    const channels = [...new Set([...this.local.keys(), ...this.dirty.keys()])];
    await Promise.allSettled(channels.map((channel) => this.redis.presenceRetire(keyspace.presenceKey(channel), keyspace.presenceNodesKey(channel), this.incarnation)));
  }

  private markDirty(channel: string, user: string): void {
    let users = this.dirty.get(channel);
    if (users === undefined) this.dirty.set(channel, (users = new Set()));
    users.add(user);
    if (this.flushTimer === null && !this.closed) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        void this.flush();
      }, FLUSH_DELAY_MS);
    }
  }

  /** Writes every pending change; one flush at a time, so writes of one user never overtake each other. */
  private async flush(): Promise<void> {
    while (this.flushing !== null) await this.flushing;
    // Kept for the first refresh after Redis is back (which flushes), but written at once on close.
    if (this.dirty.size === 0 || (this.redis.status !== "ready" && !this.closed)) return;
    const batch = [...this.dirty];
    this.dirty.clear();
    this.flushing = this.writeAll(batch);
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  private async writeAll(batch: ReadonlyArray<readonly [string, ReadonlySet<string>]>): Promise<void> {
    await Promise.all(batch.map(([channel, users]) => this.write(channel, [...users])));
  }

  private async write(channel: string, users: readonly string[]): Promise<void> {
    const { keyspace } = this.options;
    const notify = this.options.joinLeaveNamespaces.has(channelNamespace(channel));
    const counts = this.local.get(channel);
    for (let i = 0; i < users.length; i += WRITE_CHUNK) {
      const chunk = users.slice(i, i + WRITE_CHUNK);
      const args: Array<string | number> = [this.incarnation, PRESENCE_LEASE_MS, KEY_TTL_MS, notify ? "1" : "0"];
      for (const user of chunk) args.push(user, counts?.get(user) ?? 0);
      try {
        const [joined, left] = await this.redis.presenceWrite(keyspace.presenceKey(channel), keyspace.presenceNodesKey(channel), ...args);
        if (joined.length > 0) this.options.notices.joined(channel, joined);
        if (left.length > 0) this.options.notices.left(channel, left);
      } catch (err) {
        this.options.metrics.presenceWriteFailed();
        this.options.log.warn({ err, namespace: channelNamespace(channel), users: chunk.length }, "presence write failed; retrying");
        for (const user of chunk) this.markDirtyLater(channel, user);
      }
    }
    if (counts !== undefined && counts.size === 0) this.local.delete(channel);
  }

  /** A failed write is retried with the next refresh, not at once: Redis is probably away. */
  private markDirtyLater(channel: string, user: string): void {
    let users = this.dirty.get(channel);
    if (users === undefined) this.dirty.set(channel, (users = new Set()));
    users.add(user);
  }

  private async refresh(): Promise<void> {
    const startedAt = performance.now();
    if (this.refreshedAt !== null && startedAt - this.refreshedAt >= PRESENCE_LEASE_MS) {
      // Others may have pruned our shares as dead: write all of them again, as a new incarnation.
      const lapsed = this.incarnation;
      this.incarnation = newIncarnation(this.options.nodeId);
      this.options.log.warn({ lapsed, incarnation: this.incarnation }, "presence lease lapsed; writing this node's presence again");
      for (const [channel, users] of this.local) for (const user of users.keys()) this.markDirtyLater(channel, user);
    }
    const { keyspace } = this.options;
    // Not connected: nothing renews, and the lease check above counts the silence.
    if (this.redis.status !== "ready") return;
    let failed = false;
    await Promise.all(
      [...this.local].map(async ([channel, users]) => {
        try {
          const held = await this.redis.presenceRefresh(keyspace.presenceKey(channel), keyspace.presenceNodesKey(channel), this.incarnation, PRESENCE_LEASE_MS, KEY_TTL_MS);
          if (held === 0) for (const user of users.keys()) this.markDirtyLater(channel, user);
        } catch (err) {
          failed = true;
          this.options.metrics.presenceWriteFailed();
          this.options.log.warn({ err, namespace: channelNamespace(channel) }, "presence refresh failed; retrying");
        }
      }),
    );
    if (!failed) this.refreshedAt = startedAt;
    if (this.dirty.size > 0) await this.flush();
  }
}
