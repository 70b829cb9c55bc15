/**
 * Connections per user across the cluster, counted in Redis, so that a
 * user opening a thousand sockets gets a clear refusal on the ones past
 * MAX_CONNECTIONS_PER_USER on whichever nodes they land.
 *
 * Layout (every script touches one key, so it runs on Redis Cluster too):
 * - `<prefix>:conns:{<user>}`: a hash, node incarnation → that node's
 *   connections of the user. Expires KEY_TTL_MS after it was last touched.
 * - `<prefix>:conns:nodes`: a sorted set, incarnation → when its lease ends
 *   (Redis time). Each node renews its own every HEARTBEAT_MS and reads back
 *   the incarnations whose lease has ended: the dead ones.
 *
 * An incarnation is the node id plus a random suffix, new at every start, so
 * a node restarted under the same NODE_ID never inherits the counts of its
 * previous life. Admitting or releasing a connection first deletes the
 * fields of dead incarnations from the user's hash: the connections of a
 * node that died (SIGKILL, partition) stop counting within about LEASE_MS
 * plus a heartbeat. A node shutting down retires its incarnation at once.
 *
 * Errors lean towards admitting: a node cut off from Redis for longer than
 * its lease takes a new incarnation when it is back, so whatever the old one
 * counted (connections closed meanwhile included, whose releases may have
 * been lost) is deleted as dead; its users may then briefly exceed the
 * limit. A user is refused for connections that are gone only while their
 * releases wait in the queue behind a shorter outage.
 */

import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { connectionNodesKey, userConnectionsKey } from "../broker/redis-keys.js";
import type { RedisClient, RedisConnections } from "../redis/connections.js";
import { PipelinedScript } from "../redis/pipelined-script.js";

/** A node whose lease ran out this long ago counts as dead. */
export const LEASE_MS = 5000;
const HEARTBEAT_MS = 1000;
/** A user's hash lives this long after it was last touched; dead incarnations are remembered as long. */
const KEY_TTL_MS = 6 * 3600_000;
/** An admit that takes longer is answered `unavailable`; a late success is given back. */
const ADMIT_TIMEOUT_MS = 2000;
/** How often waiting admits are checked against that bound: they are refused within this much after it. */
const ADMIT_SWEEP_MS = 250;
const RETIRE_TIMEOUT_MS = 1000;
/** Dead incarnations sent with each admit, newest first; more would only be restarts older than hours. */
const MAX_DEAD = 500;

/** Deletes ARGV[first..] (dead incarnations) from KEYS[1] except ARGV[1] (ours); returns the remaining total. */
const PRUNE_LUA = `
local function prune_and_count(first)
  local dead = {}
  for i = first, #ARGV do dead[ARGV[i]] = true end
  local fields = redis.call('HGETALL', KEYS[1])
  local total = 0
  for i = 1, #fields, 2 do
    if dead[fields[i]] and fields[i] ~= ARGV[1] then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      total = total + tonumber(fields[i + 1])
    end
  end
  return total
end
`;

/** ARGV: incarnation, max, key ttl ms, dead…; 1 admitted, 0 full. */
const ADMIT_LUA = `${PRUNE_LUA}
if prune_and_count(4) >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

/** ARGV: incarnation, key ttl ms, dead…; returns the connections left. */
const RELEASE_LUA = `${PRUNE_LUA}
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if mine <= 1 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
local left = prune_and_count(3)
if left > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return left`;

/** ARGV: incarnation, lease ms, retention ms, max dead; renews (or, with lease 0, retires) and returns the dead, newest first. */
const HEARTBEAT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return redis.call('ZREVRANGEBYSCORE', KEYS[1], now - 1, '-inf', 'LIMIT', 0, tonumber(ARGV[4]))`;

const ADMIT = new PipelinedScript(ADMIT_LUA, 1);
const RELEASE = new PipelinedScript(RELEASE_LUA, 1);
const HEARTBEAT = new PipelinedScript(HEARTBEAT_LUA, 1);

export type Admission = "admitted" | "full";

/** An admit waiting for Redis: refused by the sweep once past its deadline (monotonic ms). */
interface PendingAdmit {
  readonly deadline: number;
  readonly reject: (err: Error) => void;
}

/** Takes and gives back a user's connection slots, cluster-wide. */
export interface ConnectionQuota {
  /** One slot for `user`: "admitted" (give it back with release()), or "full". Rejects when Redis cannot answer in time: nothing is held then. */
  acquire(user: string): Promise<Admission>;
  /** Gives back one slot taken by acquire(); queued while Redis is away. */
  release(user: string): void;
}

export interface RedisConnectionQuotaOptions {
  readonly redis: RedisConnections;
  readonly prefix: string;
  readonly nodeId: string;
  readonly maxPerUser: number;
  readonly log: Logger;
}

