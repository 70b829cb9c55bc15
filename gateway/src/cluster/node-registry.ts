/**
 * What the cluster holds, for GET /v1/info and GET /v1/channels: every node
 * reports its status and its channels' subscriber counts into Redis, and any
 * node answers for all of them.
 *
 * Layout (nodeRegistryKeys, one hash tag):
 * - `leases`: incarnation → when its lease ends (Redis time), renewed each
 *   HEARTBEAT_MS. An incarnation whose lease ended is not reported, and the
 *   next heartbeat of any node deletes it with its status.
 * - `status`: incarnation → the node's status as JSON.
 * - `channels:<incarnation>`: a sorted set of the node's channels, all with
 *   score 0, so a prefix is one lexicographic range (ZRANGEBYLEX) and a page
 *   continues after the last name returned.
 * - `counts:<incarnation>`: a hash, channel → the node's subscribers there.
 * A node's own keys expire KEY_TTL_MS after its last heartbeat.
 *
 * Personal channels (`user:<sub>`, one per connected user) are not listed:
 * they would make the index as large as the number of sockets.
 */

import { performance } from "node:perf_hooks";
import type { RedisClient } from "../redis/connections.js";
import type { Logger } from "pino";
import { isPersonalChannel } from "../../../shared/src/channels.js";
import { nodeRegistryKeys } from "../broker/redis-keys.js";
import { newIncarnation } from "./incarnation.js";

export const NODE_LEASE_MS = 5000;
const HEARTBEAT_MS = 1000;
const KEY_TTL_MS = 3 * NODE_LEASE_MS;
/** Channel changes written per heartbeat, at most; the rest wait for the next one. */
const MAX_CHANNEL_WRITES = 10_000;

/** What a node says about itself in GET /v1/info. */
export interface NodeStatus {
  /** NODE_ID. */
  readonly id: string;
  /** This run of the node: NODE_ID plus a suffix, new at every start. */
  readonly incarnation: string;
  readonly ready: boolean;
  /** Open client connections, both transports. */
  readonly connections: number;
  /** Channel subscriptions of those connections, personal channels included. */
  readonly subscriptions: number;
  readonly uptimeSeconds: number;
  readonly version: string;
  /** When this status was written, ms since the epoch (node clock). */
  readonly reportedAt: number;
}

export interface ChannelCount {
  readonly channel: string;
  /** Subscribed connections on every node, both transports. */
  readonly subscribers: number;
}

export interface ChannelPage {
  readonly channels: readonly ChannelCount[];
  /** Pass as `cursor` for the next page; null on the last one. */
  readonly cursor: string | null;
}

/** This node's live figures, read at each heartbeat. */
export interface LocalStatus {
  ready(): boolean;
  connections(): number;
}

/** This node's subscriptions per channel: told by the sessions (ChannelActivity), read by the heartbeat. */
export class LocalChannels {
  private readonly counts = new Map<string, number>();
  private readonly changed = new Set<string>();
  private total = 0;

  joined(channel: string): void {
    this.total++;
    if (isPersonalChannel(channel)) return;
    this.counts.set(channel, (this.counts.get(channel) ?? 0) + 1);
    this.changed.add(channel);
  }

  left(channel: string): void {
    this.total--;
    if (isPersonalChannel(channel)) return;
    const count = (this.counts.get(channel) ?? 0) - 1;
    if (count > 0) this.counts.set(channel, count);
    else this.counts.delete(channel);
    this.changed.add(channel);
  }

  /** Live subscriptions on this node, personal channels included. */
  get subscriptions(): number {
    return this.total;
  }

  /** Up to `max` channels changed since the last call, with their counts now (0: gone). */
  takeChanged(max: number): Array<readonly [string, number]> {
    const out: Array<readonly [string, number]> = [];
    for (const channel of this.changed) {
      if (out.length >= max) break;
      this.changed.delete(channel);
      out.push([channel, this.counts.get(channel) ?? 0]);
    }
    return out;
  }