function newIncarnation(nodeId: string): string {
  return `${nodeId}.${randomBytes(4).toString("hex")}`;
}

export class RedisConnectionQuota implements ConnectionQuota {
  private readonly redis: RedisClient;
  private incarnation: string;
  private readonly nodesKey: string;
  private dead: string[] = [];
  /** When the last renewal that succeeded was sent (monotonic ms): the lease runs from no earlier. Null before the first. */
  private leaseFrom: number | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly pendingAdmits = new Set<PendingAdmit>();
  /** The sweep of pendingAdmits; runs only while some admit waits. */
  private deadlines: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: RedisConnectionQuotaOptions) {
    this.incarnation = newIncarnation(options.nodeId);
    this.nodesKey = connectionNodesKey(options.prefix);
    // Releases wait out an outage (queued, resent): a lost one would count a
    // connection that is gone. Admits bound themselves (ADMIT_TIMEOUT_MS).
    // One admit per connecting socket: pipelined, so a burst of connects is a few writes.
    this.redis = options.redis.open("limits", { offlineQueue: true, maxRetriesPerRequest: 100, autoPipelining: true });
    this.heartbeat = setInterval(() => void this.beat(LEASE_MS), HEARTBEAT_MS);
    this.heartbeat.unref();
    void this.beat(LEASE_MS);
  }

  acquire(user: string): Promise<Admission> {
    return new Promise((resolve, reject) => {
      const admit: PendingAdmit = { deadline: performance.now() + ADMIT_TIMEOUT_MS, reject };
      this.pendingAdmits.add(admit);
      this.deadlines ??= setInterval(() => this.expireAdmits(), ADMIT_SWEEP_MS).unref();
      const settled = (): boolean => this.pendingAdmits.delete(admit);
      ADMIT.run(this.redis, userConnectionsKey(this.options.prefix, user), this.incarnation, this.options.maxPerUser, KEY_TTL_MS, ...this.dead).then(
        (result) => {
          // Too late for the caller, who refused the connection: give the slot back.
          if (!settled()) {
            if (result === 1) this.release(user);
            return;
          }
          resolve(result === 1 ? "admitted" : "full");
        },
        (err: unknown) => {
          if (settled()) reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  /** Refuses the admits that waited past ADMIT_TIMEOUT_MS; one timer for all of them, stopped when none waits. */
  private expireAdmits(): void {
    const now = performance.now();
    for (const admit of this.pendingAdmits) {
      if (admit.deadline > now) continue;
      this.pendingAdmits.delete(admit);
      admit.reject(new Error(`connection quota did not answer within ${ADMIT_TIMEOUT_MS} ms`));
    }
    if (this.pendingAdmits.size === 0 && this.deadlines !== null) {
      clearInterval(this.deadlines);
      this.deadlines = null;
    }
  }

  release(user: string): void {
    RELEASE.run(this.redis, userConnectionsKey(this.options.prefix, user), this.incarnation, KEY_TTL_MS, ...this.dead).catch((err: unknown) => {
      this.options.log.warn({ err }, "connection quota release failed; the user's count stays high until this node restarts or the key expires");
    });
  }

  /** Stops renewing and retires this incarnation, so the others stop counting its connections now. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    if (this.deadlines !== null) clearInterval(this.deadlines);
    this.deadlines = null;
    // Bounded: with Redis away the retirement would queue; the lease then runs out by itself.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.beat(0), new Promise<void>((resolve) => (timer = setTimeout(resolve, RETIRE_TIMEOUT_MS)))]);
    clearTimeout(timer);
    this.redis.disconnect();
  }

  private async beat(leaseMs: number): Promise<void> {
    const sentAt = performance.now();
    if (leaseMs > 0 && this.leaseFrom !== null && sentAt - this.leaseFrom >= LEASE_MS) {
      // The others may have counted us dead and deleted some of our counts: start afresh.
      const lapsed = this.incarnation;
      this.incarnation = newIncarnation(this.options.nodeId);
      this.leaseFrom = null;
      this.options.log.warn({ lapsed, incarnation: this.incarnation }, "connection quota lease lapsed; counting this node's new connections under a new incarnation");
    }
    try {
      const incarnation = this.incarnation;
      const dead = await HEARTBEAT.run(this.redis, this.nodesKey, incarnation, leaseMs, KEY_TTL_MS, MAX_DEAD);
      this.dead = Array.isArray(dead) ? dead.filter((id): id is string => typeof id === "string") : [];
      if (incarnation === this.incarnation) this.leaseFrom = sentAt;
    } catch (err) {
      this.options.log.warn({ err, leaseMs }, "connection quota heartbeat failed; retrying");
    }
  }
}