  /** One channel again: its write failed. */
  markChanged(channel: string): void {
    this.changed.add(channel);
  }

  /** Every channel again: the node's keys in Redis were lost. */
  markAllChanged(): void {
    for (const channel of this.counts.keys()) this.changed.add(channel);
  }
}

/** KEYS: leases, status, own channels, own counts. ARGV: incarnation, lease ms, status JSON, key ttl ms. Returns 1 when the own counts were kept. */
const HEARTBEAT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
local ended = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 100)
for _, inc in ipairs(ended) do
  redis.call('ZREM', KEYS[1], inc)
  redis.call('HDEL', KEYS[2], inc)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('PEXPIRE', KEYS[2], 86400000)
local kept = redis.call('EXISTS', KEYS[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
if held and kept == 1 then return 1 end
return 0`;

/** KEYS: leases, status. Live incarnations with their status JSON, pairs. */
const LIVE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, inc in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  out[#out + 1] = inc
  out[#out + 1] = redis.call('HGET', KEYS[2], inc) or ''
end
return out`;

type RegistryRedis = RedisClient & {
  registryHeartbeat(leases: string, status: string, channels: string, counts: string, incarnation: string, leaseMs: number, statusJson: string, ttlMs: number): Promise<number>;
  registryLive(leases: string, status: string): Promise<string[]>;
};

export interface NodeRegistryOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly nodeId: string;
  readonly version: string;
  readonly local: LocalStatus;
  readonly channels: LocalChannels;
  readonly log: Logger;
}

/** The largest string in the channel-name alphabet after every name with `prefix`. */
const RANGE_END = "\u007f";

export class RedisNodeRegistry {
  private readonly redis: RegistryRedis;
  private readonly keys: ReturnType<typeof nodeRegistryKeys>;
  private incarnation: string;
  private readonly startedAt = performance.now();
  private readonly timer: NodeJS.Timeout;
  private beatAt: number | null = null;
  private beating: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly options: NodeRegistryOptions) {
    this.redis = options.redis as RegistryRedis;
    this.keys = nodeRegistryKeys(options.prefix);
    this.incarnation = newIncarnation(options.nodeId);
    this.redis.defineCommand("registryHeartbeat", { numberOfKeys: 4, lua: HEARTBEAT_LUA });
    this.redis.defineCommand("registryLive", { numberOfKeys: 2, lua: LIVE_LUA });
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.timer.unref();
    void this.heartbeat();
  }

  /** Every live node's status, sorted by id; rejects when Redis cannot answer. */
  async nodes(): Promise<NodeStatus[]> {
    const flat = await this.redis.registryLive(this.keys.leases, this.keys.status);
    const nodes: NodeStatus[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const status = parseStatus(String(flat[i + 1]));
      if (status !== null) nodes.push(status);
    }
    return nodes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.incarnation < b.incarnation ? -1 : 1));
  }

  /**
   * Channels whose name starts with `prefix`, after `cursor` (exclusive),
   * in name order, at most `limit`, with their subscribers on every live
   * node; rejects when Redis cannot answer.
   */
  async channels(prefix: string, cursor: string | null, limit: number): Promise<ChannelPage> {
    const live = (await this.redis.registryLive(this.keys.leases, this.keys.status)).filter((_, i) => i % 2 === 0).map(String);
    const min = cursor !== null && cursor >= prefix ? `(${cursor}` : `[${prefix}`;
    const max = `[${prefix}${RANGE_END}`;
    const ranges = this.redis.pipeline();
    for (const incarnation of live) ranges.zrangebylex(this.keys.channels(incarnation), min, max, "LIMIT", 0, limit + 1);
    const names = new Set<string>();
    for (const [err, found] of (await ranges.exec()) ?? []) {
      if (err !== null) throw err;
      for (const name of found as string[]) names.add(name);
    }
    const sorted = [...names].sort();
    const page = sorted.slice(0, limit);
    if (page.length === 0) return { channels: [], cursor: null };
    const counts = this.redis.pipeline();
    for (const incarnation of live) counts.hmget(this.keys.counts(incarnation), ...page);
    const totals = new Map(page.map((channel) => [channel, 0]));
    for (const [err, values] of (await counts.exec()) ?? []) {
      if (err !== null) throw err;
      (values as Array<string | null>).forEach((value, i) => {
        const channel = page[i] as string;
        totals.set(channel, (totals.get(channel) ?? 0) + Number(value ?? 0));
      });
    }
    // A channel whose last subscriber just left on its only node may still be indexed; it has 0 here.
    const channels = page.map((channel) => ({ channel, subscribers: totals.get(channel) ?? 0 })).filter((entry) => entry.subscribers > 0);
    return { channels, cursor: sorted.length > limit ? (page.at(-1) as string) : null };
  }

  /** Stops reporting and deletes this node's entries, so it leaves /v1/info at once. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.beating !== null) await this.beating;
    const retire = this.redis.multi();
    retire.zrem(this.keys.leases, this.incarnation);
    retire.hdel(this.keys.status, this.incarnation);
    retire.del(this.keys.channels(this.incarnation), this.keys.counts(this.incarnation));
    try {
      await retire.exec();
    } catch (err) {
      this.options.log.warn({ err }, "node registry retirement failed; the entry lapses by itself");
    }
  }

  private async heartbeat(): Promise<void> {
    // Not connected (yet): nothing to say, and the lease check counts the silence.
    if (this.beating !== null || this.closed || this.redis.status !== "ready") return;
    this.beating = this.beat();
    try {
      await this.beating;
    } finally {
      this.beating = null;
    }
  }

  private async beat(): Promise<void> {
    const sentAt = performance.now();
    const { channels, local } = this.options;
    if (this.beatAt !== null && sentAt - this.beatAt >= NODE_LEASE_MS) {
      // Our lease ended: others may have deleted our entries. Start again as a new incarnation.
      this.incarnation = newIncarnation(this.options.nodeId);
      channels.markAllChanged();
    }
    const changes = channels.takeChanged(MAX_CHANNEL_WRITES);
    try {
      if (changes.length > 0) {
        const writes = this.redis.multi();
        const own = { channels: this.keys.channels(this.incarnation), counts: this.keys.counts(this.incarnation) };
        for (const [channel, count] of changes) {
          if (count > 0) writes.zadd(own.channels, 0, channel).hset(own.counts, channel, count);
          else writes.zrem(own.channels, channel).hdel(own.counts, channel);
        }
        await writes.exec();
      }
      const status: NodeStatus = {
        id: this.options.nodeId,
        incarnation: this.incarnation,
        ready: local.ready(),
        connections: local.connections(),
        subscriptions: channels.subscriptions,
        uptimeSeconds: Math.round((sentAt - this.startedAt) / 1000),
        version: this.options.version,
        reportedAt: Date.now(),
      };
      const kept = await this.redis.registryHeartbeat(
        this.keys.leases,
        this.keys.status,
        this.keys.channels(this.incarnation),
        this.keys.counts(this.incarnation),
        this.incarnation,
        NODE_LEASE_MS,
        JSON.stringify(status),
        KEY_TTL_MS,
      );
      this.beatAt = sentAt;
      if (kept === 0) channels.markAllChanged();
    } catch (err) {
      // Written again with the next heartbeat.
      for (const [channel] of changes) channels.markChanged(channel);
      this.options.log.warn({ err }, "node registry heartbeat failed; retrying");
    }
  }
}

function parseStatus(text: string): NodeStatus | null {
  try {
    const value = JSON.parse(text) as NodeStatus;
    return typeof value === "object" && value !== null && typeof value.id === "string" ? value : null;
  } catch {
    return null;
  }
}
